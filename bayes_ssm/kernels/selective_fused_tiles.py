"""Tile helpers of the fused selective-scan kernels (:mod:`.selective_fused` and the
``by_state`` kernels): index vectors, masked row loads and stores, state blocks.

Arrays are 2-D: ``x, dt, y`` ``(b * t, d)``; ``B, C`` ``(b * t, n)``; ``A`` ``(d, n)``; states
(rows of ``(b, ...) x d``, ``n``). ``cfg`` is any launch description with ``steps``,
``channels``, ``state`` and ``block``.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from bayes_ssm.kernels.pallas_gpu import plgpu


def _iota(n, shape=None, dim=0):
    if shape is None:
        return lax.iota(jnp.int32, n)
    return lax.broadcasted_iota(jnp.int32, shape, dim)


def _cols(cfg, j):
    cols = j * cfg.block + _iota(cfg.block)
    return cols, cols < cfg.channels


def _load_rows(cfg, ref, b, times, cols, colmask, width=None):
    """``ref[b * t + times, cols]`` as ``(L, BD)`` (``(L, n)`` when ``width``), 0 outside."""
    inside = (times >= 0) & (times < cfg.steps)
    rows = b * cfg.steps + jnp.clip(times, 0, cfg.steps - 1)
    if width is not None:
        idx = _iota(width)
        mask = inside[:, None] & (idx[None, :] < width)
        return plgpu.load(ref.at[rows[:, None], idx[None, :]], mask=mask, other=0.0)
    mask = inside[:, None] & colmask[None, :]
    return plgpu.load(ref.at[rows[:, None], cols[None, :]], mask=mask, other=0.0)


def _store_rows(cfg, ref, row0, times, cols, colmask, value, width=None):
    # Unclipped rows: masked rows past the end must not repeat a real row's index (Pallas'
    # interpreter writes a masked store back as a read-modify-write).
    inside = (times >= 0) & (times < cfg.steps)
    rows = row0 + times
    if width is not None:
        idx = _iota(width)
        plgpu.store(ref.at[rows[:, None], idx[None, :]], value, mask=inside[:, None])
    else:
        mask = inside[:, None] & colmask[None, :]
        plgpu.store(ref.at[rows[:, None], cols[None, :]], value, mask=mask)


def _state_ref(cfg, ref, row0, cols, colmask, store=False):
    """The ``(BD, n)`` block ``ref[row0 + cols, :]`` of a ``(rows, n)`` state array.

    For a store, masked channels point out of bounds: a masked entry must not repeat a real
    one's index (Pallas' interpreter writes a masked store back as a read-modify-write).
    """
    idx = _iota(cfg.state)
    rows = row0 + jnp.where(colmask, cols, 0)
    if store:
        rows = jnp.where(colmask, rows, ref.shape[0])
    return ref.at[rows[:, None], idx[None, :]], colmask[:, None] & (idx[None, :] >= 0)


def _last_row(x):
    is_last = _iota(None, x.shape, 0) == x.shape[0] - 1
    return jnp.sum(jnp.where(is_last, x, jnp.zeros_like(x)), axis=0)


def _chunk_terms(cfg, x, dt, Bm, A):
    """Decays ``exp(Δ A)`` and inputs ``Δ x B`` of one chunk, ``(L, BD, n)`` each."""
    decay = jnp.exp(dt[:, :, None] * A[None, :, :])
    inputs = (dt * x)[:, :, None] * Bm[:, None, :]
    return decay, inputs
