"""A Pallas (Triton) GPU kernel for the diagonal linear recurrence ``h_t = a_t * h_{t-1} + b_t``.

:func:`linear_recurrence_pallas` computes the same function as
:func:`bayes_ssm.kernels.linear_recurrence` for real ``(time, channel)`` arrays, in one pass
over memory: ``a`` and ``b`` are read once and ``h`` is written once, the least traffic any
algorithm can move (``lax.associative_scan`` moves several times more).

Algorithm (single pass, decoupled look-back; Merrill & Garland 2016)
--------------------------------------------------------------------
Time is cut into chunks of ``L`` steps and channels into blocks of ``BD``; one program owns
one ``(L, BD)`` tile. Each program

1. takes a ticket from an atomic counter; tickets run chunk-major, so every tile with a
   smaller ticket (all its predecessors in time) has already started. This is what makes the
   waiting below free of deadlock, whatever order the GPU schedules programs in;
2. loads its tile into registers and scans it in time with the associative operator

   .. math:: (a_1, b_1) \\circ (a_2, b_2) = (a_1 a_2,\\; a_2 b_1 + b_2)

   (Triton's ``tt.scan``), giving the decay ``A_t`` from the chunk start and the state
   ``H_t`` reached from a zero state. The last row is the tile's *aggregate*
   ``(A_L, H_L)``: the affine map from the state before the chunk to the state after it;
3. publishes its aggregate, then walks back over the predecessors of its channel block:
   a predecessor that has published its *inclusive* state (the true state after its chunk)
   ends the walk; one that has published only its aggregate is folded in and the walk goes
   one chunk further back; one that has published nothing yet is waited for. (Reading a
   window of 4-32 predecessors per step, as CUB does, was measured slower here: the walk
   rarely goes past the first predecessor, and the wider step costs registers.)
4. publishes its own inclusive state ``A_L h_in + H_L`` (which unblocks its successors), and
   writes ``h_t = H_t + A_t h_in`` for its tile.

Status travels inside the values: the three exchange arrays (aggregate decays, aggregate
states, inclusive states; one row of ``BD`` per tile) start filled with a NaN bit pattern
that arithmetic never produces, and a value is "published" once its bits differ from it
(published NaNs are canonicalised first). A 32- or 64-bit store is single-copy atomic and
the readers use volatile loads, so no memory fences are needed. Padding rows beyond the
series (``a = 1``, ``b = 0``) and channels beyond ``C`` are masked.

One condition keeps this exact: Triton may give several threads copies of one channel's
exchange values, and each copy is loaded separately; the walk's decisions (how far back to
go) are reductions that read one copy. Copies in one warp are loaded by one instruction and
agree; copies in different warps are loaded at different times and may not (seen on an H100:
NaNs with 4 warps and 64 channels per tile). So the look-back uses at most one warp per
``32 x 16`` bytes of channels (one warp for ``BD = 32`` float32), and rejects more.

``method="three_pass"`` is the simpler variant with no communication between programs: one
kernel writes every tile's aggregate, :func:`jax.lax.associative_scan` carries the state
across chunks, a second kernel re-scans each tile from its carried-in state. It reads ``a``
and ``b`` twice (five arrays' worth of traffic instead of three).

Gradients (a :func:`jax.custom_vjp`) run the same kernel backwards in time on the
cotangents, with the decays shifted by one step: for the forward recurrence,

.. math:: \\lambda_t = \\bar h_t + a_{t+1} \\lambda_{t+1}, \\quad
          \\bar b_t = \\lambda_t, \\quad \\bar a_t = \\lambda_t h_{t-1}, \\quad
          \\bar h_0 = a_1 \\lambda_1 .

On a CPU (tests, CI) the kernels run in Pallas' interpreter with ``interpret=True``, where
the programs run one after another, so the walk would always stop at the nearest
predecessor; the tests make it fold aggregates by publishing only some inclusive states.

Dimension vocabulary: ``time`` x ``channel``; callers flatten batch and channel axes into
``channel`` (a free reshape once time is the leading axis).
"""

