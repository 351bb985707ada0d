"""The three SSD algorithms (scan, quadratic, chunked) on grouped inputs.

Shapes: ``x (..., t, g, r, p)``, ``log_a (..., t, g, r)`` (``None``: no decay),
``B, C (..., t, g, n)``, ``h0 (..., g, r, p, n)``. Each returns ``(y, final_state)``. The
maths, and the public functions that group heads and check inputs, are in
:mod:`bayes_ssm.kernels.ssd`.
"""

from __future__ import annotations

import jax.numpy as jnp

from bayes_ssm.kernels.recurrence import _segment_sum, linear_recurrence

__all__ = ["ssd_mask", "scan_form", "quadratic_form", "chunked_form"]


def ssd_mask(log_a):
    """The 1-semiseparable mask ``L[..., t, s] = exp(Σ_{k=s+1..t} log_a[..., k])``, 0 for ``s > t``.

    Parameters
    ----------
    log_a : Array, shape ``(..., t)``
        Log decays (time last).

    Returns
    -------
    Array, shape ``(..., t, t)``
    """
    return jnp.exp(_segment_sum(log_a))


def scan_form(x, log_a, B, C, h0, scan_method, precision):
    """Recurrent form: ``H_t = a_t H_{t-1} + x_t B_tᵀ``, ``y_t = H_t C_t``."""
    b = jnp.einsum("...tgrp,...tgn->...tgrpn", x, B, precision=precision)
    if log_a is None:  # no decay: a running sum
        a = jnp.ones((), x.dtype)
    else:
        a = jnp.exp(log_a)[..., None, None]  # (..., t, g, r, 1, 1)
    states = linear_recurrence(a, b, h0, method=scan_method, axis=-5)  # (..., t, g, r, p, n)
    y = jnp.einsum("...tgrpn,...tgn->...tgrp", states, C, precision=precision)
    return y, states[..., -1, :, :, :, :]


def quadratic_form(x, log_a, B, C, h0, precision):
    """Dual form: ``y = (L ∘ C Bᵀ) x`` with the full ``(t, s)`` mask."""
    T = x.shape[-4]
    if log_a is None:  # no decay: the causal mask of ones
        g, r = x.shape[-3:-1]
        log_a = jnp.zeros((g, r, T), x.dtype)
        L = jnp.broadcast_to(jnp.tril(jnp.ones((T, T), x.dtype)), (g, r, T, T))
    else:
        log_a = jnp.moveaxis(log_a, -3, -1)  # (..., g, r, t)
        L = ssd_mask(log_a)  # (..., g, r, t, s)
    y = jnp.einsum("...tgn,...sgn,...grts,...sgrp->...tgrp", C, B, L, x, precision=precision)
    final = jnp.einsum("...grs,...sgn,...sgrp->...grpn", L[..., -1, :], B, x, precision=precision)
    if h0 is not None:
        from_start = jnp.exp(jnp.cumsum(log_a, axis=-1))  # (..., g, r, t)
        y = y + jnp.einsum("...tgn,...grt,...grpn->...tgrp", C, from_start, h0, precision=precision)
        final = final + from_start[..., -1, None, None] * h0
    return y, final


def _suffix_sum(x):
    """``out[..., t] = Σ_{k=t+1..l-1} x[..., k]`` (no subtraction of cumulative sums)."""
    rest = jnp.flip(jnp.cumsum(jnp.flip(x[..., 1:], -1), axis=-1), -1)
    return jnp.concatenate([rest, jnp.zeros_like(x[..., :1])], axis=-1)


