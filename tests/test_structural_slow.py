"""Slow statistical tests: NUTS on data simulated from StructuralTS recovers the truth."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer import MCMC, NUTS

from bayes_ssm.models import Seasonal, StructuralTS

pytestmark = pytest.mark.slow


def _simulate(num_steps, *, sigma_level, sigma_seasonal, period, seed, noise):
    """Local level + one-harmonic trigonometric seasonal, written out by hand (not our code)."""
    rng = np.random.default_rng(seed)
    lam = 2 * np.pi / period
    level, gamma, gamma_star = 0.0, 1.0, 0.0
    signal = np.empty(num_steps)
    for t in range(num_steps):
        signal[t] = level + gamma
        level += rng.normal(0, sigma_level)
        gamma, gamma_star = (
            np.cos(lam) * gamma + np.sin(lam) * gamma_star + rng.normal(0, sigma_seasonal),
            -np.sin(lam) * gamma + np.cos(lam) * gamma_star + rng.normal(0, sigma_seasonal),
        )
    return signal + noise(rng, num_steps)


def _nuts(model, y, *, seed=0, warmup=300, samples=300):
    scales = model.data_scales(y)
    mcmc = MCMC(NUTS(model.model), num_warmup=warmup, num_samples=samples, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(seed), jnp.asarray(y, jnp.float32), scales=scales)
    return mcmc.get_samples()


def _inside(draws, truth, prob=0.95):
    lo, hi = np.quantile(np.asarray(draws), [(1 - prob) / 2, (1 + prob) / 2])
    return lo <= truth <= hi, (lo, hi)


def test_nuts_recovers_gaussian_variances():
    truth = {"sigma_obs": 0.5, "sigma_level": 0.2, "sigma_seasonal": 0.1}
    y = 10 + _simulate(
        200,
        sigma_level=truth["sigma_level"],
        sigma_seasonal=truth["sigma_seasonal"],
        period=12,
        seed=1,
        noise=lambda rng, n: rng.normal(0, truth["sigma_obs"], n),
    )
    model = StructuralTS(trend=None, seasonal=Seasonal(12, harmonics=1))
    post = _nuts(model, y)
    for name, value in truth.items():
        ok, interval = _inside(post[name], value)
        assert ok, (name, value, interval)


def test_student_t_model_fits_heavy_tailed_data():
    truth = {"sigma_obs": 0.3, "sigma_level": 0.15, "nu": 3.0}
    y = _simulate(
        200,
        sigma_level=truth["sigma_level"],
        sigma_seasonal=0.05,
        period=12,
        seed=2,
        noise=lambda rng, n: truth["sigma_obs"] * rng.standard_t(truth["nu"], n),
    )
    model = StructuralTS(trend=None, seasonal=Seasonal(12, harmonics=1), likelihood="student_t")
    post = _nuts(model, y)
    for name, value in truth.items():
        ok, interval = _inside(post[name], value)
        assert ok, (name, value, interval)
    # the Gaussian model, misspecified, inflates the noise scale beyond the truth
    gauss = _nuts(StructuralTS(trend=None, seasonal=Seasonal(12, harmonics=1)), y)
    assert np.median(gauss["sigma_obs"]) > np.quantile(post["sigma_obs"], 0.975)


def test_negative_binomial_model_fits_counts():
    truth = {"concentration": 8.0, "sigma_level": 0.1}
    log_mean = np.log(30.0) + _simulate(
        150,
        sigma_level=truth["sigma_level"],
        sigma_seasonal=0.02,
        period=12,
        seed=3,
        noise=lambda rng, n: np.zeros(n),
    )
    rng = np.random.default_rng(4)
    k = truth["concentration"]
    y = rng.negative_binomial(k, k / (k + np.exp(log_mean))).astype(float)
    model = StructuralTS(
        trend=None, seasonal=Seasonal(12, harmonics=1), likelihood="negative_binomial"
    )
    post = _nuts(model, y, warmup=400, samples=300)
    for name, value in truth.items():
        ok, interval = _inside(post[name], value)
        assert ok, (name, value, interval)


def test_negative_binomial_long_trending_series_mixes():
    """T = 1000 daily-like counts with a local linear trend, the default parameterisation
    ("auto" -> "mixed": centred level). Non-centred states saturate the tree depth on such a
    series (1023 leapfrog steps per draw, ``benchmarks/README.md``); the default must not, the
    level path and the concentration must converge (r-hat < 1.05) and cover the truth. The
    level sd mixes slowest (a centred funnel): r-hat 1.05-1.15 at this run length, so it gets
    a looser bound."""
    import bayes_ssm as bs
    from bayes_ssm.models._state_paths import resolve_parameterization

    truth = {"sigma_level": 0.05, "sigma_slope": 0.0005, "concentration": 20.0}
    rng = np.random.default_rng(0)
    num_steps = 1000
    level, slope = np.log(200.0), 0.0
    log_mean = np.empty(num_steps)
    for t in range(num_steps):  # by hand, not our code
        log_mean[t] = level
        level += slope + rng.normal(0, truth["sigma_level"])
        slope += rng.normal(0, truth["sigma_slope"])
    k = truth["concentration"]
    y = rng.negative_binomial(k, k / (k + np.exp(log_mean))).astype(float)
    model = StructuralTS(trend="local_linear", likelihood="negative_binomial")
    assert resolve_parameterization(model, y.size) == "mixed"
    fit = bs.fit_nuts(
        model, y, key=0, num_chains=2, num_warmup=800, num_samples=400, init="median",
        chain_method="sequential", progress=False,
    )  # fmt: skip
    depth = fit.sample_stats["tree_depth"]
    assert np.mean(depth >= 10) < 0.05 and np.mean(depth) < 8.5, np.mean(depth)
    assert np.mean(fit.sample_stats["diverging"]) < 0.02
    from numpyro.diagnostics import split_gelman_rubin

    level_path = fit.draws["state_path"][..., 0]  # (chain, draw, time - 1): the level
    rhat_level = split_gelman_rubin(level_path[..., ::50])
    assert np.max(rhat_level) < 1.05, rhat_level
    for name, bound in (("concentration", 1.05), ("sigma_level", 1.2)):
        draws = fit.draws[name]
        rhat = float(split_gelman_rubin(draws))
        assert rhat < bound, (name, rhat)
        ok, interval = _inside(draws.ravel(), truth[name])
        assert ok, (name, truth[name], interval)
