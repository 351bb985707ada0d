"""fit.impute(): the smoothing predictive at the gaps; its intervals cover held-out values at
their nominal rate (simulated data, true parameters, continuous time with irregular gaps)."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from bayes_ssm.data.validation import as_series_data
from bayes_ssm.inference.fit import Fit
from bayes_ssm.models import StructuralTS
from bayes_ssm.models.components import structural_system
from bayes_ssm.models.continuous import continuous_system
from bayes_ssm.models.seasonal import Seasonal

TRUE = {"sigma_obs": 0.3, "sigma_level": 0.15, "sigma_seasonal": 0.05}


def _simulate(model, times, scales, rng):
    """One path of the continuous-time model at ``times`` (true parameters, proper start)."""
    variances = {
        "level_var": TRUE["sigma_level"] ** 2,
        "seasonal_var": TRUE["sigma_seasonal"] ** 2,
    }
    variances = {k: jnp.asarray(v) for k, v in variances.items()}
    system = structural_system(model, variances, scales)
    trans, _, roots = continuous_system(model, variances, jnp.asarray(np.diff(times)))
    state = np.asarray(system.init_mean) + np.linalg.cholesky(np.asarray(system.init_cov)) @ (
        rng.standard_normal(system.init_mean.shape[0])
    )
    signal = [np.asarray(system.observation) @ state]
    for t, r in zip(np.asarray(trans), np.asarray(roots), strict=True):
        state = t @ state + r @ rng.standard_normal(state.shape[0])
        signal.append(np.asarray(system.observation) @ state)
    return np.asarray(signal) + TRUE["sigma_obs"] * rng.standard_normal(len(times))


def _true_fit(model, y, times, num_draws):
    data = as_series_data(pd.Series(y, index=times), time="continuous")
    scales = {"y_loc": 0.0, "y_scale": 1.0, "dy_scale": 0.3}
    draws = {k: np.full((1, num_draws), v) for k, v in TRUE.items()}
    return Fit(
        model=model.with_times(data.times), data=data, scales=scales, method="svi", draws=draws
    )


@pytest.mark.slow
def test_imputation_intervals_cover_held_out_values_at_nominal_rate():
    rng = np.random.default_rng(0)
    model = StructuralTS(trend=None, seasonal=Seasonal(10.0, harmonics=2))
    scales = {"y_loc": 0.0, "y_scale": 1.0, "dy_scale": 0.3}
    hits = {0.8: [], 0.95: []}
    times = np.cumsum(rng.uniform(0.3, 1.7, 80))  # one irregular grid: one compilation
    for rep in range(20):
        y = _simulate(model, times, scales, rng)
        hidden = rng.choice(np.arange(5, 80), 20, replace=False)
        y_obs = y.copy()
        y_obs[hidden] = np.nan
        fit = _true_fit(model, y_obs, times, num_draws=400)
        frame = fit.impute(key=rep)
        assert np.array_equal(np.isnan(frame["observed"]), np.isnan(y_obs))
        for p, name in ((0.8, "80"), (0.95, "95")):
            lo, hi = frame[f"lower_{name}"].to_numpy(), frame[f"upper_{name}"].to_numpy()
            hits[p].extend((lo[hidden] <= y[hidden]) & (y[hidden] <= hi[hidden]))
    # 400 held-out values: the coverage's standard error is 2.0% (80%) and 1.1% (95%)
    assert abs(np.mean(hits[0.8]) - 0.8) < 0.06, np.mean(hits[0.8])
    assert abs(np.mean(hits[0.95]) - 0.95) < 0.035, np.mean(hits[0.95])


def test_impute_fills_gaps_between_their_neighbours_and_refuses_other_models():
    """The imputation at a gap is pulled by both sides (it is non-causal): a step up after the
    gap moves the imputed value, a forecast from before the gap cannot see it."""
    with jax.enable_x64(True):
        times = np.arange(30, dtype=float)
        y = np.r_[np.zeros(15), np.full(15, 4.0)]
        y[14] = np.nan
        model = StructuralTS(trend=None)
        fit = _true_fit(model, y, times, num_draws=200)
        fit = Fit(
            model=fit.model,
            data=fit.data,
            scales=fit.scales,
            method="svi",
            draws={"sigma_obs": np.full((1, 200), 0.1), "sigma_level": np.full((1, 200), 1.0)},
        )
        frame = fit.impute(key=0)
        assert 1.0 < frame["mean"].iloc[14] < 3.0  # between the two sides, not at 0
    other = Fit(
        model=StructuralTS(trend=None),
        data=fit.data,
        scales=fit.scales,
        method="svi",
        draws={},
    )
    object.__setattr__(other, "model", type("M", (), {"kind": "attention_ar"})())
    with pytest.raises(ValueError, match="StructuralTS"):
        other.impute()


def test_impute_at_past_times_equals_imputing_a_nan_row():
    """impute(times=t) of a continuous-time fit == impute() of the same fit whose data carry a
    NaN row at t (same draws, same key)."""
    times = np.array([0.0, 1.0, 2.5, 4.0, 5.5, 7.0])
    y = np.array([0.1, 0.4, 0.2, 0.9, 1.1, 0.8])
    model = StructuralTS(trend=None)
    fit = _true_fit(model, y, times, num_draws=50)
    at = fit.impute(times=[3.0], key=1)
    with_row = _true_fit(model, np.insert(y, 3, np.nan), np.insert(times, 3, 3.0), num_draws=50)
    row = with_row.impute(key=1).iloc[[3]]
    pd.testing.assert_frame_equal(at, row, check_exact=False, rtol=1e-6)
    with pytest.raises(ValueError, match="strictly between"):
        fit.impute(times=[8.0])
