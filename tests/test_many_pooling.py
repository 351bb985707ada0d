"""Partial pooling (``pooling="partial"``) and series of unequal lengths in one program."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from numpyro.infer.util import log_density
from test_many_failures import SVI

import bayes_ssm as bs
from bayes_ssm.data.long_format import split_long
from bayes_ssm.inference.pooling import MU_PRIOR, TAU_PRIOR, pooled_program
from bayes_ssm.models.structural_priors import compute_scales, default_prior

LOCAL_LEVEL = bs.StructuralTS(trend=None)


def hierarchical_panel(num_series, num_steps, seed=0, lengths=None):
    """Local-level series whose log noise sds are drawn from a population; returns the long
    frame and the true log ratios ``log(sigma_i / r_i)`` per pooled site."""
    rng = np.random.default_rng(seed)
    truth = {"sigma_obs": (0.0, 0.3), "sigma_level": (np.log(0.3), 0.4)}
    ratios = {k: [] for k in truth}
    rows = []
    for i in range(num_series):
        n = num_steps if lengths is None else lengths[i % len(lengths)]
        ds = pd.date_range("2020-01-05", periods=n, freq="W") + pd.Timedelta(weeks=3 * int(i))
        sd_obs, sd_level = (np.exp(rng.normal(*truth[k])) for k in truth)
        y = 10 * rng.normal() + np.cumsum(rng.normal(0, sd_level, n)) + rng.normal(0, sd_obs, n)
        scales = compute_scales(y)
        ratios["sigma_obs"].append(np.log(sd_obs / scales["y_scale"]))
        ratios["sigma_level"].append(np.log(sd_level / scales["dy_scale"]))
        rows.append(pd.DataFrame({"unique_id": f"s{i:02d}", "ds": ds, "y": y}))
    return pd.concat(rows, ignore_index=True), {k: np.array(v) for k, v in ratios.items()}


def test_pooled_density_is_the_sum_of_series_likelihoods_and_hyperpriors():
    """The pooled program's log density at a point equals, computed another way: each series'
    own StructuralTS log density at its sigmas minus its own HalfNormal priors, plus the
    population priors and the standard-normal z terms (unequal lengths padded)."""
    frame, _ = hierarchical_panel(3, 30, lengths=(30, 22, 26))
    series = split_long(frame)
    sites = ("sigma_obs", "sigma_level")
    ys = [s.to_numpy() for s in series.values()]
    scales = [compute_scales(y) | {"num_steps": float(len(y))} for y in ys]
    length = max(len(y) for y in ys)
    y_pad = jnp.asarray(np.stack([np.r_[y, np.full(length - len(y), np.nan)] for y in ys]))
    batch_scales = {k: jnp.asarray([s[k] for s in scales]) for k in scales[0]}
    point = {"mu/sigma_obs": 0.2, "mu/sigma_level": -1.0, "tau/sigma_obs": 0.5}
    point |= {"tau/sigma_level": 0.8, "z/sigma_obs": jnp.array([0.3, -1.0, 0.5])}
    point |= {"z/sigma_level": jnp.array([1.2, 0.1, -0.4])}
    point = {k: jnp.asarray(v) for k, v in point.items()}
    pooled, _ = log_density(pooled_program, (LOCAL_LEVEL, sites, y_pad, batch_scales), {}, point)
    expected = 0.0
    for s in sites:
        expected += jax.scipy.stats.norm.logpdf(point[f"mu/{s}"], *MU_PRIOR)
        expected += jnp.log(2) + jax.scipy.stats.norm.logpdf(point[f"tau/{s}"], 0, TAU_PRIOR)
        expected += jnp.sum(jax.scipy.stats.norm.logpdf(point[f"z/{s}"]))
    for i, (y, sc) in enumerate(zip(ys, scales, strict=True)):
        sig = {}
        for s in sites:
            r = default_prior(s, sc).scale
            sig[s] = r * jnp.exp(point[f"mu/{s}"] + point[f"tau/{s}"] * point[f"z/{s}"][i])
        own, _ = log_density(
            LOCAL_LEVEL.model, (jnp.asarray(y),), dict(scales=sc, covariates=None), sig
        )
        priors = sum(default_prior(s, sc).log_prob(sig[s]) for s in sites)
        expected += own - priors
    np.testing.assert_allclose(pooled, expected, rtol=2e-5)


def test_padded_series_fit_as_unpadded():
    """Series of unequal lengths and start dates in ONE vmapped program (padded at the end
    with missing values) give each series the fit fit_svi gives it alone. (Same shapes and
    settings as the vmapped failure test, so the two share compiled programs.)"""
    frame, _ = hierarchical_panel(3, 0, seed=1, lengths=(40, 28, 33))
    many = bs.fit_svi_many(LOCAL_LEVEL, frame, key=7, batch="vmap", pad=True, **SVI)
    assert many.info["padded"] and many.info["groups"] == [["s00", "s01", "s02"]]
    keys = jax.random.split(jax.random.PRNGKey(7), 3)
    for k, (ident, y) in zip(keys, split_long(frame).items(), strict=True):
        alone = bs.fit_svi(LOCAL_LEVEL, y, key=k, **SVI)
        assert many[ident].data.index.equals(alone.data.index)
        assert many[ident].info["steps"] == alone.info["steps"]
        for name, value in alone.guide_params.items():
            np.testing.assert_allclose(many[ident].guide_params[name], value, rtol=2e-4, atol=1e-5)


def test_pooling_refuses_models_it_cannot_pool():
    frame, _ = hierarchical_panel(2, 20)
    with pytest.raises(ValueError, match="supports StructuralTS with likelihood='gaussian'"):
        bs.fit_svi_many(bs.StructuralTS(likelihood="student_t"), frame, key=0, pooling="partial")
    with pytest.raises(ValueError, match="pools noise scales and regression coefficients only"):
        bs.fit_svi_many(bs.StructuralTS(ar_order=1), frame, key=0, pooling="partial")
    with pytest.raises(ValueError, match="pooling must be one of"):
        bs.fit_svi_many(LOCAL_LEVEL, frame, key=0, pooling="full")


@pytest.mark.slow
def test_pooled_fit_recovers_the_population():
    """30 series simulated from a hierarchical model: the pooled SVI fit's population means
    and spreads of log(sigma / r) match the realised truth (mean and sd over the series).

    With the full-rank guide: the mean-field guide shrinks the spreads (on another draw of
    this panel, seed 3: tau of the level 0.33 mean-field, 0.38 full-rank, 0.62 realised)."""
    frame, ratios = hierarchical_panel(30, 50, seed=4)
    fits = bs.fit_svi_many(
        LOCAL_LEVEL, frame, key=0, pooling="partial", guide="multivariate_normal",
        steps=2000, learning_rate=0.02, num_samples=200, progress=False,
    )  # fmt: skip
    population = fits.info["population"]
    for site, truth in ratios.items():
        est = population[site]
        assert abs(est["mu_mean"] - truth.mean()) < 0.15, (site, est, truth.mean())
        assert abs(est["tau_mean"] - truth.std()) < 0.15, (site, est, truth.std())
    # every series gets a Fit of its own that forecasts like an independent one
    fc = fits.forecast(4, prob=(0.9,))
    assert len(fc) == 4 * 30 and np.all(fc["lower_90"] < fc["upper_90"])
