"""blocked_associative_scan == lax.associative_scan (values, gradients), bounded program size."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from bayes_ssm.kernels.blocked_scan import blocked_associative_scan, default_block_size


def affine_combine(earlier, later):
    """Compose affine maps x -> A x + b (earlier first): not commutative, so order is tested."""
    A1, b1 = earlier
    A2, b2 = later
    return jnp.matmul(A2, A1), jnp.einsum("...ij,...j->...i", A2, b1) + b2


def random_elements(num_steps, seed=0, n=3):
    rng = np.random.default_rng(seed)
    # Near-orthogonal maps keep long products O(1), so absolute errors stay meaningful.
    q, _ = np.linalg.qr(rng.normal(size=(num_steps, n, n)))
    A = q * (1.0 + 0.01 * rng.normal(size=(num_steps, 1, 1)))
    return jnp.asarray(A), jnp.asarray(rng.normal(size=(num_steps, n)))


@pytest.mark.parametrize("num_steps", [1, 2, 7, 9, 64, 65, 1000])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("block_size", [3, 8, None])
def test_equals_associative_scan(x64, num_steps, reverse, block_size):
    elems = random_elements(num_steps, seed=num_steps)
    want = lax.associative_scan(affine_combine, elems, reverse=reverse)
    got = blocked_associative_scan(affine_combine, elems, reverse=reverse, block_size=block_size)
    for w, g in zip(want, got, strict=True):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-10)


def test_equals_a_python_loop_on_a_dict_pytree(x64):
    """Against the definition, with a dict pytree and a scalar leaf per step."""
    A, b = random_elements(300, seed=3)
    c = jnp.arange(300.0)

    def combine(e1, e2):
        A_, b_ = affine_combine((e1["A"], e1["b"]), (e2["A"], e2["b"]))
        return {"A": A_, "b": b_, "c": e1["c"] + e2["c"]}

    got = blocked_associative_scan(combine, {"A": A, "b": b, "c": c}, block_size=16)
    acc_A, acc_b = np.asarray(A[0]), np.asarray(b[0])
    for t in range(1, 300):
        acc_A, acc_b = np.asarray(A[t]) @ acc_A, np.asarray(A[t]) @ acc_b + np.asarray(b[t])
    np.testing.assert_allclose(got["A"][-1], acc_A, atol=1e-10)
    np.testing.assert_allclose(got["b"][-1], acc_b, atol=1e-10)
    np.testing.assert_allclose(got["c"], np.cumsum(np.arange(300.0)))


def test_gradients_equal_associative_scan(x64):
    elems = random_elements(300, seed=1)
    w = jnp.asarray(np.random.default_rng(2).normal(size=(300, 3)))

    def loss(scan):
        return lambda e: jnp.sum(w * jnp.tanh(scan(affine_combine, e, reverse=False)[1]))

    g_want = jax.grad(loss(lax.associative_scan))(elems)
    g_got = jax.jit(jax.grad(loss(blocked_associative_scan)))(elems)
    for a, b in zip(g_want, g_got, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-9)


def _count_equations(jaxpr) -> int:
    total = 0
    for eqn in jaxpr.eqns:
        total += 1
        for value in eqn.params.values():
            for sub in value if isinstance(value, tuple | list) else (value,):
                sub = getattr(sub, "jaxpr", sub)  # ClosedJaxpr -> Jaxpr
                if hasattr(sub, "eqns"):
                    total += _count_equations(sub)
    return total


def test_program_size_does_not_grow_with_length():
    """The point of blocking: a fixed number of combine copies, unlike the unrolled scan."""

    def size(scan, num_steps):
        elems = random_elements(num_steps)
        return _count_equations(jax.make_jaxpr(lambda e: scan(affine_combine, e))(elems).jaxpr)

    blocked = [size(blocked_associative_scan, n) for n in (2**12, 2**16)]
    unrolled = [size(lax.associative_scan, n) for n in (2**12, 2**16)]
    assert blocked[0] == blocked[1]
    assert unrolled[1] > unrolled[0]
    assert blocked[1] < unrolled[1] / 2


def test_default_block_size_grows_slowly():
    assert default_block_size(1) == 8
    assert default_block_size(10**4) == 8
    assert default_block_size(10**5) == 16
    assert default_block_size(10**6) == 32


def test_bad_input():
    A, b = random_elements(10)
    with pytest.raises(ValueError, match="block_size must be >= 2"):
        blocked_associative_scan(affine_combine, (A, b), block_size=1)
    with pytest.raises(ValueError, match="same leading length"):
        blocked_associative_scan(affine_combine, (A, b[:5]))
    with pytest.raises(ValueError, match="no arrays"):
        blocked_associative_scan(affine_combine, ())