from __future__ import annotations

import functools
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

__all__ = ["linear_recurrence_pallas", "pallas_supported", "DEFAULT_TILE"]

# (chunk length L, channel block BD, warps): tuned on an H100 at T = 2**20, C = 256, float32
# (benchmarks/scan_pallas.py).
DEFAULT_TILE = (64, 32, 1)

# Bit patterns marking "not published yet": NaNs with a payload that no arithmetic produces
# (GPUs produce 0x7fffffff; we store canonical NaNs 0x7fc00000 / 0x7ff8...).
_SENTINEL = {np.dtype(np.float32): 0x7FBADBAD, np.dtype(np.float64): 0x7FF4DEADBEEFBAD0}
_BITS = {np.dtype(np.float32): jnp.int32, np.dtype(np.float64): jnp.int64}


# --------------------------------------------------------------------------------------------
# The in-tile scan: a primitive lowered to Triton's tt.scan on the GPU and to
# lax.associative_scan everywhere else (the interpreter).
# --------------------------------------------------------------------------------------------


def _combine(left, right):
    """(a1, b1) ∘ (a2, b2) = (a1 a2, a2 b1 + b2): apply ``left`` first, then ``right``."""
    a1, b1 = left
    a2, b2 = right
    return a1 * a2, a2 * b1 + b2


def _tile_scan_impl(a, b):
    return lax.associative_scan(_combine, (a, b), axis=0)


try:  # jax.extend is the public home of Primitive; fall back for older versions.
    from jax.extend.core import Primitive as _Primitive
except ImportError:  # pragma: no cover
    from jax.core import Primitive as _Primitive

_tile_scan_p = _Primitive("bayes_ssm_tile_scan")
_tile_scan_p.multiple_results = True
_tile_scan_p.def_impl(lambda a, b: _tile_scan_impl(a, b))
_tile_scan_p.def_abstract_eval(lambda a, b: (a, b))


def _register_lowerings():
    from jax.interpreters import mlir

    mlir.register_lowering(_tile_scan_p, mlir.lower_fun(_tile_scan_impl, multiple_results=True))
    try:  # private JAX API (checked with jax 0.11.2 and 0.12): see pallas_supported
        from jax._src.pallas.triton import lowering as triton_lowering

        scan_lowering = triton_lowering._associative_scan_lowering
    except (ImportError, AttributeError):  # pragma: no cover - a JAX without it
        return False

    @triton_lowering.register_lowering(_tile_scan_p)
    def _tile_scan_triton(ctx, a, b):
        # Triton's scan calls the combine region with (earlier, later), like _combine; its
        # `reverse` flag is not used (wrong for non-commutative operators, triton#4362).
        return scan_lowering(_combine, ctx, (a, b), (0,))

    return True


_TRITON_SCAN = _register_lowerings()


def pallas_supported(dtype, backend: str | None = None) -> bool:
    """Whether :func:`linear_recurrence_pallas` can compile for ``dtype`` on ``backend``.

    True on a GPU backend for float32 / float64 when this JAX exposes the (private) Triton
    lowering hook the in-tile scan uses. A dispatcher should fall back to
    ``lax.associative_scan`` otherwise (complex dtypes, CPU, TPU, a JAX without the hook).
    """
    backend = backend or jax.default_backend()
    return _TRITON_SCAN and backend == "gpu" and np.dtype(dtype) in _BITS


def _tile_scan(a, b):
    """Inclusive scan of ``(a, b)`` along axis 0 of an ``(L, BD)`` tile: ``(A_t, H_t)``."""
    return _tile_scan_p.bind(a, b)


# --------------------------------------------------------------------------------------------
# Tile helpers shared by the kernels.
# --------------------------------------------------------------------------------------------


