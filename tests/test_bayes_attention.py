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


# ---------------------------------------------------------------- Bayesian attention layer

import math  # noqa: E402

import numpyro  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
from numpyro.handlers import scope, seed  # noqa: E402

from bayes_ssm.kernels.attention import linear_attention, softmax_attention  # noqa: E402
from bayes_ssm.layers import BayesianAttention  # noqa: E402
from tests.layer_helpers import replayer, site_shapes, tracer  # noqa: E402


def _params(values):
    return {k: v for k, v in values.items() if not k.endswith("/weights")}


@pytest.mark.parametrize(
    "kind, posterior, kwargs",
    [
        ("softmax", "weibull", {"concentration": math.inf}),
        ("softmax", "lognormal", {"sigma": 0.0}),
        ("linear", "weibull", {"concentration": math.inf}),
    ],
)
def test_attention_collapsed_equals_the_deterministic_kernel(x64, kind, posterior, kwargs):
    x = jax.random.normal(jax.random.key(3), (2, 9, 5))
    layer = BayesianAttention(num_heads=2, head_dim=3, key_dim=4, kind=kind, posterior=posterior,
                              **kwargs)  # fmt: skip
    params = _params(tracer(layer.guide, prefix="attn")(jax.random.PRNGKey(0), x))
    guide = replayer(layer.guide, prefix="attn")

    def layer_out(x, params):
        return guide(params, x)

    def kernel_out(x, params):
        wq, wk, wv = (params[f"attn/{n}_weight"] for n in ("query", "key", "value"))
        q, k, v = (jnp.einsum("...d,dhn->...hn", x, w) for w in (wq, wk, wv))
        if kind == "softmax":
            return softmax_attention(q, k, v)
        return linear_attention(q, k, v, feature_map="elu")

    np.testing.assert_allclose(layer_out(x, params), kernel_out(x, params), rtol=1e-9, atol=1e-12)

    def grads(f):
        loss = lambda x, p: jnp.sum(jnp.tanh(f(x, p)) * jnp.arange(3.0))  # noqa: E731
        return jax.jit(jax.grad(loss, argnums=(0, 1)))(x, params)

    g_layer, g_kernel = grads(layer_out), grads(kernel_out)
    np.testing.assert_allclose(g_layer[0], g_kernel[0], rtol=1e-8, atol=1e-11)
    for name in ("attn/query_weight", "attn/key_weight", "attn/value_weight"):
        np.testing.assert_allclose(g_layer[1][name], g_kernel[1][name], rtol=1e-8, atol=1e-11)


def test_attention_sites_and_shapes_match_between_model_and_guide():
    x = jnp.ones((3, 7, 5))
    layer = BayesianAttention(num_heads=2, head_dim=3, key_dim=4, prior_hidden=6)
    expected = {
        "attn/query_weight": ("param", (5, 2, 4)),
        "attn/key_weight": ("param", (5, 2, 4)),
        "attn/value_weight": ("param", (5, 2, 3)),
        "attn/prior_w1": ("param", (2, 4, 6)),
        "attn/prior_b1": ("param", (2, 6)),
        "attn/prior_w2": ("param", (2, 6)),
        "attn/weights": ("sample", (3, 2, 7, 7)),
    }
    model_sites, model_dists = site_shapes(layer, x, prefix="attn")
    assert model_sites == expected
    guide_sites, guide_dists = site_shapes(layer.guide, x, prefix="attn")
    assert guide_sites == {k: v for k, v in expected.items() if "prior" not in k}
    assert isinstance(guide_dists["attn/weights"].base_dist.base_dist, dist.Weibull)
    assert isinstance(model_dists["attn/weights"].base_dist.base_dist, dist.Gamma)
    plain, _ = site_shapes(BayesianAttention(num_heads=1, head_dim=2, contextual_prior=False), x,
                           prefix="a")  # fmt: skip
    assert set(plain) == {"a/query_weight", "a/key_weight", "a/value_weight", "a/weights"}


