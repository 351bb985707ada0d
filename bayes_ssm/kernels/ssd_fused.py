"""The chunked SSD algorithm with its two heavy steps as fused Pallas GPU kernels.

Same four steps and same result as :func:`bayes_ssm.kernels.ssd_algorithms.chunked_form`
(``ssd_minimal.py``), written so that no ``(chunk, l, l)`` tensor ever reaches device memory:

1 + 4. ``chunk_scan`` (one kernel, like Mamba-2's Triton ``chunk_scan``): one program per
   (batch, chunk, head, block of ``BM`` output rows) computes, in registers,
   ``Y = exp(cs_t) (C · start) + Σ_{s <= t} (C_t · B_s) exp(cs_t - cs_s) X_s``: it walks the
   ``BK``-row blocks of the chunk up to the diagonal, forms ``C Bᵀ`` for the block pair,
   multiplies by the decay mask made from the within-chunk cumulative log decays ``cs``, and
   accumulates the product with ``X``. The ``(l, l)`` masked matrix (537 MB in float32 at
   b8 L4096 H32 chunk 128 in the reference form) is never written.
2 + 3. ``state_passing`` (:mod:`bayes_ssm.kernels.ssd_state_passing`): the chunk states and
   the carry across chunks in one kernel that walks the chunks with the state in registers and
   writes only the chunk-start states; or step 2 by ``chunk_state`` (parallel over chunks) and
   the carry across chunks by the carry kernel (:mod:`bayes_ssm.kernels.ssd_carry`, Mamba-2's
   ``state_passing``) or by :func:`~bayes_ssm.kernels.linear_recurrence`. Which form and which
   ``chunk_scan`` tile ``ssd`` runs is a measured row per (dtype, state size):
   :func:`fused_config`.

The step sizes ``Δ`` of :func:`~bayes_ssm.kernels.ssd` enter the kernels unapplied (``dt``):
``chunk_scan`` scales the columns of its mask and the state kernels their decays, so the
scaled copy ``Δ x`` is never written and bfloat16 ``x`` stays bfloat16 beside float32 ``Δ``.

Matrix products take the inputs' dtype (bfloat16 operands accumulate in float32; float32 uses
TF32 on the GPU, like XLA's default precision and Mamba-2's Triton kernels); the decays are
float32. Each kernel has a custom VJP whose backward pass is the VJP of its pure-JAX twin
(:func:`chunk_scan_reference`,
:func:`~bayes_ssm.kernels.ssd_state_passing.state_passing_reference`), recomputed from the
inputs, so gradients equal the reference form's. On a CPU the kernels run in Pallas' interpreter
(``interpret=True``), which is how the tests check them against the twins.

Shapes: ``x (..., t, g, r, p)``, ``log_a (..., t, g, r)``, ``B, C (..., t, g, n)``,
``h0 (..., g, r, p, n)`` as in :mod:`bayes_ssm.kernels.ssd_algorithms`. The kernels need
powers of two for the chunk length, ``p`` and ``n`` (:func:`fused_shape_supported`).
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
from bayes_ssm.kernels.ssd_carry import chunk_carry
from bayes_ssm.kernels.ssd_state_passing import chunk_state, dot_f32, scale_rows, state_passing

__all__ = [
    "chunked_form_fused",
    "chunk_scan",
    "chunk_scan_reference",
    "fused_shape_supported",
    "DEFAULT_SSD_TILE",
    "fused_config",
]

# Tile of the chunk_scan kernel: (rows per block BM, warps, pipeline stages[, shared C Bᵀ 1/0
# [, columns per inner block BK]]); the shared C Bᵀ is made once per group by XLA (default:
# off unless >= SHARED_CB_RATIO heads per group), BK defaults to BM and must divide it.
# When ``ssd`` runs the kernels, the tile and whether steps 2 + 3 run in the state-passing kernel
# come from the measured row of (dtype, state size) in _FUSED_CONFIG; DEFAULT_SSD_TILE and
# USE_STATE_PASSING, when set (benchmarks, tests), override it.
FALLBACK_SSD_TILE = (64, 4, 2)
DEFAULT_SSD_TILE = None
SHARED_CB_RATIO = None
USE_STATE_PASSING = None


class _Cfg(NamedTuple):
    chunk: int
    rows: int  # BM = BK
    warps: int
    stages: int
    interpret: bool
    ratio: int  # heads per group r
    shared_cb: bool  # C Bᵀ per group by XLA, read by the kernel (else recomputed per head)
    scaled: bool  # x arrives unscaled, with its per-step scale dt (b, h, T)
    kblock: int  # BK: columns of the mask per inner step (divides BM)


def _pow2(v):
    return v > 0 and v & (v - 1) == 0


def fused_shape_supported(chunk: int, head_dim: int, state: int) -> bool:
    """Whether the kernels take this chunk length ``l``, head size ``p`` and state size ``n``.

    Triton tiles need powers of two of at least 16 (the matrix units' smallest tile) and the
    ``(BM, n)`` / ``(p, n)`` tiles must fit in registers: ``p, n <= 128``.
    """
    return (
        all(_pow2(v) and v >= 16 for v in (chunk, head_dim, state)) and max(head_dim, state) <= 128
    )


def _params(cfg, warps=None):
    return plgpu.CompilerParams(num_warps=warps or cfg.warps, num_stages=cfg.stages)


# --------------------------------------------------------------------------------------------
# Pure-JAX twins. x (b, T, h, p); B, C (b, T, g, n); cs (b, h, T) float32 within-chunk
# cumulative log decays; starts (b, c, h, p, n).
# --------------------------------------------------------------------------------------------


def _split(x, B, cs, chunk):
    b, T, h, p = x.shape
    g, n = B.shape[-2:]
    c, r = T // chunk, h // g
    X = x.reshape(b, c, chunk, g, r, p)
    cs_h = jnp.moveaxis(cs.reshape(b, g, r, c, chunk), 3, 1)  # (b, c, g, r, l)
    return X, cs_h, (b, c, g, r, n, p)


def chunk_scan_reference(x, B, C, cs, starts, chunk, precision=None, dt=None):
    """Steps 1 + 4 in plain JAX: ``y (b, T, h, p)`` (the slow twin of :func:`chunk_scan`).

    ``dt (b, h, T)``, optional: the inputs are ``x * dt`` (the kernel scales inside).
    """
    x = scale_rows(x, dt)
    X, cs_h, (b, c, g, r, n, p) = _split(x, B, cs, chunk)
    Bc = B.reshape(b, c, chunk, g, n)
    Cc = C.reshape(b, c, chunk, g, n)
    G = jnp.einsum("bclgn,bcsgn->bcgls", Cc, Bc, precision=precision)
    lower = jnp.tril(jnp.ones((chunk, chunk), bool))
    seg = jnp.where(lower, cs_h[..., :, None] - cs_h[..., None, :], -jnp.inf)
    M = (G[:, :, :, None] * jnp.exp(seg)).astype(x.dtype)  # (b, c, g, r, l, s)
    y = jnp.einsum("bcgrls,bcsgrp->bclgrp", M, X, precision=precision)
    st = starts.reshape(b, c, g, r, p, n).astype(x.dtype)
    off = jnp.einsum("bclgn,bcgrpn->bclgrp", Cc, st, precision=precision)
    y = y + off * jnp.moveaxis(jnp.exp(cs_h), -1, 2)[..., None]
    return y.reshape(x.shape).astype(x.dtype)


# --------------------------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------------------------


def _decay_mask(rows_t, rows_s, cs_t, cs_s):
    seg = jnp.where(rows_t[:, None] >= rows_s[None, :], cs_t[:, None] - cs_s[None, :], -jnp.inf)
    return jnp.exp(seg)


def _chunk_scan_kernel(x_ref, B_ref, C_ref, cs_ref, st_ref, *refs, cfg):
    dt_ref, y_ref = refs if cfg.scaled else (None, refs[0])
    m = pl.program_id(3)
    bm = cfg.rows
    rows = m * bm + lax.iota(jnp.int32, bm)
    Cm = C_ref[pl.ds(m * bm, bm), :]  # (BM, n)
    cs_m = cs_ref[pl.ds(m * bm, bm)]  # (BM,)
    start = st_ref[...]  # (p, n)
    acc = dot_f32(Cm, start.astype(Cm.dtype), 1, 1) * jnp.exp(cs_m)[:, None]

    bk = cfg.kblock

    def block(k, acc):
        xk = x_ref[pl.ds(k * bk, bk), :]  # (BK, p)
        cs_k = cs_ref[pl.ds(k * bk, bk)]
        if cfg.shared_cb:  # B_ref holds this group's C Bᵀ (l, l), float32
            G = B_ref[pl.ds(m * bm, bm), pl.ds(k * bk, bk)]
        else:
            G = dot_f32(Cm, B_ref[pl.ds(k * bk, bk), :], 1, 1)  # (BM, BK), float32
        cols = k * bk + lax.iota(jnp.int32, bk)
        M = G * _decay_mask(rows, cols, cs_m, cs_k)
        if cfg.scaled:  # x * dt: scale the columns of the mask instead (as Triton does)
            M = M * dt_ref[pl.ds(k * bk, bk)][None, :]
        M = M.astype(xk.dtype)
        return acc + dot_f32(M, xk)

    acc = lax.fori_loop(0, (m + 1) * (bm // bk), block, acc)
    y_ref[...] = acc.astype(y_ref.dtype)


def _run_chunk_scan(cfg, x, B, C, cs, starts, dt):
    b, T, h, p = x.shape
    n = B.shape[-1]
    c, bm = T // cfg.chunk, cfg.rows
    per = cfg.chunk // bm
    r = cfg.ratio
    whole = lambda width: pl.BlockSpec(  # noqa: E731
        (None, cfg.chunk, None, width), lambda bi, ci, hi, mi: (bi, ci, hi // r, 0)
    )
    second, second_spec = B, whole(n)
    if cfg.shared_cb:  # one (l, l) C Bᵀ per (batch, chunk, group), shared by its r heads
        g, length = B.shape[-2], cfg.chunk
        Bc, Cc = (z.reshape(b, c, length, g, n) for z in (B, C))
        second = jnp.einsum("bclgn,bcsgn->bcgls", Cc, Bc, preferred_element_type=jnp.float32)
        second_spec = pl.BlockSpec(
            (None, None, None, length, length), lambda bi, ci, hi, mi: (bi, ci, hi // r, 0, 0)
        )
    per_step = pl.BlockSpec((None, None, cfg.chunk), lambda bi, ci, hi, mi: (bi, hi, ci))
    return pl.pallas_call(
        functools.partial(_chunk_scan_kernel, cfg=cfg),
        out_shape=jax.ShapeDtypeStruct(x.shape, x.dtype),
        grid=(b, c, h, per),
        in_specs=[
            pl.BlockSpec((None, cfg.chunk, None, p), lambda bi, ci, hi, mi: (bi, ci, hi, 0)),
            second_spec,
            whole(n),
            per_step,
            pl.BlockSpec((None, None, None, p, n), lambda bi, ci, hi, mi: (bi, ci, hi, 0, 0)),
        ]
        + [per_step] * cfg.scaled,
        out_specs=pl.BlockSpec(
            (None, bm, None, p), lambda bi, ci, hi, mi: (bi, ci * per + mi, hi, 0)
        ),
        interpret=cfg.interpret,
        compiler_params=_params(cfg),
        name="ssd_chunk_scan",
    )(x, second, C, cs, starts, *[dt] * cfg.scaled)


# --------------------------------------------------------------------------------------------
# Custom VJPs: forward by the kernel, backward by the twin's VJP (recomputed)
# --------------------------------------------------------------------------------------------


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _chunk_scan(cfg, x, B, C, cs, starts, dt):
    return _run_chunk_scan(cfg, x, B, C, cs, starts, dt)


def _chunk_scan_fwd(cfg, x, B, C, cs, starts, dt):
    return _run_chunk_scan(cfg, x, B, C, cs, starts, dt), (x, B, C, cs, starts, dt)


def _chunk_scan_bwd(cfg, res, dy):
    *res, dt = res
    twin = lambda x, B, C, cs, st, dt: chunk_scan_reference(x, B, C, cs, st, cfg.chunk, dt=dt)  # noqa: E731
    _, vjp = jax.vjp(twin, *res, dt)
    return vjp(dy)


_chunk_scan.defvjp(_chunk_scan_fwd, _chunk_scan_bwd)


def _cfg(x, B, chunk, tile, interpret, scaled=False):
    rows, warps, stages, *extra = tile
    ratio = x.shape[-2] // B.shape[-2]
    if extra:
        shared = bool(extra[0])
    else:
        shared = SHARED_CB_RATIO is not None and ratio >= SHARED_CB_RATIO
    rows = min(rows, chunk)
    kblock = min(extra[1], rows) if len(extra) > 1 else rows
    if rows % kblock or kblock < 16:
        raise ValueError(f"the inner block BK={kblock} must divide BM={rows} and be >= 16")
    return _Cfg(chunk, rows, warps, stages, bool(interpret), ratio, shared, scaled, kblock)


def fused_config(dtype, state: int):
    """``(tile, passing)`` for the fused path: the measured row of (dtype, state size ``n``).

    ``passing``: True (steps 2 + 3 in the state-passing kernel), ``"carry"`` (chunk states and
    the carry kernel) or False (chunk states and the XLA carry).

    Rows not measured get ``FALLBACK_SSD_TILE`` and the chunk-state form; the module's
    ``DEFAULT_SSD_TILE`` / ``USE_STATE_PASSING``, when set, override both.
    """
    size = "small" if state <= 64 else "large"
    tile, passing = _FUSED_CONFIG.get((jnp.dtype(dtype).name, size), (FALLBACK_SSD_TILE, False))
    tile = tile if DEFAULT_SSD_TILE is None else DEFAULT_SSD_TILE
    passing = passing if USE_STATE_PASSING is None else USE_STATE_PASSING
    return tuple(tile), passing if passing == "carry" else bool(passing)


def chunk_scan(x, B, C, cs, starts, chunk, *, dt=None, tile=None, interpret=False):
    """Steps 1 + 4 by the fused kernel: ``y (b, T, h, p)``; arguments as the twin's."""
    tile = tile or fused_config(x.dtype, B.shape[-1])[0]
    cfg = _cfg(x, B, chunk, tile, interpret, dt is not None)
    return _chunk_scan(cfg, x, B, C, cs, starts, dt)


# --------------------------------------------------------------------------------------------
# The chunked form
# --------------------------------------------------------------------------------------------


def chunked_form_fused(
    x, log_a, B, C, h0, chunk_size, scan_method="auto", *, tile=None, passing=None,
    x_scale=None, interpret=False,
):  # fmt: skip
    """The chunked form with fused kernels; arguments and result as ``chunked_form``.

    ``x_scale (..., t, g, r)``, optional: the inputs are ``x * x_scale`` (the step sizes
    ``Δ`` of :func:`~bayes_ssm.kernels.ssd`), applied inside the kernels, so the scaled copy of
    ``x`` is never written (and bfloat16 ``x`` stays bfloat16 with float32 ``Δ``).

    ``log_a`` must not be None (no decay: use ``chunked_form``, which needs no masks).
    ``passing=True`` runs steps 2 + 3 in the state-passing kernel (``scan_method`` unused);
    ``passing="carry"`` runs step 2 by :func:`~bayes_ssm.kernels.ssd_state_passing.chunk_state`
    and step 3 by :func:`~bayes_ssm.kernels.ssd_carry.chunk_carry` (Mamba-2's structure);
    ``False`` runs step 2 by ``chunk_state`` and the carry across chunks by
    :func:`~bayes_ssm.kernels.linear_recurrence` (``scan_method``). ``None``: the measured row
    (:func:`fused_config`).
    """
    *batch, T, g, r, p = x.shape
    n = B.shape[-1]
    h = g * r
    length = min(chunk_size, 1 << max(0, T - 1).bit_length())
    c = -(-T // length)
    pad = c * length - T
    flat = lambda z, tail: z.reshape(-1, *z.shape[len(batch) :])  # noqa: E731, ARG005
    xf = flat(x, 4).reshape(-1, T, h, p)
    Bf, Cf = flat(B, 3), flat(C, 3)
    la = flat(log_a, 3).reshape(-1, T, h).astype(jnp.float32)
    sc = None if x_scale is None else flat(x_scale, 3).reshape(-1, T, h).astype(jnp.float32)
    if pad:  # padded steps (decay 1, zero input) change neither outputs nor the final state
        widths = lambda z: [(0, 0), (0, pad)] + [(0, 0)] * (z.ndim - 2)  # noqa: E731
        xf, Bf, Cf, la = (jnp.pad(z, widths(z)) for z in (xf, Bf, Cf, la))
        sc = None if sc is None else jnp.pad(sc, widths(sc))
    nb = xf.shape[0]
    sc = None if sc is None else jnp.moveaxis(sc, 2, 1)  # (b, h, T)
    cs = jnp.cumsum(la.reshape(nb, c, length, h), axis=2)  # within-chunk, float32
    cs = jnp.moveaxis(cs, 3, 1).reshape(nb, h, c * length)  # (b, h, T)
    init = jnp.zeros((nb, h, p, n)) if h0 is None else h0.reshape(nb, h, p, n)
    default_tile, default_passing = fused_config(x.dtype, n)
    tile = tile or default_tile
    form = default_passing if passing is None else passing
    if form == "carry":  # step 2 by a kernel, step 3 by the carry kernel
        states = chunk_state(xf, Bf, cs, length, dt=sc, interpret=interpret)
        decay = jnp.exp(cs.reshape(nb, h, c, length)[..., -1])  # (b, h, c)
        narrow = x.dtype if jnp.dtype(x.dtype).itemsize < 4 else None  # step 4 rounds to it
        starts, final = chunk_carry(states, decay, init, starts_dtype=narrow, interpret=interpret)
    elif form:  # steps 2 + 3 in one kernel
        starts, final = state_passing(xf, Bf, cs, init, length, dt=sc, interpret=interpret)
    else:  # step 2 by a kernel, step 3 by XLA
        states = chunk_state(xf, Bf, cs, length, dt=sc, interpret=interpret)
        decay = jnp.exp(cs.reshape(nb, h, c, length)[..., -1])  # (b, h, c)
        ends = linear_recurrence(
            jnp.moveaxis(decay, 1, 2)[..., None, None], states, init.astype(states.dtype),
            method=scan_method, axis=1,
        )  # fmt: skip
        starts = jnp.concatenate([init[:, None].astype(ends.dtype), ends[:, :-1]], axis=1)
        final = ends[:, -1]
    # The chunk-start states stay float32 in memory (bfloat16 / float16 from the carry kernel,
    # which writes them once); chunk_scan rounds them to x's dtype in registers either way.
    y = chunk_scan(xf, Bf, Cf, cs, starts, length, dt=sc, tile=tile, interpret=interpret)
    y = y[:, :T].reshape(x.shape)
    final = final.reshape(*batch, g, r, p, n).astype(x.dtype)
    return y, final


# --------------------------------------------------------------------------------------------
# When ``fused="auto"`` runs the kernels
# --------------------------------------------------------------------------------------------

# GPU (dtype, state size) rows where the fused form measured faster than the XLA chunked form,
# with the tile and step-2+3 form measured fastest there (benchmarks/ssd_fused.py, jax 0.11.2;
# benchmarks/README.md, "Kernels on the H200, session 8" and "..., session 10").
# "large" (n > 64) at b8 L4096 H32 P64 N128, chunk 256, forward ms:
#   float32 64x4x2x1 + state passing: 1.654 on an H200 (chunk-state form 1.836; XLA 4.324);
#     session 10, H100: 1.519-1.580 (+ carry kernel 1.725; 128-row tiles 2.35-2.42).
#   bfloat16 128x4x4x0x32 + chunk_state + carry kernel (session 10, H100, two runs): 0.788 /
#     0.861 against 1.228 / 1.204 for session 8's 64x4x2 chunk-state form (H200: 1.081;
#     state passing 1.16-1.22; XLA 3.708); Triton's forward in the same run 1.475 ms (CUDA
#     events) / 1.251 (wall clock).
# "small" (n <= 64) at b2 L4096 H16 P64 N64 (chunk 128 float32, 64 bfloat16; H200, session 8):
#   float32 32x4x2 0.235 (XLA 0.596); bfloat16 64x4x2 0.247 (XLA 0.419).
_FUSED_CONFIG = {
    ("float32", "large"): ((64, 4, 2, 1), True),
    ("bfloat16", "large"): ((128, 4, 4, 0, 32), "carry"),
    ("float32", "small"): ((32, 4, 2, 0), False),
    ("bfloat16", "small"): ((64, 4, 2, 0), False),
}
