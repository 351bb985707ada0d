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
NaNs with 4 warps and 64 channels per tile). So with several warps each loaded exchange row
is made to agree across warps first (``recurrence_lookback._agree``: a maximum over the
broadcast ``(L, BD)`` tile's time axis, which the warps split, so it goes through shared
memory): a value counts as published if any warp's copy saw it, and every warp then takes
the same decisions from the same bits.

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

from bayes_ssm.kernels.recurrence_lookback import _run_lookback
from bayes_ssm.kernels.recurrence_three_pass import _run_three_pass
from bayes_ssm.kernels.recurrence_tile import _BITS, _NARROW, _Config
from bayes_ssm.kernels.tile_scan import triton_scan_available

__all__ = ["linear_recurrence_pallas", "pallas_supported", "DEFAULT_TILE", "DEFAULT_TILE_NARROW"]


# (chunk length L, channel block BD, warps): tuned on an H100 at T = 2**20, C = 256, float32
# (benchmarks/scan_pallas.py).
DEFAULT_TILE = (64, 32, 1)
# The same for bfloat16 / float16 storage (float32 scans inside the tile).
DEFAULT_TILE_NARROW = (64, 64, 1)


def default_tile(dtype) -> tuple[int, int, int]:
    """The default ``(chunk, block_channels, warps)`` for arrays of ``dtype`` in memory."""
    return DEFAULT_TILE_NARROW if np.dtype(dtype) in _NARROW else DEFAULT_TILE


def pallas_supported(dtype, backend: str | None = None) -> bool:
    """Whether :func:`linear_recurrence_pallas` can compile for ``dtype`` on ``backend``.

    True on a GPU backend for float32 / float64, and for bfloat16 / float16 storage (scanned in
    float32), when this JAX exposes the (private) Triton lowering hook the in-tile scan uses.
    A dispatcher should fall back to ``lax.associative_scan`` otherwise (complex dtypes, CPU,
    TPU, a JAX without the hook).
    """
    backend = backend or jax.default_backend()
    supported = np.dtype(dtype) in _BITS or np.dtype(dtype) in _NARROW
    return triton_scan_available() and backend == "gpu" and supported


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
        cfg.chunk, cfg.block, cfg.warps, cfg.interpret, cfg.io_dtype,
    )  # fmt: skip
    lam = _run(adjoint_cfg, method, a, g_h.astype(cfg.io_dtype), jnp.zeros_like(h0))
    # Products in the scan's dtype (float32 for bfloat16 storage), stored as the inputs were.
    lam_c, a_c, h_c = (x.astype(cfg.dtype) for x in (lam, a, h))
    if cfg.reverse:  # h_t = a_t h_{t+1} + b_t
        h_prev = jnp.concatenate([h_c[1:], h0[None]])
        g_h0 = a_c[-1] * lam_c[-1]
    else:
        h_prev = jnp.concatenate([h0[None], h_c[:-1]])
        g_h0 = a_c[0] * lam_c[0]
    return (lam_c * h_prev).astype(cfg.io_dtype), lam, g_h0


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
        Decays, float32 or float64; or bfloat16 / float16, read as stored and scanned in
        float32 (``h`` is rounded to the storage dtype once, when written).
    b : Array, shape ``(time, channel)``
        Inputs, same dtype as ``a``.
    h0 : Array, shape ``(channel,)``, optional
        State before the first step (after the last one when ``reverse``); zero by default.
    reverse : bool
        Run from the last step to the first: ``h_t = a_t * h_{t+1} + b_t``.
    chunk_size : int, optional
        Steps per tile (a power of two; default from :func:`default_tile`). Need not divide
        ``time``.
    block_channels : int, optional
        Channels per tile (a power of two; default from :func:`default_tile`).
    num_warps : int, optional
        Warps per program (default: the most the look-back allows; for ``"three_pass"``,
        :func:`default_tile`'s).
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
        float32/float64/bfloat16/float16 (complex: use
        ``linear_recurrence(method="associative")``), tile sizes that are not powers of two,
        or an unknown ``method``.

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
        if np.dtype(dtype) not in _NARROW:  # h0 of bfloat16 storage joins the float32 scan
            dtype = jnp.result_type(dtype, h0.dtype)
    if np.dtype(dtype) not in _BITS and np.dtype(dtype) not in _NARROW:
        raise ValueError(
            f"linear_recurrence_pallas supports float32 and float64 (and bfloat16/float16 "
            f"storage), got {dtype} (a {a.dtype}, b {b.dtype}); use linear_recurrence for "
            "other dtypes"
        )
    io_dtype = np.dtype(dtype)
    dtype = np.dtype(np.float32) if io_dtype in _NARROW else io_dtype  # the scan's dtype
    d_chunk, d_block, d_warps = default_tile(io_dtype)
    chunk = chunk_size or d_chunk
    block = block_channels or d_block
    for name, value in (("chunk_size", chunk), ("block_channels", block)):
        if not isinstance(value, int | np.integer) or value < 1 or value & (value - 1):
            raise ValueError(f"{name} must be a positive power of two, got {value!r}")
    chunk = min(chunk, _next_pow2(steps))
    block = min(block, _next_pow2(channels))
    # Several warps per tile: the look-back makes their copies of the exchange rows agree
    # (recurrence_lookback._agree; see the module docstring).
    warps = num_warps or d_warps
    if not isinstance(warps, int | np.integer) or warps < 1 or warps & (warps - 1):
        raise ValueError(f"num_warps must be a positive power of two, got {warps!r}")
    cfg = _Config(
        steps, channels, dtype, bool(reverse), 0, chunk, block, warps, bool(interpret), io_dtype
    )
    h0 = jnp.zeros((channels,), dtype) if h0 is None else h0.astype(dtype)
    return _recurrence(cfg, method, a.astype(io_dtype), b.astype(io_dtype), h0)
