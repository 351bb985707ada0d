"""Quantile recalibration from in-sample h-step PIT values (bayes_ssm.inference.recalibration).

Fits are built by hand at known parameters (no SVI), so the tests are fast and the "model"
is exactly what the test says: a Gaussian local level at given sds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayes_ssm.data.validation import as_series_data
from bayes_ssm.inference.fit import Fit
from bayes_ssm.inference.recalibration import (
    candidate_pit,
    in_sample_scores,
    origin_levels,
    quantiles_at,
    recalibrate_draws,
    recalibrated_levels,
    stacked_pit,
)
from bayes_ssm.inference.stacked_fit import StackedFit, Transform
from bayes_ssm.models import StructuralTS


@pytest.fixture(autouse=True)
def _x64():
    import jax

    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", False)


def level_fit(y, *, sigma_obs, sigma_level, draws=1, likelihood="gaussian", nu=None, scales=None):
    """A Fit of the local level at fixed parameters (``draws`` identical posterior draws)."""
    model = StructuralTS(trend=None, likelihood=likelihood)
    series = pd.Series(y, index=pd.date_range("2000-01-02", periods=len(y), freq="W"))
    data = as_series_data(series)
    values = {"sigma_obs": sigma_obs, "sigma_level": sigma_level}
    if nu is not None:
        values["nu"] = nu
    return Fit(
        model=model,
        data=data,
        scales=scales or model.data_scales(data.y),
        method="svi",
        draws={k: np.full((1, draws), v) for k, v in values.items()},
    )


def simulate_level(rng, n, sigma_obs, sigma_level, obs_noise=None):
    level = 1.0 + np.cumsum(sigma_level * rng.standard_normal(n))
    noise = rng.standard_normal(n) if obs_noise is None else obs_noise
    return level + sigma_obs * noise


def test_recalibration_recovers_the_right_scale():
    # model N(0, 1), outcomes N(0, 2^2): the recalibrated quantile at p is the model's quantile
    # at the empirical p-quantile of the PIT values (hand computation), which is ~2 z_p
    rng = np.random.default_rng(0)
    draws = rng.standard_normal((20_000, 1))
    pit = stats.norm.cdf(2.0 * rng.standard_normal((4_000, 1)))
    probs = np.array([0.025, 0.1, 0.5, 0.9, 0.975])
    got = quantiles_at(draws, recalibrated_levels(pit, probs))[:, 0]
    hand = np.quantile(draws[:, 0], np.quantile(pit[:, 0], probs))
    np.testing.assert_allclose(got, hand, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got, 2.0 * stats.norm.ppf(probs), atol=0.12)
    # the recalibrated draws (whole origins) have the same law (inside the draws' range: a
    # level beyond the extreme draws reads the extreme draw, so compare central quantiles)
    out = recalibrate_draws(draws, pit, np.random.default_rng(1))
    np.testing.assert_allclose(
        np.quantile(out, [0.1, 0.9]), 2.0 * stats.norm.ppf([0.1, 0.9]), atol=0.12
    )


def test_recalibrated_draws_take_whole_origins():
    rng = np.random.default_rng(2)
    draws = np.sort(rng.standard_normal((1000, 3)), axis=0)
    pit = rng.uniform(size=(40, 3))
    out = recalibrate_draws(draws, pit, np.random.default_rng(3))
    # each output row is the draws' quantiles at one origin's levels (~ its PIT values)
    levels = origin_levels(pit)
    np.testing.assert_allclose(levels, pit, atol=0.05)
    table = np.stack([quantiles_at(draws, row[None, :])[0] for row in levels])
    matches = [np.flatnonzero(np.all(np.isclose(table, r), axis=1)) for r in out]
    assert all(m.size >= 1 for m in matches)


@pytest.mark.slow  # compiles the model's forecast program (~5-15 s)
def test_candidate_pit_equals_the_models_own_forecast():
    # h-step PIT from the Kalman moments == the empirical CDF of the model's forecast draws
    # (its NumPyro program, run on the data up to the origin) at the realised value
    rng = np.random.default_rng(4)
    y = simulate_level(rng, 80, 0.3, 0.2)
    full = level_fit(y, sigma_obs=0.3, sigma_level=0.2)
    pit, log_dens = candidate_pit(full, 4, burn=20)
    assert pit.shape == log_dens.shape == (80 - 4 - 20, 4)
    for origin in (47,):  # one origin: each length compiles the forecast program once
        part = level_fit(
            y[: origin + 1], sigma_obs=0.3, sigma_level=0.2, draws=4000, scales=dict(full.scales)
        )
        sims = np.asarray(part.forecast_samples(4, key=origin))
        empirical = (sims <= y[origin + 1 : origin + 5]).mean(axis=0)
        np.testing.assert_allclose(pit[origin - 20], empirical, atol=0.03)


def test_student_t_pit_is_the_t_cdf_when_the_state_is_known():
    # sigma_level -> 0 and a long window: the level is known, the h-step law is the t itself
    rng = np.random.default_rng(5)
    y = 2.0 + 0.5 * rng.standard_t(3.0, 300)
    fit = level_fit(y, sigma_obs=0.5, sigma_level=1e-6, likelihood="student_t", nu=3.0)
    pit, _ = candidate_pit(fit, 2, burn=250)
    level = np.mean(y[:250])  # nearly the filtered level (robust filters differ only slightly)
    expected = stats.t.cdf((y[251:298] - level) / 0.5, 3.0)
    np.testing.assert_allclose(pit[:47, 0], expected, atol=0.05)


def test_calibrated_model_gives_a_near_identity_map():
    rng = np.random.default_rng(6)
    y = simulate_level(rng, 1500, 0.3, 0.2)
    pit, _ = candidate_pit(level_fit(y, sigma_obs=0.3, sigma_level=0.2), 3, burn=20)
    probs = np.array([0.025, 0.1, 0.5, 0.9, 0.975])
    levels = recalibrated_levels(pit, probs)
    # binomial sd of an empirical quantile at n ~ 1500 (with some dependence across origins)
    tol = 4 * np.sqrt(probs * (1 - probs) / pit.shape[0])[:, None]
    assert np.all(np.abs(levels - probs[:, None]) < tol + 0.01)


def test_heavy_tailed_data_recalibrated_coverage_is_nominal():
    # a Gaussian model (variance matched) of data with t(3) observation noise: raw 80%
    # intervals over-cover, the map learned on the first half makes the second half nominal
    rng = np.random.default_rng(7)
    n = 3000
    noise = rng.standard_t(3.0, n) / np.sqrt(3.0)  # unit variance
    y = simulate_level(rng, n, 0.5, 0.05, obs_noise=noise)
    pit, _ = candidate_pit(level_fit(y, sigma_obs=0.5, sigma_level=0.05), 1, burn=20)
    u = pit[:, 0]
    train, test = u[: u.size // 2], u[u.size // 2 :]
    lo, hi = recalibrated_levels(train[:, None], [0.1, 0.9])[:, 0]
    raw = np.mean((test > 0.1) & (test < 0.9))
    recal = np.mean((test > lo) & (test < hi))
    se = np.sqrt(0.8 * 0.2 / test.size)
    assert raw > 0.8 + 4 * se  # the test can fail: the raw model is miscalibrated
    assert abs(recal - 0.8) < 3 * se
    # the widen-only map leaves these over-wide 80% intervals as they are
    np.testing.assert_array_equal(
        recalibrated_levels(train[:, None], [0.1, 0.9], "widen")[:, 0], [0.1, 0.9]
    )


def stacked(fit, recalibrate):
    weights = pd.Series([1.0], index=["level"], name="weight")
    return StackedFit(
        fits={"level": fit},
        weights=weights,
        transform=Transform("none"),
        data=fit.data,
        table=pd.DataFrame({"weight": weights}),
        weights_from="single candidate",
        seconds=0.0,
        recalibrate=recalibrate,
    )


def test_stacked_forecast_recalibrates_and_says_so():
    rng = np.random.default_rng(8)
    y = simulate_level(rng, 120, 0.3, 0.2)
    # a model whose sds are 3x too small: recalibration must widen its intervals
    fit = level_fit(y, sigma_obs=0.1, sigma_level=0.066, draws=2000)
    on, off = stacked(fit, "quantile"), stacked(fit, False)
    fc_on, fc_off = on.forecast(3, key=0), off.forecast(3, key=0)
    fc_widen = stacked(fit, "widen").forecast(3, key=0)  # the static widen-only map widens too
    assert fc_off.attrs["recalibration"] == "not recalibrated (recalibrate=False)"
    assert fc_on.attrs["recalibration"].startswith("recalibrated from 291 in-sample PIT values")
    assert "on: recalibrated from" in on.summary().attrs["recalibration"]
    width = lambda f: (f["upper_80"] - f["lower_80"]).to_numpy()  # noqa: E731
    assert np.all(width(fc_on) > 1.8 * width(fc_off))
    assert np.all(width(fc_widen) > 1.8 * width(fc_off))
    assert "widen map" in fc_widen.attrs["recalibration"]
    # the frame's quantiles == the quantiles of the recalibrated draws (two computations)
    draws = on.forecast_samples(3, num_samples=2000, key=0)
    q = np.quantile(draws, [0.1, 0.9], axis=0)
    np.testing.assert_allclose(q[0], fc_on["lower_80"], atol=0.1 * width(fc_on).mean())
    np.testing.assert_allclose(q[1], fc_on["upper_80"], atol=0.1 * width(fc_on).mean())
    # and the mixture's PIT is the candidate's (one candidate, weight 1)
    scores = in_sample_scores({"level": fit}, 3)
    np.testing.assert_allclose(
        stacked_pit(scores, on.weights).pit, np.clip(scores["pit"]["level"], 0, 1)
    )
