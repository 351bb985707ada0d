"""Step 3 of the chunked SSD as one Pallas GPU kernel: the carry of the state across chunks.

Given each chunk's end state from a zero start (step 2, ``states (b, c, h, p, n)``, float32)
and each chunk's total decay ``decay (b, h, c)``, the state entering chunk ``k`` is

``start_0 = h0``, ``start_{k+1} = decay_k · start_k + states_k``

(Mamba-2's Triton ``state_passing`` kernel). One program per (batch, head, block of ``BLOCK``
entries of the flattened ``(p, n)`` state) walks the chunks in order with its block of the state
in registers, writing each chunk's start state once: the chunk-start states are read by step 4
straight from this output, with no concatenation and no log-depth scan over ``(b, c, h, p, n)``
arrays (what :func:`~bayes_ssm.kernels.linear_recurrence` does in XLA).

Its custom VJP differentiates the pure-JAX twin :func:`chunk_carry_reference`, recomputed.
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

__all__ = ["chunk_carry", "chunk_carry_reference"]


def chunk_carry_reference(states, decay, h0, scan_method="auto"):
    """Step 3 in plain JAX: chunk-start states ``(b, c, h, p, n)`` and the final state.

    ``states (b, c, h, p, n)``, ``decay (b, h, c)``, ``h0 (b, h, p, n)``.
    """
    a = jnp.moveaxis(decay, 1, 2)[..., None, None].astype(states.dtype)  # (b, c, h, 1, 1)
    ends = linear_recurrence(a, states, h0.astype(states.dtype), method=scan_method, axis=1)
    starts = jnp.concatenate([h0[:, None].astype(ends.dtype), ends[:, :-1]], axis=1)
    return starts, ends[:, -1]


class _Cfg(NamedTuple):
    block: int
    warps: int
    interpret: bool
    starts_dtype: str  # the chunk-start states' dtype in memory


def _kernel(states_ref, decay_ref, h0_ref, starts_ref, final_ref):
    def one_chunk(ci, state):
        starts_ref[ci] = state.astype(starts_ref.dtype)
        return decay_ref[pl.ds(ci, 1)] * state + states_ref[ci]

    final_ref[...] = lax.fori_loop(0, states_ref.shape[0], one_chunk, h0_ref[...])


def _run(cfg, states, decay, h0):
    b, c, h, p, n = states.shape
    size, blk = p * n, cfg.block
    flat = states.reshape(b, c, h, size)
    starts, final = pl.pallas_call(
        _kernel,
        out_shape=(
            jax.ShapeDtypeStruct((b, c, h, size), cfg.starts_dtype),
            jax.ShapeDtypeStruct((b, h, size), states.dtype),
        ),
        grid=(b, h, size // blk),
        in_specs=[
            pl.BlockSpec((None, c, None, blk), lambda bi, hi, j: (bi, 0, hi, j)),
            pl.BlockSpec((None, None, c), lambda bi, hi, j: (bi, hi, 0)),
            pl.BlockSpec((None, None, blk), lambda bi, hi, j: (bi, hi, j)),
        ],
        out_specs=(
            pl.BlockSpec((None, c, None, blk), lambda bi, hi, j: (bi, 0, hi, j)),
            pl.BlockSpec((None, None, blk), lambda bi, hi, j: (bi, hi, j)),
        ),
        interpret=cfg.interpret,
        compiler_params=plgpu.CompilerParams(num_warps=cfg.warps, num_stages=2),
        name="ssd_chunk_carry",
    )(flat, decay.astype(states.dtype), h0.reshape(b, h, size).astype(states.dtype))
    return starts.reshape(states.shape), final.reshape(b, h, p, n)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _carry(cfg, states, decay, h0):
    return _run(cfg, states, decay, h0)


def _carry_fwd(cfg, states, decay, h0):
    return _run(cfg, states, decay, h0), (states, decay, h0)


def _carry_bwd(cfg, res, cotangents):
    starts, final = cotangents
    _, vjp = jax.vjp(chunk_carry_reference, *res)
    return vjp((starts.astype(res[0].dtype), final))


_carry.defvjp(_carry_fwd, _carry_bwd)


def chunk_carry(states, decay, h0, *, block=1024, warps=4, starts_dtype=None, interpret=False):
    """Chunk-start states ``(b, c, h, p, n)`` and the final state ``(b, h, p, n)``, by a kernel.

    Parameters
    ----------
    states : Array, shape ``(b, c, h, p, n)``
        Each chunk's end state from a zero start (float32).
    decay : Array, shape ``(b, h, c)``
        Each chunk's total decay ``exp(Σ log a)`` over its steps.
    h0 : Array, shape ``(b, h, p, n)``
        The state entering the first chunk.
    block : int
        Entries of the flattened ``(p, n)`` state per program (a power of two; capped at
        ``p n``).
    warps : int
        Warps per program.
    starts_dtype : dtype, optional
        The chunk-start states' dtype in memory (default: ``states``'); the carry itself and the
        final state stay in ``states``' dtype. bfloat16 halves step 4's reads at no cost in
        accuracy where step 4 rounds the states to bfloat16 anyway.
    interpret : bool
        Run in Pallas' interpreter (CPU tests).
    """
    size = states.shape[-2] * states.shape[-1]
    block = min(block, size)
    if size % block:
        raise ValueError(f"block={block} must divide p * n = {size}")
    starts_dtype = jnp.dtype(starts_dtype or states.dtype).name
    return _carry(_Cfg(block, warps, bool(interpret), starts_dtype), states, decay, h0)
