"""Implied attention: the ``T x T`` matrix that an SSM layer applies to its input.

Every layer here is linear in ``x`` once its parameters (and, for the selective layers, the
input-dependent ``Δ, B, C``) are fixed, so it *is* a (masked) attention matrix ``M``:

* SSD (per head ``h``): ``M[h, t, s] = exp(A_h τ_{ts}) (C_t·B_s) Δ_s`` (+ ``D_h`` on the
  diagonal), ``y[t, h, p] = Σ_s M[h, t, s] x[s, h, p]``;
* selective SSM (per channel ``d``): ``M[d, t, s] = silu(z_t) Σ_n C_t[n] e^{A[d,n] τ_{ts}}
  Δ_s B_s[n]`` (+ ``D_d``);
* S4D (per channel ``d``): ``M[d, t, s] = 2 Re Σ_n C_n e^{A_n τ_{ts}} B̄_{s,n}`` (+ ``D_d``),
  the Toeplitz matrix of the kernel ``K`` when the step is fixed;

where ``τ_{ts} = Σ_{k=s+1..t} Δ_k`` is the time elapsed between the steps (a segment sum;
``M`` is lower triangular for causal layers; non-causal layers use ``τ_{st}`` above the
diagonal). These are what the dual (quadratic) forms compute; :func:`implied_attention`
returns them so they can be plotted, compared with softmax attention, and checked:
``M x`` must equal the layer's output.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from bayes_ssm.kernels import _checks
from bayes_ssm.kernels.discretize import zoh_input
from bayes_ssm.kernels.recurrence import _segment_sum
from bayes_ssm.kernels.s4d import S4DParams, _check_params
from bayes_ssm.kernels.selective import SelectiveParams
from bayes_ssm.kernels.ssd import SSDParams

__all__ = ["implied_attention", "IMPLIED_LAYERS"]

IMPLIED_LAYERS = ("ssd", "s4d", "selective")


def _elapsed(dt, bidirectional):
    """``τ[..., t, s] = Σ_{k=min+1..max} dt[..., k]`` and the mask of used ``(t, s)``.

    ``dt`` has time last, ``(..., t)``; returns ``(τ, mask)`` each ``(..., t, s)``; ``τ`` is
    0 where the mask is off (so ``exp(A τ)`` never meets ``-inf · A``).
    """
    T = dt.shape[-1]
    lower = jnp.tril(jnp.ones((T, T), bool))
    seg = jnp.where(lower, _segment_sum(dt), 0)  # Σ_{k=s+1..t} dt_k for s <= t
    if not bidirectional:
        return seg, jnp.broadcast_to(lower, seg.shape)
    return jnp.where(lower, seg, jnp.swapaxes(seg, -1, -2)), jnp.ones(seg.shape, bool)


def _diag(values, T):
    """``values (..., c) -> (..., c, T, T)`` diagonal matrices."""
    return values[..., None, None] * jnp.eye(T, dtype=values.dtype)


def _ssd_matrix(params, bidirectional):
    dt, A, B, C, D = params
    dt = jnp.asarray(dt)
    B, C = jnp.asarray(B), jnp.asarray(C)
    h = dt.shape[-1]
    r = h // B.shape[-2]
    T = dt.shape[-2]
    tau, mask = _elapsed(jnp.moveaxis(dt, -1, -2), bidirectional)  # (..., h, t, s)
    L = jnp.where(mask, jnp.exp(jnp.asarray(A)[:, None, None] * tau), 0)
    CB = jnp.repeat(jnp.einsum("...tgn,...sgn->...gts", C, B), r, axis=-3)  # (..., h, t, s)
    M = L * CB * jnp.moveaxis(dt, -1, -2)[..., None, :]
    return M if D is None else M + _diag(jnp.asarray(D), T)


def _selective_matrix(params, bidirectional):
    dt, A, B, C, D, z = params
    dt, A, B, C = map(jnp.asarray, (dt, A, B, C))
    T = dt.shape[-2]
    tau, mask = _elapsed(jnp.moveaxis(dt, -1, -2), bidirectional)  # (..., d, t, s)
    decay = jnp.exp(A[:, :, None, None] * tau[..., None, :, :])  # (..., d, n, t, s)
    M = jnp.einsum("...tn,...dnts,...sn->...dts", C, decay, B)
    M = jnp.where(mask, M, 0) * jnp.moveaxis(dt, -1, -2)[..., None, :]
    if D is not None:
        M = M + _diag(jnp.asarray(D), T)
    if z is not None:
        M = M * jnp.moveaxis(jax.nn.silu(jnp.asarray(z)), -1, -2)[..., :, None]
    return M


def _s4d_matrix(params, T, dt, bidirectional):
    d, _ = _check_params(params)
    dt = jnp.exp(params.log_dt) if dt is None else jnp.asarray(dt)
    if dt.ndim <= 1:
        dt = jnp.broadcast_to(dt, (T, d))
    dt_last = jnp.moveaxis(dt, -1, -2)  # (..., d, t)
    tau, mask = _elapsed(dt_last, bidirectional)
    A = params.A  # (d, n)
    b_bar = zoh_input(A, dt[..., None]) * params.B  # (..., t, d, n)
    decay = jnp.exp(A[:, :, None, None] * tau[..., None, :, :])  # (..., d, n, t, s)
    M = 2 * jnp.einsum("dn,...dnts,...sdn->...dts", params.C, decay, b_bar).real
    return jnp.where(mask, M, 0) + _diag(params.D, T)


def implied_attention(layer: str, params, x=None, *, dt=None, bidirectional: bool = False):
    """The attention matrix ``M`` that a layer applies to its input (``y = M x``).

    Parameters
    ----------
    layer : {"ssd", "s4d", "selective"}
    params : SSDParams, S4DParams or SelectiveParams
        The layer's inputs besides ``x`` (for SSD and the selective SSM these include the
        input-dependent ``Δ, B, C``).
    x : Array, optional
        The input; used for its length ``T`` (required for ``"s4d"``) and checked against
        the parameters' shapes.
    dt : Array, optional
        S4D only: steps overriding ``exp(log_dt)``, ``(d,)`` or per-step ``(*batch, t, d)``.
    bidirectional : bool
        The matrix of the non-causal layer (full instead of lower triangular).

    Returns
    -------
    Array
        ``"ssd"``: ``(*batch, h, t, s)`` with
        ``y[..., t, h, p] = Σ_s M[..., h, t, s] x[..., s, h, p]``;
        ``"s4d"`` and ``"selective"``: ``(*batch, d, t, s)`` with
        ``y[..., t, d] = Σ_s M[..., d, t, s] x[..., s, d]``.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from bayes_ssm.kernels import init_s4d, s4d
    >>> p = init_s4d(jax.random.key(0), channels=2, state_size=3)
    >>> x = jax.random.normal(jax.random.key(1), (8, 2))
    >>> M = implied_attention("s4d", p, x)
    >>> bool(jnp.allclose(jnp.einsum("dts,sd->td", M, x), s4d(p, x), atol=1e-5))
    True
    """
    if layer not in IMPLIED_LAYERS:
        raise ValueError(f"layer must be one of {IMPLIED_LAYERS}, got {layer!r}")
    expected = {"ssd": SSDParams, "s4d": S4DParams, "selective": SelectiveParams}[layer]
    if not isinstance(params, expected):
        raise ValueError(
            f"layer={layer!r} needs params as {expected.__name__}, got {type(params).__name__}"
        )
    if layer == "s4d":
        if x is None:
            raise ValueError("implied_attention('s4d', ...) needs x (for the length T)")
        x = _checks.as_float("x", x)
        _checks.check_ndim("x", x, 2, "(*batch, t, d)")
        return _s4d_matrix(params, x.shape[-2], dt, bidirectional)
    if dt is not None:
        raise ValueError(f"dt is part of the params for layer={layer!r}; pass it there")
    T = jnp.shape(params.dt)[-2] if jnp.ndim(params.dt) >= 2 else None
    if x is not None and T is not None:
        time_axis = -3 if layer == "ssd" else -2
        if jnp.shape(x)[time_axis] != T:
            raise ValueError(
                f"x has {jnp.shape(x)[time_axis]} steps but params.dt has {T} "
                f"(x.shape={jnp.shape(x)}, dt.shape={jnp.shape(params.dt)})"
            )
    if T is None:
        raise ValueError(
            f"params.dt must be per-step, (*batch, t, ...); got shape {jnp.shape(params.dt)}"
        )
    if layer == "ssd":
        return _ssd_matrix(params, bidirectional)
    return _selective_matrix(params, bidirectional)
