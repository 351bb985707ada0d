"""The fused selective-scan kernel against its slow twin, and ``auto``'s choice and fallback.

On a CPU the kernel runs in Pallas' interpreter at small sizes (ragged chunks and channel
blocks, an initial state, the final state), values and gradients compared with the NumPy loop
twin and with the sequential JAX path. The GPU tests compile the Triton kernel.
"""

from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayes_ssm.kernels import (
    fast_path,
    linear_recurrence,
    selective,
    selective_fused,
    tile_scan,
)
from bayes_ssm.kernels.recurrence import choose_method
from bayes_ssm.kernels.reference import linear_recurrence_ref, selective_scan_ref
from bayes_ssm.kernels.selective import init_selective_A, selective_scan
from bayes_ssm.kernels.selective_fused import selective_scan_fused


def _inputs(seed, b, T, d, n):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(b, T, d)).astype(np.float32)
    dt = rng.uniform(0.05, 0.5, (b, T, d)).astype(np.float32)
    A = -rng.uniform(0.5, 2.0, (d, n)).astype(np.float32)
    B, C = (rng.normal(size=(b, T, n)).astype(np.float32) for _ in range(2))
    h0 = rng.normal(size=(b, d, n)).astype(np.float32)
    return x, dt, A, B, C, h0


def _loss(fn, seed, shape_y, shape_h):
    rng = np.random.default_rng(seed)
    wy = rng.normal(size=shape_y).astype(np.float32)
    wh = rng.normal(size=shape_h).astype(np.float32)

    def loss(x, dt, A, B, C, h0):
        y, h = fn(x, dt, A, B, C, h0)
        return jnp.sum(wy * y) + jnp.sum(wh * h)

    return jax.grad(loss, argnums=range(6))


def test_values_and_gradients_match_twins_in_interpreter():
    # 11 steps in chunks of 4 (a ragged last chunk), 6 channels in blocks of 4 (a ragged block);
    # the backward kernel in blocks of 2 (its own tile: other partial sums of dB, dC).
    x, dt, A, B, C, h0 = _inputs(0, 2, 11, 6, 4)
    fused = lambda *a: selective_scan_fused(  # noqa: E731
        *a, tile=(4, 4, 1), backward_tile=(2, 1), interpret=True
    )

    def sequential(x, dt, A, B, C, h0):
        return selective_scan(
            x, dt, A, B, C, h0=h0, method="sequential", return_final_state=True
        )  # fmt: skip

    y, _ = jax.jit(fused)(x, dt, A, B, C, jnp.zeros_like(h0))
    np.testing.assert_allclose(np.asarray(y), selective_scan_ref(x, dt, A, B, C), atol=2e-5)
    got = jax.jit(_loss(fused, 1, x.shape, h0.shape))(x, dt, A, B, C, h0)
    want = jax.jit(_loss(sequential, 1, x.shape, h0.shape))(x, dt, A, B, C, h0)
    for name, g, w in zip(("x", "dt", "A", "B", "C", "h0"), got, want, strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-4, atol=1e-4, err_msg=name)


def _values_and_grads(fn, args, seed):
    """``fn(*args)`` and its pullback of fixed random weights, in one compile."""
    rng = np.random.default_rng(seed)
    x, h0 = args[0], args[-1]
    weights = tuple(jnp.asarray(rng.normal(size=v.shape), jnp.float32) for v in (x, h0))

    def run(*args):
        out, pullback = jax.vjp(fn, *args)
        return out, pullback(weights)

    return jax.jit(run)(*args)


def _sequential(x, dt, A, B, C, h0):
    return selective_scan(x, dt, A, B, C, h0=h0, method="sequential", return_final_state=True)


