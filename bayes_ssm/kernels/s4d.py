"""S4D: a diagonal complex state-space layer, run as a recurrence or as a long convolution.

Each channel ``d`` is an independent single-input single-output system with ``n`` complex
modes (the conjugate-symmetric half of a real state of size ``2n``):

.. math::

    h_t = \\bar A_t h_{t-1} + \\bar B_t x_t, \\qquad y_t = 2\\,\\mathrm{Re}(C h_t) + D x_t,

with zero-order hold ``Ā = e^{Δ A}``, ``B̄ = (e^{Δ A} - 1) A^{-1} B`` and a learnable step
``Δ = exp(log_dt)``. With a fixed step the layer is time-invariant and equals the causal
convolution ``y = K * x`` with the kernel

.. math:: K_k = 2\\,\\mathrm{Re}(C\\, \\mathrm{diag}(\\bar A^k)\\, \\bar B), \\quad k = 0..T-1,

applied by FFT in ``O(T log T)`` (``mode="convolution"``). ``mode="recurrent"`` runs
:func:`bayes_ssm.kernels.linear_recurrence` on complex states and also accepts a per-step
``dt`` (irregular sampling: each step discretised over its real gap).

Initialisations (Gu et al., "On the Parameterization and Initialization of Diagonal State
Space Models", 2022): ``A = -1/2 + i π k`` (S4D-Lin) or
``A = -1/2 + i (2n/π)(2n/(2k+1) - 1)`` (S4D-Inv), ``k = 0..n-1``; ``B = 1``;
``C ~ CN(0, 1)``; ``log Δ ~ U(log Δ_min, log Δ_max)``.

Shapes: ``x`` ``(*batch, t, d)``; parameters ``(d, n)`` (complex ``A, B, C``) and ``(d,)``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from bayes_ssm.kernels import _checks
from bayes_ssm.kernels.discretize import zoh_input
from bayes_ssm.kernels.recurrence import linear_recurrence

__all__ = ["S4DParams", "init_s4d", "s4d", "s4d_kernel", "s4d_discretize", "S4D_MODES"]

S4D_MODES = ("convolution", "recurrent")


class S4DParams(NamedTuple):
    """Parameters of an S4D layer with ``d`` channels and ``n`` complex modes.

    Attributes
    ----------
    log_dt : Array, shape ``(d,)``
        Log step size per channel.
    log_A_real : Array, shape ``(d, n)``
        ``Re A = -exp(log_A_real)`` (always stable).
    A_imag : Array, shape ``(d, n)``
        ``Im A``.
    B, C : Array, shape ``(d, n)``, complex
    D : Array, shape ``(d,)``
        Skip connection.
    """

    log_dt: jax.Array
    log_A_real: jax.Array
    A_imag: jax.Array
    B: jax.Array
    C: jax.Array
    D: jax.Array

    @property
    def A(self):
        """The continuous state matrix diagonal ``-exp(log_A_real) + i A_imag``, ``(d, n)``."""
        return jax.lax.complex(-jnp.exp(self.log_A_real), self.A_imag)


def init_s4d(
    key,
    channels: int,
    state_size: int,
    *,
    init: str = "lin",
    dt_min: float = 1e-3,
    dt_max: float = 1e-1,
    dtype=None,
):
    """Draw S4D parameters (S4D-Lin or S4D-Inv initialisation).

    Parameters
    ----------
    key : jax.random key
    channels : int
        ``d``.
    state_size : int
        ``n``, the number of complex modes (a real state of size ``2n``).
    init : {"lin", "inv"}
    dt_min, dt_max : float
        Range of the log-uniform initial step, ``0 < dt_min <= dt_max``.
    dtype : dtype, optional
        Real dtype (default float32, float64 under x64); complex parameters follow it.

    Returns
    -------
    S4DParams
    """
    channels = _checks.positive_int("channels", channels)
    state_size = _checks.positive_int("state_size", state_size)
    if init not in ("lin", "inv"):
        raise ValueError(f"init must be 'lin' or 'inv', got {init!r}")
    if not (0 < dt_min <= dt_max):
        raise ValueError(f"need 0 < dt_min <= dt_max, got dt_min={dt_min}, dt_max={dt_max}")
    dtype = dtype or jnp.zeros(()).dtype
    k_dt, k_c, k_d = jax.random.split(key, 3)
    shape = (channels, state_size)
    log_dt = jax.random.uniform(k_dt, (channels,), dtype, math.log(dt_min), math.log(dt_max))
    k = jnp.arange(state_size, dtype=dtype)
    if init == "lin":
        imag = math.pi * k
    else:
        full = 2 * state_size
        imag = full / math.pi * (full / (2 * k + 1) - 1)
    cdtype = jnp.result_type(dtype, jnp.complex64)
    c_parts = jax.random.normal(k_c, (2, *shape), dtype) * math.sqrt(0.5)
    return S4DParams(
        log_dt=log_dt,
        log_A_real=jnp.full(shape, math.log(0.5), dtype),
        A_imag=jnp.broadcast_to(imag, shape).astype(dtype),
        B=jnp.ones(shape, cdtype),
        C=jax.lax.complex(c_parts[0], c_parts[1]).astype(cdtype),
        D=jax.random.normal(k_d, (channels,), dtype),
    )


def _check_params(params):
    if not isinstance(params, S4DParams):
        raise ValueError(f"params must be an S4DParams, got {type(params).__name__}")
    d, n = params.log_A_real.shape if params.log_A_real.ndim == 2 else (None, None)
    if d is None:
        raise ValueError(f"log_A_real must have shape (d, n); got {params.log_A_real.shape}")
    for name in ("A_imag", "B", "C"):
        if getattr(params, name).shape != (d, n):
            raise ValueError(
                f"params.{name} must have shape (d, n) = {(d, n)}; "
                f"got {getattr(params, name).shape}"
            )
    for name in ("log_dt", "D"):
        if getattr(params, name).shape != (d,):
            raise ValueError(
                f"params.{name} must have shape (d,) = {(d,)}; got {getattr(params, name).shape}"
            )
    return d, n


def s4d_discretize(params, dt=None):
    """Zero-order hold: ``(Ā, B̄)`` at the layer's step, or at given steps ``dt``.

    Parameters
    ----------
    params : S4DParams
    dt : Array, broadcastable to ``(..., d)``, optional
        Steps; default ``exp(params.log_dt)``. Per-step steps ``(*batch, t, d)`` give
        per-step ``Ā, B̄`` of shape ``(*batch, t, d, n)``.

    Returns
    -------
    (Array, Array)
        ``Ā`` and ``B̄``, complex, shape ``(..., d, n)``.
    """
    A = params.A
    dt = jnp.exp(params.log_dt) if dt is None else jnp.asarray(dt)
    dt = dt[..., None]
    return jnp.exp(dt * A), zoh_input(A, dt) * params.B


def s4d_kernel(params, length: int):
    """The convolution kernel ``K[d, k] = 2 Re(Σ_n C Ā^k B̄)``, ``k = 0..length-1``.

    Parameters
    ----------
    params : S4DParams
    length : int
        ``T``.

    Returns
    -------
    Array, shape ``(d, T)``, real.

    Notes
    -----
    ``Ā^k = exp(k Δ A)`` is evaluated directly (a Vandermonde product, ``O(d n T)`` memory).
    """
    _check_params(params)
    length = _checks.positive_int("length", length)
    A = params.A
    dt = jnp.exp(params.log_dt)[:, None]
    dtA = dt * A  # (d, n)
    C_tilde = params.C * zoh_input(A, dt) * params.B  # (d, n): C B̄
    steps = jnp.arange(length, dtype=params.log_dt.dtype)
    powers = jnp.exp(dtA[..., None] * steps)  # (d, n, t)
    return 2 * jnp.einsum("dn,dnt->dt", C_tilde, powers).real


def _causal_conv(x, K):
    """``y[..., t, d] = Σ_{s<=t} K[d, t-s] x[..., s, d]`` by FFT (zero-padded to 2T)."""
    T = x.shape[-2]
    n_fft = 2 * T
    xf = jnp.fft.rfft(x, n=n_fft, axis=-2)
    kf = jnp.fft.rfft(K.T, n=n_fft, axis=-2)
    return jnp.fft.irfft(xf * kf, n=n_fft, axis=-2)[..., :T, :].astype(x.dtype)


def _recurrent(params, x, dt, scan_method, reverse):
    a_bar, b_bar = s4d_discretize(params, dt)  # (d, n) or (..., t, d, n)
    if reverse and a_bar.ndim > 2:
        # Anti-causal: y_t gathers Ā_{t+1}..Ā_s B̄_s x_s, so shift the decays by one step.
        a_bar = jnp.concatenate([a_bar[..., 1:, :, :], jnp.ones_like(a_bar[..., :1, :, :])], -3)
    u = b_bar * x[..., None].astype(b_bar.dtype)  # (..., t, d, n)
    if a_bar.ndim == 2:
        a_bar = a_bar[None]
    h = linear_recurrence(a_bar, u, method=scan_method, reverse=reverse, axis=-3)
    y = 2 * jnp.einsum("...tdn,dn->...td", h, params.C).real
    if reverse:  # strict: remove the s = t term 2 Re(C B̄_t) x_t
        y = y - 2 * jnp.einsum("...dn,dn->...d", b_bar, params.C).real * x
    return y.astype(x.dtype)


def s4d(
    params,
    x,
    *,
    dt=None,
    mode: str = "convolution",
    bidirectional: bool = False,
    params_backward=None,
    scan_method: str = "auto",
):
    """Apply an S4D layer to ``x``.

    Parameters
    ----------
    params : S4DParams
    x : Array, shape ``(*batch, t, d)``
    dt : Array, optional
        Steps overriding ``exp(params.log_dt)``: shape ``(d,)`` (fixed) or broadcastable to
        ``(*batch, t, d)`` with a time axis (per-step, ``mode="recurrent"`` only).
    mode : {"convolution", "recurrent"}
        FFT convolution with :func:`s4d_kernel`, or the recurrence; equal up to rounding.
    bidirectional : bool
        Non-causal: add the anti-causal part ``Σ_{s>t} K^b_{s-t} x_s`` of a second (or the
        same) parameter set, the forward and reversed scans combined.
    params_backward : S4DParams, optional
        Parameters of the reversed direction (default ``params``).
    scan_method : str
        ``method`` of :func:`linear_recurrence` in recurrent mode.

    Returns
    -------
    Array, shape ``(*batch, t, d)``

    Examples
    --------
    >>> import jax
    >>> p = init_s4d(jax.random.key(0), channels=3, state_size=4)
    >>> x = jax.random.normal(jax.random.key(1), (50, 3))
    >>> y1, y2 = s4d(p, x), s4d(p, x, mode="recurrent")
    >>> bool(jax.numpy.allclose(y1, y2, atol=1e-4))
    True
    """
    if mode not in S4D_MODES:
        raise ValueError(f"mode must be one of {S4D_MODES}, got {mode!r}")
    d, _ = _check_params(params)
    params_backward = params if params_backward is None else params_backward
    if bidirectional:
        if _check_params(params_backward)[0] != d:
            raise ValueError("params_backward must have the same number of channels as params")
    x = _checks.as_float("x", x)
    _checks.check_ndim("x", x, 2, "(*batch, t, d)")
    if x.shape[-1] != d:
        raise ValueError(f"x must have d = {d} channels on its last axis; got shape {x.shape}")
    if x.shape[-2] == 0:
        raise ValueError(f"x has an empty time axis (shape {x.shape})")
    if dt is not None:
        dt = _checks.as_float("dt", dt)
        _checks.check_positive("dt", dt)
        if dt.ndim <= 1:
            dt = _checks.broadcast_to("dt", dt, (d,), "(d,)")
        else:
            if mode == "convolution":
                raise ValueError(
                    f"a per-step dt (shape {dt.shape}) makes the layer time-varying: use "
                    "mode='recurrent' (the convolution needs one fixed step per channel)"
                )
            batch = jnp.broadcast_shapes(x.shape[:-2], dt.shape[:-2])
            x = jnp.broadcast_to(x, (*batch, *x.shape[-2:]))
            dt = _checks.broadcast_to("dt", dt, x.shape, "(*batch, t, d)")
    if mode == "convolution":
        if dt is not None:  # a fixed override of the step
            params = params._replace(log_dt=jnp.log(dt))
            params_backward = params_backward._replace(log_dt=jnp.log(dt))
        y = _causal_conv(x, s4d_kernel(params, x.shape[-2]))
        if bidirectional:
            K_b = s4d_kernel(params_backward, x.shape[-2]).at[:, 0].set(0)
            y = y + jnp.flip(_causal_conv(jnp.flip(x, -2), K_b), -2)
    else:
        y = _recurrent(params, x, dt, scan_method, reverse=False)
        if bidirectional:
            y = y + _recurrent(params_backward, x, dt, scan_method, reverse=True)
    return y + params.D * x
