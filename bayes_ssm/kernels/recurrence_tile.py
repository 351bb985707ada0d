"""Tile bookkeeping shared by the Pallas recurrence kernels (see :mod:`.recurrence_pallas`).

A launch is described by a hashable :class:`_Config`; a program owns one ``(L, BD)`` tile
(``L`` steps x ``BD`` channels). Exchange values between programs travel as integer bit
patterns, with a NaN payload that arithmetic never produces as the "not published" mark.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import pallas as pl

from bayes_ssm.kernels.pallas_gpu import plgpu

# Bit patterns marking "not published yet": NaNs with a payload that no arithmetic produces
# (GPUs produce 0x7fffffff; we store canonical NaNs 0x7fc00000 / 0x7ff8...).
_SENTINEL = {np.dtype(np.float32): 0x7FBADBAD, np.dtype(np.float64): 0x7FF4DEADBEEFBAD0}
_BITS = {np.dtype(np.float32): jnp.int32, np.dtype(np.float64): jnp.int64}
# Storage dtypes read and written in HBM while the scan runs in float32 (bf16 storage, float32
# accumulation): half the traffic of float32.
_NARROW = (np.dtype(jnp.bfloat16), np.dtype(np.float16))


class _Config:
    """Static description of one kernel launch (hashable, used as a cache key)."""

    def __init__(
        self, steps, channels, dtype, reverse, a_shift, chunk, block, warps, interpret,
        io_dtype=None,
    ):  # fmt: skip
        self.steps = steps
        self.channels = channels
        self.dtype = np.dtype(dtype)  # the scan's (accumulation) dtype: float32 or float64
        # the dtype of a, b and h in memory: dtype, or bfloat16/float16 with float32 scans
        self.io_dtype = self.dtype if io_dtype is None else np.dtype(io_dtype)
        self.reverse = reverse
        self.a_shift = a_shift
        self.chunk = chunk
        self.block = block
        self.warps = warps
        self.interpret = interpret
        # Tests only: publish inclusive states for every n-th chunk, so that walks must fold.
        self.publish_every = 1
        self.num_chunks = -(-steps // chunk)
        self.num_cols = -(-channels // block)
        self.num_tiles = self.num_chunks * self.num_cols

    def _key(self):
        return (
            self.steps,
            self.channels,
            self.dtype,
            self.io_dtype,
            self.reverse,
            self.a_shift,
            self.chunk,
            self.block,
            self.warps,
            self.interpret,
            self.publish_every,
        )

    def __hash__(self):
        return hash(self._key())

    def __eq__(self, other):
        return isinstance(other, _Config) and self._key() == other._key()


def _tile_indices(cfg, chunk, col):
    """Row / column indices ``(L, BD)`` of a tile, and its masks."""
    L, BD, T = cfg.chunk, cfg.block, cfg.steps
    step = chunk * L + lax.broadcasted_iota(jnp.int32, (L, BD), 0)  # position in scan order
    rows = (T - 1) - step if cfg.reverse else step
    cols = pl.multiple_of(col * BD, BD) + lax.broadcasted_iota(jnp.int32, (L, BD), 1)
    mask = (step < T) & (cols < cfg.channels)
    return rows, cols, mask


def _load_tile(cfg, a_ref, b_ref, chunk, col):
    rows, cols, mask = _tile_indices(cfg, chunk, col)
    one = jnp.ones((), cfg.io_dtype)
    zero = jnp.zeros((), cfg.io_dtype)
    if cfg.a_shift:
        a_rows = rows + cfg.a_shift
        a_mask = mask & (a_rows >= 0) & (a_rows < cfg.steps)
    else:
        a_rows, a_mask = rows, mask
    a = plgpu.load(a_ref.at[a_rows, cols], mask=a_mask, other=one).astype(cfg.dtype)
    b = plgpu.load(b_ref.at[rows, cols], mask=mask, other=zero).astype(cfg.dtype)
    return a, b, rows, cols, mask


def _last_row(cfg, x):
    """Row ``L - 1`` of an ``(L, BD)`` tile (a masked sum: registers cannot be indexed)."""
    is_last = lax.broadcasted_iota(jnp.int32, x.shape, 0) == x.shape[0] - 1
    return jnp.sum(jnp.where(is_last, x, jnp.zeros_like(x)), axis=0)


def _index_dtype():
    return jnp.asarray(0).dtype  # int32, or int64 under x64


def _to_bits(cfg, x):
    x = jnp.where(x != x, jnp.full_like(x, jnp.nan), x)  # canonical NaN, never the sentinel
    return lax.bitcast_convert_type(x, _BITS[cfg.dtype])


def _from_bits(cfg, bits):
    return lax.bitcast_convert_type(bits, cfg.dtype)


def _load_h0(cfg, h0_ref, col):
    cols = pl.multiple_of(col * cfg.block, cfg.block) + lax.iota(jnp.int32, cfg.block)
    return plgpu.load(h0_ref.at[cols], mask=cols < cfg.channels, other=jnp.zeros((), cfg.dtype))
