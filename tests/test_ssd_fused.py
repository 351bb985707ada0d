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
from bayes_ssm.kernels.ssd_dispatch import use_fused
from bayes_ssm.kernels.ssd_fused import chunked_form_fused, fused_shape_supported


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
    # T = 72 with chunk 32: three chunks, the last ragged; BM = 32 rows per block in inner
    # steps of BK = 16 columns; four heads per group. The group's shared C Bᵀ and the
    # state-passing kernel (the flag test below: C Bᵀ per head, chunk states + XLA carry).
    x, log_a, B, C, h0, _ = _inputs(0, 1, 72, 1, 4, 16, 16)
    hi = jax.lax.Precision.HIGHEST
    fused = lambda *a: chunked_form_fused(  # noqa: E731
        *a, 32, tile=(32, 4, 2, 1, 16), passing=True, interpret=True
    )
    slow = lambda *a: chunked_form(*a, 32, "sequential", hi)  # noqa: E731
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


def _ssd_grads(fn, w):
    loss = lambda *a: jnp.sum((w * fn(*a)).astype(jnp.float32))  # noqa: E731
    return jax.jit(jax.grad(loss, argnums=range(5)))


def _ssd_inputs(seed, b, T, h, p, n, dtype):
    k = jax.random.split(jax.random.key(seed), 6)
    x = jax.random.normal(k[0], (b, T, h, p)).astype(dtype)
    dt = jax.random.uniform(k[1], (b, T, h), minval=0.05, maxval=0.5)  # float32 beside bf16 x
    A = -jnp.exp(jax.random.normal(k[2], (h,)))
    B, C = (jax.random.normal(kk, (b, T, 1, n)).astype(dtype) for kk in k[3:5])
    w = jax.random.normal(k[5], x.shape).astype(dtype)
    return x, dt, A, B, C, w


@pytest.mark.parametrize("passing", [pytest.param(False, marks=pytest.mark.slow), True])
def test_steps_scaled_inside_the_kernels_equal_the_scaled_copy(passing):
    # ssd() hands Δ to the kernels (x̄ = Δ x formed inside); the XLA form takes the scaled copy.
    # Values and the gradients w.r.t. x, dt, A, B, C (dt through the kernels' twins).
    x, dt, A, B, C, w = _ssd_inputs(5, 1, 40, 2, 16, 16, jnp.float32)
    import bayes_ssm.kernels.ssd_fused as ssd_fused

    old = ssd_fused.USE_STATE_PASSING
    ssd_fused.USE_STATE_PASSING = passing
    try:
        fused = lambda *a: ssd(*a, chunk_size=16, fused=True)  # noqa: E731
        xla = lambda *a: ssd(*a, chunk_size=16, fused=False, precision="highest")  # noqa: E731
        np.testing.assert_allclose(
            np.asarray(jax.jit(fused)(x, dt, A, B, C)), np.asarray(xla(x, dt, A, B, C)),
            rtol=1e-4, atol=1e-4,
        )  # fmt: skip
        for got, want in zip(
            _ssd_grads(fused, w)(x, dt, A, B, C), _ssd_grads(xla, w)(x, dt, A, B, C), strict=True
        ):
            scale = float(jnp.max(jnp.abs(want)))
            np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5 * scale)
    finally:
        ssd_fused.USE_STATE_PASSING = old


