"""Continuous-time StructuralTS: the discrete model at unit gaps, a dense-Gaussian twin of the
time-varying Kalman likelihood, closed forms against Van Loan, forecast variance growth."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from numpyro import handlers
from numpyro.infer import Predictive
from scipy.stats import multivariate_normal

from bayes_ssm.models import StructuralTS
from bayes_ssm.models.continuous import ar1_gap, damped_trend_gap, trend_gap, trig_seasonal_gap
from bayes_ssm.models.seasonal import Seasonal


@pytest.fixture(autouse=True)
def _x64(x64):
    yield


SCALES = {"y_loc": 1.0, "y_scale": 2.0, "dy_scale": 0.5}


def _trace(model, y, params, horizon=0, key=0, components=False):
    conditioned = handlers.condition(handlers.seed(model.model, key), params)
    with handlers.trace() as tr:
        conditioned(jnp.asarray(y), scales=SCALES, horizon=horizon, components=components)
    return {k: np.asarray(v["value"]) for k, v in tr.items()}


def _series(n, seed=0, missing=()):
    rng = np.random.default_rng(seed)
    y = 1.0 + np.cumsum(rng.normal(0, 0.3, n)) + np.sin(2 * np.pi * np.arange(n) / 12)
    y[list(missing)] = np.nan
    return y


PARAMS = {
    "sigma_obs": 0.4,
    "sigma_level": 0.2,
    "sigma_seasonal": 0.05,
    "ar_pacf": np.array([0.6]),
    "sigma_ar": 0.3,
}


def _unit_gap_pair(components):
    """The same draws from the discrete model and from the continuous one at gaps of 1."""
    n = 40
    y = _series(n, missing=(5, 6, 20))
    discrete = StructuralTS(trend=None, seasonal=Seasonal(12, harmonics=2), ar_order=1)
    continuous = discrete.with_times(np.arange(n, dtype=float))
    params = {k: jnp.asarray(v) for k, v in PARAMS.items()}
    a = _trace(discrete, y, params, horizon=6, key=3, components=components)
    b = _trace(continuous, y, params, horizon=6, key=3, components=components)
    return a, b


def test_unit_gaps_equal_the_discrete_model():
    """Level + trig seasonal + AR(1) at gaps of one step == today's discrete model: log_lik
    and forecast draws (same key), with missing values."""
    a, b = _unit_gap_pair(components=False)
    for site in ("log_lik", "y_forecast"):
        np.testing.assert_allclose(b[site], a[site], rtol=0, atol=1e-10, err_msg=site)


@pytest.mark.slow
def test_unit_gaps_equal_the_discrete_model_components():
    """... and the read-outs: y_fitted, y_rep and the smoothing draw of each component."""
    a, b = _unit_gap_pair(components=True)
    for site in ("y_fitted", "y_rep", "component/level", "component/seasonal", "component/ar"):
        np.testing.assert_allclose(b[site], a[site], rtol=0, atol=1e-10, err_msg=site)


def van_loan(drift, diffusion, gap):
    """Van Loan (1978) in numpy: ``(exp(A gap), int_0^gap exp(A s) Q_c exp(A s)' ds)``."""
    drift, diffusion = np.asarray(drift), np.asarray(diffusion)
    n = drift.shape[0]
    big = scipy.linalg.expm(np.block([[-drift, diffusion], [np.zeros((n, n)), drift.T]]) * gap)
    f = big[n:, n:].T
    return f, f @ big[:n, n:]


def test_closed_forms_equal_van_loan():
    gaps = jnp.array([0.3, 1.0, 2.7])
    t, q, root = trend_gap(gaps, 0.2, 0.05)
    drift = np.array([[0.0, 1.0], [0.0, 0.0]])
    for i, g in enumerate(np.asarray(gaps)):
        tv, qv = van_loan(drift, np.diag([0.2, 0.05]), g)
        np.testing.assert_allclose(t[i], tv, atol=1e-12)
        np.testing.assert_allclose(q[i], qv, atol=1e-12)
        np.testing.assert_allclose(root[i] @ root[i].T, q[i], atol=1e-12)
    t, q, _ = trig_seasonal_gap(gaps, 7.5, 2, 0.3)
    lam = 2 * np.pi * np.array([1, 2]) / 7.5
    gen = scipy.linalg.block_diag(*[[[0, w], [-w, 0]] for w in lam])
    for i, g in enumerate(np.asarray(gaps)):
        tv, qv = van_loan(gen, 0.3 * np.eye(4), g)
        np.testing.assert_allclose(t[i], tv, atol=1e-12)
        np.testing.assert_allclose(q[i], qv, atol=1e-12)
    phi, var = 0.7, 0.4
    t, q, _ = ar1_gap(gaps, jnp.array([phi]), var)
    kappa = -np.log(phi)
    for i, g in enumerate(np.asarray(gaps)):
        diffusion = np.array([[2 * kappa * var / (1 - phi**2)]])
        tv, qv = van_loan(np.array([[-kappa]]), diffusion, g)
        np.testing.assert_allclose(t[i], tv, atol=1e-12)
        np.testing.assert_allclose(q[i], qv, atol=1e-12)
    # the damped trend without damping is the local linear trend
    td, qd, _ = damped_trend_gap(gaps, jnp.asarray(0.2), jnp.asarray(0.05), jnp.asarray(1.0))
    t, q, _ = trend_gap(gaps, 0.2, 0.05)
    np.testing.assert_allclose(td, t, atol=1e-12)
    np.testing.assert_allclose(qd, q, atol=1e-12)


def _dense_log_lik(times, y, blocks, init_mean, init_cov, obs_var):
    """Brute force: the joint Gaussian of the observed y from drift/diffusion per block."""
    drift = scipy.linalg.block_diag(*[b[0] for b in blocks])
    diffusion = scipy.linalg.block_diag(*[b[1] for b in blocks])
    z = np.concatenate([b[2] for b in blocks])
    n = drift.shape[0]
    means, covs, flows = [init_mean], [init_cov], [np.eye(n)]
    for gap in np.diff(times):
        f, q = van_loan(drift, diffusion, gap)
        means.append(f @ means[-1])
        covs.append(f @ covs[-1] @ f.T + q)
        flows.append(f @ flows[-1])  # state transition from time 0
    k = len(times)
    joint = np.zeros((k, k))
    for i in range(k):
        for j in range(i + 1):
            # Cov(alpha_i, alpha_j) = Phi(t_i <- t_j) Var(alpha_j), Phi = flows[i] flows[j]^-1
            phi = flows[i] @ np.linalg.inv(flows[j])
            joint[i, j] = joint[j, i] = z @ phi @ covs[j] @ z
    joint += obs_var * np.eye(k)
    mean = np.array([z @ m for m in means])
    keep = ~np.isnan(y)
    return multivariate_normal(mean[keep], joint[np.ix_(keep, keep)]).logpdf(y[keep])


def test_irregular_likelihood_equals_dense_gaussian():
    rng = np.random.default_rng(1)
    times = np.cumsum(rng.uniform(0.2, 3.0, 25))
    y = np.sin(times / 2) + rng.normal(0, 0.3, 25)
    y[[4, 11]] = np.nan
    model = StructuralTS(trend="local_linear", seasonal=Seasonal(9.5, harmonics=2), ar_order=1)
    model = model.with_times(times)
    params = {k: jnp.asarray(v) for k, v in dict(PARAMS, sigma_slope=0.03).items()}
    tr = _trace(model, y, params)
    lam = 2 * np.pi * np.arange(1, 3) / 9.5
    phi, s_ar = 0.6, 0.3
    kappa = -np.log(phi)
    blocks = [
        (np.array([[0.0, 1.0], [0.0, 0.0]]), np.diag([0.2**2, 0.03**2]), np.array([1.0, 0.0])),
        (
            scipy.linalg.block_diag(*[[[0, w], [-w, 0]] for w in lam]),
            0.05**2 * np.eye(4),
            np.array([1.0, 0.0, 1.0, 0.0]),
        ),
        (np.array([[-kappa]]), np.array([[2 * kappa * s_ar**2 / (1 - phi**2)]]), np.ones(1)),
    ]
    init_mean = np.r_[SCALES["y_loc"], 0.0, np.zeros(4), 0.0]
    ys, dys = SCALES["y_scale"], SCALES["dy_scale"]
    init_cov = np.diag(np.r_[(3 * ys) ** 2, (2 * dys) ** 2, [ys**2] * 4, s_ar**2 / (1 - phi**2)])
    dense = _dense_log_lik(times, y, blocks, init_mean, init_cov, 0.4**2)
    assert np.isclose(tr["log_lik"].sum(), dense, rtol=0, atol=1e-9)


def test_forecast_variance_grows_linearly_in_the_gap():
    """Local level: Var(y at t_N + Delta | data) = P_N + sigma_level^2 Delta + sigma_obs^2."""
    rng = np.random.default_rng(2)
    times = np.cumsum(rng.uniform(0.5, 2.0, 30))
    y = rng.normal(0, 1, 30).cumsum() * 0.3
    future = times[-1] + np.array([0.25, 1.0, 4.0, 16.0])
    model = StructuralTS(trend=None).with_times(times, forecast_times=future)
    s_level, s_obs = 0.5, 0.2
    # closed form: the scalar Kalman filter of a random walk observed at irregular times
    p = (3 * SCALES["y_scale"]) ** 2
    for i in range(30):
        if i:
            p = p + s_level**2 * (times[i] - times[i - 1])
        p = p - p**2 / (p + s_obs**2)
    expected = p + s_level**2 * (future - times[-1]) + s_obs**2
    num = 20000
    draws = {
        "sigma_obs": jnp.full(num, s_obs),
        "sigma_level": jnp.full(num, s_level),
    }
    out = Predictive(model.model, posterior_samples=draws, return_sites=["y_forecast"])(
        jax.random.PRNGKey(0), jnp.asarray(y), scales=SCALES, horizon=4
    )
    var = np.asarray(out["y_forecast"]).var(axis=0)
    # 20000 draws: the variance's relative standard error is sqrt(2 / 20000) = 1%
    np.testing.assert_allclose(var, expected, rtol=0.05)
    assert np.all(np.diff(var) > 0)


def test_continuous_time_refuses_what_it_cannot_model():
    with pytest.raises(ValueError, match="dummy"):
        StructuralTS(seasonal=Seasonal(7, kind="dummy"), time="continuous")
    with pytest.raises(ValueError, match="ar_order 0 or 1"):
        StructuralTS(ar_order=2, time="continuous")
    with pytest.raises(ValueError, match="negative binomial"):
        StructuralTS(likelihood="negative_binomial", time="continuous")
    with pytest.raises(ValueError, match="not available in continuous time"):
        StructuralTS(cycle=True, time="continuous")
    with pytest.raises(ValueError, match="not available in continuous time"):
        StructuralTS(initialization="diffuse", time="continuous")
    with pytest.raises(ValueError, match="strictly increasing"):
        StructuralTS().with_times([0.0, 2.0, 1.0])
    with pytest.raises(ValueError, match="after the last"):
        StructuralTS().with_times([0.0, 1.0], forecast_times=[0.5])


@pytest.mark.slow
def test_irregular_datetime_index_fits_and_forecasts_at_any_time(tmp_path):
    """End to end: an off-grid DatetimeIndex is fitted in continuous time (time="auto"),
    forecast on the inferred grid and at arbitrary timestamps, saved and loaded."""
    import pandas as pd

    import bayes_ssm as bs

    rng = np.random.default_rng(5)
    index = pd.date_range("2020-01-04", periods=60, freq="7D")
    keep = np.sort(rng.choice(60, 45, replace=False))
    index = index[keep] + pd.to_timedelta(rng.integers(0, 3, 45), unit="D")  # off the grid
    y = pd.Series(np.cumsum(rng.normal(0, 0.3, 45)) + 5.0, index=index, name="lab")
    model = StructuralTS(trend=None, ar_order=1)
    with pytest.raises(ValueError, match="continuous time"):
        bs.fit_svi(StructuralTS(trend=None, time="discrete"), y, key=0, steps=10)
    fit = bs.fit_svi(model, y, key=0, steps=200, num_samples=100, progress=False)
    assert fit.model.obs_times is not None and fit.data.time_unit == pd.Timedelta(7, unit="D")
    np.testing.assert_allclose(fit.model.obs_times, (index - index[0]) / pd.Timedelta(7, unit="D"))
    grid = fit.forecast(3)
    assert list(grid.index) == list(index[-1] + pd.Timedelta(7, unit="D") * np.arange(1, 4))
    stamps = index[-1] + pd.to_timedelta([1, 10, 100], unit="D")
    at = fit.forecast(times=stamps)
    assert at.index.equals(pd.DatetimeIndex(stamps))
    width = at["upper_95"] - at["lower_95"]
    assert np.all(np.diff(width.to_numpy()) > 0)  # uncertainty grows with the gap
    path = tmp_path / "fit.nc"
    fit.save(path)
    loaded = bs.load(path)
    pd.testing.assert_frame_equal(loaded.forecast(times=stamps), at)
    with pytest.raises(ValueError, match="after the last"):
        fit.forecast(times=[index[-2]])


def test_series_data_in_continuous_time():
    """The validation boundary: irregular indexes get times in units of the most common gap
    (or freq), regular ones keep the discrete path under time="auto"."""
    import pandas as pd

    from bayes_ssm.data.validation import as_series_data, future_index, to_model_time

    index = pd.DatetimeIndex(["2021-01-01", "2021-01-08", "2021-01-15", "2021-01-25"])
    y = pd.Series([1.0, 2.0, np.nan, 3.0], index=index)
    data = as_series_data(y, time="auto")
    assert data.time_unit == pd.Timedelta(7, unit="D") and data.index.equals(index)
    np.testing.assert_allclose(data.times, [0.0, 1.0, 2.0, 24 / 7])
    daily = as_series_data(y, time="continuous", freq="D")
    np.testing.assert_allclose(daily.times, [0.0, 7.0, 14.0, 24.0])
    assert future_index(data, 2).equals(pd.DatetimeIndex(["2021-02-01", "2021-02-08"]))
    np.testing.assert_allclose(to_model_time(data, ["2021-01-26"]), [25 / 7])
    with pytest.raises(ValueError, match="after the last"):
        to_model_time(data, ["2021-01-20"])
    regular = pd.Series([1.0, 2.0, 3.0], index=pd.date_range("2021-01-01", periods=3, freq="7D"))
    assert as_series_data(regular, time="auto").times is None
    floats = pd.Series([1.0, 2.0, 3.0], index=[0.0, 0.5, 2.0])
    np.testing.assert_allclose(as_series_data(floats, time="auto").times, [0.0, 0.5, 2.0])
    with pytest.raises(ValueError, match="continuous time"):
        as_series_data(y, time="discrete")
    with pytest.raises(ValueError, match="fixed length"):
        as_series_data(y, time="continuous", freq="MS")