@pytest.mark.parametrize(
    ("kernels", "steps", "tile", "backward_tile"),
    [
        # The 2-D "by_state" forward and backward: 37 steps in chunks of 32 (a ragged last
        # chunk; the forward saves the states of 16-step sub-chunks for the backward).
        (("by_state", "by_state"), 37, (32, 4, 1), (4, 1)),
        # The (L, BD, n) kernels with a masked channel in the only block: the masked entries
        # of state stores must not undo channel 0's (the interpreter's read-modify-write).
        (("tile3d", "tile3d"), 9, (4, 4, 1), (4, 1)),
    ],
)
def test_kernels_with_a_masked_channel_match_twins_in_interpreter(
    kernels, steps, tile, backward_tile
):
    # 3 channels in a block of 4: a masked channel in the only block.
    args = _inputs(4, 1, steps, 3, 2)
    fused = lambda *a: selective_scan_fused(  # noqa: E731
        *a, tile=tile, backward_tile=backward_tile, forward_kernel=kernels[0],
        backward_kernel=kernels[1], interpret=True,
    )  # fmt: skip
    (y, hT), got = _values_and_grads(fused, args, 5)
    (y_want, hT_want), want = _values_and_grads(_sequential, args, 5)
    np.testing.assert_allclose(np.asarray(y), np.asarray(y_want), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(hT), np.asarray(hT_want), rtol=1e-5, atol=1e-5)
    for name, g, w in zip(("x", "dt", "A", "B", "C", "h0"), got, want, strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-4, atol=1e-4, err_msg=name)


def test_auto_keeps_the_sequential_forms_on_the_cpu():
    assert jax.default_backend() == "cpu"
    assert choose_method(2**20, dtype=np.float32) == "sequential"
    assert not selective._use_fused("auto", jnp.float32, False, None)


def test_fallback_when_the_triton_hook_is_missing(monkeypatch):
    # A JAX without the private lowering hook: auto must choose the associative scan on a GPU,
    # warn once, and give the same numbers as the twin.
    monkeypatch.setattr(tile_scan, "_TRITON_SCAN", False)
    assert choose_method(2**15, backend="gpu", dtype=np.float32) == "associative"
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert not selective._use_fused("auto", jnp.float32, False, None)
    rng = np.random.default_rng(3)
    a = rng.uniform(0.5, 1.0, (100, 3)).astype(np.float32)
    b = rng.normal(size=a.shape).astype(np.float32)
    h = linear_recurrence(a, b, method="auto")
    np.testing.assert_allclose(np.asarray(h), linear_recurrence_ref(a, b), rtol=1e-4, atol=1e-4)


def test_fallback_when_the_kernel_fails_to_build(monkeypatch):
    # The hook exists but compiling (or running) the kernel fails: one warning, then auto
    # uses the associative scan; the verdict is cached (no second warning).
    fast_path.reset_fast_path_checks()
    monkeypatch.setattr(tile_scan, "_TRITON_SCAN", True)

    def broken(*args, **kwargs):
        raise RuntimeError("Triton lowering removed")

    monkeypatch.setattr("bayes_ssm.kernels.recurrence_pallas.linear_recurrence_pallas", broken)
    with pytest.warns(RuntimeWarning, match="falls back to lax.associative_scan"):
        assert choose_method(2**15, backend="gpu", dtype=np.float32) == "associative"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert choose_method(2**15, backend="gpu", dtype=np.float32) == "associative"
    fast_path.reset_fast_path_checks()


def test_fallback_when_the_kernel_gives_wrong_numbers(monkeypatch):
    fast_path.reset_fast_path_checks()
    monkeypatch.setattr(tile_scan, "_TRITON_SCAN", True)
    monkeypatch.setattr(
        "bayes_ssm.kernels.recurrence_pallas.linear_recurrence_pallas", lambda a, b: b
    )
    with pytest.warns(RuntimeWarning, match="differs"):
        assert choose_method(2**15, backend="gpu", dtype=np.float32) == "associative"
    fast_path.reset_fast_path_checks()


