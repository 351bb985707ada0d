"""The default's candidate set (session 8): no trend candidate; the mean-reverting candidate
``mean_ar1`` is a constant mean plus a stationary AR(1) (checked against the dense joint
Gaussian), and stacking tells it from the random-walk level on data simulated from each."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from numpyro import handlers
from scipy import stats

from bayes_ssm.inference import auto
from bayes_ssm.inference.candidates import PIN_LEVEL, default_candidates
from bayes_ssm.models.structural_priors import prior_from_spec


def _log_lik(model, y, params):
    scales = model.data_scales(y)
    values = {k: jnp.asarray(v) for k, v in params.items()}
    with handlers.trace() as tr, handlers.seed(rng_seed=0), handlers.substitute(data=values):
        model.model(jnp.asarray(y), scales=scales)
    return np.asarray(tr["log_lik"]["value"]), scales


def test_candidate_set_has_no_trend_and_a_pinned_mean(x64):
    """Every default candidate is trend-free, with and without a season; ``mean_ar1``'s level
    sd prior is PIN_LEVEL times the sd of the window's steps."""
    rng = np.random.default_rng(0)
    z = np.cumsum(rng.normal(0, 0.3, 120))
    for seasons in ([], [(12, 2)]):
        cands = default_candidates(seasons, z)
        assert list(cands) == [
            "level_seasonal_noise" if seasons else "level",
            "level_ar1",
            "level_student_t",
            "mean_ar1",
        ]
        assert all(m.trend is None for m in cands.values())
        assert cands["mean_ar1"].ar_order == 1
    model = default_candidates([], z)["mean_ar1"]
    spec = model.prior_overrides["sigma_level"]
    assert spec["scale"] == PIN_LEVEL and spec["scale_by"] == "dy_scale"
    prior = prior_from_spec("sigma_level", spec, model.data_scales(z))
    assert float(prior.scale) == pytest.approx(PIN_LEVEL * np.std(np.diff(z)))


def test_mean_ar1_is_a_constant_mean_plus_a_stationary_ar1(x64):
    """With the level sd at 0, ``mean_ar1``'s log-likelihood (the sum of its one-step predictive
    log densities, gaps included) equals the dense joint Gaussian of a constant mean with the
    model's proper prior ``N(y_loc, (3 y_scale)^2)``, a stationary AR(1) and white noise; at
    three times its prior's scale the pinned level changes the log-likelihood by < 1e-3 nats
    (the random walk is pinned: the candidate reverts to one mean)."""
    rng = np.random.default_rng(1)
    n, phi, s_ar, s_obs = 80, 0.7, 0.4, 0.2
    x = np.zeros(n)
    x[0] = rng.normal(0, s_ar / np.sqrt(1 - phi**2))
    for t in range(1, n):
        x[t] = phi * x[t - 1] + rng.normal(0, s_ar)
    y = 2.0 + x + rng.normal(0, s_obs, n)
    y[[10, 11, 40]] = np.nan
    model = default_candidates([], y[np.isfinite(y)])["mean_ar1"]
    params = {"sigma_obs": s_obs, "sigma_ar": s_ar, "ar_pacf": np.array([phi])}
    log_lik, scales = _log_lik(model, y, {**params, "sigma_level": 0.0})
    lag = np.abs(np.subtract.outer(np.arange(n), np.arange(n)))
    cov = (3 * scales["y_scale"]) ** 2 + s_ar**2 / (1 - phi**2) * phi**lag + s_obs**2 * np.eye(n)
    seen = np.isfinite(y)
    dense = stats.multivariate_normal(
        np.full(seen.sum(), scales["y_loc"]), cov[np.ix_(seen, seen)]
    ).logpdf(y[seen])
    np.testing.assert_allclose(log_lik.sum(), dense, rtol=1e-9)
    pin = PIN_LEVEL * scales["dy_scale"]  # the prior's scale (relative to the data's steps)
    pinned, _ = _log_lik(model, y, {**params, "sigma_level": 3 * pin})
    assert abs(pinned.sum() - dense) < 1e-3


def _weekly(y):
    return pd.Series(y, index=pd.date_range("2000-01-01", periods=len(y), freq="W-SAT"))


@pytest.mark.slow
def test_stacking_tells_the_mean_reverting_candidate_from_the_random_walk():
    """Data simulated from each of the two candidates: stacking gives the generating one the
    larger weight (a stationary AR(1) around a mean -> ``mean_ar1``; a random-walk level plus
    noise -> ``level``)."""
    rng = np.random.default_rng(3)
    n = 200
    x = np.zeros(n)
    for t in range(1, n):
        x[t] = 0.6 * x[t - 1] + rng.normal(0, 0.5)
    reverting = 3.0 + x + rng.normal(0, 0.1, n)
    walk = 3.0 + np.cumsum(rng.normal(0, 0.5, n)) + rng.normal(0, 0.1, n)
    for y, truth in ((reverting, "mean_ar1"), (walk, "level")):
        cands = default_candidates([], y)
        cands = {k: cands[k] for k in ("level", "mean_ar1")}
        fit = auto.auto_fit(
            _weekly(y), key=0, transform="none", candidates=cands, recalibrate=False
        )
        assert fit.weights.idxmax() == truth, fit.summary()
