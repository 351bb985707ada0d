"""The backward kernel of the fused selective scan with 2-D tiles, one state index at a time.

The adjoint of :mod:`bayes_ssm.kernels.selective_fused` (same formulas as its backward
kernel) organised like :mod:`bayes_ssm.kernels.selective_fused_forward`: one program per
``(batch, block of BD channels)`` walks the chunks of ``L`` steps from the last and, for each
state index ``n`` in turn, works on ``(L, BD)`` tiles:

1. recompute the chunk's states ``h_t`` for this ``n`` in time order from the stored
   chunk-start state (a forward scan), and bring ``h_{t-1}`` into reversed time order by an
   exact product with a permutation matrix (``precision=HIGHEST``: IEEE float32, products by
   0 and 1);
2. the adjoint ``λ_t = C_t ȳ_t + exp(Δ_{t+1} A) λ_{t+1}`` as a forward scan over the chunk's
   inputs loaded in reversed row order;
3. accumulate ``s = Σ_n λ B`` and ``Σ_n A q`` (``q = λ h_{t-1} e^{Δ A}``) for ``x̄ = Δ s`` and
   ``Δ̄ = x s + Σ_n A q``; write ``B̄[:, n] = Σ_d λ Δ x`` and ``C̄[:, n] = Σ_d ȳ h`` (partial
   sums per channel block, added by XLA) and sum ``Ā[:, n] = Σ_t Δ q`` in registers.

The stored states ``hb`` are those of the forward kernel: row ``(b · K + c) · d + channel``
holds the state before chunk ``c``.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from bayes_ssm.kernels.pallas_gpu import plgpu
from bayes_ssm.kernels.selective_fused_tiles import _iota, _last_row
from bayes_ssm.kernels.tile_scan import tile_scan

__all__ = ["run_backward_by_state"]

_LOG2E = math.log2(math.e)


def _reverse_shifted(h, first):
    """Row ``i`` is row ``L - 2 - i`` of ``h (L, BD)``; row ``L - 1`` is ``first (BD,)``."""
    L = h.shape[0]
    perm = (_iota(None, (L, L), 1) == (L - 2) - _iota(None, (L, L), 0)).astype(h.dtype)
    out = jnp.dot(perm, h, precision=lax.Precision.HIGHEST)
    return jnp.where(_iota(None, h.shape, 0) == L - 1, first[None, :], out)


def _kernel(
    x_ref, dt_ref, A_ref, B_ref, C_ref, hb_ref, gy_ref, ghT_ref,
    dx_ref, ddt_ref, dA_ref, dB_ref, dC_ref, dh0_ref, *, cfg,
):  # fmt: skip
    b, j = pl.program_id(0), pl.program_id(1)
    L, BD, N, T, D = cfg.chunk, cfg.block, cfg.state, cfg.steps, cfg.channels
    K = cfg.states_per_batch
    cols = j * BD + _iota(BD)
    colmask = cols < D
    safe_cols = jnp.where(colmask, cols, 0)
    out_state_rows = jnp.where(colmask, b * D + cols, cfg.batch * D)  # masked: out of bounds
    partial_row0 = (b * cfg.num_blocks + j) * T
    partial_oob = cfg.batch * cfg.num_blocks * T

    def column(n, shape):
        return jnp.full(shape, n, jnp.int32)

    A = [
        plgpu.load(A_ref.at[safe_cols, column(n, (BD,))], mask=colmask, other=0.0) for n in range(N)
    ]
    A2 = [a * _LOG2E for a in A]
    lam_init = tuple(
        plgpu.load(ghT_ref.at[b * D + safe_cols, column(n, (BD,))], mask=colmask, other=0.0)
        for n in range(N)
    )
    zeros_bd = tuple(jnp.zeros((BD,), jnp.float32) for _ in range(N))

    def load_rows(ref, times):
        inside = (times >= 0) & (times < T)
        rows = b * T + jnp.clip(times, 0, T - 1)
        mask = inside[:, None] & colmask[None, :]
        return plgpu.load(ref.at[rows[:, None], safe_cols[None, :]], mask=mask, other=0.0)

    def load_column(ref, times, n):
        inside = (times >= 0) & (times < T)
        rows = b * T + jnp.clip(times, 0, T - 1)
        mask = jnp.broadcast_to(inside[:, None], (L, BD))
        return plgpu.load(ref.at[rows[:, None], column(n, (L, BD))], mask=mask, other=0.0)

    def chunk(i, carry):
        lam_next, dA_acc = carry
        c = cfg.num_chunks - 1 - i
        fwd_t = c * L + _iota(L)
        rev_t = c * L + (L - 1) - _iota(L)
        x_f, dt_f = load_rows(x_ref, fwd_t), load_rows(dt_ref, fwd_t)
        x, dt, gy = load_rows(x_ref, rev_t), load_rows(dt_ref, rev_t), load_rows(gy_ref, rev_t)
        dt_next = load_rows(dt_ref, rev_t + 1)  # 0 (decay 1) past the end
        dtx_f, dtx = dt_f * x_f, dt * x
        s = jnp.zeros((L, BD), jnp.float32)
        qa = jnp.zeros((L, BD), jnp.float32)
        rev_inside = rev_t < T
        part_rows = jnp.where(rev_inside, partial_row0 + rev_t, partial_oob)
        new_lam, new_dA = [], []
        for n in range(N):
            hb_rows = (b * K + c) * D + safe_cols
            h_in = plgpu.load(hb_ref.at[hb_rows, column(n, (BD,))], mask=colmask, other=0.0)
            decay_f = jnp.exp2(dt_f * A2[n][None, :])
            acc, local = tile_scan(decay_f, dtx_f * load_column(B_ref, fwd_t, n))
            h_prev = _reverse_shifted(local + acc * h_in[None, :], h_in)
            Bn, Cn = load_column(B_ref, rev_t, n), load_column(C_ref, rev_t, n)
            decay = jnp.exp2(dt * A2[n][None, :])
            decay_next = jnp.exp2(dt_next * A2[n][None, :])
            acc_r, lam_local = tile_scan(decay_next, gy * Cn)
            lam = lam_local + acc_r * lam_next[n][None, :]
            h = decay * h_prev + dtx * Bn
            q = lam * h_prev * decay
            s = s + lam * Bn
            qa = qa + q * A[n][None, :]
            dB = jnp.sum(lam * dtx, axis=1)
            dC = jnp.sum(gy * h, axis=1)
            plgpu.store(dB_ref.at[part_rows, column(n, (L,))], dB, mask=rev_inside)
            plgpu.store(dC_ref.at[part_rows, column(n, (L,))], dC, mask=rev_inside)
            new_dA.append(dA_acc[n] + jnp.sum(q * dt, axis=0))
            new_lam.append(_last_row(lam))
        mask = rev_inside[:, None] & colmask[None, :]
        out_rows = jnp.where(mask, b * T + rev_t[:, None], cfg.batch * T)
        plgpu.store(dx_ref.at[out_rows, safe_cols[None, :]], s * dt, mask=mask)
        plgpu.store(ddt_ref.at[out_rows, safe_cols[None, :]], s * x + qa, mask=mask)
        return tuple(new_lam), tuple(new_dA)

    lam0, dA_acc = lax.fori_loop(0, cfg.num_chunks, chunk, (lam_init, zeros_bd))
    dt0 = jnp.sum(load_rows(dt_ref, _iota(1)), axis=0)  # (BD,): the first step
    for n in range(N):
        at = (out_state_rows, column(n, (BD,)))
        plgpu.store(dA_ref.at[at], dA_acc[n], mask=colmask)
        plgpu.store(dh0_ref.at[at], jnp.exp2(dt0 * A2[n]) * lam0[n], mask=colmask)


def run_backward_by_state(cfg, x, dt, A, B, C, hb, gy, ghT):
    """``dx, ddt (b·t, d)``, ``dA (b·d, n)`` per batch row, partial ``dB, dC`` per channel
    block ``(b · blocks · t, n)`` and ``dh0 (b·d, n)``, as the ``tile3d`` backward returns them.
    """
    f32 = jnp.float32
    bt = cfg.batch * cfg.steps
    partial = (cfg.batch * cfg.num_blocks * cfg.steps, cfg.state)
    state = (cfg.batch * cfg.channels, cfg.state)
    shapes = (
        jax.ShapeDtypeStruct((bt, cfg.channels), f32),  # dx
        jax.ShapeDtypeStruct((bt, cfg.channels), f32),  # ddt
        jax.ShapeDtypeStruct(state, f32),  # dA per batch
        jax.ShapeDtypeStruct(partial, f32),  # dB per channel block
        jax.ShapeDtypeStruct(partial, f32),  # dC per channel block
        jax.ShapeDtypeStruct(state, f32),  # dh0
    )
    return pl.pallas_call(
        functools.partial(_kernel, cfg=cfg),
        out_shape=shapes,
        grid=(cfg.batch, cfg.num_blocks),
        interpret=cfg.interpret,
        compiler_params=plgpu.CompilerParams(num_warps=cfg.warps, num_stages=1),
        name="selective_scan_fused_bwd_by_state",
    )(x, dt, A, B, C, hb, gy, ghT)
