"""Selective SSM (Mamba-1): the kernel == a loop twin (selective_scan_ref), values and gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from bayes_ssm.kernels import SelectiveParams, implied_attention, init_selective_A, selective_scan
from bayes_ssm.kernels.reference import selective_scan_ref
from tests.conftest import maybe_x64

TOL = {np.float32: dict(rtol=1e-4, atol=1e-4), np.float64: dict(rtol=1e-10, atol=1e-10)}
STATIC = ("method", "chunk_size", "block_size", "bidirectional", "return_final_state")
jit_scan = jax.jit(selective_scan, static_argnames=STATIC)


def make_inputs(dtype, batch=(2,), T=19, d=3, n=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(*batch, T, d))
    dt = np.log1p(np.exp(rng.normal(size=(*batch, T, d)) - 1))
    A = -np.exp(rng.normal(size=(d, n)))
    B = rng.normal(size=(*batch, T, n))
    C = rng.normal(size=(*batch, T, n))
    D = rng.normal(size=d)
    z = rng.normal(size=(*batch, T, d))
    return [jnp.asarray(v, dtype) for v in (x, dt, A, B, C, D, z)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_equals_loop_twin_for_every_scan_method(dtype):
    with maybe_x64(dtype):
        x, dt, A, B, C, D, z = make_inputs(dtype)
        expected = selective_scan_ref(x, dt, A, B, C, D, z)
        for method in ("sequential", "associative", "chunked"):
            y = jit_scan(x, dt, A, B, C, D=D, z=z, method=method, chunk_size=4)
            assert y.dtype == dtype and y.shape == x.shape
            np.testing.assert_allclose(y, expected, **TOL[dtype], err_msg=method)
        y = jit_scan(x, dt, A, B, C, D=D, z=z, block_size=5)
        np.testing.assert_allclose(y, expected, **TOL[dtype], err_msg="blocked")


def test_gradients_match_finite_differences(x64):
    x, dt, A, B, C, D, z = make_inputs(np.float64, batch=(), T=7, d=2, n=3)
    for kwargs in (dict(method="associative"), dict(block_size=3), dict(bidirectional=True)):
        f = jax.jit(
            lambda x, dt, A, B, C, z, kw=kwargs: selective_scan(x, dt, A, B, C, D=D, z=z, **kw)
        )
        check_grads(f, (x, dt, A, B, C, z), order=1, modes=["rev"], atol=1e-5, rtol=1e-5)


def test_gradients_agree_with_loop_twin_by_finite_differences(x64):
    """Directional derivative of the kernel (autodiff) == central differences of the twin."""
    x, dt, A, B, C, D, z = make_inputs(np.float64, batch=(), T=9)
    rng = np.random.default_rng(7)
    w = rng.normal(size=x.shape)
    directions = [rng.normal(size=v.shape) for v in (x, dt, A, B, C)]
    f = lambda *a: jnp.sum(w * selective_scan(*a, D=D, z=z))  # noqa: E731
    _, jvp = jax.jvp(f, (x, dt, A, B, C), tuple(jnp.asarray(v) for v in directions))
    eps = 1e-6
    plus = [np.asarray(v) + eps * u for v, u in zip((x, dt, A, B, C), directions, strict=True)]
    minus = [np.asarray(v) - eps * u for v, u in zip((x, dt, A, B, C), directions, strict=True)]
    fd = (
        np.sum(w * selective_scan_ref(*plus, D, z)) - np.sum(w * selective_scan_ref(*minus, D, z))
    ) / (2 * eps)
    assert float(jvp) == pytest.approx(fd, rel=1e-6)


def test_bidirectional_equals_implied_full_matrix():
    x, dt, A, B, C, D, z = make_inputs(np.float32, T=10)
    y = selective_scan(x, dt, A, B, C, D=D, z=z, bidirectional=True)
    M = implied_attention("selective", SelectiveParams(dt, A, B, C, D, z), x, bidirectional=True)
    np.testing.assert_allclose(jnp.einsum("...dts,...sd->...td", M, x), y, rtol=1e-4, atol=1e-4)
    # Explicit pair sums, the definition of the anti-causal part:
    t, s, ch = 2, 7, 1
    tau = float(jnp.sum(dt[0, t + 1 : s + 1, ch]))
    expected = float(jnp.sum(C[0, t] * jnp.exp(A[ch] * tau) * B[0, s]) * dt[0, s, ch])
    assert float(M[0, ch, t, s]) == pytest.approx(
        expected * float(jax.nn.silu(z[0, t, ch])), rel=1e-4
    )


def test_implied_attention_times_input_equals_output():
    x, dt, A, B, C, D, z = make_inputs(np.float32, T=12)
    M = implied_attention("selective", SelectiveParams(dt, A, B, C, D, z), x)
    assert M.shape == (2, 3, 12, 12)
    assert np.allclose(np.triu(np.asarray(M), k=1), 0)  # causal
    y = jnp.einsum("...dts,...sd->...td", M, x)
    np.testing.assert_allclose(y, selective_scan(x, dt, A, B, C, D=D, z=z), rtol=1e-4, atol=1e-4)


def test_state_carries_across_calls_and_blocks():
    x, dt, A, B, C, D, z = make_inputs(np.float32, T=16)
    full = selective_scan(x, dt, A, B, C)
    y1, h1 = selective_scan(x[:, :9], dt[:, :9], A, B[:, :9], C[:, :9], return_final_state=True)
    y2, h2 = selective_scan(x[:, 9:], dt[:, 9:], A, B[:, 9:], C[:, 9:], h0=h1, block_size=4,
                            return_final_state=True)  # fmt: skip
    np.testing.assert_allclose(jnp.concatenate([y1, y2], 1), full, rtol=1e-4, atol=1e-4)
    _, h_full = selective_scan(x, dt, A, B, C, return_final_state=True)
    np.testing.assert_allclose(h2, h_full, rtol=1e-4, atol=1e-4)


def test_equal_gaps_equal_fixed_step():
    x, dt, A, B, C, D, z = make_inputs(np.float32)
    y_scalar = selective_scan(x, 0.25, A, B, C, D=D)
    y_steps = selective_scan(x, jnp.full(x.shape, 0.25), A, B, C, D=D)
    np.testing.assert_allclose(y_steps, y_scalar, rtol=1e-6)
    np.testing.assert_allclose(
        y_steps, selective_scan_ref(x, 0.25, A, B, C, D), rtol=1e-4, atol=1e-4
    )


def test_no_recompile_on_second_call():
    f = jax.jit(lambda *a: selective_scan(*a, method="associative"))
    f(*make_inputs(np.float32)[:5]).block_until_ready()
    f(*make_inputs(np.float32, seed=2)[:5]).block_until_ready()
    assert f._cache_size() == 1


def test_init_and_bad_input():
    A = init_selective_A(3, 4)
    np.testing.assert_array_equal(A[1], [-1, -2, -3, -4])
    x, dt, A, B, C, D, z = make_inputs(np.float32)
    with pytest.raises(ValueError, match="state_size"):
        init_selective_A(3, 0)
    with pytest.raises(ValueError, match=r"A must have shape \(d, n\) with d = 3"):
        selective_scan(x, dt, A[:2], B, C)
    with pytest.raises(ValueError, match="B must have shape"):
        selective_scan(x, dt, A, B[..., :2], C)
    with pytest.raises(ValueError, match="dt must be positive"):
        selective_scan(x, 0.0, A, B, C)
    with pytest.raises(ValueError, match="dt must broadcast"):
        selective_scan(x, dt[..., :2], A, B, C)
    with pytest.raises(ValueError, match="A must be real"):
        selective_scan(x, dt, A.astype(jnp.complex64), B, C)
    with pytest.raises(ValueError, match="block_size"):
        selective_scan(x, dt, A, B, C, block_size=0)
    with pytest.raises(ValueError, match="positive state size"):
        selective_scan(x, dt, jnp.ones((3, 0)), B[..., :0], C[..., :0])
