"""SSD (Mamba-2): scan == chunked == quadratic form == a loop twin, values and gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from bayes_ssm.kernels import SSDParams, implied_attention, ssd, ssd_discrete, ssd_mask
from bayes_ssm.kernels.reference import ssd_ref
from tests.conftest import maybe_x64

METHODS = ("scan", "chunked", "quadratic")
STATIC = ("method", "chunk_size", "bidirectional", "return_final_state", "scan_method")
jit_ssd = jax.jit(ssd, static_argnames=STATIC)  # one compiled program per configuration
TOL = {np.float32: dict(rtol=2e-4, atol=2e-4), np.float64: dict(rtol=1e-10, atol=1e-10)}


def make_inputs(dtype, batch=(2,), T=13, h=4, p=3, g=2, n=5, seed=0):
    """Random SSD inputs; T=13 is not a multiple of the chunk sizes used below."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(*batch, T, h, p))
    dt = np.log1p(np.exp(rng.normal(size=(*batch, T, h)) - 1))  # softplus: positive
    A = -np.exp(rng.normal(size=h))
    B = rng.normal(size=(*batch, T, g, n))
    C = rng.normal(size=(*batch, T, g, n))
    D = rng.normal(size=h)
    return [jnp.asarray(z, dtype) for z in (x, dt, A, B, C, D)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_three_forms_equal_loop_twin(dtype, bidirectional):
    with maybe_x64(dtype):
        x, dt, A, B, C, D = make_inputs(dtype)
        expected = ssd_ref(x, dt, A, B, C, D, bidirectional=bidirectional)
        for method in METHODS:
            for chunk in (4, 64):
                y = jit_ssd(x, dt, A, B, C, D=D, method=method, chunk_size=chunk,
                        bidirectional=bidirectional)  # fmt: skip
                assert y.dtype == dtype and y.shape == x.shape
                np.testing.assert_allclose(y, expected, **TOL[dtype], err_msg=f"{method} {chunk}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradients_agree_across_forms(dtype):
    with maybe_x64(dtype):
        x, dt, A, B, C, D = make_inputs(dtype, batch=(), T=11, g=1)
        w = jnp.asarray(np.random.default_rng(1).normal(size=x.shape), dtype)

        def loss(method, *args):
            return jnp.sum(w * ssd(*args, D=D, method=method, chunk_size=4))

        grads = {m: jax.jit(jax.grad(lambda *a, m=m: loss(m, *a), argnums=(0, 1, 2, 3, 4)))(
            x, dt, A, B, C) for m in METHODS}  # fmt: skip
        for m in ("chunked", "quadratic"):
            for g_scan, g_m in zip(grads["scan"], grads[m], strict=True):
                np.testing.assert_allclose(g_m, g_scan, **TOL[dtype])


def test_gradients_match_finite_differences(x64):
    x, dt, A, B, C, D = make_inputs(np.float64, batch=(), T=7, h=2, p=2, g=1, n=3)
    for method in METHODS:
        f = jax.jit(lambda x, dt, A, B, C, m=method: ssd(x, dt, A, B, C, method=m, chunk_size=3))
        check_grads(f, (x, dt, A, B, C), order=1, modes=["rev"], atol=1e-5, rtol=1e-5)


def test_initial_and_final_state_continue_a_series():
    x, dt, A, B, C, D = make_inputs(np.float32, T=12)
    full = ssd(x, dt, A, B, C, method="scan")
    for method in METHODS:
        y1, h1 = jit_ssd(x[:, :5], dt[:, :5], A, B[:, :5], C[:, :5], method=method, chunk_size=4,
                     return_final_state=True)  # fmt: skip
        y2 = jit_ssd(x[:, 5:], dt[:, 5:], A, B[:, 5:], C[:, 5:], h0=h1, method=method, chunk_size=4)
        np.testing.assert_allclose(jnp.concatenate([y1, y2], 1), full, rtol=1e-4, atol=1e-4)


def test_irregular_gap_equals_two_steps_without_input():
    """Zero-order hold over the real gap: one step of 2Δ == two steps of Δ with no input between.

    The Euler rule scales the input by its own step, so the observed step keeps Δ for the input
    and the gap enters only the decay; we build that with per-step dt in the discrete form.
    """
    with jax.enable_x64(True):
        x, dt, A, B, C, _ = make_inputs(np.float64, batch=(), T=6, g=1)
        # Fine grid: insert an empty step (x = 0, same dt) after every observed step.
        x2 = jnp.stack([x, jnp.zeros_like(x)], 1).reshape(-1, *x.shape[1:])
        dt2 = jnp.repeat(dt, 2, axis=0)
        B2, C2 = jnp.repeat(B, 2, axis=0), jnp.repeat(C, 2, axis=0)
        fine = ssd(x2, dt2, A, B2, C2, method="scan")[::2]
        # Coarse grid, irregular: the decay of each step covers its real gap (dt of the step
        # plus the empty step before it), the input keeps its own dt.
        gap = dt + jnp.concatenate([jnp.zeros_like(dt[:1]), dt[:-1]])
        for method in METHODS:
            coarse = jax.jit(ssd_discrete, static_argnames=("method", "chunk_size"))(
                x * dt[..., None], gap * A, B, C, method=method, chunk_size=4
            )
            np.testing.assert_allclose(coarse, fine, rtol=1e-10, atol=1e-10)


def test_equal_steps_equal_scalar_step():
    x, dt, A, B, C, D = make_inputs(np.float32)
    per_step = ssd(x, jnp.full(dt.shape, 0.3), A, B, C, D=D)
    fixed = ssd_ref(x, 0.3, A, B, C, D)
    np.testing.assert_allclose(per_step, fixed, rtol=2e-4, atol=2e-4)


def test_mask_is_product_of_decays():
    log_a = jnp.log(jnp.array([0.5, 0.25, 0.8, 0.1]))
    L = np.asarray(ssd_mask(log_a))
    a = np.exp(np.asarray(log_a))
    for t in range(4):
        for s in range(4):
            expected = np.prod(a[s + 1 : t + 1]) if s <= t else 0.0
            assert L[t, s] == pytest.approx(expected, rel=1e-6)


def test_no_recompile_on_second_call():
    f = jax.jit(lambda *a: ssd(*a, method="chunked", chunk_size=4))
    args = make_inputs(np.float32)[:5]
    f(*args).block_until_ready()
    f(*make_inputs(np.float32, seed=3)[:5]).block_until_ready()
    assert f._cache_size() == 1


def test_long_float32_series_with_decays_near_one():
    """T = 100,000 in float32 with decays exp(-1e-6 .. -1e-3): finite and close to float64."""
    T = 100_000
    rng = np.random.default_rng(0)
    x = rng.normal(size=(T, 2, 1))
    dt = np.full((T, 2), 1e-3)
    A = np.array([-1e-3, -1.0])  # log decays -1e-6 and -1e-3
    B = rng.normal(size=(T, 1, 2))
    C = rng.normal(size=(T, 1, 2))
    y32 = ssd(*(jnp.asarray(z, jnp.float32) for z in (x, dt, A, B, C)), chunk_size=256)
    assert bool(jnp.all(jnp.isfinite(y32)))
    with jax.enable_x64(True):
        y64 = ssd(*(jnp.asarray(z, jnp.float64) for z in (x, dt, A, B, C)), method="scan")
        scale = float(jnp.max(jnp.abs(y64)))
        err = float(jnp.max(jnp.abs(y32 - y64)))
    assert err < 1e-3 * scale, (err, scale)


def test_bad_input_raises_clear_errors():
    x, dt, A, B, C, D = make_inputs(np.float32)
    with pytest.raises(ValueError, match="groups g=3"):
        ssd(x, dt, A, jnp.ones((2, 13, 3, 5)), jnp.ones((2, 13, 3, 5)))
    with pytest.raises(ValueError, match="positive state size"):
        ssd(x, dt, A, B[..., :0], C[..., :0])
    with pytest.raises(ValueError, match="t = 13"):
        ssd(x, dt, A, B[:, :7], C[:, :7])
    with pytest.raises(ValueError, match="dt must broadcast"):
        ssd(x, dt[..., :3], A, B, C)
    with pytest.raises(ValueError, match="A must broadcast"):
        ssd(x, dt, A[:3], B, C)
    with pytest.raises(ValueError, match="x must have shape"):
        ssd(x[0, 0], dt, A, B, C)
    with pytest.raises(ValueError, match="dt must be positive"):
        ssd(x, -dt, A, B, C)
    with pytest.raises(ValueError, match="chunk_size"):
        ssd(x, dt, A, B, C, chunk_size=0)
    with pytest.raises(ValueError, match="method"):
        ssd(x, dt, A, B, C, method="fft")
    with pytest.raises(ValueError, match="floating"):
        ssd(x.astype(jnp.int32), dt, A, B, C)
    with pytest.raises(ValueError, match="bidirectional"):
        ssd(x, dt, A, B, C, bidirectional=True, return_final_state=True)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_implied_attention_times_input_equals_output(bidirectional):
    x, dt, A, B, C, D = make_inputs(np.float32)
    M = implied_attention("ssd", SSDParams(dt, A, B, C, D), x, bidirectional=bidirectional)
    assert M.shape == (2, 4, 13, 13)
    y = jnp.einsum("...hts,...shp->...thp", M, x)
    expected = ssd(x, dt, A, B, C, D=D, bidirectional=bidirectional)
    np.testing.assert_allclose(y, expected, rtol=2e-4, atol=2e-4)
    if not bidirectional:
        assert np.allclose(np.triu(np.asarray(M), k=1), 0)
    with pytest.raises(ValueError, match="SSDParams"):
        implied_attention("ssd", tuple(SSDParams(dt, A, B, C, D)), x)
    with pytest.raises(ValueError, match="layer"):
        implied_attention("mamba3", SSDParams(dt, A, B, C, D), x)


def test_bfloat16_chunked_close_to_float32():
    """bfloat16 inputs: log decays and masks stay float32, the result is within bf16 rounding."""
    x, dt, A, B, C, D = make_inputs(np.float32, T=40)
    expected = ssd(x, dt, A, B, C, method="scan")
    low = [z.astype(jnp.bfloat16) for z in (x, dt, A, B, C)]
    for method in METHODS:
        y = jit_ssd(*low, method=method, chunk_size=16)
        assert y.dtype == jnp.bfloat16
        err = float(jnp.max(jnp.abs(y.astype(jnp.float32) - expected)))
        assert err < 0.05 * float(jnp.max(jnp.abs(expected))), (method, err)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_no_decay_path_equals_zero_log_decays(bidirectional):
    """``log_a=None`` (linear attention, no exponentials) == explicit ``log_a = 0``."""
    x, dt, A, B, C, D = make_inputs(np.float32)
    h0 = None if bidirectional else jnp.ones((2, 4, 3, 5))
    for method in METHODS:
        kw = dict(method=method, chunk_size=4, bidirectional=bidirectional, h0=h0)
        y0 = ssd_discrete(x, jnp.zeros(x.shape[:-1]), B, C, **kw)
        np.testing.assert_allclose(ssd_discrete(x, None, B, C, **kw), y0, rtol=1e-5, atol=1e-4)