class _Config:
    """Static description of one kernel launch (hashable, used as a cache key)."""

    def __init__(
        self, steps, channels, dtype, reverse, a_shift, chunk, block, warps, interpret
    ):  # fmt: skip
        self.steps = steps
        self.channels = channels
        self.dtype = np.dtype(dtype)
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
    one = jnp.ones((), cfg.dtype)
    zero = jnp.zeros((), cfg.dtype)
    if cfg.a_shift:
        a_rows = rows + cfg.a_shift
        a_mask = mask & (a_rows >= 0) & (a_rows < cfg.steps)
    else:
        a_rows, a_mask = rows, mask
    a = plgpu.load(a_ref.at[a_rows, cols], mask=a_mask, other=one)
    b = plgpu.load(b_ref.at[rows, cols], mask=mask, other=zero)
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


# --------------------------------------------------------------------------------------------
# Single pass with decoupled look-back.
# --------------------------------------------------------------------------------------------


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
        inc = plgpu.load(inc_ref.at[j], volatile=True)
        ag_a = plgpu.load(aga_ref.at[j], volatile=True)
        ag_b = plgpu.load(agb_ref.at[j], volatile=True)
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
    plgpu.store(h_ref.at[rows, cols], h, mask=mask)


def _run_lookback(cfg, a, b, h0):
    bits = _BITS[cfg.dtype]
    state = jnp.full((cfg.num_tiles, cfg.block), _SENTINEL[cfg.dtype], bits)
    shapes = (
        jax.ShapeDtypeStruct((cfg.steps, cfg.channels), cfg.dtype),
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


# --------------------------------------------------------------------------------------------
# Three passes: aggregates, a scan across chunks, re-scan from the carried-in state.
# --------------------------------------------------------------------------------------------


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
    plgpu.store(h_ref.at[rows, cols], H + A * h_in[None, :], mask=mask)


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
        out_shape=jax.ShapeDtypeStruct((cfg.steps, cfg.channels), cfg.dtype),
        grid=grid,
        in_specs=[full, full, row_block],
        out_specs=full,
        interpret=cfg.interpret,
        compiler_params=params,
        name="linear_recurrence_finish",
    )(a, b, starts)


# --------------------------------------------------------------------------------------------
# Public function and its gradient.
# --------------------------------------------------------------------------------------------


