"""The carry kernel of the chunked SSD (step 3) against its pure-JAX twin, in Pallas' interpreter.

Values and gradients of :func:`bayes_ssm.kernels.ssd_carry.chunk_carry` against
:func:`~bayes_ssm.kernels.ssd_carry.chunk_carry_reference` (the recurrence by a sequential
scan), and the whole fused chunked form with ``passing="carry"`` against the XLA chunked form.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayes_ssm.kernels.ssd_algorithms import chunked_form
from bayes_ssm.kernels.ssd_carry import chunk_carry, chunk_carry_reference
from bayes_ssm.kernels.ssd_fused import chunked_form_fused


def _carry_inputs():
    # b2 c5 h3 p4 n8, blocks of 16 of the 32 state entries (two programs per head).
    k = jax.random.split(jax.random.key(0), 5)
    states = jax.random.normal(k[0], (2, 5, 3, 4, 8))
    decay = jax.random.uniform(k[1], (2, 3, 5), minval=0.2, maxval=1.0)
    h0 = jax.random.normal(k[2], (2, 3, 4, 8))
    return (states, decay, h0), (
        jax.random.normal(k[3], states.shape),
        jax.random.normal(k[4], h0.shape),
    )


_fast = lambda *a: chunk_carry(*a, block=16, interpret=True)  # noqa: E731
_slow = lambda *a: chunk_carry_reference(*a, scan_method="sequential")  # noqa: E731


def test_carry_values_equal_the_twin():
    args, _ = _carry_inputs()
    for got, want in zip(jax.jit(_fast)(*args), _slow(*args), strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="divide"):
        chunk_carry(*args, block=24, interpret=True)


@pytest.mark.slow
def test_carry_gradients_equal_the_twin():
    args, (w_starts, w_final) = _carry_inputs()

    def grads(form):
        def loss(*a):
            starts, final = form(*a)
            return jnp.sum(w_starts * starts) + jnp.sum(w_final * final)

        return jax.jit(jax.grad(loss, argnums=range(3)))(*args)

    for got, want in zip(grads(_fast), grads(_slow), strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_chunked_form_with_the_carry_kernel_equals_the_xla_form():
    # T 72 at chunk 32 (ragged last chunk), two heads per group, an initial state.
    k = jax.random.split(jax.random.key(1), 5)
    x = jax.random.normal(k[0], (1, 72, 1, 2, 16))
    log_a = -jax.random.uniform(k[1], (1, 72, 1, 2), maxval=0.4)
    B, C = (jax.random.normal(kk, (1, 72, 1, 16)) for kk in k[2:4])
    h0 = jax.random.normal(k[4], (1, 1, 2, 16, 16))
    hi = jax.lax.Precision.HIGHEST
    got = jax.jit(
        lambda *a: chunked_form_fused(*a, 32, tile=(32, 4, 2, 0, 16), passing="carry",
                                      interpret=True)
    )(x, log_a, B, C, h0)  # fmt: skip
    want = chunked_form(x, log_a, B, C, h0, 32, "sequential", hi)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)
