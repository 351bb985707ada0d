"""Steps 2 + 3 of the chunked SSD in one Pallas GPU kernel: the state entering every chunk.

One program per (batch, head, block of ``BP`` head channels) walks the chunks in order with
the state ``(BP, n)`` in registers (float32). At each chunk it writes the state it enters
with, then adds the chunk's own contribution ``Σ_s exp(cs_last - cs_s) x_sᵀ B_s`` (matrix
products over ``BK``-row blocks) to the decayed state ``exp(cs_last) · state``. The chunk end
states of step 2 and the recurrence across chunks of step 3 never reach device memory; only the
``(b, c, h, p, n)`` chunk-start states that step 4 reads are written, once.

Its custom VJP differentiates the pure-JAX twin :func:`state_passing_reference` (the chunk
states by an einsum, the carry by :func:`bayes_ssm.kernels.linear_recurrence`), recomputed
from the inputs. Shapes: ``x (b, T, h, p)``, ``B (b, T, g, n)``, ``cs (b, h, T)`` the
within-chunk cumulative log decays (float32), ``h0 (b, h, p, n)``; ``T`` a multiple of the
chunk length.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from bayes_ssm.kernels.pallas_gpu import plgpu
from bayes_ssm.kernels.recurrence import linear_recurrence

__all__ = [
    "state_passing",
    "state_passing_reference",
    "chunk_state",
    "chunk_state_reference",
    "dot_f32",
    "scale_rows",
]


def dot_f32(a, b, contract_a=1, contract_b=0):
    """``a @ b`` contracting the given axes, accumulated in float32 (float64 for float64)."""
    acc = jnp.float64 if a.dtype == jnp.float64 else jnp.float32
    dims = (((contract_a,), (contract_b,)), ((), ()))
    return lax.dot_general(a, b, dims, preferred_element_type=acc)


def scale_rows(x, dt):
    """``x (b, T, h, p)`` times ``dt (b, h, T)`` (None: ``x``), in x's dtype."""
    if dt is None:
        return x
    return (x * jnp.moveaxis(dt, 1, 2)[..., None]).astype(x.dtype)


def chunk_state_reference(x, B, cs, chunk, precision=None, dt=None):
    """Step 2 in plain JAX: each chunk's end state from a zero start ``(b, c, h, p, n)``.

    ``dt (b, h, T)``, optional: the inputs are ``x * dt`` (the kernels scale inside).
    """
    x = scale_rows(x, dt)
    b, T, h, p = x.shape
    g, n = B.shape[-2:]
    c, r = T // chunk, h // g
    X = x.reshape(b, c, chunk, g, r, p)
    cs_h = jnp.moveaxis(cs.reshape(b, g, r, c, chunk), 3, 1)  # (b, c, g, r, l)
    to_end = jnp.moveaxis(jnp.exp(cs_h[..., -1:] - cs_h), -1, 2)  # (b, c, l, g, r)
    Xs = (X * to_end[..., None]).astype(x.dtype)
    Bc = B.reshape(b, c, chunk, g, n)
    states = jnp.einsum("bclgn,bclgrp->bcgrpn", Bc, Xs, precision=precision)
    return states.reshape(b, c, h, p, n).astype(jnp.float32)


def state_passing_reference(x, B, cs, h0, chunk, precision=None, dt=None):
    """Steps 2 + 3 in plain JAX: chunk-start states ``(b, c, h, p, n)`` and the final state."""
    b, T, h, _ = x.shape
    c = T // chunk
    states = chunk_state_reference(x, B, cs, chunk, precision, dt)
    decay = jnp.exp(cs.reshape(b, h, c, chunk)[..., -1])  # (b, h, c)
    ends = linear_recurrence(jnp.moveaxis(decay, 1, 2)[..., None, None], states, h0, axis=1)
    starts = jnp.concatenate([h0[:, None], ends[:, :-1]], axis=1)
    return starts, ends[:, -1]


class _Cfg(NamedTuple):
    chunk: int
    rows: int  # BK
    cols: int  # BP
    warps: int
    stages: int
    interpret: bool
    ratio: int  # heads per group
    scaled: bool = False  # x arrives unscaled, with its per-step scale dt (b, h, T)