def _run(cfg, method, a, b, h0):
    return (_run_lookback if method == "lookback" else _run_three_pass)(cfg, a, b, h0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _recurrence(cfg, method, a, b, h0):
    return _run(cfg, method, a, b, h0)


def _recurrence_fwd(cfg, method, a, b, h0):
    h = _run(cfg, method, a, b, h0)
    return h, (a, h, h0)


def _recurrence_bwd(cfg, method, residuals, g_h):
    a, h, h0 = residuals
    # The adjoint runs the other way in time, with the decay of the step it came from.
    adjoint_cfg = _Config(
        cfg.steps, cfg.channels, cfg.dtype, not cfg.reverse, -1 if cfg.reverse else 1,
        cfg.chunk, cfg.block, cfg.warps, cfg.interpret,
    )  # fmt: skip
    lam = _run(adjoint_cfg, method, a, g_h, jnp.zeros_like(h0))
    if cfg.reverse:  # h_t = a_t h_{t+1} + b_t
        h_prev = jnp.concatenate([h[1:], h0[None]])
        g_h0 = a[-1] * lam[-1]
    else:
        h_prev = jnp.concatenate([h0[None], h[:-1]])
        g_h0 = a[0] * lam[0]
    return lam * h_prev, lam, g_h0


_recurrence.defvjp(_recurrence_fwd, _recurrence_bwd)


def _next_pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def linear_recurrence_pallas(
    a,
    b,
    h0=None,
    *,
    reverse: bool = False,
    chunk_size: int | None = None,
    block_channels: int | None = None,
    num_warps: int | None = None,
    method: Literal["lookback", "three_pass"] = "lookback",
    interpret: bool = False,
):
    """``h_t = a_t * h_{t-1} + b_t`` over the time axis of ``(time, channel)`` arrays, on a GPU.

    Parameters
    ----------
    a : Array, shape ``(time, channel)``
        Decays, float32 or float64.
    b : Array, shape ``(time, channel)``
        Inputs, same dtype as ``a``.
    h0 : Array, shape ``(channel,)``, optional
        State before the first step (after the last one when ``reverse``); zero by default.
    reverse : bool
        Run from the last step to the first: ``h_t = a_t * h_{t+1} + b_t``.
    chunk_size : int, optional
        Steps per tile (a power of two; default 128). Need not divide ``time``.
    block_channels : int, optional
        Channels per tile (a power of two; default 32).
    num_warps : int, optional
        Warps per program (default 4).
    method : {"lookback", "three_pass"}
        ``"lookback"``: one pass over memory (the default). ``"three_pass"``: aggregates,
        a scan across chunks, a re-scan (reads ``a`` and ``b`` twice; no inter-program
        communication).
    interpret : bool
        Run the kernel in Pallas' interpreter (any backend; slow; for tests).

    Returns
    -------
    Array, shape ``(time, channel)``
        All states ``h_1 .. h_T``. Differentiable (custom VJP) in ``a``, ``b`` and ``h0``.

    Raises
    ------
    ValueError
        Arrays that are not 2-D of one shape, an empty time axis, a dtype other than
        float32/float64 (complex: use ``linear_recurrence(method="associative")``), tile
        sizes that are not powers of two, or an unknown ``method``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> a, b = jnp.full((4, 1), 0.5), jnp.ones((4, 1))
    >>> linear_recurrence_pallas(a, b, interpret=True)[:, 0]
    Array([1.   , 1.5  , 1.75 , 1.875], dtype=float32)
    """
    if method not in ("lookback", "three_pass"):
        raise ValueError(f"method must be 'lookback' or 'three_pass', got {method!r}")
    a = jnp.asarray(a)
    b = jnp.asarray(b)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(
            f"a and b must be (time, channel) arrays of one shape; got a.shape={a.shape}, "
            f"b.shape={b.shape}"
        )
    steps, channels = b.shape
    if steps == 0 or channels == 0:
        raise ValueError(f"a and b must be non-empty; got shape {b.shape}")
    dtype = jnp.result_type(a.dtype, b.dtype)
    if h0 is not None:
        h0 = jnp.asarray(h0)
        if h0.shape != (channels,):
            raise ValueError(f"h0 must have shape (channel,) = ({channels},); got {h0.shape}")
        dtype = jnp.result_type(dtype, h0.dtype)
    if np.dtype(dtype) not in _BITS:
        raise ValueError(
            f"linear_recurrence_pallas supports float32 and float64, got {dtype} "
            f"(a {a.dtype}, b {b.dtype}); use linear_recurrence for other dtypes"
        )
    d_chunk, d_block, d_warps = DEFAULT_TILE
    chunk = chunk_size or d_chunk
    block = block_channels or d_block
    for name, value in (("chunk_size", chunk), ("block_channels", block)):
        if not isinstance(value, int | np.integer) or value < 1 or value & (value - 1):
            raise ValueError(f"{name} must be a positive power of two, got {value!r}")
    chunk = min(chunk, _next_pow2(steps))
    block = min(block, _next_pow2(channels))
    # The look-back is exact only if no two warps hold copies of one channel (see the module
    # docstring): at most one warp per 16 bytes x 32 lanes of channels.
    safe_warps = max(1, block * np.dtype(dtype).itemsize // 512)
    warps = num_warps or (d_warps if method == "three_pass" else safe_warps)
    if method == "lookback" and warps > safe_warps:
        raise ValueError(
            f"num_warps={warps} is unsafe for the look-back with block_channels={block} and "
            f"{np.dtype(dtype).name}: at most {safe_warps}"
        )
    cfg = _Config(steps, channels, dtype, bool(reverse), 0, chunk, block, warps, bool(interpret))
    h0 = jnp.zeros((channels,), dtype) if h0 is None else h0.astype(dtype)
    return _recurrence(cfg, method, a.astype(dtype), b.astype(dtype), h0)
