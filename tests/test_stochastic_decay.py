"""Stochastic-decay layers (SSD, S4D, selective): a random memory that keeps the linear-time forms.

Each test compares two independent computations: the layer against the deterministic kernel it
wraps (collapsed noise), against the loop twins of ``kernels/reference.py``, or each random draw's
scan / chunked / quadratic / implied-attention forms against each other.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.handlers import seed

from bayes_ssm.kernels.implied import implied_attention
from bayes_ssm.kernels.reference import s4d_ref, selective_scan_ref, ssd_ref
from bayes_ssm.kernels.s4d import s4d
from bayes_ssm.kernels.selective import SelectiveParams, selective_scan
from bayes_ssm.kernels.ssd import ssd, ssd_mask
from bayes_ssm.kernels.stochastic_attention import decay_attention_row
from bayes_ssm.layers import (
    StochasticDecayS4D,
    StochasticDecaySelective,
    StochasticDecaySSD,
    build_layer,
)
from bayes_ssm.priors import HalfLife
from tests.layer_helpers import replayer, site_shapes, tracer

LOG2 = math.log(2.0)


def _grads(f, *args):
    return jax.jit(jax.grad(lambda *a: jnp.sum(jnp.sin(f(*a))), argnums=(0, 1)))(*args)


# ---------------------------------------------------------------- SSD


def test_ssd_layer_collapsed_equals_the_ssd_kernel_values_and_gradients(x64):
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
    draws = tracer(layer, B=B, C=C, dt=dt)(jax.random.PRNGKey(3), x)
    run = replayer(layer, B=B, C=C, dt=dt)

    def layer_out(x, tau):
        return run({**draws, "layer/half_life": tau}, x)

    def kernel_out(x, tau):  # the deterministic kernel: rate A = -log 2 / tau, step dt
        return ssd(x, jnp.broadcast_to(dt[:, None], (T, H)), -LOG2 / tau, B, C, method="scan")

    tau = jnp.array([2.0, 5.0, 30.0])
    np.testing.assert_allclose(layer_out(x, tau), kernel_out(x, tau), rtol=1e-10, atol=1e-12)
    ref = ssd_ref(x, np.broadcast_to(dt[:, None], (T, H)), -LOG2 / np.asarray(tau), B, C)
    np.testing.assert_allclose(layer_out(x, tau), ref, rtol=1e-9, atol=1e-10)
    for a, b in zip(_grads(layer_out, x, tau), _grads(kernel_out, x, tau), strict=True):
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
    kwargs = dict(num_heads=H, head_dim=P, state_dim=N, noise=noise, noise_scale=0.6,
                  contextual=contextual, chunk_size=8)  # fmt: skip
    draw = tracer(StochasticDecaySSD(**kwargs))
    runs = {m: replayer(StochasticDecaySSD(**kwargs, method=m)) for m in ("chunked", "scan")}
    runs["quadratic"] = replayer(StochasticDecaySSD(**kwargs, method="quadratic"))
    for i in range(4):
        draws = draw(jax.random.PRNGKey(i), x)
        outs = {m: run(draws, x) for m, run in runs.items()}
        np.testing.assert_allclose(outs["scan"], outs["chunked"], rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(outs["quadratic"], outs["chunked"], rtol=1e-9, atol=1e-11)
        # the draws really differ from step to step (the mask is random, not a fixed decay)
        assert np.std(np.asarray(draws["layer/step_noise"])) > 0.1


def test_ssd_layer_sites_and_shapes_under_scope():
    x = jnp.ones((2, 11, 3, 2))
    sites, _ = site_shapes(StochasticDecaySSD(num_heads=3, head_dim=2, state_dim=5), x,
                           prefix="ssd")  # fmt: skip
    assert sites == {
        "ssd/half_life": ("sample", (3,)),
        "ssd/step_noise": ("sample", (2, 11, 3)),
        "ssd/B_weight": ("sample", (3, 2, 5)),
        "ssd/C_weight": ("sample", (3, 2, 5)),
    }
    ones = jnp.ones((11, 1, 1))
    ctx = StochasticDecaySSD(num_heads=3, head_dim=2, noise="gamma", contextual=True)
    sites, dists = site_shapes(ctx, x[0], prefix="ssd", B=ones, C=ones)
    assert sites == {
        "ssd/half_life": ("sample", (3,)),
        "ssd/context_weight": ("sample", (3, 2)),
        "ssd/step_noise": ("sample", (11, 3)),
    }
    assert type(dists["ssd/step_noise"].base_dist).__name__ == "Gamma"
    future, _ = site_shapes(ctx.log_decay, x[0], prefix="ssd", horizon=4)
    assert future["ssd/future_step_noise"] == ("sample", (4, 3))
    det = StochasticDecaySSD(num_heads=1, noise="none")
    sites, _ = site_shapes(det, jnp.ones((4, 1, 1)), B=ones[:4], C=ones[:4])
    assert sites == {"layer/half_life": ("sample", (1,))}


def test_decay_attention_row_is_the_row_of_the_dual_form_and_reproduces_the_output(x64):
    T, H = 30, 2
    x = jax.random.normal(jax.random.key(2), (T, H, 1))
    ones = jnp.ones((T, 1, 1))
    layer = StochasticDecaySSD(num_heads=H, noise_scale=0.5)
    draws = tracer(layer, B=ones, C=ones)(jax.random.PRNGKey(0), x)
    log_a, _ = replayer(layer.log_decay)(draws, x)
    y = replayer(layer, B=ones, C=ones)(draws, x)
    gate = -jnp.expm1(log_a)  # (t, h)
    mask = ssd_mask(log_a.T)  # the quadratic form's (h, t, s) mask
    for origin in (0, 7, T - 1):
        row = decay_attention_row(log_a.T, gate.T, origin)  # (h, origin + 1)
        np.testing.assert_allclose(row, mask[:, origin, : origin + 1] * gate.T[:, : origin + 1],
                                   rtol=1e-10)  # fmt: skip
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
        ({"noise": "none", "contextual": True}, "contextual"),
    ],
)
def test_ssd_layer_bad_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StochasticDecaySSD(**{"num_heads": 2, **kwargs})


def test_ssd_layer_bad_input_shape():
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
    assert build_layer("ssd", memory_prior=HalfLife(steps=4), num_heads=2).half_life == HalfLife(
        steps=4
    )
    assert isinstance(build_layer("s4d", memory_prior=HalfLife(steps=2), channels=3),
                      StochasticDecayS4D)  # fmt: skip
    assert isinstance(build_layer("selective", channels=3), StochasticDecaySelective)


# ---------------------------------------------------------------- S4D


def test_s4d_layer_collapsed_equals_the_convolution_kernel_values_and_gradients(x64):
    T, D = 33, 3
    x = jax.random.normal(jax.random.key(8), (T, D))
    layer = StochasticDecayS4D(channels=D, state_size=4, noise_scale=0.0)
    draws = tracer(layer)(jax.random.PRNGKey(0), x)
    run = replayer(layer)

    def layer_out(x, tau):  # recurrent mode, per-step steps (all equal here)
        return run({**draws, "layer/half_life": tau}, x)

    def kernel_out(x, tau):  # FFT convolution at the fixed step log 2 / (tau |Re A|)
        params = layer.base_params()._replace(
            log_dt=jnp.log(LOG2 / (tau * 0.5)),
            C=jax.lax.complex(draws["layer/C_real"], draws["layer/C_imag"]),
            D=draws["layer/D"],
        )
        return s4d(params, x, mode="convolution")

    tau = jnp.array([1.5, 6.0, 40.0])
    np.testing.assert_allclose(layer_out(x, tau), kernel_out(x, tau), rtol=1e-8, atol=1e-10)
    for a, b in zip(_grads(layer_out, x, tau), _grads(kernel_out, x, tau), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)


def test_s4d_every_random_draw_matches_its_loop_twin_and_implied_attention(x64):
    T, D = 25, 2
    x = jax.random.normal(jax.random.key(9), (T, D))
    layer = StochasticDecayS4D(channels=D, state_size=3, noise="gamma", noise_scale=0.7,
                               contextual=True)  # fmt: skip
    draw, run = tracer(layer), replayer(layer)
    pieces = replayer(lambda x: layer.steps(x, layer.sample_params(x.dtype)[1]))
    params_of = replayer(lambda: layer.sample_params()[0])
    for i in range(3):
        vals = draw(jax.random.PRNGKey(i), x)
        y, steps, params = run(vals, x), pieces(vals, x), params_of(vals)
        assert np.std(np.asarray(steps[:, 0])) > 0.1 * np.mean(np.asarray(steps[:, 0]))
        ref = s4d_ref(x, params.A, params.B, params.C, steps, params.D)
        np.testing.assert_allclose(y, ref, rtol=1e-8, atol=1e-10)
        M = implied_attention("s4d", params, x, dt=steps)  # D on its diagonal
        np.testing.assert_allclose(y, jnp.einsum("dts,sd->td", M, x), rtol=1e-8, atol=1e-10)


# ---------------------------------------------------------------- selective


def test_selective_layer_collapsed_equals_the_kernel_and_its_loop_twin(x64):
    T, D, N = 19, 3, 2
    x = jax.random.normal(jax.random.key(10), (T, D))
    layer = StochasticDecaySelective(channels=D, state_size=N, noise_scale=0.0, contextual=False)
    draws = tracer(layer)(jax.random.PRNGKey(0), x)
    run = replayer(layer)
    A = -jnp.broadcast_to(jnp.arange(1.0, N + 1), (D, N))

    def layer_out(x, tau):
        return run({**draws, "layer/half_life": tau}, x)

    def kernel_out(x, tau):
        dt = jnp.broadcast_to(LOG2 / tau, (T, D))
        B, C = x @ draws["layer/B_weight"], x @ draws["layer/C_weight"]
        return selective_scan(x, dt, A, B, C, D=draws["layer/D"])

    tau = jnp.array([2.0, 9.0, 0.7])
    np.testing.assert_allclose(layer_out(x, tau), kernel_out(x, tau), rtol=1e-10, atol=1e-12)
    dt = np.broadcast_to(LOG2 / np.asarray(tau), (T, D))
    B, C = x @ draws["layer/B_weight"], x @ draws["layer/C_weight"]
    ref = selective_scan_ref(x, dt, A, B, C, draws["layer/D"])
    np.testing.assert_allclose(layer_out(x, tau), ref, rtol=1e-9, atol=1e-11)
    for a, b in zip(_grads(layer_out, x, tau), _grads(kernel_out, x, tau), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)


def test_selective_every_random_draw_equals_its_implied_attention(x64):
    T, D = 17, 2
    x = jax.random.normal(jax.random.key(11), (T, D))
    layer = StochasticDecaySelective(channels=D, state_size=3, noise_scale=0.5)
    draw, run, params_of = tracer(layer), replayer(layer), replayer(layer.sample_params)
    for i in range(3):
        vals = draw(jax.random.PRNGKey(i), x)
        y, p = run(vals, x), params_of(vals, x)
        M = implied_attention("selective", SelectiveParams(p.dt, p.A, p.B, p.C), x)
        np.testing.assert_allclose(y, jnp.einsum("dts,sd->td", M, x) + p.D * x, rtol=1e-8,
                                   atol=1e-10)  # fmt: skip


def test_s4d_and_selective_sites_under_scope():
    x = jnp.ones((2, 9, 3))
    s4, _ = site_shapes(StochasticDecayS4D(channels=3, state_size=5), x, prefix="s4d")
    assert {k: v[1] for k, v in s4.items()} == {
        "s4d/half_life": (3,), "s4d/C_real": (3, 5), "s4d/C_imag": (3, 5), "s4d/D": (3,),
        "s4d/step_noise": (2, 9, 3),
    }  # fmt: skip
    sel, _ = site_shapes(StochasticDecaySelective(channels=3, state_size=2), x, prefix="sel")
    assert {k: v[1] for k, v in sel.items()} == {
        "sel/half_life": (3,), "sel/context_weight": (3, 3), "sel/step_noise": (2, 9, 3),
        "sel/B_weight": (3, 2), "sel/C_weight": (3, 2), "sel/D": (3,),
    }  # fmt: skip
    fixed, _ = site_shapes(StochasticDecayS4D(channels=3, noise="none"), x)
    assert "layer/step_noise" not in fixed
    with pytest.raises(ValueError, match="channel"):
        seed(StochasticDecayS4D(channels=3), 0)(jnp.ones((9, 4)))
    with pytest.raises(ValueError, match="noise_scale"):
        StochasticDecaySelective(channels=2, noise_scale=-1.0)
    with pytest.raises(ValueError, match="init"):
        StochasticDecayS4D(channels=2, init="legs")
