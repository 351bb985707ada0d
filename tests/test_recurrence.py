"""linear_recurrence: sequential == associative == chunked == the numpy loop twin."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import maybe_x64

from bayes_ssm.kernels import choose_method, linear_recurrence
from bayes_ssm.kernels.reference import linear_recurrence_ref

METHODS = ("sequential", "associative", "chunked")
DTYPES = (np.float32, np.float64, np.complex64, np.complex128)
TOL = {np.float32: 2e-4, np.float64: 1e-10, np.complex64: 2e-4, np.complex128: 1e-10}


def _random(rng, shape, dtype, low=-1.0, high=1.0):
    x = rng.uniform(low, high, shape)
    if np.issubdtype(dtype, np.complexfloating):
        x = x + 1j * rng.uniform(low, high, shape)
    return x.astype(dtype)


def _decays(rng, shape, dtype):
    """Decays inside the unit disc: magnitudes in [0.5, 0.999], random signs / phases."""
    mag = rng.uniform(0.5, 0.999, shape)
    if np.issubdtype(dtype, np.complexfloating):
        return (mag * np.exp(1j * rng.uniform(-np.pi, np.pi, shape))).astype(dtype)
    return (mag * rng.choice([-1.0, 1.0], shape, p=[0.2, 0.8])).astype(dtype)


def _assert_close(got, want, dtype):
    got = np.asarray(got)
    scale = max(1.0, float(np.max(np.abs(want))))
    np.testing.assert_allclose(got, want, atol=TOL[dtype] * scale, rtol=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("length", [1, 2, 7, 64, 1000, 4097])
def test_matches_reference(method, dtype, length):
    rng = np.random.default_rng(length)
    with maybe_x64(dtype):
        a = _decays(rng, (length, 3), dtype)
        b = _random(rng, (length, 3), dtype)
        h = linear_recurrence(a, b, method=method, chunk_size=16)
        assert h.dtype == dtype
        _assert_close(h, linear_recurrence_ref(a, b), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHODS)
def test_batch_channel_axes_h0_and_reverse(method, dtype):
    rng = np.random.default_rng(1)
    shape = (2, 3, 37, 4, 5)  # batch, batch, time, channel, channel
    with maybe_x64(dtype):
        a = _decays(rng, shape, dtype)
        b = _random(rng, shape, dtype)
        h0 = _random(rng, (2, 3, 4, 5), dtype)
        for reverse in (False, True):
            got = linear_recurrence(a, b, h0, method=method, chunk_size=8, reverse=reverse, axis=2)
            want = linear_recurrence_ref(a, b, h0, reverse=reverse, axis=2)
            _assert_close(got, want, dtype)


@pytest.mark.parametrize("method", METHODS)
def test_decay_broadcast_over_channels(method):
    rng = np.random.default_rng(2)
    a = rng.uniform(0.1, 0.9, (50, 1)).astype(np.float32)  # shared by all channels
    b = rng.normal(size=(50, 6)).astype(np.float32)
    got = linear_recurrence(a, b, method=method, chunk_size=7)
    _assert_close(got, linear_recurrence_ref(a, b), np.float32)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("regime", ["near_zero", "near_one", "exactly_one", "zeros_and_signs"])
def test_extreme_decays(method, regime):
    rng = np.random.default_rng(3)
    shape = (300, 4)
    if regime == "near_zero":
        a = rng.uniform(0, 1e-6, shape)
    elif regime == "near_one":
        a = 1 - rng.uniform(0, 1e-6, shape)
    elif regime == "exactly_one":
        a = np.ones(shape)
    else:
        a = rng.uniform(-1, 1, shape)
        a[rng.uniform(size=shape) < 0.1] = 0.0
    a = a.astype(np.float32)
    b = rng.normal(size=shape).astype(np.float32)
    got = linear_recurrence(a, b, method=method, chunk_size=32)
    want = linear_recurrence_ref(a.astype(np.float64), b.astype(np.float64))
    np.testing.assert_allclose(np.asarray(got), want, atol=2e-4 * max(1, np.abs(want).max()))


@pytest.mark.parametrize("method", METHODS)
def test_long_float32_series_stays_finite(method):
    """T = 100,000 in float32 with decays at and next to 1: no NaN, no overflow."""
    rng = np.random.default_rng(4)
    length = 100_000
    a = np.concatenate(
        [np.ones((length, 1)), 1 - rng.uniform(0, 1e-4, (length, 1))], axis=1
    ).astype(np.float32)
    b = rng.normal(size=(length, 2)).astype(np.float32)
    got = np.asarray(linear_recurrence(a, b, method=method, chunk_size=64))
    assert np.isfinite(got).all()
    want = linear_recurrence_ref(a.astype(np.float64), b.astype(np.float64))
    # A random walk of 1e5 steps: float32 summation error grows like sqrt(T) * eps * |h|.
    np.testing.assert_allclose(got, want, atol=1e-2 * np.abs(want).max())


@pytest.mark.parametrize("dtype", (np.float32, np.float64))
def test_gradients_equal_across_methods(dtype):
    rng = np.random.default_rng(5)
    with maybe_x64(dtype):
        a = jnp.asarray(_decays(rng, (45, 3), dtype))
        b = jnp.asarray(_random(rng, (45, 3), dtype))
        h0 = jnp.asarray(_random(rng, (3,), dtype))
        weights = jnp.asarray(_random(rng, (45, 3), dtype))

        def loss(a, b, h0, method):
            return jnp.sum(weights * linear_recurrence(a, b, h0, method=method, chunk_size=8))

        grads = {m: jax.grad(loss, argnums=(0, 1, 2))(a, b, h0, m) for m in METHODS}
        for method in ("associative", "chunked"):
            for g_seq, g_other in zip(grads["sequential"], grads[method], strict=True):
                _assert_close(g_other, np.asarray(g_seq), dtype)


def test_gradient_matches_finite_differences(x64):
    rng = np.random.default_rng(6)
    a = jnp.asarray(rng.uniform(0.2, 0.9, (20, 2)))
    b = jnp.asarray(rng.normal(size=(20, 2)))

    def loss(a):
        return jnp.sum(linear_recurrence(a, b, method="chunked", chunk_size=6) ** 2)

    grad = np.asarray(jax.grad(loss)(a))
    eps = 1e-6
    for idx in [(1, 0), (7, 1), (19, 0)]:  # a_0 multiplies h0 = 0: no gradient there
        bump = np.zeros(a.shape)
        bump[idx] = eps
        fd = (loss(a + bump) - loss(a - bump)) / (2 * eps)
        np.testing.assert_allclose(grad[idx], fd, rtol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_jit_vmap_and_no_recompile(method):
    rng = np.random.default_rng(7)
    a = jnp.asarray(rng.uniform(0.1, 0.9, (4, 33, 2)), jnp.float32)
    b = jnp.asarray(rng.normal(size=(4, 33, 2)), jnp.float32)
    traces = []

    @jax.jit
    def run(a, b):
        traces.append(1)
        return linear_recurrence(a, b, method=method, chunk_size=8)

    first = run(a, b)
    second = run(a * 0.5, b + 1.0)
    assert len(traces) == 1  # same shapes: one trace, one compile
    mapped = jax.vmap(lambda a, b: linear_recurrence(a, b, method=method, chunk_size=8))(a, b)
    np.testing.assert_allclose(np.asarray(mapped), np.asarray(first), rtol=1e-5, atol=1e-6)
    _assert_close(second, linear_recurrence_ref(np.asarray(a) * 0.5, np.asarray(b) + 1), np.float32)


def test_auto_follows_choose_method():
    assert choose_method(10_000, "cpu") == "sequential"
    assert choose_method(10_000, "gpu") == "associative"
    assert choose_method(8, "gpu") == "sequential"
    assert choose_method(1_000, "gpu") == "associative"
    a = jnp.full((10, 1), 0.5)
    b = jnp.ones((10, 1))
    np.testing.assert_allclose(
        np.asarray(linear_recurrence(a, b)), linear_recurrence_ref(np.asarray(a), np.asarray(b))
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"a": np.ones((5, 2)), "b": np.ones((4, 2))}, r"a\.shape=\(5, 2\), b\.shape=\(4, 2\)"),
        ({"a": np.ones((0, 2)), "b": np.ones((0, 2))}, "time axis .* is empty"),
        ({"a": np.ones((5, 2), int), "b": np.ones((5, 2))}, "a must have a floating"),
        ({"a": np.ones((5, 2)), "b": np.ones((5, 2), np.int32)}, "b must have a floating"),
        ({"a": np.ones((5, 2)), "b": np.ones((5, 2)), "chunk_size": 0}, "chunk_size"),
        ({"a": np.ones((5, 2)), "b": np.ones((5, 2)), "h0": np.ones(3)}, r"h0 must broadcast"),
        ({"a": np.ones((5, 2)), "b": np.ones((5, 2)), "method": "fast"}, "method must be"),
        ({"a": np.ones((5, 2)), "b": np.ones((5, 2)), "axis": 3}, "axis=3 is out of range"),
    ],
)
def test_bad_input_raises_clear_errors(kwargs, message):
    kwargs = dict(kwargs)
    a, b = kwargs.pop("a"), kwargs.pop("b")
    h0 = kwargs.pop("h0", None)
    with pytest.raises(ValueError, match=message):
        linear_recurrence(a, b, h0, **kwargs)


def test_pallas_method_through_dispatcher_matches_reference():
    """method="pallas" (Pallas interpreter on a CPU) == the loop twin, with reverse and h0."""
    rng = np.random.default_rng(8)
    a = rng.uniform(0.5, 0.99, (2, 70, 3)).astype(np.float32)
    b = rng.normal(size=(2, 70, 3)).astype(np.float32)
    h0 = rng.normal(size=(2, 3)).astype(np.float32)
    for reverse in (False, True):
        got = linear_recurrence(a, b, h0, method="pallas", chunk_size=16, reverse=reverse, axis=1)
        _assert_close(got, linear_recurrence_ref(a, b, h0, reverse=reverse, axis=1), np.float32)
    with pytest.raises(ValueError, match="pallas"):
        linear_recurrence(a.astype(np.complex64), b, method="pallas", axis=1)