def chunked_form(x, log_a, B, C, h0, chunk_size, scan_method, precision):
    """The four steps of ``ssd_minimal.py``, for any length (padding with decay 1, input 0)."""
    num_steps = x.shape[-4]
    length = min(chunk_size, num_steps)
    num_chunks = -(-num_steps // length)
    pad = num_chunks * length - num_steps
    if pad:
        # Padded steps (decay 1, zero input) change neither the outputs nor the final state.
        def pad_time(z, time_axis):
            widths = [(0, 0)] * z.ndim
            widths[time_axis % z.ndim] = (0, pad)
            return jnp.pad(z, widths)

        x, B, C = pad_time(x, -4), pad_time(B, -3), pad_time(C, -3)
        log_a = None if log_a is None else pad_time(log_a, -3)

    def chunks(z, time_axis):
        time_axis %= z.ndim
        return z.reshape(*z.shape[:time_axis], num_chunks, length, *z.shape[time_axis + 1 :])

    X = chunks(x, -4)  # (..., c, l, g, r, p)
    Bc = chunks(B, -3)  # (..., c, l, g, n)
    Cc = chunks(C, -3)  # (..., c, l, g, n)
    if log_a is None:
        return _chunked_no_decay(X, Bc, Cc, h0, x.shape, num_steps, scan_method, precision)
    A = jnp.moveaxis(chunks(log_a, -3), (-4, -3), (-2, -1))  # (..., g, r, c, l)
    A_cumsum = jnp.cumsum(A, axis=-1)

    # 1. Diagonal blocks: the quadratic form inside each chunk.
    L = jnp.exp(_segment_sum(A)).astype(x.dtype)  # (..., g, r, c, l, s)
    Y_diag = jnp.einsum(
        "...clgn,...csgn,...grcls,...csgrp->...clgrp", Cc, Bc, L, X, precision=precision
    )
    # 2. The state each chunk ends in, from a zero start (the B terms).
    decay_states = jnp.exp(_suffix_sum(A)).astype(x.dtype)  # (..., g, r, c, l)
    states = jnp.einsum(
        "...clgn,...grcl,...clgrp->...cgrpn", Bc, decay_states, X, precision=precision
    )
    # 3. Carry states across chunk boundaries: one recurrence of length c (the A terms).
    chunk_decay = jnp.moveaxis(jnp.exp(A_cumsum[..., -1]), -1, -3)  # (..., c, g, r)
    ends = linear_recurrence(
        chunk_decay[..., None, None], states, h0, method=scan_method, axis=-5
    )  # (..., c, g, r, p, n): the state after each chunk
    start = jnp.zeros_like(ends[..., :1, :, :, :, :]) if h0 is None else h0[..., None, :, :, :, :]
    starts = jnp.concatenate([start, ends[..., :-1, :, :, :, :]], axis=-5)
    # 4. Carried-in state to outputs (the C terms).
    state_decay_out = jnp.exp(A_cumsum).astype(x.dtype)  # (..., g, r, c, l)
    Y_off = jnp.einsum(
        "...clgn,...cgrpn,...grcl->...clgrp",
        Cc,
        starts.astype(x.dtype),
        state_decay_out,
        precision=precision,
    )
    y = (Y_diag + Y_off).reshape(*x.shape)
    return y[..., :num_steps, :, :, :], ends[..., -1, :, :, :, :]


def _chunked_no_decay(X, Bc, Cc, h0, padded_shape, num_steps, scan_method, precision):
    """The chunked algorithm with every decay 1 (linear attention): masks of ones, no exps."""
    length = X.shape[-4]
    tril = jnp.tril(jnp.ones((length, length), X.dtype))
    Y_diag = jnp.einsum(
        "...clgn,...csgn,ls,...csgrp->...clgrp", Cc, Bc, tril, X, precision=precision
    )
    states = jnp.einsum("...clgn,...clgrp->...cgrpn", Bc, X, precision=precision)
    ends = linear_recurrence(jnp.ones((), states.dtype), states, h0, method=scan_method, axis=-5)
    start = jnp.zeros_like(ends[..., :1, :, :, :, :]) if h0 is None else h0[..., None, :, :, :, :]
    starts = jnp.concatenate([start, ends[..., :-1, :, :, :, :]], axis=-5)
    Y_off = jnp.einsum(
        "...clgn,...cgrpn->...clgrp", Cc, starts.astype(X.dtype), precision=precision
    )
    y = (Y_diag + Y_off).reshape(*padded_shape)
    return y[..., :num_steps, :, :, :], ends[..., -1, :, :, :, :]
