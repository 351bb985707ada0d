"""Bayesian attention: the pure maths (kernels/stochastic_attention.py) and the NumPyro layers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from bayes_ssm.kernels import stochastic_attention as sa

# ---------------------------------------------------------------- the maths


@pytest.mark.parametrize(
    "k, w, alpha, beta",
    [(2.0, 0.3, 0.5, 1.0), (10.0, 0.05, 0.2, 4.0), (0.7, 1.5, 2.0, 0.5), (25.0, 0.2, 0.1, 10.0)],
)
def test_weibull_gamma_kl_matches_monte_carlo(x64, k, w, alpha, beta):
    lam = float(sa.weibull_scale(w, k))
    u = jax.random.uniform(jax.random.key(1), (400_000,), dtype=jnp.float64)
    s = np.asarray(sa.weibull_reparam(w, k, u))
    # log q - log p from scipy's densities: an independent computation of the integrand
    log_ratio = stats.weibull_min.logpdf(s, k, scale=lam) - stats.gamma.logpdf(
        s, alpha, scale=1.0 / beta
    )
    mc, se = log_ratio.mean(), log_ratio.std() / np.sqrt(s.size)
    closed = float(sa.weibull_gamma_kl(k, lam, alpha, beta))
    assert abs(closed - mc) < 4 * se + 1e-9, (closed, mc, se)


def test_weibull_gamma_kl_is_zero_where_the_families_meet(x64):
    # Weibull(k=1, lam) is Exponential(1/lam) = Gamma(1, 1/lam)
    lam = jnp.array([0.1, 2.0, 7.0])
    np.testing.assert_allclose(sa.weibull_gamma_kl(1.0, lam, 1.0, 1.0 / lam), 0.0, atol=1e-12)


@pytest.mark.parametrize("mu, sigma, alpha, beta", [(-1.0, 0.5, 0.5, 2.0), (0.3, 1.2, 3.0, 0.7)])
def test_lognormal_gamma_kl_matches_monte_carlo(x64, mu, sigma, alpha, beta):
    z = jax.random.normal(jax.random.key(2), (400_000,), dtype=jnp.float64)
    s = np.exp(mu + sigma * np.asarray(z))
    log_ratio = stats.lognorm.logpdf(s, sigma, scale=np.exp(mu)) - stats.gamma.logpdf(
        s, alpha, scale=1.0 / beta
    )
    mc, se = log_ratio.mean(), log_ratio.std() / np.sqrt(s.size)
    closed = float(sa.lognormal_gamma_kl(mu, sigma, alpha, beta))
    assert abs(closed - mc) < 4 * se, (closed, mc, se)


@pytest.mark.parametrize("k", [0.8, 3.0, 20.0])
def test_weibull_reparam_is_the_weibull_with_the_asked_mean(x64, k):
    w = 0.37
    u = jax.random.uniform(jax.random.key(3), (50_000,), dtype=jnp.float64)
    s = np.asarray(sa.weibull_reparam(w, k, u))
    lam = w / special.gamma(1 + 1 / k)
    assert stats.kstest(s, stats.weibull_min(k, scale=lam).cdf).pvalue > 1e-3
    assert abs(s.mean() - w) < 4 * s.std() / np.sqrt(s.size)


def test_lognormal_reparam_has_the_asked_mean(x64):
    w, sigma = 0.2, 0.8
    z = jax.random.normal(jax.random.key(4), (200_000,), dtype=jnp.float64)
    s = np.asarray(sa.lognormal_reparam(w, sigma, z))
    np.testing.assert_allclose(np.log(s).mean(), sa.lognormal_loc(w, sigma), atol=0.01)
    assert abs(s.mean() - w) < 4 * s.std() / np.sqrt(s.size)


def test_collapsed_draws_equal_their_mean_with_gradients():
    w = jnp.array([0.0, 0.1, 0.6, 0.3])
    u = jnp.array([0.2, 0.5, 0.9, 0.01])
    np.testing.assert_array_equal(sa.weibull_reparam(w, jnp.inf, u), w)
    np.testing.assert_array_equal(sa.lognormal_reparam(w, 0.0, u), w)
    g = jax.grad(lambda w: jnp.sum(jnp.sin(sa.weibull_reparam(w, jnp.inf, u))))(w)
    np.testing.assert_allclose(g, jnp.cos(w), rtol=1e-6)


def test_contextual_gamma_shape_is_rate_times_masked_softmax():
    logits = jnp.array([0.3, -1.0, 2.0, 0.5])
    mask = jnp.tril(jnp.ones((4, 4), bool))
    alpha = sa.contextual_gamma_shape(logits, 3.0, mask=mask)
    assert alpha.shape == (4, 4)
    np.testing.assert_allclose(alpha.sum(-1), 3.0, rtol=1e-6)
    np.testing.assert_array_equal(alpha[0, 1:], 0.0)
    e = np.exp(np.asarray(logits)[:2])
    np.testing.assert_allclose(alpha[1, :2], 3.0 * e / e.sum(), rtol=1e-6)


def test_normalize_weights_rows_sum_to_one_and_zero_rows_stay_zero():
    s = jnp.array([[0.0, 0.0], [1.0, 3.0]])
    w = sa.normalize_weights(s)
    np.testing.assert_allclose(w, [[0.0, 0.0], [0.25, 0.75]])
    assert np.isfinite(np.asarray(jax.grad(lambda s: sa.normalize_weights(s)[1, 0])(s))).all()
