"""SeasonalNoiseTS: level and observation variances that follow the season.

Every check compares the time-varying Kalman program with an independent computation: the
dense joint Gaussian of the observations (states written as a linear map of the initial state
and the innovations, variances from the formula in numpy), or the constant-variance
StructuralTS when the harmonic coefficients are 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpyro import handlers
from scipy import stats

from bayes_ssm.data.validation import as_series_data
from bayes_ssm.inference.fit import Fit
from bayes_ssm.models import Seasonal, SeasonalNoiseTS, StructuralTS
from bayes_ssm.models.components import structural_system
from bayes_ssm.models.structural_priors import default_prior

PERIOD = 12.0


@pytest.fixture(autouse=True)
def _x64():
    import jax

    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", False)


def _model(**kw):
    kw.setdefault("trend", None)
    kw.setdefault("seasonal", Seasonal(PERIOD, harmonics=1))
    return SeasonalNoiseTS(noise_period=PERIOD, noise_harmonics=2, **kw)


PARAMS = {
    "sigma_obs": 0.3,
    "sigma_level": 0.2,
    "sigma_seasonal": 0.05,
    "level_noise_coef": np.array([0.8, -0.3, 0.5, 0.2]),
    "obs_noise_coef": np.array([-0.4, 0.1, 0.6, -0.2]),
}


def _trace(model, y, params, scales, **kw):
    import jax.numpy as jnp

    values = {k: jnp.asarray(v) for k, v in params.items()}
    with handlers.trace() as tr, handlers.seed(rng_seed=0), handlers.substitute(data=values):
        model.model(jnp.asarray(y), scales=scales, **kw)
    return {k: np.asarray(v["value"]) for k, v in tr.items()}


def _variances(params, num_steps):
    """``q_t`` (level noise arriving at step t) and ``r_t`` from the formula, in numpy."""
    t = np.arange(num_steps)
    k = np.arange(1, 3)
    basis = np.concatenate(
        [np.cos(2 * np.pi * np.outer(t, k) / PERIOD), np.sin(2 * np.pi * np.outer(t, k) / PERIOD)],
        axis=1,
    )
    q = params["sigma_level"] ** 2 * np.exp(basis @ params["level_noise_coef"])
    r = params["sigma_obs"] ** 2 * np.exp(basis @ params["obs_noise_coef"])
    return q, r


def _dense_moments(model, params, scales, num_steps):
    """Mean ``(time,)`` and covariance ``(time, time)`` of ``y`` from the states written as a
    linear map of ``(alpha_1, eta_1, ..., eta_{T-1})``."""
    import jax.numpy as jnp

    from bayes_ssm.models._structural_program import to_variances

    p = {k: jnp.asarray(v) for k, v in params.items()}
    system = structural_system(model, to_variances(model, p), scales)
    tm, z = np.asarray(system.transition), np.asarray(system.observation)
    a1, p1 = np.asarray(system.init_mean), np.asarray(system.init_cov)
    base_q = np.asarray(system.noise_var)
    q_level, r = _variances(params, num_steps)
    n = a1.size
    src_cov = [p1]
    for t in range(1, num_steps):
        q = base_q.copy()
        q[0] = q_level[t]
        src_cov.append(np.diag(q))
    big = np.zeros((num_steps * n, num_steps * n))
    for t in range(num_steps):
        for s in range(t + 1):
            big[t * n : (t + 1) * n, s * n : (s + 1) * n] = np.linalg.matrix_power(tm, t - s)
    cov_sources = np.zeros_like(big)
    for s, c in enumerate(src_cov):
        cov_sources[s * n : (s + 1) * n, s * n : (s + 1) * n] = c
    zmat = np.kron(np.eye(num_steps), z[None, :])
    mean_states = np.concatenate([np.linalg.matrix_power(tm, t) @ a1 for t in range(num_steps)])
    mean = zmat @ mean_states
    cov = zmat @ big @ cov_sources @ big.T @ zmat.T + np.diag(r)
    return mean, cov


def _series(num_steps, seed=0):
    rng = np.random.default_rng(seed)
    y = 1.0 + np.cumsum(0.2 * rng.standard_normal(num_steps)) + 0.3 * rng.standard_normal(num_steps)
    return y


def test_log_likelihood_equals_the_dense_gaussian_with_gaps():
    model = _model()
    y = _series(30)
    y[[4, 17, 18]] = np.nan
    scales = model.data_scales(y)
    log_lik = _trace(model, y, PARAMS, scales)["log_lik"]
    mean, cov = _dense_moments(model, PARAMS, scales, y.size)
    for t in (0, 5, 16, 19, 29):  # cumulative log-likelihood of y_1..y_t (observed ones)
        ok = np.flatnonzero(~np.isnan(y[: t + 1]))
        dense = stats.multivariate_normal(mean[ok], cov[np.ix_(ok, ok)]).logpdf(y[ok])
        np.testing.assert_allclose(log_lik[: t + 1].sum(), dense, rtol=1e-9)
    assert log_lik[4] == 0.0 and log_lik[17] == 0.0


def test_zero_coefficients_give_the_constant_model():
    kw = {"trend": "damped", "seasonal": Seasonal(PERIOD, harmonics=2), "ar_order": 1}
    tv, const = _model(**kw), StructuralTS(**kw)
    y = _series(40, seed=1)
    y[7] = np.nan
    scales = const.data_scales(y)
    params = dict(PARAMS, damping=0.9, sigma_slope=0.02, ar_pacf=np.array([0.5]), sigma_ar=0.1)
    params.pop("sigma_seasonal")
    params["sigma_seasonal"] = 0.04
    zero = dict(params, level_noise_coef=np.zeros(4), obs_noise_coef=np.zeros(4))
    ll_tv = _trace(tv, y, zero, scales)["log_lik"]
    ll_const = _trace(const, y, params, scales)["log_lik"]
    np.testing.assert_allclose(ll_tv, ll_const, rtol=1e-10, atol=1e-12)
    assert not np.allclose(_trace(tv, y, params, scales)["log_lik"], ll_const)


def test_forecast_draws_follow_the_dense_conditional_law():
    """Monte Carlo of ``y_forecast`` at fixed parameters == the dense Gaussian conditional of
    ``y_{T+h}`` given ``y_1..y_T`` (mean and sd within 5 standard errors)."""
    import jax
    from numpyro.infer import Predictive

    model = _model()
    y = _series(24, seed=2)
    scales = model.data_scales(y)
    horizon, draws = 6, 4000
    params = {k: np.broadcast_to(np.asarray(v), (draws,) + np.shape(v)) for k, v in PARAMS.items()}
    pred = Predictive(model.model, posterior_samples=params, return_sites=["y_forecast"])
    out = np.asarray(
        pred(jax.random.PRNGKey(0), jax.numpy.asarray(y), scales=scales, horizon=horizon)[
            "y_forecast"
        ]
    )
    mean, cov = _dense_moments(model, PARAMS, scales, y.size + horizon)
    obs, fut = np.arange(y.size), np.arange(y.size, y.size + horizon)
    gain = cov[np.ix_(fut, obs)] @ np.linalg.inv(cov[np.ix_(obs, obs)])
    cmean = mean[fut] + gain @ (y - mean[obs])
    csd = np.sqrt(np.diag(cov[np.ix_(fut, fut)] - gain @ cov[np.ix_(obs, fut)]))
    np.testing.assert_array_less(np.abs(out.mean(0) - cmean), 5 * csd / np.sqrt(draws))
    np.testing.assert_array_less(np.abs(out.std(0) / csd - 1), 5 / np.sqrt(2 * draws))


def test_in_sample_pit_equals_the_dense_conditional_cdf():
    from bayes_ssm.inference.recalibration import candidate_pit

    model = _model()
    y = _series(30, seed=3)
    series = pd.Series(y, index=pd.date_range("2000-01-31", periods=y.size, freq="ME"))
    data = as_series_data(series)
    scales = model.data_scales(data.y)
    draws = {k: np.asarray(v, float).reshape((1, 1) + np.shape(v)) for k, v in PARAMS.items()}
    fit = Fit(model=model, data=data, scales=scales, method="svi", draws=draws)
    horizon, burn = 3, 20
    pit, _ = candidate_pit(fit, horizon, burn=burn)
    mean, cov = _dense_moments(model, PARAMS, scales, y.size)
    for i, t in enumerate(range(burn, y.size - horizon)):
        obs = np.arange(t + 1)
        for h in range(1, horizon + 1):
            gain = cov[t + h, obs] @ np.linalg.inv(cov[np.ix_(obs, obs)])
            m = mean[t + h] + gain @ (y[obs] - mean[obs])
            sd = np.sqrt(cov[t + h, t + h] - gain @ cov[obs, t + h])
            np.testing.assert_allclose(pit[i, h - 1], stats.norm.cdf(y[t + h], m, sd), atol=1e-8)


def test_student_t_nu_prior_keeps_a_finite_variance():
    prior = default_prior("nu", {"y_scale": 1.0, "dy_scale": 1.0})
    import jax

    draws = np.asarray(prior.sample(jax.random.PRNGKey(0), (20000,)))
    assert draws.min() > 2.0
    np.testing.assert_allclose(
        float(prior.log_prob(5.0)), stats.gamma(2.0, scale=10.0).logpdf(3.0), rtol=1e-6
    )


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="noise_harmonics"):
        SeasonalNoiseTS(noise_period=12, noise_harmonics=7)
    with pytest.raises(ValueError, match="student_t"):
        SeasonalNoiseTS(noise_period=12, likelihood="student_t")
    with pytest.raises(ValueError, match="noise_period"):
        SeasonalNoiseTS(noise_period=1)
    model = _model(trend="damped")
    from bayes_ssm.models.base import model_from_spec

    assert model_from_spec(model.spec()) == model


def _monthly(y):
    return pd.Series(y, index=pd.date_range("2000-01-31", periods=len(y), freq="ME"))


@pytest.mark.slow
def test_stacking_prefers_seasonal_noise_on_data_with_seasonal_noise():
    """Data whose level noise is 20x larger (in variance) at one phase of a 12-step season
    than at the other: stacking gives the seasonal-noise candidate the largest weight; on
    constant-noise data its LOO score is within 3 nats of the constant model's (nested)."""
    from bayes_ssm.inference import auto

    rng = np.random.default_rng(5)
    n = 240
    t = np.arange(n)
    level_sd = 0.15 * np.exp(0.5 * 1.5 * np.cos(2 * np.pi * t / 12))
    y = 1.0 + np.cumsum(level_sd * rng.standard_normal(n)) + 0.05 * rng.standard_normal(n)
    candidates = {
        "constant": StructuralTS(trend=None),
        "seasonal_noise": SeasonalNoiseTS(trend=None, noise_period=12, noise_harmonics=1),
    }
    kw = {"transform": "none", "candidates": candidates, "recalibrate": False}
    varying = auto.auto_fit(_monthly(y), key=0, **kw)
    assert varying.weights.idxmax() == "seasonal_noise", varying.summary()
    flat = 1.0 + np.cumsum(0.15 * rng.standard_normal(n)) + 0.05 * rng.standard_normal(n)
    table = auto.auto_fit(_monthly(flat), key=0, **kw).summary()
    assert abs(table.loc["constant", "elpd_loo"] - table.loc["seasonal_noise", "elpd_loo"]) < 3
