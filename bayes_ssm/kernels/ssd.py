"""State-space duality (SSD, Mamba-2): one layer, three algorithms.

The SSD layer has a scalar-times-identity state matrix per head, so each head ``h`` runs the
recurrence, for every head channel ``p`` and state ``n``,

.. math::

    H_t = a_t H_{t-1} + \\bar x_t B_t^\\top, \\qquad y_t = H_t C_t,
    \\qquad a_t = e^{Δ_t A}, \\quad \\bar x_t = Δ_t x_t

(zero-order hold for the decay, the Euler rule for the input, as in Mamba-2). Unrolled,

.. math::

    y_t = \\sum_{s \\le t} L_{ts} (C_t^\\top B_s) \\bar x_s, \\qquad
    L_{ts} = \\prod_{k=s+1}^{t} a_k,

i.e. ``Y = (L ∘ C Bᵀ) X̄``: masked attention with the 1-semiseparable mask ``L``. Three
algorithms compute the same ``y``:

``"scan"``
    The recurrence itself through :func:`bayes_ssm.kernels.linear_recurrence` on the
    ``(t, h, p, n)`` states. ``O(T)`` work, ``O(T h p n)`` memory.
``"chunked"``
    The algorithm of ``ssd_minimal.py`` (Listing 1 of the Mamba-2 paper): split time into
    chunks of ``l`` steps; (1) diagonal blocks by the quadratic form inside each chunk,
    (2) each chunk's final state, (3) one recurrence across chunks, (4) each chunk's
    carried-in state to outputs. ``O(T l)`` work, matrix products throughout.
``"quadratic"``
    The dual attention form ``(L ∘ C Bᵀ) X̄`` over the whole series: ``O(T²)``.

The mask is computed in log space from segment sums ``log L_{ts} = Σ_{k=s+1..t} log a_k``
(never by dividing cumulative products), so decays near 1 over 10⁵ steps in float32 neither
overflow nor lose the small ones.

Shapes (dimension vocabulary of ``docs/architecture.md``): ``x`` ``(*batch, t, h, p)``,
``dt`` ``(*batch, t, h)``, ``A`` ``(h,)``, ``B`` and ``C`` ``(*batch, t, g, n)`` with ``g``
groups of heads sharing ``B, C`` (``g`` divides ``h``; ``r = h / g`` heads per group).

References
----------
T. Dao and A. Gu, "Transformers are SSMs: Generalized Models and Efficient Algorithms
Through Structured State Space Duality", ICML 2024 (and ``mamba_ssm/modules/ssd_minimal.py``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from bayes_ssm.kernels import _checks
from bayes_ssm.kernels.ssd_algorithms import chunked_form, quadratic_form, scan_form, ssd_mask
from bayes_ssm.kernels.ssd_chunk import DEFAULT_SSD_CHUNK, choose_ssd_chunk
from bayes_ssm.kernels.ssd_dispatch import use_fused
from bayes_ssm.kernels.ssd_fused import chunked_form_fused

__all__ = [
    "ssd",
    "ssd_discrete",
    "ssd_mask",
    "SSDParams",
    "SSD_METHODS",
    "DEFAULT_SSD_CHUNK",
    "choose_ssd_chunk",
]

SSD_METHODS = ("chunked", "scan", "quadratic")


class SSDParams(NamedTuple):
    """The inputs of an SSD layer besides ``x`` (for :func:`implied_attention`).

    Attributes
    ----------
    dt : Array, shape ``(*batch, t, h)``
        Per-step, per-head step sizes ``Δ_t > 0``.
    A : Array, shape ``(h,)``
        Continuous decay rate per head (negative).
    B, C : Array, shape ``(*batch, t, g, n)``
        Input and output projections.
    D : Array, shape ``(h,)``, optional
        Skip connection ``y += D x``.
    """

    dt: jax.Array
    A: jax.Array
    B: jax.Array
    C: jax.Array
    D: jax.Array | None = None


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


def _check_discrete(x, log_a, B, C, h0, method, chunk_size):
    if method not in SSD_METHODS:
        raise ValueError(f"method must be one of {SSD_METHODS}, got {method!r}")
    if chunk_size != "auto":
        _checks.positive_int("chunk_size", chunk_size)
    x = _checks.as_float("x", x)
    log_a = None if log_a is None else _checks.as_float("log_a", log_a)
    B = _checks.as_float("B", B)
    C = _checks.as_float("C", C)
    _checks.check_ndim("x", x, 3, "(*batch, t, h, p)")
    _checks.check_ndim("B", B, 3, "(*batch, t, g, n)")
    _checks.check_ndim("C", C, 3, "(*batch, t, g, n)")
    num_steps, num_heads = x.shape[-3], x.shape[-2]
    if num_steps == 0:
        raise ValueError(f"x has an empty time axis (shape {x.shape})")
    if B.shape[-3:] != C.shape[-3:]:
        raise ValueError(f"B and C must have the same (t, g, n) shape; got {B.shape}, {C.shape}")
    if B.shape[-3] != num_steps:
        raise ValueError(
            f"B and C must have t = {num_steps} steps like x (shape {x.shape}); got B {B.shape}"
        )
    if B.shape[-1] == 0:
        raise ValueError(f"B and C must have a positive state size n; got shape {B.shape}")
    groups = B.shape[-2]
    if groups == 0 or num_heads % groups:
        raise ValueError(
            f"the number of groups g={groups} of B/C (shape {B.shape}) must divide the number "
            f"of heads h={num_heads} of x (shape {x.shape})"
        )
    try:
        batch = jnp.broadcast_shapes(x.shape[:-3], B.shape[:-3], C.shape[:-3])
    except ValueError:
        raise ValueError(
            f"batch axes of x {x.shape}, B {B.shape}, C {C.shape} do not broadcast"
        ) from None
    x = jnp.broadcast_to(x, (*batch, *x.shape[-3:]))
    B = jnp.broadcast_to(B, (*batch, *B.shape[-3:]))
    C = jnp.broadcast_to(C, (*batch, *C.shape[-3:]))
    if log_a is not None:
        log_a = _checks.broadcast_to("log_a", log_a, x.shape[:-1], "(*batch, t, h)")
    dtype = _checks.result_dtype(x, B, C)  # log_a may be wider (float32 for bf16 inputs)
    if h0 is not None:
        h0 = _checks.as_float("h0", h0)
        state = (*batch, num_heads, x.shape[-1], B.shape[-1])
        h0 = _checks.broadcast_to("h0", h0, state, "(*batch, h, p, n)").astype(dtype)
    # Log decays, their sums and exponentials stay in float32 at least (bfloat16 inputs).
    log_dtype = jnp.promote_types(dtype, jnp.float32)
    log_a = None if log_a is None else log_a.astype(log_dtype)
    return x.astype(dtype), log_a, B.astype(dtype), C.astype(dtype), h0


def _group(x, log_a, groups, h0):
    """Split heads ``h -> (g, r)``: x ``(..., t, g, r, p)``, log_a ``(..., t, g, r)``."""
    t, h, p = x.shape[-3:]
    r = h // groups
    x = x.reshape(*x.shape[:-2], groups, r, p)
    if log_a is not None:
        log_a = log_a.reshape(*log_a.shape[:-1], groups, r)
    if h0 is not None:
        h0 = h0.reshape(*h0.shape[:-3], groups, r, *h0.shape[-2:])
    return x, log_a, h0


def _forward(
    x, log_a, B, C, h0, method, chunk_size, scan_method, precision, fused=False, x_scale=None,
):  # fmt: skip
    """The causal pass; ``x_scale (..., t, g, r)``, optional: the inputs are ``x * x_scale``."""
    if method == "chunked" and log_a is not None:
        length = min(chunk_size, 1 << max(0, x.shape[-4] - 1).bit_length())
        if use_fused(fused, x.dtype, length, x.shape[-1], B.shape[-1]):
            return chunked_form_fused(
                x, log_a, B, C, h0, chunk_size, scan_method, x_scale=x_scale,
                interpret=jax.default_backend() != "gpu",
            )  # fmt: skip
    if x_scale is not None:  # the XLA forms take the scaled copy
        x = (x * x_scale[..., None]).astype(x.dtype)
    if method == "scan":
        return scan_form(x, log_a, B, C, h0, scan_method, precision)
    if method == "quadratic":
        return quadratic_form(x, log_a, B, C, h0, precision)
    return chunked_form(x, log_a, B, C, h0, chunk_size, scan_method, precision)


def _reverse_strict(x, log_a, B, C, method, chunk_size, scan_method, precision):
    """Anti-causal part ``y_t = Σ_{s>t} (Π_{k=t+1..s} a_k) (C_tᵀ B_s) x_s``.

    Runs the causal algorithm on the time-flipped series whose decays are shifted by one
    step (``a'_u = a_{T-u}``, so the product between flipped steps ``v < u`` covers the
    original steps ``t+1..s``), then removes the diagonal ``(C_tᵀ B_t) x_t``.
    """
    flip = lambda z, axis: jnp.flip(z, axis)  # noqa: E731
    log_a_rev = None
    if log_a is not None:
        log_a_rev = flip(log_a, -3)
        log_a_rev = jnp.concatenate(
            [jnp.zeros_like(log_a_rev[..., :1, :, :]), log_a_rev[..., :-1, :, :]], axis=-3
        )
    y, _ = _forward(
        flip(x, -4), log_a_rev, flip(B, -3), flip(C, -3), None,
        method, chunk_size, scan_method, precision,
    )  # fmt: skip
    diag = jnp.einsum("...tgn,...tgn->...tg", C, B, precision=precision)[..., None, None] * x
    return flip(y, -4) - diag


def ssd_discrete(
    x,
    log_a,
    B,
    C,
    *,
    h0=None,
    method: str = "chunked",
    chunk_size: int | str = "auto",
    bidirectional: bool = False,
    return_final_state: bool = False,
    scan_method: str = "auto",
    precision=None,
    fused: bool | str = "auto",
):
    """SSD on discretised inputs: ``H_t = exp(log_a_t) H_{t-1} + x_t B_tᵀ``, ``y_t = H_t C_t``.

    The signature of ``ssd_minimal_discrete`` (Mamba-2), with any number of leading batch axes.

    Parameters
    ----------
    x : Array, shape ``(*batch, t, h, p)``
        Discretised inputs ``x̄ = Δ x``.
    log_a : Array, broadcastable to ``(*batch, t, h)``, or None
        Log decays ``Δ A`` (``<= 0`` for a stable layer). ``None``: no decay (``a = 1``),
        i.e. unnormalised linear attention, computed without masks of exponentials.
    B, C : Array, shape ``(*batch, t, g, n)``
        ``g`` must divide ``h``.
    h0 : Array, shape ``(*batch, h, p, n)``, optional
        State before the first step (causal only).
    method : {"chunked", "scan", "quadratic"}
        Algorithm; all agree up to rounding.
    chunk_size : int or "auto"
        Chunk length ``l`` for ``"chunked"``; need not divide ``t``. ``"auto"`` (default):
        :func:`choose_ssd_chunk` (64 on a CPU; measured per dtype and state size on a GPU).
    bidirectional : bool
        Non-causal: add the anti-causal part ``Σ_{s>t} (Π_{k=t+1..s} a_k) (C_tᵀ B_s) x_s``
        (the forward and reversed scans combined, the diagonal counted once).
    return_final_state : bool
        Also return the state after the last step ``(*batch, h, p, n)`` (causal only).
    scan_method : str
        ``method`` of :func:`linear_recurrence` for ``"scan"`` and for step 3 of ``"chunked"``.
    precision : jax.lax.Precision, optional
        Passed to the matrix products (of the XLA forms; the fused kernels use TF32 for
        float32 on the GPU, like XLA's default).
    fused : bool or "auto"
        ``"chunked"`` with decays through the fused Pallas kernels
        (:mod:`bayes_ssm.kernels.ssd_fused`, the ``(l, l)`` masked matrix kept on chip).
        ``"auto"`` (default): on a GPU where measured faster than the XLA form; ``True``:
        always (Pallas' interpreter off the GPU: slow); ``False``: never.

    Returns
    -------
    y : Array, shape ``(*batch, t, h, p)``
    final_state : Array, shape ``(*batch, h, p, n)``
        Only when ``return_final_state``.
    """
    return _discrete(
        x, log_a, B, C, None, h0, method, chunk_size, bidirectional, return_final_state,
        scan_method, precision, fused,
    )  # fmt: skip


def _discrete(
    x, log_a, B, C, x_scale, h0, method, chunk_size, bidirectional, return_final_state,
    scan_method, precision, fused,
):  # fmt: skip
    """:func:`ssd_discrete` on ``x * x_scale`` (``x_scale`` broadcastable to ``(*batch, t, h)``
    or None), the scaling left to the fused kernels when they run (else done here, in the
    dtype of ``x, B, C``)."""
    if bidirectional and (h0 is not None or return_final_state):
        raise ValueError("bidirectional=True takes no h0 and returns no final state")
    x, log_a, B, C, h0 = _check_discrete(x, log_a, B, C, h0, method, chunk_size)
    if x_scale is not None:
        x_scale = jnp.broadcast_to(x_scale, x.shape[:-1])
        if bidirectional:  # the reversed pass takes the scaled copy
            x, x_scale = (x * x_scale[..., None]).astype(x.dtype), None
    if chunk_size == "auto":
        chunk_size = choose_ssd_chunk(x.shape[-3], x.dtype, state_size=B.shape[-1])
    out_shape = x.shape
    groups = B.shape[-2]
    xg, la, h0g = _group(x, log_a, groups, h0)
    xs = None if x_scale is None else x_scale.reshape(*xg.shape[:-1])
    y, final = _forward(
        xg, la, B, C, h0g, method, chunk_size, scan_method, precision, fused, xs
    )  # fmt: skip
    if bidirectional:
        y = y + _reverse_strict(xg, la, B, C, method, chunk_size, scan_method, precision)
    y = y.reshape(out_shape).astype(x.dtype)
    if return_final_state:
        return y, final.reshape(*final.shape[:-4], -1, *final.shape[-2:])
    return y


def ssd(
    x,
    dt,
    A,
    B,
    C,
    *,
    D=None,
    h0=None,
    method: str = "chunked",
    chunk_size: int | str = "auto",
    bidirectional: bool = False,
    return_final_state: bool = False,
    scan_method: str = "auto",
    precision=None,
    fused: bool | str = "auto",
):
    """The SSD (Mamba-2) layer with per-step, per-head steps ``Δ_t``.

    Discretises ``a_t = exp(Δ_t A)`` (zero-order hold) and ``x̄_t = Δ_t x_t`` (Euler), runs
    :func:`ssd_discrete`, and adds the skip ``D x``. A series sampled at irregular times
    passes its real gaps in ``dt``.

    Parameters
    ----------
    x : Array, shape ``(*batch, t, h, p)``
    dt : Array, broadcastable to ``(*batch, t, h)``
        Step sizes ``Δ_t > 0`` (checked when concrete).
    A : Array, broadcastable to ``(h,)``
        Continuous decay rates (negative for a stable layer).
    B, C : Array, shape ``(*batch, t, g, n)``
    D : Array, broadcastable to ``(h,)``, optional
    h0, method, chunk_size, bidirectional, return_final_state, scan_method, precision, fused
        As in :func:`ssd_discrete`.

    Returns
    -------
    y : Array, shape ``(*batch, t, h, p)`` (and the final state, see :func:`ssd_discrete`)
        In the dtype of ``x, B, C``: ``dt`` and ``A`` may be wider (float32 ``Δ`` beside
        bfloat16 ``x`` keeps the layer in bfloat16; the decays stay float32). On a GPU the fused
        kernels apply ``Δ`` inside, without writing ``Δ x``.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> x = jnp.ones((10, 2, 3)); B = C = jnp.ones((10, 1, 4))
    >>> y = ssd(x, jnp.full((10, 2), 0.1), -jnp.ones(2), B, C, chunk_size=4)
    >>> q = ssd(x, jnp.full((10, 2), 0.1), -jnp.ones(2), B, C, method="quadratic")
    >>> bool(jnp.allclose(y, q, atol=1e-5))
    True
    """
    x = _checks.as_float("x", x)
    _checks.check_ndim("x", x, 3, "(*batch, t, h, p)")
    dt = _checks.as_float("dt", dt)
    _checks.check_positive("dt", dt)
    A = _checks.broadcast_to("A", _checks.as_float("A", A), x.shape[-2:-1], "(h,)")
    try:
        batch = jnp.broadcast_shapes(x.shape[:-3], jnp.shape(B)[:-3], dt.shape[:-2])
    except ValueError:
        raise ValueError(
            f"batch axes of x {x.shape}, dt {dt.shape} and B {jnp.shape(B)} do not broadcast"
        ) from None
    x = jnp.broadcast_to(x, (*batch, *x.shape[-3:]))
    dt = _checks.broadcast_to("dt", dt, x.shape[:-1], "(*batch, t, h)")
    wide = dt.astype(jnp.promote_types(dt.dtype, jnp.float32))
    # x̄ = Δ x in the dtype of x, B, C (Δ and A may be wider, e.g. float32 beside bfloat16 x),
    # formed inside the fused kernels when they run, else by _discrete.
    y = _discrete(
        x, wide * A, B, C, wide, h0, method, chunk_size, bidirectional, return_final_state,
        scan_method, precision, fused,
    )  # fmt: skip
    if D is None:
        return y
    D = _checks.broadcast_to("D", _checks.as_float("D", D), x.shape[-2:-1], "(h,)")
    skip = D[:, None] * x
    if return_final_state:
        return y[0] + skip, y[1]
    return y + skip
