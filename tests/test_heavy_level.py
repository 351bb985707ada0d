"""HeavyLevelTS: Student-t level shocks as a Gamma scale mixture.

Each check compares the program with an independent computation: the dense joint Gaussian of
the observations given the level precisions (states written as a linear map of the initial
state and the innovations, in numpy), the constant-variance StructuralTS at precisions 1,
scipy quadrature of the marginal one-step density, and numpy / scipy Monte Carlo of the
forecast law.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpyro import handlers
from scipy import integrate, stats

from bayes_ssm.data.validation import as_series_data
from bayes_ssm.inference.fit import Fit
from bayes_ssm.models import HeavyLevelTS, Seasonal, StructuralTS
from bayes_ssm.models.components import structural_system


@pytest.fixture(autouse=True)
def _x64():
    import jax

    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", False)


PARAMS = {"sigma_obs": 0.3, "sigma_level": 0.2, "sigma_seasonal": 0.05, "nu_level": 4.5}


def _model(**kw):
    kw.setdefault("seasonal", Seasonal(12, harmonics=1))
    return HeavyLevelTS(**kw)


def _precisions(num_steps, seed=0, nu=4.5):
    return np.random.default_rng(seed).gamma(nu / 2, 2 / nu, num_steps - 1)


def _trace(model, y, params, scales, **kw):
    import jax.numpy as jnp

    values = {k: jnp.asarray(v) for k, v in params.items()}
    with handlers.trace() as tr, handlers.seed(rng_seed=0), handlers.substitute(data=values):
        model.model(jnp.asarray(y), scales=scales, **kw)
    return tr


def _dense_moments(model, params, scales, lam):
    """Mean and covariance of ``y_1..y_T`` given the level precisions ``lam`` ``(T - 1,)``
    (``inf``: no level shock at that step)."""
    import jax.numpy as jnp

    from bayes_ssm.models._structural_program import to_variances

    p = {k: jnp.asarray(v) for k, v in params.items()}
    system = structural_system(model, to_variances(model, p), scales)
    tm, z = np.asarray(system.transition), np.asarray(system.observation)
    a1, p1 = np.asarray(system.init_mean), np.asarray(system.init_cov)
    num_steps, n = lam.size + 1, a1.size
    sources = [p1]
    for t in range(1, num_steps):
        q = np.asarray(system.noise_var, float).copy()
        q[0] = q[0] / lam[t - 1]
        sources.append(np.diag(q))
    big = np.zeros((num_steps * n, num_steps * n))
    for t in range(num_steps):
        for s in range(t + 1):
            big[t * n : (t + 1) * n, s * n : (s + 1) * n] = np.linalg.matrix_power(tm, t - s)
    cov_src = np.zeros_like(big)
    for s, c in enumerate(sources):
        cov_src[s * n : (s + 1) * n, s * n : (s + 1) * n] = c
    zmat = np.kron(np.eye(num_steps), z[None, :])
    mean = zmat @ np.concatenate([np.linalg.matrix_power(tm, t) @ a1 for t in range(num_steps)])
    cov = zmat @ big @ cov_src @ big.T @ zmat.T + params["sigma_obs"] ** 2 * np.eye(num_steps)
    return mean, cov


def _series(num_steps, seed=0):
    rng = np.random.default_rng(seed)
    return (
        1.0 + np.cumsum(0.2 * rng.standard_normal(num_steps)) + 0.3 * rng.standard_normal(num_steps)
    )


def _conditional_log_lik(model, y, params, lam, scales):
    import jax.numpy as jnp

    from bayes_ssm.models._heavy_level_program import conditional_filter

    p = {k: jnp.asarray(v) for k, v in params.items()}
    res, _, _ = conditional_filter(model, p, scales, jnp.asarray(y), jnp.asarray(lam))
    return np.asarray(res.log_lik)


def test_conditional_log_likelihood_equals_the_dense_gaussian_with_gaps():
    model = _model()
    y = _series(30)
    y[[4, 17, 18]] = np.nan
    lam = _precisions(y.size)
    scales = model.data_scales(y)
    log_lik = _conditional_log_lik(model, y, PARAMS, lam, scales)
    mean, cov = _dense_moments(model, PARAMS, scales, lam)
    for t in (0, 5, 16, 19, 29):
        ok = np.flatnonzero(~np.isnan(y[: t + 1]))
        dense = stats.multivariate_normal(mean[ok], cov[np.ix_(ok, ok)]).logpdf(y[ok])
        np.testing.assert_allclose(log_lik[: t + 1].sum(), dense, rtol=1e-9)
    # the program's likelihood factor is this conditional log-likelihood
    tr = _trace(model, y, dict(PARAMS, level_precision=lam), scales)
    factor = float(tr["y_log_likelihood"]["fn"].log_prob(0.0))
    np.testing.assert_allclose(factor, log_lik.sum(), rtol=1e-10)
    assert log_lik[4] == 0.0 and tr["log_lik"]["value"][17] == 0.0


def test_unit_precisions_give_structural_ts():
    kw = {"trend": "damped", "seasonal": Seasonal(12, harmonics=2), "ar_order": 1}
    heavy, const = HeavyLevelTS(**kw), StructuralTS(**kw)
    y = _series(40, seed=1)
    y[7] = np.nan
    scales = const.data_scales(y)
    params = dict(PARAMS, damping=0.9, sigma_slope=0.02, ar_pacf=np.array([0.5]), sigma_ar=0.1)
    ll_heavy = _conditional_log_lik(heavy, y, params, np.ones(y.size - 1), scales)
    params.pop("nu_level")
    ll_const = np.asarray(_trace(const, y, params, scales)["log_lik"]["value"])
    np.testing.assert_allclose(ll_heavy, ll_const, rtol=1e-10, atol=1e-12)


def test_pointwise_log_lik_integrates_out_the_steps_own_precision():
    """``log_lik[t] = log p(y_t | y_<t, lambda_<t)``: scipy quadrature over ``lambda_t`` of the
    dense Gaussian conditional given ``lambda_t``."""
    model = _model()
    y = _series(20, seed=4)
    y[9] = np.nan
    lam = _precisions(y.size, seed=1)
    scales = model.data_scales(y)
    log_lik = np.asarray(
        _trace(model, y, dict(PARAMS, level_precision=lam), scales)["log_lik"]["value"]
    )
    nu = PARAMS["nu_level"]
    q = PARAMS["sigma_level"] ** 2
    for t in (0, 3, 10, 19):
        no_shock = lam.copy()
        if t:  # y_<t does not depend on the shock arriving at t: its variance q / lambda_t
            no_shock[t - 1] = np.inf  # adds to the dense conditional variance of y_t
        mean, cov = _dense_moments(model, PARAMS, scales, no_shock)
        ok = np.flatnonzero(~np.isnan(y[:t]))
        gain = cov[t, ok] @ np.linalg.inv(cov[np.ix_(ok, ok)])
        m = mean[t] + gain @ (y[ok] - mean[ok])
        v = cov[t, t] - gain @ cov[ok, t]
        if t == 0:  # no level shock arrives at the first step: the Gaussian term
            expected = stats.norm.logpdf(y[0], m, np.sqrt(v))
        else:

            def density(lt, m=m, v=v, t=t):
                sd = np.sqrt(v + q / lt)
                return stats.norm.pdf(y[t], m, sd) * stats.gamma.pdf(lt, nu / 2, scale=2 / nu)

            expected = np.log(integrate.quad(density, 0, np.inf, limit=200)[0])
        np.testing.assert_allclose(log_lik[t], expected, rtol=1e-6)
    assert log_lik[9] == 0.0


def test_forecast_draws_follow_the_student_t_level_law():
    """``y_forecast`` at fixed parameters and precisions == numpy Monte Carlo of the filtered
    level plus a sum of scipy Student-t shocks plus Gaussian noise (two-sample KS at each step;
    the h-step variance against ``P_T + h sigma^2 nu / (nu - 2) + r``)."""
    import jax
    from numpyro.infer import Predictive

    model = HeavyLevelTS()
    y = _series(24, seed=2)
    params = {"sigma_obs": 0.3, "sigma_level": 0.2, "nu_level": 5.0}
    lam = _precisions(y.size, seed=3, nu=5.0)
    scales = model.data_scales(y)
    horizon, draws = 4, 10000
    post = {k: np.full(draws, v) for k, v in params.items()}
    post["level_precision"] = np.broadcast_to(lam, (draws, lam.size))
    pred = Predictive(model.model, posterior_samples=post, return_sites=["y_forecast"])
    out = np.asarray(
        pred(jax.random.PRNGKey(0), jax.numpy.asarray(y), scales=scales, horizon=horizon)[
            "y_forecast"
        ]
    )
    mean, cov = _dense_moments(model, params, scales, lam)
    rng = np.random.default_rng(1)
    # the level at T given y, from the dense joint of (level_T, y): level_T = y_T - eps_T
    cross = cov[:, -1] - params["sigma_obs"] ** 2 * np.eye(y.size)[:, -1]
    w = np.linalg.solve(cov, cross)
    level_mean = mean[-1] + w @ (y - mean)
    level_var = (cov[-1, -1] - params["sigma_obs"] ** 2) - w @ cross
    shocks = params["sigma_level"] * stats.t.rvs(5.0, size=(draws, horizon), random_state=rng)
    ref = (
        level_mean
        + np.sqrt(level_var) * rng.standard_normal((draws, 1))
        + np.cumsum(shocks, axis=1)
        + params["sigma_obs"] * rng.standard_normal((draws, horizon))
    )
    for h in range(horizon):
        assert stats.ks_2samp(out[:, h], ref[:, h]).pvalue > 1e-3, h
    h = np.arange(1, horizon + 1)
    var = level_var + h * params["sigma_level"] ** 2 * 5.0 / 3.0 + params["sigma_obs"] ** 2
    np.testing.assert_allclose(out.var(0), var, rtol=0.12)


def test_in_sample_pit_matches_monte_carlo_over_future_precisions():
    """``candidate_pit`` == the dense Gaussian conditional at origin ``t`` given the in-sample
    precisions, with the steps after ``t`` given fresh Gamma precisions (numpy Monte Carlo,
    200,000 draws); the candidate's rule uses 64 fixed draws, so agreement to 0.03."""
    from bayes_ssm.inference.recalibration import candidate_pit, supports_pit

    model = HeavyLevelTS()
    y = _series(30, seed=5)
    y[25] += 2.0  # a jump the PIT should find unlikely but not impossible
    params = {"sigma_obs": 0.3, "sigma_level": 0.2, "nu_level": 4.0}
    lam = _precisions(y.size, seed=6, nu=4.0)
    series = pd.Series(y, index=pd.date_range("2000-01-31", periods=y.size, freq="ME"))
    data = as_series_data(series)
    scales = model.data_scales(data.y)
    draws = {k: np.full((1, 1), v) for k, v in params.items()}
    draws["level_precision"] = lam.reshape(1, 1, -1)
    fit = Fit(model=model, data=data, scales=scales, method="svi", draws=draws)
    assert supports_pit(fit)
    horizon, burn = 3, 20
    pit, _ = candidate_pit(fit, horizon, burn=burn)
    rng = np.random.default_rng(0)
    fresh = rng.gamma(2.0, 0.5, (200_000, horizon))
    for i, t in enumerate(range(burn, y.size - horizon)):
        no_future = lam.copy()
        no_future[t:] = np.inf  # shocks after t: added from fresh precisions below
        mean, cov = _dense_moments(model, params, scales, no_future)
        obs = np.arange(t + 1)
        for h in range(1, horizon + 1):
            gain = cov[t + h, obs] @ np.linalg.inv(cov[np.ix_(obs, obs)])
            m = mean[t + h] + gain @ (y[obs] - mean[obs])
            v = cov[t + h, t + h] - gain @ cov[obs, t + h]
            extra = params["sigma_level"] ** 2 * (1.0 / fresh[:, :h]).sum(axis=1)
            expected = stats.norm.cdf(y[t + h], m, np.sqrt(v + extra)).mean()
            np.testing.assert_allclose(pit[i, h - 1], expected, atol=0.03)


