"""The chunked SSD algorithm with its large intermediates fused: an experiment, not the default.

Measured on the lent H200 (``benchmarks/ssd_profile.py``, ``benchmarks/README.md``): at
b8 L4096 H32 P64 N128 this form is no faster than the reference form that
:func:`bayes_ssm.kernels.ssd` runs (float32 forward 1.93 vs 1.81 ms, forward + backward
6.40 vs 6.36 ms; bfloat16 2.18 vs 2.13 / 9.40 vs 9.55 ms), so ``ssd`` keeps
:func:`~bayes_ssm.kernels.ssd_algorithms.chunked_form`. It stays for its step functions, which
``benchmarks/ssd_profile.py`` times one by one (where the time goes), and as the starting
point of a fused kernel; ``tests/test_ssd_chunk.py`` checks its values against the reference
form.

Same four steps and same result as :func:`bayes_ssm.kernels.ssd_algorithms.chunked_form`
(``ssd_minimal.py``), arranged so that XLA writes each ``(chunk, l, l)``-sized tensor at most
once:

1. diagonal blocks: ``G = C Bᵀ`` per chunk and group ``(..., c, g, l, s)`` (small), then
   ``M = G ∘ L`` with the decay mask ``L_{ts} = exp(cs_t - cs_s)`` computed inside the same
   elementwise fusion from the within-chunk cumulative sums ``cs`` of the log decays, then one
   batched matrix product ``M X``. (The reference form builds ``L`` by a masked cumulative sum
   over an ``(l, l)`` tile per head, :func:`~bayes_ssm.kernels.recurrence._segment_sum`, and
   lets the einsum contract ``C, B, L, X`` in its own order; at ``b8 h32 l128`` each of those
   ``(b, c, h, l, l)`` float32 tensors is 0.5 GB.)
2. chunk states: ``X`` scaled by the decay to the chunk end (an ``X``-sized product), then
   ``Bᵀ X``.
3. one recurrence across chunks (unchanged).
4. carried-in states to outputs: ``C · start`` times the decay from the chunk start, fused
   with the sum of the two parts.

Log decays within one chunk are differences of cumulative sums over at most ``l`` steps: the
cancellation error is bounded by ``l · max|log a| · eps`` and never compounds across chunks
(as in Mamba-2's Triton kernels). Shapes as in :mod:`bayes_ssm.kernels.ssd_algorithms`.
"""

from __future__ import annotations

import jax.numpy as jnp

from bayes_ssm.kernels.recurrence import linear_recurrence
from bayes_ssm.kernels.ssd_algorithms import chunked_form

__all__ = ["chunked_form_fast", "diagonal_blocks", "chunk_states", "carry_states", "off_diagonal"]


def chunked_form_fast(x, log_a, B, C, h0, chunk_size, scan_method, precision):
    """The chunked form, fused for speed; arguments and result as ``chunked_form``."""
    if log_a is None:  # no decay: the reference form has no masks to fuse
        return chunked_form(x, log_a, B, C, h0, chunk_size, scan_method, precision)
    num_steps = x.shape[-4]
    length = min(chunk_size, num_steps)
    num_chunks = -(-num_steps // length)
    pad = num_chunks * length - num_steps
    if pad:  # padded steps (decay 1, zero input) change neither outputs nor the final state

        def pad_time(z, time_axis):
            widths = [(0, 0)] * z.ndim
            widths[time_axis % z.ndim] = (0, pad)
            return jnp.pad(z, widths)

        x, B, C, log_a = pad_time(x, -4), pad_time(B, -3), pad_time(C, -3), pad_time(log_a, -3)

    def chunks(z, time_axis):
        time_axis %= z.ndim
        return z.reshape(*z.shape[:time_axis], num_chunks, length, *z.shape[time_axis + 1 :])

    X = chunks(x, -4)  # (..., c, l, g, r, p)
    Bc = chunks(B, -3)  # (..., c, l, g, n)
    Cc = chunks(C, -3)  # (..., c, l, g, n)
    cs = jnp.cumsum(chunks(log_a, -3), axis=-3)  # within-chunk cumulative log decay
    Y_diag = diagonal_blocks(X, Bc, Cc, cs, precision)
    states = chunk_states(X, Bc, cs, precision)
    starts, final = carry_states(states, cs, h0, scan_method)
    y = off_diagonal(Y_diag, Cc, starts.astype(x.dtype), cs, precision).reshape(*x.shape)
    return y[..., :num_steps, :, :, :], final


# The four steps, on chunked inputs: X (..., c, l, g, r, p); Bc, Cc (..., c, l, g, n);
# cs (..., c, l, g, r) the within-chunk cumulative log decays (float32 at least).


def diagonal_blocks(X, Bc, Cc, cs, precision=None):
    """Step 1, ``(C Bᵀ ∘ L) X`` per chunk, the mask made inside one elementwise fusion."""
    length = X.shape[-4]
    G = jnp.einsum("...clgn,...csgn->...cgls", Cc, Bc, precision=precision)
    cs_h = jnp.moveaxis(cs, -3, -1)  # (..., c, g, r, l)
    lower = jnp.tril(jnp.ones((length, length), bool))
    seg = jnp.where(lower, cs_h[..., :, None] - cs_h[..., None, :], -jnp.inf)
    M = (G[..., :, None, :, :] * jnp.exp(seg)).astype(X.dtype)  # (..., c, g, r, l, s)
    return jnp.einsum("...cgrls,...csgrp->...clgrp", M, X, precision=precision)


def chunk_states(X, Bc, cs, precision=None):
    """Step 2, each chunk's end state from a zero start ``(..., c, g, r, p, n)``."""
    to_end = jnp.exp(cs[..., -1:, :, :] - cs)[..., None]  # (..., c, l, g, r, 1)
    Xs = (X * to_end).astype(X.dtype)
    return jnp.einsum("...clgn,...clgrp->...cgrpn", Bc, Xs, precision=precision)


def carry_states(states, cs, h0, scan_method="auto"):
    """Step 3, the state entering each chunk ``(..., c, g, r, p, n)`` and the final state."""
    chunk_decay = jnp.exp(cs[..., -1, :, :])  # (..., c, g, r)
    ends = linear_recurrence(chunk_decay[..., None, None], states, h0, method=scan_method, axis=-5)
    start = jnp.zeros_like(ends[..., :1, :, :, :, :]) if h0 is None else h0[..., None, :, :, :, :]
    starts = jnp.concatenate([start, ends[..., :-1, :, :, :, :]], axis=-5)
    return starts, ends[..., -1, :, :, :, :]


def off_diagonal(Y_diag, Cc, starts, cs, precision=None):
    """Step 4, ``Y_diag`` plus the carried-in states' outputs ``exp(cs) C · start``."""
    Y_off = jnp.einsum("...clgn,...cgrpn->...clgrp", Cc, starts, precision=precision)
    return Y_diag + Y_off * jnp.exp(cs)[..., None].astype(Y_diag.dtype)
