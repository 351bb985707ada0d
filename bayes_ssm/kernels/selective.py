"""The selective SSM of Mamba-1 ("S6"): input-dependent step, input and output projections.

For each channel ``d`` and state ``n`` (``A`` diagonal, real, negative),

.. math::

    h_t = e^{Δ_t A} h_{t-1} + Δ_t B_t x_t, \\qquad
    y_t = C_t^\\top h_t + D x_t, \\qquad y_t \\leftarrow y_t \\cdot \\mathrm{silu}(z_t),

zero-order hold for ``A`` and the simplified Euler rule for ``B``, exactly as the reference
``selective_scan_ref`` of state-spaces/mamba (time-major here: ``(*batch, t, d)``). The
recurrence is :func:`bayes_ssm.kernels.linear_recurrence` over the ``(t, d, n)`` states.

``method="fused"`` (what ``"auto"`` runs on a GPU for causal float32 scans, once a small
instance is checked to compile and agree here) is the Pallas kernel of
:mod:`bayes_ssm.kernels.selective_fused`: the states stay on chip, memory ``O(t · d)``.

``block_size`` runs the scan over blocks of time inside one :func:`jax.lax.scan`, contracting
each block's states with ``C`` before the next: peak memory ``O(block · d · n)`` instead of
``O(T · d · n)``, which is what lets ``T = 10⁶`` fit on one accelerator.

Shapes: ``x, dt, z`` ``(*batch, t, d)``; ``A`` ``(d, n)``; ``B, C`` ``(*batch, t, n)``;
``D`` ``(d,)``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from bayes_ssm.kernels import _checks
from bayes_ssm.kernels.recurrence import linear_recurrence
from bayes_ssm.kernels.selective_fused import fused_supported, selective_scan_fused

__all__ = ["SelectiveParams", "selective_scan", "init_selective_A"]


class SelectiveParams(NamedTuple):
    """The inputs of a selective SSM besides ``x`` (for :func:`implied_attention`).

    Attributes
    ----------
    dt : Array, shape ``(*batch, t, d)``
        Per-step, per-channel steps ``Δ_t > 0`` (``softplus`` of a projection in Mamba).
    A : Array, shape ``(d, n)``
        Continuous decay rates (negative).
    B, C : Array, shape ``(*batch, t, n)``
    D : Array, shape ``(d,)``, optional
    z : Array, shape ``(*batch, t, d)``, optional
        Output gate: ``y *= silu(z)``.
    """

    dt: jax.Array
    A: jax.Array
    B: jax.Array
    C: jax.Array
    D: jax.Array | None = None
    z: jax.Array | None = None


def init_selective_A(channels: int, state_size: int, *, dtype=None):
    """Mamba's S4D-Real initialisation ``A[d, n] = -(n + 1)``, shape ``(d, n)``."""
    channels = _checks.positive_int("channels", channels)
    state_size = _checks.positive_int("state_size", state_size)
    dtype = dtype or jnp.zeros(()).dtype
    return -jnp.broadcast_to(jnp.arange(1, state_size + 1, dtype=dtype), (channels, state_size))


def _check(x, dt, A, B, C, D, z, h0):
    x = _checks.as_float("x", x)
    _checks.check_ndim("x", x, 2, "(*batch, t, d)")
    T, d = x.shape[-2:]
    if T == 0:
        raise ValueError(f"x has an empty time axis (shape {x.shape})")
    A = _checks.as_float("A", A)
    if jnp.issubdtype(A.dtype, jnp.complexfloating):
        raise ValueError(f"A must be real (negative decay rates); got dtype {A.dtype}")
    if A.ndim != 2 or A.shape[0] != d:
        raise ValueError(f"A must have shape (d, n) with d = {d}; got {A.shape}")
    n = A.shape[1]
    if n == 0:
        raise ValueError(f"A must have a positive state size n; got shape {A.shape}")
    B, C = _checks.as_float("B", B), _checks.as_float("C", C)
    for name, M in (("B", B), ("C", C)):
        _checks.check_ndim(name, M, 2, "(*batch, t, n)")
        if M.shape[-2:] != (T, n):
            raise ValueError(
                f"{name} must have shape (*batch, t, n) = (..., {T}, {n}); got {M.shape}"
            )
    dt = _checks.as_float("dt", dt)
    _checks.check_positive("dt", dt)
    try:
        batch = jnp.broadcast_shapes(x.shape[:-2], B.shape[:-2], C.shape[:-2], dt.shape[:-2])
    except ValueError:
        raise ValueError(
            f"batch axes of x {x.shape}, dt {dt.shape}, B {B.shape}, C {C.shape} do not broadcast"
        ) from None
    x = jnp.broadcast_to(x, (*batch, T, d))
    dt = _checks.broadcast_to("dt", dt, x.shape, "(*batch, t, d)")
    B = jnp.broadcast_to(B, (*batch, T, n))
    C = jnp.broadcast_to(C, (*batch, T, n))
    if D is not None:
        D = _checks.broadcast_to("D", _checks.as_float("D", D), (d,), "(d,)")
    if z is not None:
        z = _checks.broadcast_to("z", _checks.as_float("z", z), x.shape, "(*batch, t, d)")
    if h0 is not None:
        h0 = _checks.broadcast_to(
            "h0", _checks.as_float("h0", h0), (*batch, d, n), "(*batch, d, n)"
        )
    dtype = _checks.result_dtype(x, dt, A, B, C)
    cast = lambda v: None if v is None else v.astype(dtype)  # noqa: E731
    return tuple(map(cast, (x, dt, A, B, C, D, z, h0)))


