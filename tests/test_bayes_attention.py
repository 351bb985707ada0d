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


# ---------------------------------------------------------------- stochastic-decay SSD layer

import math  # noqa: E402

import numpyro  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
from numpyro.handlers import scope, seed, substitute, trace  # noqa: E402

from bayes_ssm.kernels.attention import linear_attention, softmax_attention  # noqa: E402
from bayes_ssm.kernels.reference import ssd_ref  # noqa: E402
from bayes_ssm.kernels.ssd import ssd, ssd_mask  # noqa: E402
from bayes_ssm.layers import (  # noqa: E402
    BayesianAttention,
    StochasticDecaySSD,
    build_layer,
    decay_attention_row,
)
from bayes_ssm.priors import HalfLife  # noqa: E402


def _trace(fn, *args, rng=0, prefix="layer", data=None, **kwargs):
    fn = scope(fn, prefix=prefix)
    if data is not None:
        fn = substitute(fn, data=data)
    return trace(seed(fn, rng)).get_trace(*args, **kwargs)


def _values(tr, kind=("sample", "param")):
    return {k: v["value"] for k, v in tr.items() if v["type"] in kind}


def test_decay_layer_collapsed_equals_the_ssd_kernel_values_and_gradients(x64):
    T, H, P, N = 21, 3, 2, 4
    kx, kb, kc = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (T, H, P))
    B = jax.random.normal(kb, (T, 1, N))
    C = jax.random.normal(kc, (T, 1, N))
    dt = jnp.linspace(0.5, 2.0, T)  # irregular gaps
    layer = StochasticDecaySSD(
        num_heads=H, head_dim=P, state_dim=N, noise="lognormal", noise_scale=0.0,
        input_gate="euler", method="chunked", chunk_size=8,
    )  # fmt: skip
    tau = jnp.array([2.0, 5.0, 30.0])

    def layer_out(x, tau):
        return scope(substitute(seed(layer, 3), data={"half_life": tau}), prefix="s")(
            x, B=B, C=C, dt=dt
        )

    def kernel_out(x, tau):  # the deterministic kernel: rate A = -log 2 / tau, step dt
        rate = -math.log(2.0) / tau
        return ssd(x, jnp.broadcast_to(dt[:, None], (T, H)), rate, B, C, method="scan")

    np.testing.assert_allclose(layer_out(x, tau), kernel_out(x, tau), rtol=1e-10, atol=1e-12)
    ref = ssd_ref(x, np.broadcast_to(dt[:, None], (T, H)), -np.log(2.0) / tau, B, C)
    np.testing.assert_allclose(layer_out(x, tau), ref, rtol=1e-9, atol=1e-10)

    def loss(f):
        return lambda x, tau: jnp.sum(jnp.sin(f(x, tau)))

    g_layer = jax.grad(loss(layer_out), argnums=(0, 1))(x, tau)
    g_kernel = jax.grad(loss(kernel_out), argnums=(0, 1))(x, tau)
    for a, b in zip(g_layer, g_kernel, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize(
    "noise, contextual, batch",
    [("lognormal", False, ()), ("gamma", True, (2,)), ("lognormal", True, (2,))],
)
def test_stochastic_decay_keeps_scan_chunked_quadratic_equal_for_every_draw(
    x64, noise, contextual, batch
):
    T, H, P, N = 37, 2, 3, 4  # T not a multiple of the chunk
    x = jax.random.normal(jax.random.key(1), (*batch, T, H, P))
    for draw in range(4):
        outs = {}
        base = StochasticDecaySSD(num_heads=H, head_dim=P, state_dim=N, noise=noise,
                                  noise_scale=0.6, contextual=contextual, chunk_size=8)  # fmt: skip
        tr = _trace(base, x, rng=draw)
        draws = _values(tr)
        for method in ("chunked", "scan", "quadratic"):
            layer = StochasticDecaySSD(**{**base.__dict__, "method": method})
            outs[method] = scope(substitute(seed(layer, 99), data=draws), prefix="layer")(x)
        np.testing.assert_allclose(outs["scan"], outs["chunked"], rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(outs["quadratic"], outs["chunked"], rtol=1e-9, atol=1e-11)
        # the draws really differ from step to step (the mask is random, not a fixed decay)
        assert np.std(np.asarray(draws["layer/step_noise"])) > 0.1


def test_decay_layer_sites_and_shapes_under_scope():
    x = jnp.ones((2, 11, 3, 2))
    layer = StochasticDecaySSD(num_heads=3, head_dim=2, state_dim=5)
    tr = _trace(layer, x, prefix="ssd")
    shapes = {k: v["value"].shape for k, v in tr.items()}
    assert shapes == {
        "ssd/half_life": (3,),
        "ssd/step_noise": (2, 11, 3),
        "ssd/B_weight": (3, 2, 5),
        "ssd/C_weight": (3, 2, 5),
    }
    assert all(v["type"] == "sample" for v in tr.values())
    ctx = StochasticDecaySSD(num_heads=3, head_dim=2, noise="gamma", contextual=True)
    tr = _trace(ctx, x[0], prefix="ssd", B=jnp.ones((11, 1, 1)), C=jnp.ones((11, 1, 1)))
    assert {k: v["value"].shape for k, v in tr.items()} == {
        "ssd/half_life": (3,),
        "ssd/context_weight": (3, 2),
        "ssd/step_noise": (11, 3),
    }
    assert float(jnp.min(tr["ssd/step_noise"]["value"])) > 0
    det = StochasticDecaySSD(num_heads=1, noise="none")
    assert list(_trace(det, jnp.ones((4, 1, 1)), B=jnp.ones((4, 1, 1)), C=jnp.ones((4, 1, 1))))
    assert set(_trace(det, jnp.ones((4, 1, 1)), B=jnp.ones((4, 1, 1)),
                      C=jnp.ones((4, 1, 1)))) == {"layer/half_life"}  # fmt: skip


def test_decay_attention_row_is_the_row_of_the_dual_form_and_reproduces_the_output(x64):
    T, H = 30, 2
    x = jax.random.normal(jax.random.key(2), (T, H, 1))
    ones = jnp.ones((T, 1, 1))
    layer = StochasticDecaySSD(num_heads=H, noise_scale=0.5)
    tr = _trace(layer.log_decay, x)
    log_a, _ = substitute(seed(scope(layer.log_decay, prefix="layer"), 0), _values(tr))(x)
    y = substitute(seed(scope(layer, prefix="layer"), 0), _values(tr))(x, B=ones, C=ones)
    gate = -jnp.expm1(log_a)  # (t, h)
    for origin in (0, 7, T - 1):
        row = decay_attention_row(log_a.T, gate.T, origin)  # (h, origin + 1)
        full = ssd_mask(log_a.T)[:, origin, : origin + 1] * gate.T[:, : origin + 1]
        np.testing.assert_allclose(row, full, rtol=1e-10)
        np.testing.assert_allclose(
            jnp.einsum("hs,sh->h", row, x[: origin + 1, :, 0]), y[origin, :, 0], rtol=1e-9
        )
        # weights of an exponentially weighted average: positive, summing to at most one
        assert np.all(np.asarray(row) > 0) and np.all(np.asarray(row.sum(-1)) <= 1 + 1e-12)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"noise_scale": -0.1}, "noise_scale"),
        ({"noise": "gamma", "noise_scale": 0.0}, "noise_scale"),
        ({"noise": "cauchy"}, "noise"),
        ({"num_heads": 0}, "num_heads"),
        ({"half_life": HalfLife(weeks=8)}, "step="),
        ({"half_life": 8.0}, "HalfLife"),
        ({"method": "fft"}, "method"),
    ],
)
def test_decay_layer_bad_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StochasticDecaySSD(**{"num_heads": 2, **kwargs})