def test_bfloat16_inputs_with_float32_steps_stay_bfloat16():
    # Δ in float32 beside bfloat16 x, B, C (Mamba-2's habit) no longer lifts the layer to float32.
    x, dt, A, B, C, _ = _ssd_inputs(6, 1, 32, 2, 16, 16, jnp.bfloat16)
    y = ssd(x, dt, A, B, C, chunk_size=16)
    assert y.dtype == jnp.bfloat16
    wide = ssd(*(z.astype(jnp.float32) for z in (x, dt, A, B, C)), chunk_size=16)
    np.testing.assert_allclose(
        np.asarray(y, np.float32), np.asarray(wide), atol=3e-2 * float(jnp.max(jnp.abs(wide)))
    )


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize(
    "tile",
    [(64, 4, 2, 0), (32, 4, 2, 0), (64, 4, 2, 1, 32), (128, 4, 3, 1, 32), (128, 4, 4, 0, 32)],
)
def test_gpu_ssd_with_steps_inside_the_kernels(dtype, tile):
    # b2 T1000 h8 p64 n128 (ragged at chunk 256): ssd(fused=True), Δ applied in the kernels,
    # the three step-2+3 forms, against the XLA form; values and gradients.
    import bayes_ssm.kernels.ssd_fused as ssd_fused

    x, dt, A, B, C, w = _ssd_inputs(7, 2, 1000, 8, 64, 128, dtype)
    xla = lambda *a: ssd(*a, chunk_size=256, fused=False)  # noqa: E731
    tol = 3e-2 if dtype == jnp.bfloat16 else 5e-3
    want, wants = jax.jit(xla)(x, dt, A, B, C), _ssd_grads(xla, w)(x, dt, A, B, C)
    old = ssd_fused.DEFAULT_SSD_TILE, ssd_fused.USE_STATE_PASSING
    try:
        for passing in (False, True, "carry"):
            ssd_fused.DEFAULT_SSD_TILE, ssd_fused.USE_STATE_PASSING = tile, passing
            fused = lambda *a: ssd(*a, chunk_size=256, fused=True)  # noqa: E731
            got = jax.jit(fused)(x, dt, A, B, C)
            assert got.dtype == dtype
            a, b = np.asarray(got, np.float32), np.asarray(want, np.float32)
            np.testing.assert_allclose(a, b, atol=tol * np.max(np.abs(b)))
            for g, v in zip(_ssd_grads(fused, w)(x, dt, A, B, C), wants, strict=True):
                g, v = np.asarray(g, np.float32), np.asarray(v, np.float32)
                np.testing.assert_allclose(g, v, atol=tol * np.max(np.abs(v)))
    finally:
        ssd_fused.DEFAULT_SSD_TILE, ssd_fused.USE_STATE_PASSING = old


def test_measured_tiles_are_accepted_and_the_module_overrides_win(monkeypatch):
    import bayes_ssm.kernels.ssd_fused as ssd_fused

    x = jnp.zeros((1, 256, 4, 64))
    for (dtype, size), (tile, _) in ssd_fused._FUSED_CONFIG.items():
        n = 64 if size == "small" else 128
        cfg = ssd_fused._cfg(x, jnp.zeros((1, 256, 1, n), dtype), 256, tile, False)
        assert cfg.rows % cfg.kblock == 0 and cfg.shared_cb == bool(tile[3])
    assert ssd_fused.fused_config(jnp.float16, 64)[0] == ssd_fused.FALLBACK_SSD_TILE  # no row
    assert ssd_fused.fused_config(jnp.bfloat16, 128)[1] == "carry"  # the form is kept
    monkeypatch.setattr(ssd_fused, "DEFAULT_SSD_TILE", (32, 4, 2))
    monkeypatch.setattr(ssd_fused, "USE_STATE_PASSING", True)
    assert ssd_fused.fused_config(jnp.bfloat16, 128) == ((32, 4, 2), True)
    with pytest.raises(ValueError, match="inner block"):
        ssd_fused._cfg(x, jnp.zeros((1, 256, 1, 64)), 64, (64, 4, 2, 0, 48), False)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_the_run_time_check_passes_for_each_large_row_in_the_interpreter(dtype):
    # fused="auto"'s check compiles the row's own tile and step-2+3 form (bfloat16: 128-row
    # tiles with the carry kernel at chunk 256) and must pass where the kernels are right.
    from bayes_ssm.kernels.ssd_dispatch import check_problem

    got, want = check_problem(dtype, "large", interpret=True)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=2e-2)
    assert float(jnp.max(jnp.abs(want))) == 1.0
