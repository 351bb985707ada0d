"""The fused SSD kernels against their slow twins, and when ``fused="auto"`` runs them.

On a CPU the kernels run in Pallas' interpreter at small sizes (a ragged last chunk, two heads
per group, an initial state, the final state); values and gradients are compared with the XLA
chunked form (``ssd_algorithms.chunked_form``) and with the quadratic form. The GPU tests
compile the Triton kernels at a realistic size.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayes_ssm.kernels.ssd import ssd
from bayes_ssm.kernels.ssd_algorithms import chunked_form, quadratic_form
from bayes_ssm.kernels.ssd_fused import (
    chunked_form_fused,
    fused_shape_supported,
    use_fused,
)


def _inputs(seed, b, T, g, r, p, n, dtype=jnp.float32):
    k = jax.random.split(jax.random.key(seed), 6)
    x = jax.random.normal(k[0], (b, T, g, r, p)).astype(dtype)
    log_a = -jax.random.uniform(k[1], (b, T, g, r), maxval=0.4)
    B, C = (jax.random.normal(kk, (b, T, g, n)).astype(dtype) for kk in k[2:4])
    h0 = jax.random.normal(k[4], (b, g, r, p, n)).astype(dtype)
    w = jax.random.normal(k[5], (b, T, g, r, p))
    return x, log_a, B, C, h0, w


def _loss(form, w, wh):
    def loss(x, log_a, B, C, h0):
        y, final = form(x, log_a, B, C, h0)
        return jnp.sum(w * y) + jnp.sum(wh * final)

    return jax.grad(loss, argnums=range(5))


def test_values_equal_the_xla_chunked_and_quadratic_forms():
    # T = 40 with chunk 16: three chunks, the last ragged; BM = 16 rows per block; four heads
    # per group. The opt-in variants: the group's shared C Bᵀ and the state-passing kernel
    # (the flag test below runs the default: C Bᵀ per head, chunk states + XLA carry).
    x, log_a, B, C, h0, _ = _inputs(0, 1, 40, 1, 4, 16, 16)
    hi = jax.lax.Precision.HIGHEST
    fused = lambda *a: chunked_form_fused(  # noqa: E731
        *a, 16, tile=(16, 4, 2, 1), passing=True, interpret=True
    )
    slow = lambda *a: chunked_form(*a, 16, "sequential", hi)  # noqa: E731
    got = jax.jit(fused)(x, log_a, B, C, h0)
    for a, want in zip(got, slow(x, log_a, B, C, h0), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(want), rtol=1e-4, atol=1e-4)
    quad = quadratic_form(x, log_a, B, C, h0, hi)[0]
    np.testing.assert_allclose(np.asarray(got[0]), np.asarray(quad), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_gradients_equal_the_xla_chunked_form():
    x, log_a, B, C, h0, w = _inputs(0, 1, 40, 1, 2, 16, 16)
    wh = jax.random.normal(jax.random.key(9), h0.shape)
    hi = jax.lax.Precision.HIGHEST
    fused = lambda *a: chunked_form_fused(*a, 16, "sequential", interpret=True)  # noqa: E731
    slow = lambda *a: chunked_form(*a, 16, "sequential", hi)  # noqa: E731
    grads = jax.jit(_loss(fused, w, wh))(x, log_a, B, C, h0)
    wants = jax.jit(_loss(slow, w, wh))(x, log_a, B, C, h0)
    for got, want in zip(grads, wants, strict=True):
        scale = float(jnp.max(jnp.abs(want)))
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5 * scale)


def test_ssd_fused_flag_and_the_cpu_default():
    k = jax.random.split(jax.random.key(2), 4)
    x = jax.random.normal(k[0], (1, 24, 2, 16))
    dt = jax.random.uniform(k[1], (1, 24, 2), minval=0.05, maxval=0.5)
    B, C = (jax.random.normal(kk, (1, 24, 1, 16)) for kk in k[2:])
    A = -jnp.ones(2)
    y_fused = jax.jit(lambda *a: ssd(*a, chunk_size=16, fused=True))(x, dt, A, B, C)
    y_xla = ssd(x, dt, A, B, C, chunk_size=16, fused=False)
    np.testing.assert_allclose(np.asarray(y_fused), np.asarray(y_xla), rtol=1e-4, atol=1e-4)
    # On a CPU, "auto" is the XLA form bit for bit (the CPU path is unchanged).
    auto = ssd(x, dt, A, B, C, chunk_size=16)
    np.testing.assert_array_equal(np.asarray(auto), np.asarray(y_xla))
    assert not use_fused("auto", jnp.float32, 64, 64, 64)  # CPU
    with pytest.raises(ValueError, match="powers"):
        ssd(x[..., :12], dt, A, B, C, chunk_size=16, fused=True)  # p = 12
    with pytest.raises(ValueError, match="fused must be"):
        ssd(x, dt, A, B, C, fused="yes")


def test_supported_shapes():
    assert fused_shape_supported(256, 64, 128)
    assert not fused_shape_supported(8, 64, 64)  # chunk below the 16-row tile
    assert not fused_shape_supported(64, 48, 64)
    assert not fused_shape_supported(64, 64, 256)


@pytest.mark.gpu
@pytest.mark.parametrize(
    ("dtype", "shared_cb", "passing"),
    [(jnp.float32, 0, False), (jnp.bfloat16, 0, False), (jnp.float32, 1, True)],
)
def test_gpu_fused_kernels_equal_the_xla_form(dtype, shared_cb, passing):
    # b2 T300 (ragged at chunk 128) h4 in 2 groups, p 64, n 64: values and gradients.
    x, log_a, B, C, h0, w = _inputs(3, 2, 300, 2, 2, 64, 64, dtype)
    wh = jax.random.normal(jax.random.key(4), h0.shape)
    tile = (64, 4, 2, shared_cb)
    fused = lambda *a: chunked_form_fused(*a, 128, tile=tile, passing=passing)  # noqa: E731
    slow = lambda *a: chunked_form(*a, 128, "auto", None)  # noqa: E731
    tol = 2e-2 if dtype == jnp.bfloat16 else 5e-3
    got, want = jax.jit(fused)(x, log_a, B, C, h0), jax.jit(slow)(x, log_a, B, C, h0)
    for a, b in zip(got, want, strict=True):
        a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
        np.testing.assert_allclose(a, b, atol=tol * np.max(np.abs(b)))
    grads = jax.jit(_loss(fused, w, wh))(x, log_a, B, C, h0)
    wants = jax.jit(_loss(slow, w, wh))(x, log_a, B, C, h0)
    for a, b in zip(grads, wants, strict=True):
        a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
        np.testing.assert_allclose(a, b, atol=tol * np.max(np.abs(b)))
