"""A fused Pallas GPU kernel for the Mamba-1 selective scan: states never leave the chip.

Computes ``y_t = C_t · h_t`` for ``h_t = exp(Δ_t A) ⊙ h_{t-1} + Δ_t x_t B_t`` (per channel
``d``, state ``n``), the ``"fused"`` method of :func:`bayes_ssm.kernels.selective_scan`,
without writing the ``(b, t, d, n)`` states to memory.

Forward
-------
One program per ``(batch, block of BD channels)`` walks time in chunks of ``L`` steps with the
state ``(BD, n)`` in registers. Per chunk it loads ``x, Δ (L, BD)`` and ``B, C (L, n)``, forms
the decays ``exp(Δ A)`` and inputs ``Δ x B`` as an ``(L, BD, n)`` register tile, scans them
along time (Triton's ``tt.scan`` of affine maps, :mod:`bayes_ssm.kernels.tile_scan`), adds the
carried-in state, contracts with ``C`` and writes ``y (L, BD)``. It also writes the state at
each chunk start (``(b, t / L, d, n)``, ``1 / L`` of the states: with ``L >= n`` less memory
than ``x``) for the backward pass.

Backward (custom VJP; states recomputed, as in mamba_ssm's CUDA kernel)
------------------------------------------------------------------------
The adjoint ``λ_t = C_t ȳ_t + exp(Δ_{t+1} A) ⊙ λ_{t+1}`` runs backwards in time. One program
per ``(batch, channel block)`` walks the chunks from the last: it recomputes the chunk's states
from the stored chunk-start state (a forward scan), loads the chunk's inputs in reversed row
order so that the adjoint is again a forward scan (decays shifted by one step), and brings the
recomputed previous states into that reversed order by an exact product with a permutation
matrix (``precision=HIGHEST``: IEEE float32, products by 0 and 1). Then, per step,

.. math:: \\bar x_t = Δ_t\\, s_t,\\quad \\bar Δ_t = x_t s_t + Σ_n A λ_t h_{t-1} e^{Δ_t A},\\quad
          s_t = Σ_n λ_t B_t,\\quad \\bar B_t = Σ_d λ_t Δ_t x_t,\\quad \\bar C_t = Σ_d ȳ_t h_t,
          \\quad \\bar A = Σ_t Δ_t λ_t h_{t-1} e^{Δ_t A}.

``B̄`` and ``C̄`` are sums over channels, so each channel block writes its partial sums
``(b, d / BD, t, n)`` and XLA adds them; ``Ā`` is summed over time in registers.

A second layout of both kernels, ``forward_kernel="by_state"`` / ``backward_kernel="by_state"``
(:mod:`.selective_fused_forward`, :mod:`.selective_fused_backward`), works on 2-D ``(L, BD)``
tiles one state index at a time; it measured slower on an H100 (benchmarks/README.md, session
10), so the ``(L, BD, n)`` kernels above stay the default.

Inputs are float32 (other float dtypes are computed in float32). On a CPU the kernels run in
Pallas' interpreter (``interpret=True``), which is how the tests check them against the slow
twin :func:`bayes_ssm.kernels.reference.selective_scan_ref`.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from bayes_ssm.kernels.pallas_gpu import plgpu
from bayes_ssm.kernels.selective_fused_backward import run_backward_by_state
from bayes_ssm.kernels.selective_fused_forward import (
    ForwardCfg,
    run_forward_by_state,
    states_stride,
)
from bayes_ssm.kernels.selective_fused_tiles import (
    _chunk_terms,
    _cols,
    _iota,
    _last_row,
    _load_rows,
    _state_ref,
    _store_rows,
)
from bayes_ssm.kernels.tile_scan import tile_scan, triton_scan_available

__all__ = ["selective_scan_fused", "fused_supported", "DEFAULT_FUSED_TILE", "FORWARD_KERNELS"]

# (chunk L, channel block BD, warps): L = BD = n = 16 keeps the (L, BD, n) tiles at 32 registers
# a thread with 4 warps. The backward kernel takes its own (BD, warps), same L: (8, 2) measured
# 3.19 ms forward + backward against 3.46 at (16, 4) on the H200 (benchmarks/README.md).
DEFAULT_FUSED_TILE = (16, 16, 4)
DEFAULT_BACKWARD_TILE = (8, 2)
# The forward kernels: "tile3d" (the (L, BD, n) register tiles of this module) and "by_state"
# (2-D (L, BD) tiles, one state index at a time: :mod:`.selective_fused_forward`).
FORWARD_KERNELS = ("tile3d", "by_state")
DEFAULT_FORWARD_KERNEL = "tile3d"
DEFAULT_BACKWARD_KERNEL = "tile3d"
# The default (BD, warps) of the "by_state" backward (BD >= 16 for its permutation product).
DEFAULT_BY_STATE_BACKWARD_TILE = (16, 4)
# The default tile of the "by_state" forward.
DEFAULT_BY_STATE_TILE = (128, 8, 4)
# Chunk of the backward kernel (and of the states the "by_state" forward saves for it).
BACKWARD_CHUNK = 16


class _Cfg(NamedTuple):
    batch: int
    steps: int
    channels: int
    state: int
    chunk: int
    block: int
    warps: int
    interpret: bool
    backward: tuple = DEFAULT_BACKWARD_TILE  # (BD, warps) of the backward kernel
    kernel: str = "tile3d"  # the forward kernel, one of FORWARD_KERNELS
    bwd_kernel: str = "tile3d"  # the backward kernel, one of FORWARD_KERNELS
    hb_stride: int = 0  # chunk-start states per batch row in hb (0: num_chunks)

    def for_backward(self):
        cfg = self._replace(block=self.backward[0], warps=self.backward[1])
        if self.kernel == "by_state":
            G = min(BACKWARD_CHUNK, self.chunk)
            cfg = cfg._replace(chunk=G, hb_stride=states_stride(self.steps, self.chunk, G))
        return cfg

    def by_state(self, save: bool) -> ForwardCfg:
        G = min(BACKWARD_CHUNK, self.chunk) if save else 0
        return ForwardCfg(
            self.batch, self.steps, self.channels, self.state, self.chunk, self.block,
            self.warps, self.interpret, G,
        )  # fmt: skip

    @property
    def states_per_batch(self):
        return self.hb_stride or self.num_chunks

    @property
    def num_chunks(self):
        return -(-self.steps // self.chunk)

    @property
    def num_blocks(self):
        return -(-self.channels // self.block)


def fused_supported(backend: str | None = None) -> bool:
    """Whether the fused kernel can be compiled here (a GPU and JAX's Triton scan hook)."""
    backend = backend or jax.default_backend()
    return backend == "gpu" and triton_scan_available()


# --------------------------------------------------------------------------------------------
# Forward kernel
# --------------------------------------------------------------------------------------------


def _forward_kernel(x_ref, dt_ref, A_ref, B_ref, C_ref, h0_ref, y_ref, hb_ref, hT_ref, *, cfg):
    b, j = pl.program_id(0), pl.program_id(1)
    cols, colmask = _cols(cfg, j)
    A_at, A_mask = _state_ref(cfg, A_ref, 0, cols, colmask)
    A = plgpu.load(A_at, mask=A_mask, other=0.0)
    h0_at, h0_mask = _state_ref(cfg, h0_ref, b * cfg.channels, cols, colmask)
    h = plgpu.load(h0_at, mask=h0_mask, other=0.0)

    def chunk(c, h):
        times = c * cfg.chunk + _iota(cfg.chunk)
        hb_at, hb_mask = _state_ref(
            cfg, hb_ref, (b * cfg.num_chunks + c) * cfg.channels, cols, colmask, store=True
        )
        plgpu.store(hb_at, h, mask=hb_mask)
        x = _load_rows(cfg, x_ref, b, times, cols, colmask)
        dt = _load_rows(cfg, dt_ref, b, times, cols, colmask)
        Bm = _load_rows(cfg, B_ref, b, times, cols, colmask, width=cfg.state)
        Cm = _load_rows(cfg, C_ref, b, times, cols, colmask, width=cfg.state)
        decay, inputs = _chunk_terms(cfg, x, dt, Bm, A)
        decay_from_start, local = tile_scan(decay, inputs)
        states = local + decay_from_start * h[None, :, :]
        y = jnp.sum(states * Cm[:, None, :], axis=2)
        _store_rows(cfg, y_ref, b * cfg.steps, times, cols, colmask, y)
        return _last_row(states)

    h = lax.fori_loop(0, cfg.num_chunks, chunk, h)
    hT_at, hT_mask = _state_ref(cfg, hT_ref, b * cfg.channels, cols, colmask, store=True)
    plgpu.store(hT_at, h, mask=hT_mask)


def _run_forward(cfg, x, dt, A, B, C, h0):
    f32 = jnp.float32
    shapes = (
        jax.ShapeDtypeStruct((cfg.batch * cfg.steps, cfg.channels), f32),
        jax.ShapeDtypeStruct((cfg.batch * cfg.num_chunks * cfg.channels, cfg.state), f32),
        jax.ShapeDtypeStruct((cfg.batch * cfg.channels, cfg.state), f32),
    )
    return pl.pallas_call(
        functools.partial(_forward_kernel, cfg=cfg),
        out_shape=shapes,
        grid=(cfg.batch, cfg.num_blocks),
        interpret=cfg.interpret,
        compiler_params=plgpu.CompilerParams(num_warps=cfg.warps, num_stages=1),
        name="selective_scan_fused_fwd",
    )(x, dt, A, B, C, h0)


# --------------------------------------------------------------------------------------------
# Backward kernel
# --------------------------------------------------------------------------------------------


def _reverse_shifted(cfg, states, first):
    """Row ``i`` of the result is row ``L - 2 - i`` of ``states``; row ``L - 1`` is ``first``.

    Turns the states ``h_t`` of a chunk in time order into ``h_{t-1}`` in reversed time order,
    by an exact product with a permutation matrix (IEEE float32: products by 0 and 1).
    """
    L, BD, N = states.shape
    rows, cols = _iota(None, (L, L), 0), _iota(None, (L, L), 1)
    perm = (cols == (L - 2) - rows).astype(states.dtype)
    flat = jnp.dot(perm, states.reshape(L, BD * N), precision=lax.Precision.HIGHEST)
    out = flat.reshape(L, BD, N)
    is_last = _iota(None, (L, BD, N), 0) == L - 1
    return jnp.where(is_last, first[None, :, :], out)


def _backward_kernel(
    x_ref, dt_ref, A_ref, B_ref, C_ref, hb_ref, gy_ref, ghT_ref,
    dx_ref, ddt_ref, dA_ref, dB_ref, dC_ref, dh0_ref, *, cfg,
):  # fmt: skip
    b, j = pl.program_id(0), pl.program_id(1)
    cols, colmask = _cols(cfg, j)
    A_at, A_mask = _state_ref(cfg, A_ref, 0, cols, colmask)
    A = plgpu.load(A_at, mask=A_mask, other=0.0)
    gT_at, gT_mask = _state_ref(cfg, ghT_ref, b * cfg.channels, cols, colmask)
    lam_next = plgpu.load(gT_at, mask=gT_mask, other=0.0)
    partial_row0 = (b * cfg.num_blocks + j) * cfg.steps
    L = cfg.chunk

    def chunk(i, carry):
        lam_next, dA_acc = carry
        c = cfg.num_chunks - 1 - i
        fwd_t = c * L + _iota(L)
        rev_t = c * L + (L - 1) - _iota(L)
        # 1. Recompute the chunk's states in time order from its stored start state.
        hb_at, hb_mask = _state_ref(
            cfg, hb_ref, (b * cfg.states_per_batch + c) * cfg.channels, cols, colmask
        )
        h_in = plgpu.load(hb_at, mask=hb_mask, other=0.0)
        x_f = _load_rows(cfg, x_ref, b, fwd_t, cols, colmask)
        dt_f = _load_rows(cfg, dt_ref, b, fwd_t, cols, colmask)
        B_f = _load_rows(cfg, B_ref, b, fwd_t, cols, colmask, width=cfg.state)
        decay_f, inputs_f = _chunk_terms(cfg, x_f, dt_f, B_f, A)
        acc, local = tile_scan(decay_f, inputs_f)
        h_prev = _reverse_shifted(cfg, local + acc * h_in[None, :, :], h_in)
        # 2. The chunk in reversed time order: the adjoint is a forward scan there.
        x = _load_rows(cfg, x_ref, b, rev_t, cols, colmask)
        dt = _load_rows(cfg, dt_ref, b, rev_t, cols, colmask)
        gy = _load_rows(cfg, gy_ref, b, rev_t, cols, colmask)
        Bm = _load_rows(cfg, B_ref, b, rev_t, cols, colmask, width=cfg.state)
        Cm = _load_rows(cfg, C_ref, b, rev_t, cols, colmask, width=cfg.state)
        dt_next = _load_rows(cfg, dt_ref, b, rev_t + 1, cols, colmask)  # 0 (decay 1) past t
        decay, inputs = _chunk_terms(cfg, x, dt, Bm, A)
        decay_next = jnp.exp(dt_next[:, :, None] * A[None, :, :])
        h = decay * h_prev + inputs
        g = gy[:, :, None] * Cm[:, None, :]
        acc_r, lam_local = tile_scan(decay_next, g)
        lam = lam_local + acc_r * lam_next[None, :, :]
        # 3. Gradients of this chunk's inputs.
        s = jnp.sum(lam * Bm[:, None, :], axis=2)
        q = lam * h_prev * decay
        dx = s * dt
        ddt = s * x + jnp.sum(q * A[None, :, :], axis=2)
        dB = jnp.sum(lam * (dt * x)[:, :, None], axis=1)
        dC = jnp.sum(gy[:, :, None] * h, axis=1)
        _store_rows(cfg, dx_ref, b * cfg.steps, rev_t, cols, colmask, dx)
        _store_rows(cfg, ddt_ref, b * cfg.steps, rev_t, cols, colmask, ddt)
        _store_rows(cfg, dB_ref, partial_row0, rev_t, cols, colmask, dB, width=cfg.state)
        _store_rows(cfg, dC_ref, partial_row0, rev_t, cols, colmask, dC, width=cfg.state)
        dA_acc = dA_acc + jnp.sum(q * dt[:, :, None], axis=0)
        return _last_row(lam), dA_acc

    lam0, dA_acc = lax.fori_loop(
        0, cfg.num_chunks, chunk, (lam_next, jnp.zeros((cfg.block, cfg.state), jnp.float32))
    )
    dA_at, dA_mask = _state_ref(cfg, dA_ref, b * cfg.channels, cols, colmask, store=True)
    plgpu.store(dA_at, dA_acc, mask=dA_mask)
    dt0 = _load_rows(cfg, dt_ref, b, _iota(1), cols, colmask)  # (1, BD): the first step
    dh0 = jnp.exp(jnp.sum(dt0, axis=0)[:, None] * A) * lam0
    dh0_at, dh0_mask = _state_ref(cfg, dh0_ref, b * cfg.channels, cols, colmask, store=True)
    plgpu.store(dh0_at, dh0, mask=dh0_mask)


def _run_backward(cfg, x, dt, A, B, C, hb, gy, ghT):
    f32 = jnp.float32
    bt = cfg.batch * cfg.steps
    partial = (cfg.batch * cfg.num_blocks * cfg.steps, cfg.state)
    shapes = (
        jax.ShapeDtypeStruct((bt, cfg.channels), f32),  # dx
        jax.ShapeDtypeStruct((bt, cfg.channels), f32),  # ddt
        jax.ShapeDtypeStruct((cfg.batch * cfg.channels, cfg.state), f32),  # dA per batch
        jax.ShapeDtypeStruct(partial, f32),  # dB per channel block
        jax.ShapeDtypeStruct(partial, f32),  # dC per channel block
        jax.ShapeDtypeStruct((cfg.batch * cfg.channels, cfg.state), f32),  # dh0
    )
    return pl.pallas_call(
        functools.partial(_backward_kernel, cfg=cfg),
        out_shape=shapes,
        grid=(cfg.batch, cfg.num_blocks),
        interpret=cfg.interpret,
        compiler_params=plgpu.CompilerParams(num_warps=cfg.warps, num_stages=1),
        name="selective_scan_fused_bwd",
    )(x, dt, A, B, C, hb, gy, ghT)


# --------------------------------------------------------------------------------------------
# The differentiable function on flattened float32 arrays.
# --------------------------------------------------------------------------------------------


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _fused(cfg, x, dt, A, B, C, h0):
    if cfg.kernel == "by_state":
        y, hT, _ = run_forward_by_state(cfg.by_state(save=False), x, dt, A, B, C, h0)
        return y, hT
    y, _, hT = _run_forward(cfg, x, dt, A, B, C, h0)
    return y, hT


def _fused_fwd(cfg, x, dt, A, B, C, h0):
    if cfg.kernel == "by_state":
        y, hT, hb = run_forward_by_state(cfg.by_state(save=True), x, dt, A, B, C, h0)
    else:
        y, hb, hT = _run_forward(cfg, x, dt, A, B, C, h0)
    return (y, hT), (x, dt, A, B, C, hb)


def _fused_bwd(cfg, residuals, cotangents):
    x, dt, A, B, C, hb = residuals
    gy, ghT = cotangents
    cfg = cfg.for_backward()
    run = run_backward_by_state if cfg.bwd_kernel == "by_state" else _run_backward
    dx, ddt, dA, dB, dC, dh0 = run(cfg, x, dt, A, B, C, hb, gy, ghT)
    shape = (cfg.batch, cfg.num_blocks, cfg.steps, cfg.state)
    dB = dB.reshape(shape).sum(1).reshape(B.shape)
    dC = dC.reshape(shape).sum(1).reshape(C.shape)
    dA = dA.reshape(cfg.batch, cfg.channels, cfg.state).sum(0)
    return dx, ddt, dA, dB, dC, dh0


_fused.defvjp(_fused_fwd, _fused_bwd)


def selective_scan_fused(
    x, dt, A, B, C, h0=None, *, tile=None, backward_tile=None, forward_kernel=None,
    backward_kernel=None, interpret=False,
):  # fmt: skip
    """``y_t = C_t · h_t`` and the final state of the selective SSM, in one fused kernel.

    Parameters
    ----------
    x, dt : Array, shape ``(*batch, t, d)``
        Inputs and steps ``Δ > 0`` (already broadcast; see ``selective_scan``).
    A : Array, shape ``(d, n)``
    B, C : Array, shape ``(*batch, t, n)``
    h0 : Array, shape ``(*batch, d, n)``, optional
    tile : (int, int, int), optional
        ``(L, BD, warps)`` of the forward kernel: chunk length, channel block (powers of two)
        and warps; default :data:`DEFAULT_FUSED_TILE` (``"tile3d"``) or
        :data:`DEFAULT_BY_STATE_TILE` (``"by_state"``).
    backward_tile : (int, int), optional
        ``(BD, warps)`` of the backward kernel (same ``L``); default
        :data:`DEFAULT_BACKWARD_TILE` (``"tile3d"``) or :data:`DEFAULT_BY_STATE_BACKWARD_TILE`
        (``"by_state"``).
    forward_kernel : {"tile3d", "by_state"}, optional
        ``"tile3d"``: ``(L, BD, n)`` register tiles (this module); ``"by_state"``: 2-D
        ``(L, BD)`` tiles, one state index at a time (:mod:`.selective_fused_forward`; its
        ``L`` must then be a multiple of the backward chunk, 16, or below it). Default
        :data:`DEFAULT_FORWARD_KERNEL`.
    backward_kernel : {"tile3d", "by_state"}, optional
        The same two layouts for the backward kernel (``"by_state"`` with a channel block of
        at least 16 on a GPU, for its permutation product); default
        :data:`DEFAULT_BACKWARD_KERNEL`.
    interpret : bool
        Run in Pallas' interpreter (any backend; slow; for tests).

    Returns
    -------
    y : Array, shape ``(*batch, t, d)``
        Without ``D x`` and the gate (``selective_scan`` adds them).
    final_state : Array, shape ``(*batch, d, n)``

    Both are differentiable in every input (custom VJP; memory ``O(b t d)``).
    """
    dtype = x.dtype
    *batch, steps, channels = x.shape
    state = A.shape[-1]
    nb = 1
    for size in batch:
        nb *= size
    kernel = forward_kernel or DEFAULT_FORWARD_KERNEL
    bwd_kernel = backward_kernel or DEFAULT_BACKWARD_KERNEL
    for name, value in (("forward_kernel", kernel), ("backward_kernel", bwd_kernel)):
        if value not in FORWARD_KERNELS:
            raise ValueError(f"{name} must be one of {FORWARD_KERNELS}, got {value!r}")
    default_tile = DEFAULT_BY_STATE_TILE if kernel == "by_state" else DEFAULT_FUSED_TILE
    chunk, block, warps = tile or default_tile
    default_bwd = DEFAULT_BY_STATE_BACKWARD_TILE if bwd_kernel == "by_state" else None
    bwd_block, bwd_warps = backward_tile or default_bwd or DEFAULT_BACKWARD_TILE
    for name, value in (("chunk", chunk), ("block", block), ("backward block", bwd_block)):
        if value < 1 or value & (value - 1):
            raise ValueError(f"tile {name} must be a positive power of two, got {value}")
    if state & (state - 1):
        raise ValueError(f"the fused kernel needs a power-of-two state size n, got {state}")
    block = min(block, 1 << max(0, channels - 1).bit_length())
    if kernel == "by_state":  # no longer than the series (a power of two at least 1)
        chunk = min(chunk, 1 << max(0, steps - 1).bit_length())
    bwd_block = min(bwd_block, 1 << max(0, channels - 1).bit_length())
    cfg = _Cfg(
        nb, steps, channels, state, chunk, block, warps, bool(interpret), (bwd_block, bwd_warps),
        kernel, bwd_kernel,
    )  # fmt: skip
    f32 = jnp.float32
    flat = lambda v, k: v.astype(f32).reshape(nb * steps, k)  # noqa: E731
    h0 = jnp.zeros((*batch, channels, state), f32) if h0 is None else h0
    y, hT = _fused(
        cfg,
        flat(x, channels),
        flat(dt, channels),
        A.astype(f32),
        flat(B, state),
        flat(C, state),
        h0.astype(f32).reshape(nb * channels, state),
    )
    y = y.reshape(*batch, steps, channels).astype(dtype)
    return y, hT.reshape(*batch, channels, state).astype(dtype)
