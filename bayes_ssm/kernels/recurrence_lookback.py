"""The single-pass kernel with decoupled look-back (Merrill & Garland 2016).

One program per ``(L, BD)`` tile, in atomic-ticket order; each publishes its aggregate, walks
back over its predecessors' published values and publishes its inclusive state. The algorithm
and its exactness conditions are described in :mod:`bayes_ssm.kernels.recurrence_pallas`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from bayes_ssm.kernels.pallas_gpu import plgpu
from bayes_ssm.kernels.recurrence_tile import (
    _BITS,
    _SENTINEL,
    _from_bits,
    _index_dtype,
    _last_row,
    _load_h0,
    _load_tile,
    _to_bits,
)
from bayes_ssm.kernels.tile_scan import tile_scan as _tile_scan


def _agree(cfg, bits, sentinel):
    """Make the copies of a loaded exchange row agree across warps (see recurrence_pallas).

    With several warps, Triton may give each warp its own copy of a ``(BD,)`` row, loaded at
    its own time, so one warp may see a value published that another still sees as the
    sentinel. A maximum over the time axis of the broadcast ``(L, BD)`` tile (the axis the
    warps split) goes through shared memory, so every warp gets the same answer: published
    if any copy saw it published, with the published bits (one store wrote them).
    """
    if cfg.warps == 1:
        return bits
    shape = (cfg.chunk, cfg.block)
    low = jnp.asarray(jnp.iinfo(bits.dtype).min, bits.dtype)
    published = bits != sentinel
    seen = jnp.max(jnp.broadcast_to(published.astype(jnp.int32)[None, :], shape), axis=0)
    value = jnp.max(jnp.broadcast_to(jnp.where(published, bits, low)[None, :], shape), axis=0)
    return jnp.where(seen > 0, value, sentinel)


def _lookback_kernel(
    a_ref, b_ref, h0_ref, _cnt_in, _inc_in, _aga_in, _agb_in,
    h_ref, cnt_ref, inc_ref, aga_ref, agb_ref, *, cfg,
):  # fmt: skip
    sentinel = jnp.asarray(_SENTINEL[cfg.dtype], _BITS[cfg.dtype])
    tile = plgpu.atomic_add(cnt_ref, (jnp.zeros((), jnp.int32),), jnp.int32(1))
    chunk = tile // cfg.num_cols
    col = tile - chunk * cfg.num_cols
    tile = tile.astype(_index_dtype())  # ref index: match static slice starts (int64 under x64)

    a, b, rows, cols, mask = _load_tile(cfg, a_ref, b_ref, chunk, col)
    A, H = _tile_scan(a, b)
    A_last = _last_row(cfg, A)
    H_last = _last_row(cfg, H)

    # Publish the aggregate (not for the first chunk: the walk must stop there).
    first = jnp.broadcast_to(chunk == 0, (cfg.block,))
    plgpu.store(aga_ref.at[tile], _to_bits(cfg, A_last), mask=~first)
    plgpu.store(agb_ref.at[tile], _to_bits(cfg, H_last), mask=~first)

    def waiting(carry):
        _, done, *_ = carry
        return jnp.min(done) == 0

    def look_back(carry):
        j, done, acc_a, acc_b, h_in = carry
        inc = _agree(cfg, plgpu.load(inc_ref.at[j], volatile=True), sentinel)
        ag_a = _agree(cfg, plgpu.load(aga_ref.at[j], volatile=True), sentinel)
        ag_b = _agree(cfg, plgpu.load(agb_ref.at[j], volatile=True), sentinel)
        need = done == 0
        inc_ok = inc != sentinel
        agg_ok = (ag_a != sentinel) & (ag_b != sentinel)
        # Lanes whose predecessor is finished take its inclusive state and stop.
        use_inc = need & inc_ok
        h_in = jnp.where(use_inc, acc_a * _from_bits(cfg, inc) + acc_b, h_in)
        # The others fold in its aggregate and look one chunk further back, once every such
        # lane has one (the walk position j is shared by the lanes).
        stuck = need & ~inc_ok & ~agg_ok
        advance = jnp.max(stuck.astype(jnp.int32)) == 0
        use_agg = need & ~inc_ok & advance
        acc_b = jnp.where(use_agg, acc_a * _from_bits(cfg, ag_b) + acc_b, acc_b)
        acc_a = jnp.where(use_agg, acc_a * _from_bits(cfg, ag_a), acc_a)
        done = jnp.where(use_inc, 1, done)
        j = jnp.where(advance, j - cfg.num_cols, j)
        return j, done, acc_a, acc_b, h_in

    carry = (
        tile - cfg.num_cols,
        first.astype(jnp.int32),
        jnp.ones((cfg.block,), cfg.dtype),
        jnp.zeros((cfg.block,), cfg.dtype),
        _load_h0(cfg, h0_ref, col),
    )
    *_, h_in = lax.while_loop(waiting, look_back, carry)

    publish = jnp.broadcast_to(chunk % cfg.publish_every == 0, (cfg.block,))
    plgpu.store(inc_ref.at[tile], _to_bits(cfg, A_last * h_in + H_last), mask=publish)
    h = H + A * h_in[None, :]
    plgpu.store(h_ref.at[rows, cols], h.astype(cfg.io_dtype), mask=mask)


def _run_lookback(cfg, a, b, h0):
    bits = _BITS[cfg.dtype]
    state = jnp.full((cfg.num_tiles, cfg.block), _SENTINEL[cfg.dtype], bits)
    shapes = (
        jax.ShapeDtypeStruct((cfg.steps, cfg.channels), cfg.io_dtype),
        jax.ShapeDtypeStruct((1,), jnp.int32),
        *(jax.ShapeDtypeStruct(state.shape, bits),) * 3,
    )
    h, *_ = pl.pallas_call(
        functools.partial(_lookback_kernel, cfg=cfg),
        out_shape=shapes,
        grid=(cfg.num_tiles,),
        input_output_aliases={3: 1, 4: 2, 5: 3, 6: 4},
        interpret=cfg.interpret,
        compiler_params=plgpu.CompilerParams(num_warps=cfg.warps, num_stages=1),
        name="linear_recurrence_lookback",
    )(a, b, h0, jnp.zeros((1,), jnp.int32), state, state, state)
    return h