def _row_scale(cs_ref, dt_ref, cs_last, t0, bk):
    """``exp(cs_last - cs_s)`` (times ``dt_s`` when given) for the rows ``t0 .. t0 + bk``."""
    decay = jnp.exp(cs_last - cs_ref[pl.ds(t0, bk)])
    return decay if dt_ref is None else decay * dt_ref[pl.ds(t0, bk)]


def _kernel(x_ref, B_ref, cs_ref, h0_ref, *refs, cfg):
    dt_ref, starts_ref, final_ref = refs if cfg.scaled else (None, *refs)
    bk, per = cfg.rows, cfg.chunk // cfg.rows
    num_chunks = starts_ref.shape[0]

    def one_chunk(ci, state):
        starts_ref[ci] = state
        base = ci * cfg.chunk
        cs_last = cs_ref[pl.ds(base + cfg.chunk - 1, 1)]  # (1,)

        def block(k, acc):
            t0 = base + k * bk
            xk = x_ref[pl.ds(t0, bk), :]  # (BK, BP)
            Bk = B_ref[pl.ds(t0, bk), :]  # (BK, n)
            decay = _row_scale(cs_ref, dt_ref, cs_last, t0, bk)
            return acc + dot_f32((xk * decay[:, None]).astype(xk.dtype), Bk, 0, 0)

        local = lax.fori_loop(0, per, block, jnp.zeros_like(state))
        return jnp.exp(cs_last)[:, None] * state + local

    final_ref[...] = lax.fori_loop(0, num_chunks, one_chunk, h0_ref[...])