def test_decay_layer_bad_input_shape():
    layer = StochasticDecaySSD(num_heads=2, head_dim=3)
    with pytest.raises(ValueError, match=r"\(\*batch, time, head, head_dim\)"):
        seed(layer, 0)(jnp.ones((10, 6)))


def test_memory_prior_on_a_layer_without_decay_is_refused():
    with pytest.raises(ValueError, match="no decay"):
        build_layer("softmax", memory_prior=HalfLife(steps=4), num_heads=1, head_dim=2)
    with pytest.raises(ValueError, match="no decay"):
        build_layer("linear", memory_prior=HalfLife(steps=4), num_heads=1, head_dim=2)
    with pytest.raises(ValueError, match="unknown layer"):
        build_layer("lstm")
    layer = build_layer("ssd", memory_prior=HalfLife(steps=4), num_heads=2)
    assert layer.half_life == HalfLife(steps=4)


# ---------------------------------------------------------------- Bayesian attention layer


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
    params = _values(_trace(layer.guide, x, prefix="attn"), kind=("param",))

    def layer_out(x, params):
        return substitute(seed(scope(layer.guide, prefix="attn"), 5), data=params)(x)

    def kernel_out(x, params):
        wq, wk, wv = (params[f"attn/{n}_weight"] for n in ("query", "key", "value"))
        q, k, v = (jnp.einsum("...d,dhn->...hn", x, w) for w in (wq, wk, wv))
        if kind == "softmax":
            return softmax_attention(q, k, v)
        return linear_attention(q, k, v, feature_map="elu")

    np.testing.assert_allclose(layer_out(x, params), kernel_out(x, params), rtol=1e-9, atol=1e-12)

    def loss(f):
        return lambda x, p: jnp.sum(jnp.tanh(f(x, p)) * jnp.arange(3.0))

    g_layer = jax.grad(loss(layer_out), argnums=(0, 1))(x, params)
    g_kernel = jax.grad(loss(kernel_out), argnums=(0, 1))(x, params)
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
    model_tr = _trace(layer, x, prefix="attn")
    assert {k: (v["type"], v["value"].shape) for k, v in model_tr.items()} == expected
    guide_tr = _trace(layer.guide, x, prefix="attn")
    guide_sites = {k: (v["type"], v["value"].shape) for k, v in guide_tr.items()}
    assert guide_sites == {k: v for k, v in expected.items() if "prior" not in k}
    assert isinstance(guide_tr["attn/weights"]["fn"].base_dist.base_dist, dist.Weibull)
    assert isinstance(model_tr["attn/weights"]["fn"].base_dist.base_dist, dist.Gamma)
    plain = BayesianAttention(num_heads=1, head_dim=2, contextual_prior=False)
    assert set(_trace(plain, x, prefix="a")) == {
        "a/query_weight", "a/key_weight", "a/value_weight", "a/weights",
    }  # fmt: skip