def _scan_states(x, dt, A, B, C, h0, method, chunk_size, reverse):
    """``y_t = C_t·h_t`` and the last state, materialising ``(..., t, d, n)`` states."""
    decay = jnp.exp(dt[..., None] * A)  # (..., t, d, n)
    if reverse:
        # Anti-causal: y_t gathers exp(A Σ_{k=t+1..s} Δ_k) Δ_s B_s x_s: shift decays one step.
        decay = jnp.concatenate([decay[..., 1:, :, :], jnp.ones_like(decay[..., :1, :, :])], -3)
    u = (dt * x)[..., None] * B[..., None, :]  # (..., t, d, n): Δ_t B_t x_t
    h = linear_recurrence(decay, u, h0, method=method, chunk_size=chunk_size, reverse=reverse,
                          axis=-3)  # fmt: skip
    y = jnp.einsum("...tdn,...tn->...td", h, C)
    return y, h[..., 0 if reverse else -1, :, :]


def _fused_works() -> bool:
    """The fused kernel compiles and agrees with the associative path here (checked once)."""
    from bayes_ssm.kernels.fast_path import fast_path_works

    def check():
        rng = jax.random.split(jax.random.key(0), 4)
        x = jax.random.normal(rng[0], (2, 100, 40))
        dt = jax.random.uniform(rng[1], (2, 100, 40), minval=0.01, maxval=0.2)
        B, C = (jax.random.normal(k, (2, 100, 16)) for k in rng[2:])
        A = init_selective_A(40, 16)
        fast, _ = selective_scan_fused(x, dt, A, B, C)
        ref, _ = _scan_states(x, dt, A, B, C, None, "associative", None, reverse=False)
        return fast, ref

    return fast_path_works("selective_scan_fused", check)


def _use_fused(method, dtype, bidirectional, block_size) -> bool:
    if method == "fused":
        return True
    if method != "auto" or bidirectional or block_size is not None:
        return False
    if jnp.dtype(dtype) != jnp.float32:
        return False
    if not fused_supported():
        if jax.default_backend() == "gpu":  # a JAX without the hook: one warning
            from bayes_ssm.kernels.fast_path import fast_path_unavailable

            fast_path_unavailable("selective_scan_fused", "no Triton scan hook in this JAX")
        return False
    return _fused_works()