@pytest.mark.parametrize("posterior", ["weibull", "lognormal"])
def test_attention_kl_is_the_closed_form_over_the_visible_weights(x64, posterior):
    x = jax.random.normal(jax.random.key(4), (6, 3))
    layer = BayesianAttention(num_heads=2, head_dim=2, posterior=posterior, concentration=4.0,
                              sigma=0.4, prior_rate=2.0)  # fmt: skip
    params = _params(tracer(layer, prefix="attn")(jax.random.PRNGKey(0), x))
    kl = replayer(layer.kl, prefix="attn")(params, x)  # numpyro's KL dispatch

    def by_hand(x):
        w, mask, k, _ = layer.attention(x)
        alpha = layer.prior(k, mask).base_dist.base_dist.concentration
        if posterior == "weibull":
            terms = sa.weibull_gamma_kl(4.0, sa.weibull_scale(w, 4.0), alpha, 2.0)
        else:
            terms = sa.lognormal_gamma_kl(sa.lognormal_loc(w, 0.4), 0.4, alpha, 2.0)
        return jnp.sum(jnp.where(mask, terms, 0.0))

    np.testing.assert_allclose(kl, replayer(by_hand, prefix="attn")(params, x), rtol=1e-10)


def test_svi_with_the_matching_guide_fits_attention_and_its_mean_field_elbo_agrees():
    # Targets from a running mean; SVI must fit them through the attention, and the analytic-KL
    # ELBO (TraceMeanField) must agree with the Monte-Carlo ELBO on average.
    T, D = 12, 3
    x = jax.random.normal(jax.random.key(5), (T, D))
    layer = BayesianAttention(num_heads=1, head_dim=1, key_dim=2, concentration=20.0,
                              prior_rate=10.0)  # fmt: skip
    target = jnp.cumsum(x[:, 0]) / jnp.arange(1, T + 1)

    def model(x, y):
        with scope(prefix="attn"):
            out = layer(x)[..., 0, 0]
        numpyro.sample("y", dist.Normal(out, 0.1).to_event(1), obs=y)

    def guide(x, y):
        with scope(prefix="attn"):
            layer.guide(x)

    svi = numpyro.infer.SVI(model, guide, numpyro.optim.Adam(0.05), numpyro.infer.Trace_ELBO())
    init = svi.get_params(svi.init(jax.random.key(6), x, target))
    res = svi.run(jax.random.key(6), 300, x, target, progress_bar=False)
    assert np.isfinite(res.losses).all()
    mean_guide = replayer(
        BayesianAttention(**{**layer.__dict__, "concentration": math.inf}).guide, prefix="attn"
    )

    def mse(params):  # the posterior-mean attention (collapsed guide) against the target
        return float(jnp.mean((mean_guide(params, x)[..., 0, 0] - target) ** 2))

    assert mse(res.params) < 0.3 * mse(init)
    keys = jax.random.split(jax.random.key(7), 400)
    args = (res.params, model, guide, x, target)
    mc = jax.jit(jax.vmap(lambda k: numpyro.infer.Trace_ELBO().loss(k, *args)))(keys)
    mf = jax.jit(jax.vmap(lambda k: numpyro.infer.TraceMeanField_ELBO().loss(k, *args)))(keys)
    diff = np.asarray(mc - mf)
    assert abs(diff.mean()) < 4 * diff.std() / np.sqrt(diff.size) + 1e-6


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"concentration": 0.0}, "concentration"),
        ({"concentration": -2.0}, "concentration"),
        ({"sigma": -0.1}, "sigma"),
        ({"prior_rate": 0.0}, "prior_rate"),
        ({"kind": "cosine"}, "kind"),
        ({"posterior": "gamma"}, "posterior"),
        ({"num_heads": 0}, "num_heads"),
    ],
)
def test_attention_bad_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BayesianAttention(**{"num_heads": 1, "head_dim": 2, **kwargs})


def test_attention_bad_input_shape():
    with pytest.raises(ValueError, match="channel"):
        seed(BayesianAttention(num_heads=1, head_dim=2), 0)(jnp.ones(5))