@pytest.mark.parametrize("posterior", ["weibull", "lognormal"])
def test_attention_kl_is_the_closed_form_over_the_visible_weights(x64, posterior):
    x = jax.random.normal(jax.random.key(4), (6, 3))
    layer = BayesianAttention(num_heads=2, head_dim=2, posterior=posterior, concentration=4.0,
                              sigma=0.4, prior_rate=2.0)  # fmt: skip
    params = _values(_trace(layer, x, prefix="attn"), kind=("param",))
    kl = substitute(seed(scope(layer.kl, prefix="attn"), 0), data=params)(x)
    w, mask, k, _ = substitute(seed(scope(layer.attention, prefix="attn"), 0), data=params)(x)
    prior = substitute(seed(scope(layer.prior, prefix="attn"), 0), data=params)(k, mask)
    alpha = prior.base_dist.base_dist.concentration
    if posterior == "weibull":
        terms = sa.weibull_gamma_kl(4.0, sa.weibull_scale(w, 4.0), alpha, 2.0)
    else:
        terms = sa.lognormal_gamma_kl(sa.lognormal_loc(w, 0.4), 0.4, alpha, 2.0)
    np.testing.assert_allclose(kl, jnp.sum(jnp.where(mask, terms, 0.0)), rtol=1e-10)