def _run(cfg, x, B, cs, h0, dt):
    b, T, h, p = x.shape
    n = B.shape[-1]
    c, bp, r = T // cfg.chunk, cfg.cols, cfg.ratio
    acc = jnp.float64 if x.dtype == jnp.float64 else jnp.float32
    return pl.pallas_call(
        functools.partial(_kernel, cfg=cfg),
        out_shape=(
            jax.ShapeDtypeStruct((b, c, h, p, n), acc),
            jax.ShapeDtypeStruct((b, h, p, n), acc),
        ),
        grid=(b, h, p // bp),
        in_specs=[
            pl.BlockSpec((None, T, None, bp), lambda bi, hi, pj: (bi, 0, hi, pj)),
            pl.BlockSpec((None, T, None, n), lambda bi, hi, pj: (bi, 0, hi // r, 0)),
            pl.BlockSpec((None, None, T), lambda bi, hi, pj: (bi, hi, 0)),
            pl.BlockSpec((None, None, bp, n), lambda bi, hi, pj: (bi, hi, pj, 0)),
        ]
        + [pl.BlockSpec((None, None, T), lambda bi, hi, pj: (bi, hi, 0))] * cfg.scaled,
        out_specs=(
            pl.BlockSpec((None, c, None, bp, n), lambda bi, hi, pj: (bi, 0, hi, pj, 0)),
            pl.BlockSpec((None, None, bp, n), lambda bi, hi, pj: (bi, hi, pj, 0)),
        ),
        interpret=cfg.interpret,
        compiler_params=plgpu.CompilerParams(num_warps=cfg.warps, num_stages=cfg.stages),
        name="ssd_state_passing",
    )(x, B, cs, h0.astype(acc), *[dt] * cfg.scaled)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _passing(cfg, x, B, cs, h0, dt):
    return _run(cfg, x, B, cs, h0, dt)


def _passing_fwd(cfg, x, B, cs, h0, dt):
    return _run(cfg, x, B, cs, h0, dt), (x, B, cs, h0, dt)


def _passing_bwd(cfg, res, cotangents):
    twin = lambda x, B, cs, h0, dt: state_passing_reference(x, B, cs, h0, cfg.chunk, dt=dt)  # noqa: E731
    _, vjp = jax.vjp(twin, *res)
    return vjp(cotangents)


_passing.defvjp(_passing_fwd, _passing_bwd)


def _columns(b, h, p, min_programs=264):
    """``BP``: halve the channel block (down to 16) until there are enough programs."""
    bp = min(p, 64)
    while bp > 16 and b * h * (p // bp) < min_programs:
        bp //= 2
    return bp


def state_passing(x, B, cs, h0, chunk, *, dt=None, tile=None, interpret=False):
    """Chunk-start states ``(b, c, h, p, n)`` and the final state ``(b, h, p, n)``, fused.

    ``tile = (BK, BP, warps, stages)``; default ``(min(64, chunk), auto, 4, 2)`` with ``BP``
    halved from ``min(p, 64)`` until ``b h p / BP`` >= 264 programs (two per multiprocessor).
    """
    b, T, h, p = x.shape
    rows, cols, warps, stages = tile or (64, None, 4, 2)
    cols = min(cols or _columns(b, h, p), p)
    ratio = h // B.shape[-2]
    cfg = _Cfg(chunk, min(rows, chunk), cols, warps, stages, bool(interpret), ratio, dt is not None)
    return _passing(cfg, x, B, cs, h0, dt)


# --------------------------------------------------------------------------------------------
# Step 2 alone (the form measured on the GPU; step 3 then runs in XLA)
# --------------------------------------------------------------------------------------------


def _chunk_state_kernel(x_ref, B_ref, cs_ref, *refs, cfg):
    dt_ref, out_ref = refs if cfg.scaled else (None, refs[0])
    bk = cfg.rows
    cs_last = cs_ref[pl.ds(cfg.chunk - 1, 1)]  # (1,)

    def block(k, acc):
        xk = x_ref[pl.ds(k * bk, bk), :]  # (BK, p)
        Bk = B_ref[pl.ds(k * bk, bk), :]  # (BK, n)
        decay = _row_scale(cs_ref, dt_ref, cs_last, k * bk, bk)  # (BK,)
        return acc + dot_f32((xk * decay[:, None]).astype(xk.dtype), Bk, 0, 0)

    zeros = jnp.zeros(out_ref.shape, out_ref.dtype)
    out_ref[...] = lax.fori_loop(0, cfg.chunk // bk, block, zeros)


def _run_chunk_state(cfg, x, B, cs, dt):
    b, T, h, p = x.shape
    n = B.shape[-1]
    c, r = T // cfg.chunk, cfg.ratio
    acc = jnp.float64 if x.dtype == jnp.float64 else jnp.float32
    return pl.pallas_call(
        functools.partial(_chunk_state_kernel, cfg=cfg),
        out_shape=jax.ShapeDtypeStruct((b, c, h, p, n), acc),
        grid=(b, c, h),
        in_specs=[
            pl.BlockSpec((None, cfg.chunk, None, p), lambda bi, ci, hi: (bi, ci, hi, 0)),
            pl.BlockSpec((None, cfg.chunk, None, n), lambda bi, ci, hi: (bi, ci, hi // r, 0)),
            pl.BlockSpec((None, None, cfg.chunk), lambda bi, ci, hi: (bi, hi, ci)),
        ]
        + [pl.BlockSpec((None, None, cfg.chunk), lambda bi, ci, hi: (bi, hi, ci))] * cfg.scaled,
        out_specs=pl.BlockSpec((None, None, None, p, n), lambda bi, ci, hi: (bi, ci, hi, 0, 0)),
        interpret=cfg.interpret,
        compiler_params=plgpu.CompilerParams(num_warps=cfg.warps, num_stages=cfg.stages),
        name="ssd_chunk_state",
    )(x, B, cs, *[dt] * cfg.scaled)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _chunk_state(cfg, x, B, cs, dt):
    return _run_chunk_state(cfg, x, B, cs, dt)


def _chunk_state_fwd(cfg, x, B, cs, dt):
    return _run_chunk_state(cfg, x, B, cs, dt), (x, B, cs, dt)


def _chunk_state_bwd(cfg, res, dstates):
    twin = lambda x, B, cs, dt: chunk_state_reference(x, B, cs, cfg.chunk, dt=dt)  # noqa: E731
    _, vjp = jax.vjp(twin, *res)
    return vjp(dstates)


_chunk_state.defvjp(_chunk_state_fwd, _chunk_state_bwd)


def chunk_state(x, B, cs, chunk, *, dt=None, interpret=False):
    """Step 2 by a kernel: each chunk's end state from a zero start ``(b, c, h, p, n)``.

    One program per (batch, chunk, head) accumulates ``Σ_s exp(cs_last - cs_s) x_sᵀ B_s``
    over 64-row blocks (4 warps, 2 stages), without the ``x``-sized scaled copy XLA writes.
    """
    ratio, scaled = x.shape[-2] // B.shape[-2], dt is not None
    cfg = _Cfg(chunk, min(64, chunk), x.shape[-1], 4, 2, bool(interpret), ratio, scaled)
    return _chunk_state(cfg, x, B, cs, dt)