def test_nu_level_prior_keeps_a_finite_variance_and_options_are_checked():
    import jax
    from numpyro.infer import Predictive

    model = HeavyLevelTS()
    y = _series(12)
    prior = Predictive(model.model, num_samples=4000, return_sites=["nu_level"])
    nu = np.asarray(prior(jax.random.PRNGKey(0), y, scales=model.data_scales(y))["nu_level"])
    assert nu.min() > 2.0
    np.testing.assert_allclose(np.median(nu) - 2.0, stats.gamma(2.0, scale=10.0).median(), rtol=0.1)
    assert model.parameter_sites == ("sigma_obs", "sigma_level", "nu_level")
    for bad, match in (
        ({"likelihood": "student_t"}, "student_t"),
        ({"cycle": True}, "cycle"),
        ({"level": False}, "level"),
    ):
        with pytest.raises(ValueError, match=match):
            HeavyLevelTS(**bad)
    from bayes_ssm.models.base import model_from_spec

    assert model_from_spec(_model(trend="damped").spec()) == _model(trend="damped")


def _monthly(y):
    return pd.Series(y, index=pd.date_range("2000-01-31", periods=len(y), freq="ME"))


def _jump_series(n=60, seed=7):
    rng = np.random.default_rng(seed)
    level = np.cumsum(0.05 * rng.standard_normal(n))
    level[n // 2 :] += 2.0
    return _monthly(level + 0.1 * rng.standard_normal(n))


@pytest.mark.slow
def test_heavy_level_beats_the_gaussian_level_on_a_jump():
    """One level jump of 40 typical shocks in small Gaussian noise: the Student-t level's LOO
    beats the Gaussian level's by more than 10 nats, its 12-step 95% interval is less than
    half as wide, and its fitted ``nu_level`` is small (heavy tails found) and above 2."""
    from bayes_ssm.inference import auto

    candidates = {"gaussian": StructuralTS(trend=None), "heavy": HeavyLevelTS()}
    kw = {"transform": "none", "candidates": candidates, "recalibrate": False}
    stacked = auto.auto_fit(_jump_series(), key=0, **kw)
    table = stacked.summary()
    assert table.loc["heavy", "elpd_loo"] > table.loc["gaussian", "elpd_loo"] + 10, table
    widths = {}
    for name, fit in stacked.fits.items():
        fc = fit.forecast(12, key=0)
        widths[name] = float(fc["upper_95"].iloc[-1] - fc["lower_95"].iloc[-1])
    assert widths["heavy"] < 0.5 * widths["gaussian"], widths
    nu = np.asarray(stacked.fits["heavy"].draws["nu_level"])
    assert nu.min() > 2.0 and np.median(nu) < 10.0, np.median(nu)


@pytest.mark.slow
def test_nuts_fits_heavy_level():
    """NUTS runs on the latent precisions and agrees with the jump: a small ``nu_level``, the
    jump step's precision the smallest, draws above 2."""
    import bayes_ssm as bs

    y = _jump_series(40, seed=8)
    fit = bs.fit_nuts(HeavyLevelTS(), y, key=0, num_warmup=200, num_samples=200, num_chains=1)
    nu = np.asarray(fit.draws["nu_level"]).ravel()
    assert nu.min() > 2.0
    lam = np.asarray(fit.draws["level_precision"]).reshape(nu.size, -1)
    assert np.argmin(np.median(lam, axis=0)) == 20 - 1  # the shock arriving at step 20