def test_svi_with_the_matching_guide_fits_attention_and_its_mean_field_elbo_agrees():
    # Targets from a fixed attention layer; SVI must lower the ELBO loss, and the analytic-KL
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
    mean_layer = BayesianAttention(**{**layer.__dict__, "concentration": math.inf})

    def mse(params):  # the posterior-mean attention (collapsed guide) against the target
        out = substitute(seed(scope(mean_layer.guide, prefix="attn"), 0), data=params)(x)
        return float(jnp.mean((out[..., 0, 0] - target) ** 2))

    assert mse(res.params) < 0.3 * mse(init)
    keys = jax.random.split(jax.random.key(7), 400)
    args = (res.params, model, guide, x, target)
    mc = jax.vmap(lambda k: numpyro.infer.Trace_ELBO().loss(k, *args))(keys)
    mf = jax.vmap(lambda k: numpyro.infer.TraceMeanField_ELBO().loss(k, *args))(keys)
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


# ---------------------------------------------------------------- S4D and selective layers

from bayes_ssm.kernels.implied import implied_attention  # noqa: E402
from bayes_ssm.kernels.reference import s4d_ref, selective_scan_ref  # noqa: E402
from bayes_ssm.kernels.s4d import s4d  # noqa: E402
from bayes_ssm.kernels.selective import SelectiveParams, selective_scan  # noqa: E402
from bayes_ssm.layers import StochasticDecayS4D, StochasticDecaySelective  # noqa: E402


def test_s4d_layer_collapsed_equals_the_convolution_kernel_values_and_gradients(x64):
    T, D = 33, 3
    x = jax.random.normal(jax.random.key(8), (T, D))
    layer = StochasticDecayS4D(channels=D, state_size=4, noise_scale=0.0)
    draws = _values(_trace(layer, x, prefix="s4d"))

    def layer_out(x, tau):  # recurrent mode, per-step steps (all equal here)
        data = {**draws, "s4d/half_life": tau}
        return substitute(seed(scope(layer, prefix="s4d"), 0), data=data)(x)

    def kernel_out(x, tau):  # FFT convolution at the fixed step log 2 / (tau |Re A|)
        params = layer.base_params()._replace(
            log_dt=jnp.log(math.log(2.0) / (tau * 0.5)),
            C=jax.lax.complex(draws["s4d/C_real"], draws["s4d/C_imag"]),
            D=draws["s4d/D"],
        )
        return s4d(params, x, mode="convolution")

    tau = jnp.array([1.5, 6.0, 40.0])
    np.testing.assert_allclose(layer_out(x, tau), kernel_out(x, tau), rtol=1e-8, atol=1e-10)
    g1 = jax.grad(lambda x, t: jnp.sum(jnp.sin(layer_out(x, t))), argnums=(0, 1))(x, tau)
    g2 = jax.grad(lambda x, t: jnp.sum(jnp.sin(kernel_out(x, t))), argnums=(0, 1))(x, tau)
    for a, b in zip(g1, g2, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)


def test_s4d_stochastic_steps_every_draw_matches_loop_twin_and_implied_attention(x64):
    T, D = 25, 2
    x = jax.random.normal(jax.random.key(9), (T, D))
    layer = StochasticDecayS4D(channels=D, state_size=3, noise="gamma", noise_scale=0.7,
                               contextual=True)  # fmt: skip
    for draw in range(3):
        vals = _values(_trace(layer, x, rng=draw))
        y = substitute(seed(scope(layer, prefix="layer"), 0), data=vals)(x)
        params, delta = substitute(seed(scope(layer.sample_params, prefix="layer"), 0), vals)()
        steps = substitute(seed(scope(layer.steps, prefix="layer"), 0), vals)(x, delta)
        assert np.std(np.asarray(steps[:, 0])) > 0.1 * float(delta[0])  # really random
        ref = s4d_ref(x, params.A, params.B, params.C, steps, params.D)
        np.testing.assert_allclose(y, ref, rtol=1e-8, atol=1e-10)
        M = implied_attention("s4d", params, x, dt=steps)  # D on its diagonal
        np.testing.assert_allclose(y, jnp.einsum("dts,sd->td", M, x), rtol=1e-8, atol=1e-10)