# ---------------------------------------------------------------------------------------------
# GPU: the compiled Triton kernel.
# ---------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize(
    "kernels", [(None, None), ("by_state", "tile3d"), ("by_state", "by_state")]
)
def test_gpu_fused_values_and_gradients_match_associative(kernels):
    # 3000 steps (ragged chunks), 300 channels (a ragged block), state 16; the default kernels
    # and the by_state forward with either backward.
    x, dt, A, B, C, h0 = (jnp.asarray(v) for v in _inputs(4, 2, 3000, 300, 16))
    A = init_selective_A(300, 16)
    selective_scan_fused = functools.partial(
        selective_fused.selective_scan_fused, forward_kernel=kernels[0], backward_kernel=kernels[1]
    )

    def associative(x, dt, A, B, C, h0):
        return selective_scan(
            x, dt, A, B, C, h0=h0, method="associative", return_final_state=True
        )  # fmt: skip

    fused = jax.jit(selective_scan_fused)
    for _ in range(2):
        y, h = fused(x, dt, A, B, C, h0)
        y_ref, h_ref = associative(x, dt, A, B, C, h0)
        np.testing.assert_allclose(np.asarray(y), np.asarray(y_ref), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(np.asarray(h), np.asarray(h_ref), rtol=1e-4, atol=1e-4)
    got = jax.jit(_loss(selective_scan_fused, 5, x.shape, h0.shape))(x, dt, A, B, C, h0)
    want = jax.jit(_loss(associative, 5, x.shape, h0.shape))(x, dt, A, B, C, h0)
    for name, g, w in zip(("x", "dt", "A", "B", "C", "h0"), got, want, strict=True):
        scale = float(jnp.max(jnp.abs(w)))
        np.testing.assert_allclose(
            np.asarray(g), np.asarray(w), rtol=1e-3, atol=1e-4 * scale, err_msg=name
        )


@pytest.mark.gpu
def test_gpu_auto_runs_the_fused_kernel_and_agrees():
    fast_path.reset_fast_path_checks()
    assert selective._use_fused("auto", jnp.float32, False, None)
    x, dt, A, B, C, _ = (jnp.asarray(v) for v in _inputs(6, 1, 2048, 64, 16))
    y = selective_scan(x, dt, A, B, C, method="auto")
    y_ref = selective_scan(x, dt, A, B, C, method="associative")
    np.testing.assert_allclose(np.asarray(y), np.asarray(y_ref), rtol=1e-4, atol=1e-4)


@pytest.mark.gpu
def test_gpu_fallback_gives_equal_results(monkeypatch):
    # On the GPU, with the hook "removed": auto takes the associative path, same numbers.
    x, dt, A, B, C, _ = (jnp.asarray(v) for v in _inputs(7, 1, 2048, 64, 16))
    y_fast = selective_scan(x, dt, A, B, C, method="auto")
    monkeypatch.setattr(tile_scan, "_TRITON_SCAN", False)
    assert choose_method(2**15, dtype=np.float32) == "associative"
    assert not selective._use_fused("auto", jnp.float32, False, None)
    y_slow = selective_scan(x, dt, A, B, C, method="auto")
    np.testing.assert_allclose(np.asarray(y_fast), np.asarray(y_slow), rtol=1e-4, atol=1e-4)


def test_fast_path_check_runs_eagerly_under_jit():
    # choose_method can be called while a caller is traced; the check must still run eagerly.
    fast_path.reset_fast_path_checks()
    seen = []

    def check():
        value = jnp.arange(3.0) * 2
        seen.append(isinstance(value, jax.core.Tracer))
        return value, np.arange(3.0) * 2

    @jax.jit
    def traced(x):
        assert fast_path.fast_path_works("eager-check", check)
        return x + 1

    assert float(traced(1.0)) == 2.0 and seen == [False]
    fast_path.reset_fast_path_checks()


def test_fused_rejects_what_it_cannot_do():
    x, dt, A, B, C, _ = _inputs(8, 1, 8, 4, 4)
    with pytest.raises(ValueError, match="causal only"):
        selective_scan(x, dt, A, B, C, method="fused", bidirectional=True)
    with pytest.raises(ValueError, match="power-of-two state size"):
        selective_scan_fused(x, dt, A[:, :3], B[..., :3], C[..., :3], interpret=True)
    with pytest.raises(ValueError, match="power of two"):
        selective_scan_fused(x, dt, A, B, C, tile=(6, 4, 1), interpret=True)
