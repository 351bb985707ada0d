"""Partial pooling with covariates: each series' regression coefficients drawn from a
population of standardised effects (non-centred, population mean and spread learned)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from numpyro.infer.util import log_density

import bayes_ssm as bs
from bayes_ssm.data.long_format import split_long, split_long_covariates
from bayes_ssm.inference.pooling import (
    BETA_MU_PRIOR,
    BETA_TAU_PRIOR,
    MU_PRIOR,
    TAU_PRIOR,
    pooled_program,
)
from bayes_ssm.models.structural_priors import compute_scales, default_prior

MODEL = bs.StructuralTS(trend=None)  # local level + regression on the covariates
POPULATION = ((1.0, 0.3), (-0.5, 0.3))  # (mean, sd) of each covariate's coefficient


def coefficient_panel(num_series, lengths, seed=0):
    """Series ``y = level + x @ beta_i + noise`` with ``beta_i`` drawn from ``POPULATION``;
    returns the long frame (covariates x1, x2; unequal lengths and start dates) and the true
    ``beta_i`` per series."""
    rng = np.random.default_rng(seed)
    rows, truth = [], {}
    for i in range(num_series):
        n = lengths[i % len(lengths)]
        start = pd.Timestamp("2021-01-03") + pd.Timedelta(weeks=2 * i)
        ds = pd.date_range(start, periods=n, freq="W")
        x = rng.normal(size=(n, 2)) * (1.0 + i % 3)  # covariates in different units
        beta = np.array([rng.normal(m, s) for m, s in POPULATION]) / (1.0 + i % 3)
        y = np.cumsum(rng.normal(0, 0.1, n)) + x @ beta + rng.normal(0, 0.3, n)
        ident = f"s{i:02d}"
        truth[ident] = beta
        rows.append(pd.DataFrame({"unique_id": ident, "ds": ds, "y": y, "x1": x[:, 0]}))
        rows[-1]["x2"] = x[:, 1]
    return pd.concat(rows, ignore_index=True), truth


def test_pooled_density_with_covariates_is_the_sum_of_series_likelihoods():
    """The pooled program's log density at a point equals, computed another way: each series'
    own StructuralTS log density (with its covariates) at its sigmas and coefficients, minus its
    own default priors, plus the population priors and the standard-normal z terms; unequal
    lengths padded. The coefficients are ``y_scale / x_scale * (m + s z)``."""
    frame, _ = coefficient_panel(3, (30, 22, 30))
    series = split_long(frame)
    covs = split_long_covariates(frame, ["x1", "x2"])
    ys = [s.to_numpy() for s in series.values()]
    xs = [covs[k].to_numpy() for k in series]
    scales = [
        compute_scales(y, x) | {"num_steps": float(len(y))} for y, x in zip(ys, xs, strict=True)
    ]
    length = max(len(y) for y in ys)
    y_pad = jnp.asarray(np.stack([np.r_[y, np.full(length - len(y), np.nan)] for y in ys]))
    x_pad = jnp.asarray(np.stack([np.r_[x, np.zeros((length - len(x), 2))] for x in xs]))
    batch_scales = {k: jnp.asarray([s[k] for s in scales]) for k in scales[0]}
    sites = ("sigma_obs", "sigma_level", "beta")
    point = {"mu/sigma_obs": 0.2, "mu/sigma_level": -1.0, "tau/sigma_obs": 0.5}
    point |= {"tau/sigma_level": 0.8, "z/sigma_obs": [0.3, -1.0, 0.5]}
    point |= {"z/sigma_level": [1.2, 0.1, -0.4], "mu/beta": [0.4, -0.2], "tau/beta": [0.3, 0.6]}
    point |= {"z/beta": [[0.5, -1.0], [1.5, 0.2], [-0.3, 0.9]]}
    point = {k: jnp.asarray(v) for k, v in point.items()}
    # jitted: one compilation per program instead of hundreds of eager op compilations
    pooled = jax.jit(
        lambda p: log_density(
            pooled_program, (MODEL, sites, y_pad, batch_scales), {"cov": x_pad}, p
        )[0]
    )(point)
    norm = jax.scipy.stats.norm.logpdf

    @jax.jit
    def series_density(params, y, x, sc):
        return log_density(MODEL.model, (y,), dict(scales=sc, covariates=x), params)[0]

    expected = 0.0
    for s, (mu_prior, tau_prior) in {
        "sigma_obs": (MU_PRIOR, TAU_PRIOR),
        "sigma_level": (MU_PRIOR, TAU_PRIOR),
        "beta": (BETA_MU_PRIOR, BETA_TAU_PRIOR),
    }.items():
        expected += jnp.sum(norm(point[f"mu/{s}"], *mu_prior))
        expected += jnp.sum(jnp.log(2) + norm(point[f"tau/{s}"], 0, tau_prior))
        expected += jnp.sum(norm(point[f"z/{s}"]))
    for i, (y, x, sc) in enumerate(zip(ys, xs, scales, strict=True)):
        own = {}
        for s in ("sigma_obs", "sigma_level"):
            r = default_prior(s, sc).scale
            own[s] = r * jnp.exp(point[f"mu/{s}"] + point[f"tau/{s}"] * point[f"z/{s}"][i])
        ref = sc["y_scale"] / np.array([sc["x_scale_0"], sc["x_scale_1"]])
        own["beta"] = ref * (point["mu/beta"] + point["tau/beta"] * point["z/beta"][i])
        density = series_density(own, jnp.asarray(y), jnp.asarray(x), sc)
        priors = sum(default_prior(s, sc).log_prob(own[s]) for s in ("sigma_obs", "sigma_level"))
        priors += default_prior("beta", sc, size=2).log_prob(own["beta"])
        expected += density - priors
    np.testing.assert_allclose(pooled, expected, rtol=2e-5)


def test_pooling_refuses_time_varying_coefficients():
    frame, _ = coefficient_panel(2, (20,))
    model = bs.StructuralTS(trend=None, regression_states="random_walk")
    with pytest.raises(ValueError, match="pools static regression coefficients only"):
        bs.fit_svi_many(model, frame, key=0, covariates=["x1"], pooling="partial", steps=2)


@pytest.mark.slow
def test_pooled_svi_recovers_each_series_coefficients():
    """Eight short series (40-60 weeks, covariates in three different units) whose coefficients
    come from one population: the pooled fit recovers each series' own coefficients, puts the
    population's standardised mean near the truth, and forecasts with future covariates in
    long format."""
    frame, truth = coefficient_panel(8, (40, 60, 50), seed=2)
    fits = bs.fit_svi_many(
        MODEL, frame, key=0, covariates=["x1", "x2"], pooling="partial", steps=600,
        check_every=300, learning_rate=0.02, num_samples=200, progress=False,
    )  # fmt: skip
    assert fits.info["batch"] == "pooled" and len(fits) == 8
    for ident, beta in truth.items():
        draws = fits[ident].draws["beta"]
        assert draws.shape == (1, 200, 2)
        np.testing.assert_allclose(draws.reshape(-1, 2).mean(0), beta, atol=0.12, err_msg=ident)
    # standardised population means: beta * x_scale / y_scale, averaged over the series
    fitted = fits.info["population"]["beta"]["mu_mean"]
    standardised = [
        truth[k]
        * np.std(frame.loc[frame.unique_id == k, ["x1", "x2"]].to_numpy(), axis=0)
        / np.std(frame.loc[frame.unique_id == k, "y"].to_numpy())
        for k in truth
    ]
    np.testing.assert_allclose(fitted, np.mean(standardised, axis=0), atol=0.1)
    last = frame.groupby("unique_id").tail(1)
    future = last.assign(ds=last["ds"] + pd.Timedelta(days=7)).drop(columns="y")
    forecast = fits.forecast(1, covariates=future, key=1)
    assert len(forecast) == 8 and np.isfinite(forecast["mean"]).all()