def test_selective_layer_collapsed_equals_the_kernel_and_its_loop_twin(x64):
    T, D, N = 19, 3, 2
    x = jax.random.normal(jax.random.key(10), (T, D))
    layer = StochasticDecaySelective(channels=D, state_size=N, noise_scale=0.0, contextual=False)
    draws = _values(_trace(layer, x, prefix="sel"))

    def layer_out(x, tau):
        return substitute(seed(scope(layer, prefix="sel"), 0), {**draws, "sel/half_life": tau})(x)

    def kernel_out(x, tau):
        dt = jnp.broadcast_to(math.log(2.0) / tau, (T, D))
        A = -jnp.broadcast_to(jnp.arange(1.0, N + 1), (D, N))
        B, C = x @ draws["sel/B_weight"], x @ draws["sel/C_weight"]
        return selective_scan(x, dt, A, B, C, D=draws["sel/D"])

    tau = jnp.array([2.0, 9.0, 0.7])
    np.testing.assert_allclose(layer_out(x, tau), kernel_out(x, tau), rtol=1e-10, atol=1e-12)
    dt = np.broadcast_to(math.log(2.0) / np.asarray(tau), (T, D))
    A = -np.broadcast_to(np.arange(1.0, N + 1), (D, N))
    ref = selective_scan_ref(x, dt, A, x @ draws["sel/B_weight"], x @ draws["sel/C_weight"],
                             draws["sel/D"])  # fmt: skip
    np.testing.assert_allclose(layer_out(x, tau), ref, rtol=1e-9, atol=1e-11)
    g1 = jax.grad(lambda x, t: jnp.sum(jnp.sin(layer_out(x, t))), argnums=(0, 1))(x, tau)
    g2 = jax.grad(lambda x, t: jnp.sum(jnp.sin(kernel_out(x, t))), argnums=(0, 1))(x, tau)
    for a, b in zip(g1, g2, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)


def test_selective_every_draw_equals_its_implied_attention(x64):
    T, D = 17, 2
    x = jax.random.normal(jax.random.key(11), (T, D))
    layer = StochasticDecaySelective(channels=D, state_size=3, noise_scale=0.5)
    for draw in range(3):
        vals = _values(_trace(layer, x, rng=draw))
        y = substitute(seed(scope(layer, prefix="layer"), 0), data=vals)(x)
        p = substitute(seed(scope(layer.sample_params, prefix="layer"), 0), data=vals)(x)
        M = implied_attention("selective", SelectiveParams(p.dt, p.A, p.B, p.C), x)
        np.testing.assert_allclose(y, jnp.einsum("dts,sd->td", M, x) + p.D * x, rtol=1e-8,
                                   atol=1e-10)  # fmt: skip


def test_s4d_and_selective_sites_under_scope():
    x = jnp.ones((2, 9, 3))
    s4 = _trace(StochasticDecayS4D(channels=3, state_size=5), x, prefix="s4d")
    assert {k: v["value"].shape for k, v in s4.items()} == {
        "s4d/half_life": (3,), "s4d/C_real": (3, 5), "s4d/C_imag": (3, 5), "s4d/D": (3,),
        "s4d/step_noise": (2, 9, 3),
    }  # fmt: skip
    sel = _trace(StochasticDecaySelective(channels=3, state_size=2), x, prefix="sel")
    assert {k: v["value"].shape for k, v in sel.items()} == {
        "sel/half_life": (3,), "sel/context_weight": (3, 3), "sel/step_noise": (2, 9, 3),
        "sel/B_weight": (3, 2), "sel/C_weight": (3, 2), "sel/D": (3,),
    }  # fmt: skip
    assert isinstance(build_layer("s4d", memory_prior=HalfLife(steps=2), channels=3),
                      StochasticDecayS4D)  # fmt: skip
    with pytest.raises(ValueError, match="channel"):
        seed(StochasticDecayS4D(channels=3), 0)(jnp.ones((9, 4)))
    with pytest.raises(ValueError, match="noise_scale"):
        StochasticDecaySelective(channels=2, noise_scale=-1.0)
