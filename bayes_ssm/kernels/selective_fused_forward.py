"""The forward kernel of the fused selective scan with 2-D tiles, one state index at a time.

Same function as the forward of :mod:`bayes_ssm.kernels.selective_fused` (``y_t = C_t · h_t``
for ``h_t = exp(Δ_t A) ⊙ h_{t-1} + Δ_t x_t B_t``), organised like mamba_ssm's CUDA kernel:
one program per ``(batch, block of BD channels)`` walks time in chunks of ``L`` steps and,
for each state index ``n`` in turn (a static loop), scans the ``(L, BD)`` tile of decays
``exp(Δ A[:, n])`` and inputs ``Δ x B[:, n]`` along time (Triton's ``tt.scan``), adds the
carried-in state ``(BD,)`` and accumulates ``y += h C[:, n]``. Every tile is 2-D, so there
are no ``(L, BD, n)`` register tiles, no 3-D broadcasts and no reductions over ``n``; the
time axis of a tile can be long (``L`` = 64-512) so each program keeps many loads in flight.
``B[:, n]`` and ``C[:, n]`` are read as ``(L, BD)`` tiles of repeated addresses (one
``(L,)`` column broadcast over the channels without a layout change). The exponentials are
``exp2`` with ``log2(e)`` folded into ``A``.

For the backward pass (the recompute kernel of :mod:`bayes_ssm.kernels.selective_fused`,
which works in chunks of ``G`` steps) it can also write the state before every ``G``-step
sub-chunk: ``hb[(b · K + k) · d + c, n]`` = the state after step ``k G - 1`` (``k = 0``:
``h0``), ``K = ceil(T / L) · L / G + 1``; the state at each sub-chunk end is picked from the
scanned tile by a reshape ``(L / G, G, BD)`` and a masked sum over the middle axis.

Masked stores point their masked entries out of bounds (dropped by Pallas' interpreter,
which writes a masked store back as a read-modify-write, and never touched on a GPU).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from bayes_ssm.kernels.pallas_gpu import plgpu
from bayes_ssm.kernels.selective_fused_tiles import _iota, _last_row
from bayes_ssm.kernels.tile_scan import tile_scan

__all__ = ["ForwardCfg", "run_forward_by_state", "states_stride"]

_LOG2E = math.log2(math.e)


class ForwardCfg(NamedTuple):
    batch: int
    steps: int
    channels: int
    state: int
    chunk: int  # L
    block: int  # BD
    warps: int
    interpret: bool
    save_every: int  # G (0: do not write the sub-chunk states)

    @property
    def num_chunks(self):
        return -(-self.steps // self.chunk)

    @property
    def num_blocks(self):
        return -(-self.channels // self.block)


def states_stride(steps: int, chunk: int, save_every: int) -> int:
    """``K``: the sub-chunk states stored per batch row (``ceil(T / L) · L / G + 1``)."""
    return -(-steps // chunk) * (chunk // save_every) + 1


def _kernel(x_ref, dt_ref, A_ref, B_ref, C_ref, h0_ref, y_ref, hT_ref, *hb_ref, cfg):
    b, j = pl.program_id(0), pl.program_id(1)
    L, BD, N, T, D = cfg.chunk, cfg.block, cfg.state, cfg.steps, cfg.channels
    cols = j * BD + _iota(BD)
    colmask = cols < D
    safe_cols = jnp.where(colmask, cols, 0)
    state_rows_in = b * D + safe_cols  # rows of h0 / hT, (BD,)
    state_rows_out = jnp.where(colmask, b * D + cols, cfg.batch * D)  # masked: out of bounds

    def column(n, shape):
        return jnp.full(shape, n, jnp.int32)

    A2 = [
        plgpu.load(A_ref.at[safe_cols, column(n, (BD,))], mask=colmask, other=0.0) * _LOG2E
        for n in range(N)
    ]
    h_init = tuple(
        plgpu.load(h0_ref.at[state_rows_in, column(n, (BD,))], mask=colmask, other=0.0)
        for n in range(N)
    )
    if cfg.save_every:
        G = cfg.save_every
        sub = L // G
        K = states_stride(T, L, G)
        hb_ref = hb_ref[0]
        hb_out = jnp.where(colmask, cols, K * cfg.batch * D)  # masked: out of bounds
        for n in range(N):  # k = 0: the state before the first step
            plgpu.store(hb_ref.at[b * K * D + hb_out, column(n, (BD,))], h_init[n], mask=colmask)

    def chunk(c, hs):
        times = c * L + _iota(L)
        inside = times < T
        rows = b * T + jnp.clip(times, 0, T - 1)
        mask = inside[:, None] & colmask[None, :]
        x = plgpu.load(x_ref.at[rows[:, None], safe_cols[None, :]], mask=mask, other=0.0)
        dt = plgpu.load(dt_ref.at[rows[:, None], safe_cols[None, :]], mask=mask, other=0.0)
        dtx = dt * x
        row_mask = jnp.broadcast_to(inside[:, None], (L, BD))
        y = jnp.zeros((L, BD), jnp.float32)
        ends = []
        for n in range(N):
            Bn = plgpu.load(B_ref.at[rows[:, None], column(n, (L, BD))], mask=row_mask, other=0.0)
            Cn = plgpu.load(C_ref.at[rows[:, None], column(n, (L, BD))], mask=row_mask, other=0.0)
            decay = jnp.exp2(dt * A2[n][None, :])
            from_start, local = tile_scan(decay, dtx * Bn)
            h = local + from_start * hs[n][None, :]
            y = y + h * Cn
            ends.append(_last_row(h))
            if cfg.save_every:
                # The state after each G-step sub-chunk: the last row of each (G, BD) piece.
                pieces = h.reshape(sub, G, BD)
                is_end = _iota(None, (sub, G, BD), 1) == G - 1
                sub_ends = jnp.sum(jnp.where(is_end, pieces, jnp.zeros_like(pieces)), axis=1)
                k = c * sub + 1 + _iota(sub)
                hb_rows = (b * K + k)[:, None] * D + hb_out[None, :]
                plgpu.store(
                    hb_ref.at[hb_rows, column(n, (sub, BD))],
                    sub_ends,
                    mask=jnp.broadcast_to(colmask[None, :], (sub, BD)),
                )
        out_rows = jnp.where(mask, rows[:, None], cfg.batch * T)  # masked: out of bounds
        plgpu.store(y_ref.at[out_rows, safe_cols[None, :]], y, mask=mask)
        return tuple(ends)

    hs = lax.fori_loop(0, cfg.num_chunks, chunk, h_init)
    for n in range(N):
        plgpu.store(hT_ref.at[state_rows_out, column(n, (BD,))], hs[n], mask=colmask)


def run_forward_by_state(cfg: ForwardCfg, x, dt, A, B, C, h0):
    """``y (b·t, d)``, the final states ``(b·d, n)`` and, when ``cfg.save_every``, ``hb``.

    Inputs are float32 and flattened: ``x, dt (b·t, d)``, ``A (d, n)``, ``B, C (b·t, n)``,
    ``h0 (b·d, n)``. ``hb`` has shape ``(b · K · d, n)`` (:func:`states_stride`).
    """
    if cfg.save_every and cfg.chunk % cfg.save_every:
        raise ValueError(f"chunk {cfg.chunk} must be a multiple of save_every {cfg.save_every}")
    f32 = jnp.float32
    shapes = [
        jax.ShapeDtypeStruct((cfg.batch * cfg.steps, cfg.channels), f32),
        jax.ShapeDtypeStruct((cfg.batch * cfg.channels, cfg.state), f32),
    ]
    if cfg.save_every:
        K = states_stride(cfg.steps, cfg.chunk, cfg.save_every)
        shapes.append(jax.ShapeDtypeStruct((cfg.batch * K * cfg.channels, cfg.state), f32))
    out = pl.pallas_call(
        functools.partial(_kernel, cfg=cfg),
        out_shape=tuple(shapes),
        grid=(cfg.batch, cfg.num_blocks),
        interpret=cfg.interpret,
        compiler_params=plgpu.CompilerParams(num_warps=cfg.warps, num_stages=1),
        name="selective_scan_fused_fwd_by_state",
    )(x, dt, A, B, C, h0)
    if cfg.save_every:
        return out[0], out[1], out[2]
    return out[0], out[1], None
