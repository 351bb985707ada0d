"""The Pallas recurrence kernel against its slow twin and the pure-JAX methods.

On a CPU the kernel runs in Pallas' interpreter (``interpret=True``) at small sizes, which
checks the tiling, masking, look-back bookkeeping and gradient algebra. The GPU tests (run via
the device tool) compile the real Triton kernel and compare it with ``associative`` at sizes
where many programs run at once, which is where a race in the look-back would show.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayes_ssm.kernels import linear_recurrence
from bayes_ssm.kernels import recurrence_pallas as rp
from bayes_ssm.kernels.recurrence_pallas import linear_recurrence_pallas
from bayes_ssm.kernels.reference import linear_recurrence_ref

METHODS = ("lookback", "three_pass")


def _inputs(seed, steps, channels, dtype=np.float32):
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.5, 1.0, (steps, channels)).astype(dtype)
    a[rng.random((steps, channels)) < 0.1] *= -1  # some negative decays
    b = rng.normal(size=(steps, channels)).astype(dtype)
    h0 = rng.normal(size=channels).astype(dtype)
    return a, b, h0


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("reverse", [False, True])
def test_values_match_reference(method, reverse):
    # 37 steps in chunks of 8 (a ragged last chunk), 11 channels in blocks of 4 (a ragged
    # last block): several chunks per channel block, so the look-back walks.
    a, b, h0 = _inputs(0, 37, 11)
    h = linear_recurrence_pallas(
        a, b, h0, reverse=reverse, chunk_size=8, block_channels=4, method=method, interpret=True
    )
    ref = linear_recurrence_ref(a, b, h0, reverse=reverse)
    np.testing.assert_allclose(np.asarray(h), ref, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("steps", [1, 16])
def test_short_and_exact_lengths_without_h0(steps):
    a, b, _ = _inputs(1, steps, 3)
    h = linear_recurrence_pallas(a, b, chunk_size=8, block_channels=4, interpret=True)
    np.testing.assert_allclose(np.asarray(h), linear_recurrence_ref(a, b), rtol=2e-5, atol=2e-5)


def test_nan_stays_in_its_channel_and_the_kernel_finishes():
    # A NaN state is published across chunks; it must not be mistaken for "not published yet".
    a, b, h0 = _inputs(2, 40, 4)
    b[5, 1] = np.nan
    h = np.asarray(
        linear_recurrence_pallas(a, b, h0, chunk_size=8, block_channels=2, interpret=True)
    )
    ref = linear_recurrence_ref(a, b, h0)
    assert np.isnan(h[5:, 1]).all() and np.isfinite(np.delete(h, 1, axis=1)).all()
    np.testing.assert_allclose(h, ref, rtol=2e-5, atol=2e-5)


def test_float64(x64):
    a, b, h0 = _inputs(3, 29, 5, np.float64)
    h = linear_recurrence_pallas(a, b, h0, chunk_size=8, block_channels=4, interpret=True)
    assert h.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(h), linear_recurrence_ref(a, b, h0), rtol=1e-12)


@pytest.mark.parametrize(
    ("method", "reverse"), [("lookback", False), ("lookback", True), ("three_pass", False)]
)
def test_gradients_match_sequential(method, reverse):
    a, b, h0 = (jnp.asarray(x) for x in _inputs(4, 21, 5))
    weights = jnp.asarray(np.random.default_rng(5).normal(size=a.shape), jnp.float32)

    def loss(fn):
        return lambda a, b, h0: jnp.sum(weights * fn(a, b, h0))

    pallas = loss(
        lambda a, b, h0: linear_recurrence_pallas(
            a, b, h0, reverse=reverse, chunk_size=8, block_channels=4, method=method, interpret=True
        )
    )
    seq = loss(lambda a, b, h0: linear_recurrence(a, b, h0, reverse=reverse, method="sequential"))
    got = jax.grad(pallas, argnums=(0, 1, 2))(a, b, h0)
    want = jax.grad(seq, argnums=(0, 1, 2))(a, b, h0)
    for name, g, w in zip(("a", "b", "h0"), got, want, strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-4, atol=1e-4, err_msg=name)


def _bf16_inputs(seed, steps, channels):
    """bfloat16 inputs, and the same values in float64 for the reference."""
    a, b, h0 = _inputs(seed, steps, channels)
    a16, b16 = jnp.asarray(a, jnp.bfloat16), jnp.asarray(b, jnp.bfloat16)
    return a16, b16, h0, np.asarray(a16, np.float64), np.asarray(b16, np.float64)


def test_bfloat16_storage_is_scanned_in_float32_values_and_gradients():
    # bfloat16 in and out, float32 inside: the only error in h is its final rounding to
    # bfloat16 (relative 2**-8), not one rounding per step as a bfloat16 scan would make.
    # (One test for values and gradients: the interpreter's compile dominates its time.)
    a16, b16, h0, a64, b64 = _bf16_inputs(14, 13, 3)
    weights = jnp.asarray(np.random.default_rng(16).normal(size=a16.shape), jnp.float32)

    def run(fn, a, b):
        h, vjp = jax.vjp(lambda a, b, h0: fn(a, b, h0), a, b, jnp.asarray(h0))
        return h, vjp(weights.astype(h.dtype))

    h, got = run(
        lambda a, b, h0: linear_recurrence_pallas(
            a, b, h0, chunk_size=4, block_channels=2, interpret=True
        ),
        a16,
        b16,
    )
    ref, want = run(
        lambda a, b, h0: linear_recurrence(a, b, h0, method="sequential"),
        jnp.asarray(a64, jnp.float32),
        jnp.asarray(b64, jnp.float32),
    )
    assert h.dtype == got[0].dtype == got[1].dtype == jnp.bfloat16
    assert got[2].dtype == jnp.float32
    ref = np.asarray(ref, np.float64)
    err = np.abs(np.asarray(h, np.float64) - ref)
    assert np.all(err <= 2.0**-8 * np.abs(ref) + 1e-6), err.max()
    bf16_scan = linear_recurrence(a16, b16, jnp.asarray(h0, jnp.bfloat16), method="sequential")
    assert err.max() < np.abs(np.asarray(bf16_scan, np.float64) - ref).max()
    for name, g, w in zip(("a", "b", "h0"), got, want, strict=True):
        w = np.asarray(w)
        np.testing.assert_allclose(
            np.asarray(g, np.float32), w, rtol=1e-2, atol=1e-2 * np.abs(w).max(), err_msg=name
        )


def test_pallas_supported_rule():
    assert rp.pallas_supported(np.float32, "gpu") and rp.pallas_supported(np.float64, "gpu")
    assert rp.pallas_supported(jnp.bfloat16, "gpu")
    assert not rp.pallas_supported(np.complex64, "gpu")
    assert not rp.pallas_supported(np.float32, "cpu")


def test_vmap_gives_each_series_its_own_exchange():
    # vmap adds a grid axis and batches the ticket counter and exchange arrays with the data.
    a, b, h0 = _inputs(12, 3 * 23, 5)
    a, b, h0 = a.reshape(3, 23, 5), b.reshape(3, 23, 5), np.resize(h0, (3, 5))
    fn = jax.vmap(
        lambda a, b, h0: linear_recurrence_pallas(
            a, b, h0, chunk_size=8, block_channels=4, interpret=True
        )
    )
    want = np.stack([linear_recurrence_ref(a[i], b[i], h0[i]) for i in range(3)])
    np.testing.assert_allclose(np.asarray(fn(a, b, h0)), want, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"a": np.ones((4, 2)), "b": np.ones((4, 3))}, "one shape"),
        ({"a": np.ones(4), "b": np.ones(4)}, "time, channel"),
        ({"a": np.ones((0, 2)), "b": np.ones((0, 2))}, "non-empty"),
        (
            {"a": np.ones((4, 2), np.int32), "b": np.ones((4, 2), np.int32)},
            r"float32 and float64 \(and",
        ),
        ({"a": np.ones((4, 2), np.complex64), "b": np.ones((4, 2))}, "float32 and float64"),
        ({"a": np.ones((4, 2)), "b": np.ones((4, 2)), "h0": np.ones(3)}, "h0"),
        ({"a": np.ones((4, 2)), "b": np.ones((4, 2)), "chunk_size": 6}, "chunk_size"),
        ({"a": np.ones((4, 2)), "b": np.ones((4, 2)), "method": "fast"}, "method"),
        ({"a": np.ones((4, 64)), "b": np.ones((4, 64)), "num_warps": 3}, "num_warps"),
    ],
)
def test_bad_input_raises_value_error(kwargs, match):
    kwargs = dict(kwargs)
    a, b = kwargs.pop("a"), kwargs.pop("b")
    with pytest.raises(ValueError, match=match):
        linear_recurrence_pallas(a, b, interpret=True, **kwargs)


# ---------------------------------------------------------------------------------------------
# GPU: the compiled Triton kernel.
# ---------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("reverse", [False, True])
def test_gpu_values_match_associative(method, reverse):
    # 2**16 + 3 steps and 300 channels: ragged in both, ~5,000 programs in flight.
    a, b, h0 = (jnp.asarray(x) for x in _inputs(6, 2**16 + 3, 300))
    want = linear_recurrence(a, b, h0, reverse=reverse, method="associative")
    fn = jax.jit(
        lambda a, b, h0: linear_recurrence_pallas(a, b, h0, reverse=reverse, method=method)
    )
    for _ in range(3):  # a race would show as a result that changes between runs
        got = fn(a, b, h0)
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-4)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, jnp.bfloat16])
@pytest.mark.parametrize("tile", [(64, 128, 4), (32, 256, 8), (128, 64, 2)])
def test_gpu_several_warps_match_associative(tile, dtype):
    # Several warps per tile: the exchange rows go through the cross-warp agreement. 2**16 + 3
    # steps and 300 channels (ragged), three runs each (a race shows as a changing result).
    a, b, h0 = _inputs(16, 2**16 + 3, 300)
    a, b = jnp.asarray(a, dtype), jnp.asarray(b, dtype)
    # float32 scans of the same (rounded) values
    want = linear_recurrence(a.astype(np.float32), b.astype(np.float32), h0, method="associative")
    chunk, block, warps = tile
    fn = jax.jit(
        lambda a, b, h0: linear_recurrence_pallas(
            a, b, h0, chunk_size=chunk, block_channels=block, num_warps=warps
        )
    )
    tol = 2e-2 if dtype == jnp.bfloat16 else 1e-4
    for _ in range(3):
        got = np.asarray(fn(a, b, h0), np.float32)
        np.testing.assert_allclose(got, np.asarray(want), rtol=tol, atol=tol)


@pytest.mark.gpu
@pytest.mark.parametrize("channels", [1, 3, 16, 64, 256])
def test_gpu_channel_counts(channels):
    # Each channel count gives another channel block (1 .. 32) and so another register layout.
    a, b, h0 = (jnp.asarray(x) for x in _inputs(10, 20_011, channels))
    want = linear_recurrence(a, b, h0, method="associative")
    got = linear_recurrence_pallas(a, b, h0)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-4)


@pytest.mark.gpu
def test_gpu_vmap():
    a, b, h0 = (jnp.asarray(x) for x in _inputs(13, 4 * 3001, 40))
    a, b, h0 = a.reshape(4, 3001, 40), b.reshape(4, 3001, 40), jnp.resize(h0, (4, 40))
    got = jax.vmap(linear_recurrence_pallas)(a, b, h0)
    want = jax.vmap(lambda a, b, h0: linear_recurrence(a, b, h0, method="associative"))(a, b, h0)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-4)


@pytest.mark.gpu
def test_gpu_long_series_and_float64(x64):
    a, b, h0 = (jnp.asarray(x) for x in _inputs(7, 2**18 + 1, 64, np.float64))
    got = linear_recurrence_pallas(a, b, h0)
    want = linear_recurrence(a, b, h0, method="associative")
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-10, atol=1e-10)


@pytest.mark.gpu
@pytest.mark.parametrize("reverse", [False, True])
def test_gpu_gradients_match_associative(reverse):
    a, b, h0 = (jnp.asarray(x) for x in _inputs(8, 5000, 96))
    weights = jnp.asarray(np.random.default_rng(9).normal(size=a.shape), jnp.float32)

    def grads(method):
        def loss(a, b, h0):
            if method == "pallas":
                h = linear_recurrence_pallas(a, b, h0, reverse=reverse)
            else:
                h = linear_recurrence(a, b, h0, reverse=reverse, method="associative")
            return jnp.sum(weights * h)

        return jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(a, b, h0)

    for name, g, w in zip(("a", "b", "h0"), grads("pallas"), grads("associative"), strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-3, atol=1e-3, err_msg=name)


@pytest.mark.gpu
@pytest.mark.parametrize("method", METHODS)
def test_gpu_bfloat16_values_and_gradients(method):
    # bfloat16 storage, float32 scans: against the associative scan in float32 on the same
    # (rounded) values; h is off by at most its final bfloat16 rounding.
    a16, b16, h0, a64, b64 = _bf16_inputs(17, 2**16 + 3, 300)
    a32, b32 = jnp.asarray(a64, jnp.float32), jnp.asarray(b64, jnp.float32)
    weights = jnp.asarray(np.random.default_rng(18).normal(size=a16.shape), jnp.float32)

    def run(fn, a, b):
        loss = lambda a, b: jnp.sum(weights * fn(a, b).astype(jnp.float32))  # noqa: E731
        return jax.jit(fn)(a, b), jax.jit(jax.grad(loss, argnums=(0, 1)))(a, b)

    h, (ga, gb) = run(lambda a, b: linear_recurrence_pallas(a, b, h0, method=method), a16, b16)
    ref, (ra, rb) = run(lambda a, b: linear_recurrence(a, b, h0, method="associative"), a32, b32)
    assert h.dtype == ga.dtype == jnp.bfloat16
    err = np.abs(np.asarray(h, np.float32) - np.asarray(ref))
    assert np.all(err <= 2.0**-8 * np.abs(np.asarray(ref)) + 1e-3), err.max()
    for name, g, w in (("a", ga, ra), ("b", gb, rb)):
        w = np.asarray(w)
        np.testing.assert_allclose(
            np.asarray(g, np.float32), w, rtol=1e-2, atol=1e-2 * np.abs(w).max(), err_msg=name
        )


@pytest.mark.parametrize(
    ("reverse", "publish_every", "warps"), [(False, 3, 1), (True, 5, 1), (False, 4, 2)]
)
def test_lookback_folds_aggregates(reverse, publish_every, warps):
    # In the interpreter every predecessor has finished, so the walk would always stop at the
    # nearest one. Publishing only every n-th inclusive state forces it to fold aggregates
    # (the path taken on a GPU while predecessors still run). With 2 warps the exchange rows
    # go through the cross-warp agreement (published bits, negative values and -0.0 kept).
    a, b, h0 = _inputs(11, 100, 5)
    a[8:12], b[8:12] = 0.0, -0.0  # chunk 2's aggregate state is -0.0 (the bits of INT_MIN)
    cfg = rp._Config(100, 5, np.float32, reverse, 0, 4, 4, warps, True)
    cfg.publish_every = publish_every
    h = rp._run_lookback(cfg, jnp.asarray(a), jnp.asarray(b), jnp.asarray(h0))
    ref = linear_recurrence_ref(a, b, h0, reverse=reverse)
    np.testing.assert_allclose(np.asarray(h), ref, rtol=2e-5, atol=2e-5)
