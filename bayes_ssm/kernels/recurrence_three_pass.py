"""The three-pass variant: tile aggregates, a scan across chunks, a re-scan of every tile.

No communication between programs; reads ``a`` and ``b`` twice (five arrays' worth of traffic
instead of three). See :mod:`bayes_ssm.kernels.recurrence_pallas`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from bayes_ssm.kernels.pallas_gpu import plgpu
from bayes_ssm.kernels.recurrence_tile import _index_dtype, _last_row, _load_tile
from bayes_ssm.kernels.tile_scan import combine as _combine
from bayes_ssm.kernels.tile_scan import tile_scan as _tile_scan


def _aggregate_kernel(a_ref, b_ref, aga_ref, agb_ref, *, cfg):
    chunk, col = pl.program_id(0), pl.program_id(1)
    a, b, *_ = _load_tile(cfg, a_ref, b_ref, chunk, col)
    A, H = _tile_scan(a, b)
    row = chunk.astype(_index_dtype())
    aga_ref[row, :] = _last_row(cfg, A)
    agb_ref[row, :] = _last_row(cfg, H)


def _finish_kernel(a_ref, b_ref, start_ref, h_ref, *, cfg):
    chunk, col = pl.program_id(0), pl.program_id(1)
    a, b, rows, cols, mask = _load_tile(cfg, a_ref, b_ref, chunk, col)
    A, H = _tile_scan(a, b)
    h_in = start_ref[chunk.astype(_index_dtype()), :]
    plgpu.store(h_ref.at[rows, cols], (H + A * h_in[None, :]).astype(cfg.io_dtype), mask=mask)


def _run_three_pass(cfg, a, b, h0):
    grid = (cfg.num_chunks, cfg.num_cols)
    width = cfg.num_cols * cfg.block
    params = plgpu.CompilerParams(num_warps=cfg.warps, num_stages=1)
    row_block = pl.BlockSpec((cfg.num_chunks, cfg.block), lambda i, j: (0, j))
    agg_shape = jax.ShapeDtypeStruct((cfg.num_chunks, width), cfg.dtype)
    full = pl.BlockSpec((cfg.steps, cfg.channels), lambda i, j: (0, 0))
    agg_a, agg_b = pl.pallas_call(
        functools.partial(_aggregate_kernel, cfg=cfg),
        out_shape=(agg_shape, agg_shape),
        grid=grid,
        in_specs=[full, full],
        out_specs=[row_block, row_block],
        interpret=cfg.interpret,
        compiler_params=params,
        name="linear_recurrence_aggregates",
    )(a, b)
    h0 = jnp.pad(h0, (0, width - cfg.channels))
    carried_b = agg_b.at[0].add(agg_a[0] * h0)
    _, ends = lax.associative_scan(_combine, (agg_a, carried_b), axis=0)
    starts = jnp.concatenate([h0[None], ends[:-1]])
    return pl.pallas_call(
        functools.partial(_finish_kernel, cfg=cfg),
        out_shape=jax.ShapeDtypeStruct((cfg.steps, cfg.channels), cfg.io_dtype),
        grid=grid,
        in_specs=[full, full, row_block],
        out_specs=full,
        interpret=cfg.interpret,
        compiler_params=params,
        name="linear_recurrence_finish",
    )(a, b, starts)