def _blocked(x, dt, A, B, C, h0, method, chunk_size, block_size):
    """The causal scan over time blocks inside one ``lax.scan``: ``O(block · d · n)`` memory."""
    T, d = x.shape[-2:]
    n = A.shape[-1]
    num_blocks = -(-T // block_size)
    pad = num_blocks * block_size - T
    # Padded steps: dt = 0 (decay 1, no input) leave the state unchanged.
    widths = [(0, 0)] * (x.ndim - 2) + [(0, pad), (0, 0)]
    x, dt, B, C = (jnp.pad(v, widths) for v in (x, dt, B, C))

    def blocks(v):  # (..., t, k) -> (blocks, ..., block, k)
        v = v.reshape(*v.shape[:-2], num_blocks, block_size, v.shape[-1])
        return jnp.moveaxis(v, -3, 0)

    def step(h, inputs):
        xb, dtb, Bb, Cb = inputs
        y, h = _scan_states(xb, dtb, A, Bb, Cb, h, method, chunk_size, reverse=False)
        return h, y

    h0 = jnp.zeros((*x.shape[:-2], d, n), x.dtype) if h0 is None else h0
    h_last, y = lax.scan(step, h0, tuple(map(blocks, (x, dt, B, C))))
    y = jnp.moveaxis(y, 0, -3).reshape(*x.shape[:-2], num_blocks * block_size, d)
    return y[..., :T, :], h_last


def selective_scan(
    x,
    dt,
    A,
    B,
    C,
    *,
    D=None,
    z=None,
    h0=None,
    bidirectional: bool = False,
    return_final_state: bool = False,
    method: str = "auto",
    chunk_size: int | None = None,
    block_size: int | None = None,
):
    """Mamba-1 selective scan ``h_t = e^{Δ_t A} h_{t-1} + Δ_t B_t x_t``, ``y_t = C_t·h_t + D x_t``.

    Parameters
    ----------
    x : Array, shape ``(*batch, t, d)``
    dt : Array, broadcastable to ``(*batch, t, d)``
        Per-step, per-channel steps ``Δ_t > 0`` (checked when concrete); irregular sampling
        passes its real gaps here.
    A : Array, shape ``(d, n)``
        Continuous decay rates (negative); see :func:`init_selective_A`.
    B, C : Array, shape ``(*batch, t, n)``
    D : Array, shape ``(d,)``, optional
        Skip connection.
    z : Array, shape ``(*batch, t, d)``, optional
        Gate: the output is multiplied by ``silu(z)``.
    h0 : Array, shape ``(*batch, d, n)``, optional
        State before the first step (causal only).
    bidirectional : bool
        Non-causal: add the anti-causal part ``Σ_{s>t} C_t·(e^{A Σ_{k=t+1..s} Δ_k} Δ_s B_s) x_s``
        (a reversed scan; the diagonal counted once).
    return_final_state : bool
        Also return the state after the last step, ``(*batch, d, n)`` (causal only).
    method : str
        ``"fused"``: the fused Pallas kernel (causal, no ``block_size``; on a CPU it runs in
        Pallas' slow interpreter, for tests). ``"auto"``: ``"fused"`` on a GPU for causal
        float32 scans when it works here, else :func:`linear_recurrence`'s own ``"auto"``.
        Any other value is passed to :func:`linear_recurrence`.
    chunk_size : int
        Passed to :func:`linear_recurrence`.
    block_size : int, optional
        Run the causal scan in time blocks of this length (memory ``O(block · d · n)``).

    Returns
    -------
    y : Array, shape ``(*batch, t, d)``
    final_state : Array, shape ``(*batch, d, n)``, when ``return_final_state``.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> x = jnp.ones((6, 2)); B = C = jnp.ones((6, 3))
    >>> y = selective_scan(x, 0.1, init_selective_A(2, 3), B, C)
    >>> y.shape
    (6, 2)
    """
    if bidirectional and (h0 is not None or return_final_state or block_size is not None):
        raise ValueError("bidirectional=True takes no h0 or block_size and returns no final state")
    if block_size is not None:
        _checks.positive_int("block_size", block_size)
    x, dt, A, B, C, D, z, h0 = _check(x, dt, A, B, C, D, z, h0)
    if method == "fused" and (bidirectional or block_size is not None):
        raise ValueError("method='fused' is causal only and takes no block_size")
    if _use_fused(method, x.dtype, bidirectional, block_size):
        interpret = jax.default_backend() != "gpu"
        y, h_last = selective_scan_fused(x, dt, A, B, C, h0, interpret=interpret)
    elif block_size is not None:
        y, h_last = _blocked(x, dt, A, B, C, h0, method, chunk_size, block_size)
    else:
        y, h_last = _scan_states(x, dt, A, B, C, h0, method, chunk_size, reverse=False)
    if bidirectional:
        y_back, _ = _scan_states(x, dt, A, B, C, None, method, chunk_size, reverse=True)
        diag = jnp.einsum("...tn,...tn->...t", C, B)[..., None] * dt * x  # the s = t term
        y = y + y_back - diag
    if D is not None:
        y = y + D * x
    if z is not None:
        y = y * jax.nn.silu(z)
    return (y, h_last) if return_final_state else y
