"""Shared pieces of the Kalman kernels: the system and result types, input validation,
and small-matrix helpers. Public names are re-exported by :mod:`bayes_ssm.kernels.kalman`."""

from __future__ import annotations

import math
import warnings
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp

__all__ = [
    "StateSpace",
    "FilterResult",
    "LastFilterResult",
    "SmootherResult",
    "ForecastResult",
    "validate",
    "choose_kalman_method",
]

Array = jax.Array
KalmanMethod = Literal["auto", "sequential", "parallel"]
_METHODS = ("auto", "sequential", "parallel")
_LOG_2PI = math.log(2.0 * math.pi)
# A GPU pays one kernel launch per sequential step; past a few dozen steps the parallel
# (associative-scan) filter wins there. On a CPU the sequential filter wins at every length.
_GPU_SEQUENTIAL_MAX_T = 64


class StateSpace(NamedTuple):
    """A linear-Gaussian state space with a univariate observation.

    Attributes
    ----------
    transition : Array, shape ``(state, state)``
        ``T``: ``alpha_{t+1} = T alpha_t + eta_t``.
    observation : Array, shape ``(state,)`` or ``(time, state)``
        ``Z`` (or per-step rows ``z_t``): ``y_t = z_t . alpha_t + offset_t + eps_t``.
    state_cov : Array, shape ``(state, state)``
        ``Var(eta_t) = R Q R'``; may be singular.
    obs_var : Array, shape ``()`` or ``(time,)``
        ``Var(eps_t)``; per-step values serve scale mixtures (Student-t).
    init_mean : Array, shape ``(state,)``
        Mean of the first state ``alpha_1``.
    init_cov : Array, shape ``(state, state)``
        Covariance of the first state ``alpha_1``.
    obs_offset : Array or float, shape ``()`` or ``(time,)``
        Known additive term in the observation (e.g. a regression ``X @ beta``).
    """

    transition: Array
    observation: Array
    state_cov: Array
    obs_var: Array
    init_mean: Array
    init_cov: Array
    obs_offset: Array | float = 0.0


def _renamed(old: str, new: str) -> property:
    """A read-only alias ``old`` for the field ``new`` that warns (kept for one release)."""

    def get(self):
        warnings.warn(
            f"{old} is deprecated; use {new} (one name per concept: ForecastResult has "
            "obs_means / obs_vars)",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(self, new)

    return property(get, doc=f"Deprecated alias of ``{new}``.")


class FilterResult(NamedTuple):
    """Output of :func:`kalman_filter`.

    Attributes
    ----------
    log_likelihood : Array, shape ``()``
        ``sum(log_lik_steps[burn_in:])``.
    log_lik_steps : Array, shape ``(time,)``
        ``log p(y_t | y_{1:t-1})``; 0 where ``y_t`` is missing.
    predicted_means, predicted_covs : Array, shapes ``(time, state)``, ``(time, state, state)``
        Moments of ``alpha_t | y_{1:t-1}`` (``predicted_means[0] = init_mean``).
    filtered_means, filtered_covs : Array, shapes ``(time, state)``, ``(time, state, state)``
        Moments of ``alpha_t | y_{1:t}``.
    predicted_obs_means, predicted_obs_vars : Array, shape ``(time,)``
        Moments of ``y_t | y_{1:t-1}`` (defined also where ``y_t`` is missing).
    """

    log_likelihood: Array
    log_lik_steps: Array
    predicted_means: Array
    predicted_covs: Array
    filtered_means: Array
    filtered_covs: Array
    predicted_obs_means: Array
    predicted_obs_vars: Array

    pred_obs_mean = _renamed("pred_obs_mean", "predicted_obs_means")
    pred_obs_var = _renamed("pred_obs_var", "predicted_obs_vars")


class LastFilterResult(NamedTuple):
    """Output of :func:`kalman_filter_last`: what a likelihood or forecast needs, no history.

    Attributes
    ----------
    log_likelihood : Array, shape ``()``
    log_lik_steps : Array, shape ``(time,)``
    last_mean, last_cov : Array, shapes ``(state,)``, ``(state, state)``
        Filtered moments of the last state, ``alpha_T | y_{1:T}``; pass them to
        :func:`kalman_forecast`.
    """

    log_likelihood: Array
    log_lik_steps: Array
    last_mean: Array
    last_cov: Array


class SmootherResult(NamedTuple):
    """Output of :func:`kalman_smoother`: the filter's fields plus the smoothed moments.

    Attributes
    ----------
    smoothed_means : Array, shape ``(time, state)``
        ``E[alpha_t | y_{1:T}]``.
    smoothed_covs : Array, shape ``(time, state, state)``
        ``Var[alpha_t | y_{1:T}]``.
    """

    log_likelihood: Array
    log_lik_steps: Array
    predicted_means: Array
    predicted_covs: Array
    filtered_means: Array
    filtered_covs: Array
    predicted_obs_means: Array
    predicted_obs_vars: Array
    smoothed_means: Array
    smoothed_covs: Array

    pred_obs_mean = _renamed("pred_obs_mean", "predicted_obs_means")
    pred_obs_var = _renamed("pred_obs_var", "predicted_obs_vars")


class ForecastResult(NamedTuple):
    """Output of :func:`kalman_forecast`: moments ``h = 1 .. horizon`` steps ahead.

    Attributes
    ----------
    obs_means, obs_vars : Array, shape ``(horizon,)``
        Mean and variance of ``y_{T+h} | y_{1:T}`` (observation noise included).
    state_means, state_covs : Array, shapes ``(horizon, state)``, ``(horizon, state, state)``
        Moments of ``alpha_{T+h} | y_{1:T}``.
    """

    obs_means: Array
    obs_vars: Array
    state_means: Array
    state_covs: Array


# --------------------------------------------------------------------------- validation


def _as_float(name, x, allow_python_scalar=False):
    if allow_python_scalar and isinstance(x, int | float) and not isinstance(x, bool):
        return jnp.asarray(float(x))
    if isinstance(x, bool) or x is None:
        raise ValueError(f"{name} must be a floating-point array, got {x!r}")
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(
            f"{name} must have a floating-point dtype, got {x.dtype} (shape {x.shape}); "
            f"cast it, e.g. {name}.astype(float)"
        )
    return x


def validate(ss: StateSpace, y=None, *, num_steps: int | None = None, burn_in: int = 0):
    """Check shapes and dtypes of a state space (and series); return them as arrays.

    Parameters
    ----------
    ss : StateSpace
    y : Array, shape ``(time,)``, optional
    num_steps : int, optional
        Length of the time axis when ``y`` is not given (the forecast horizon).
    burn_in : int
        Number of leading log-likelihood terms to drop.

    Returns
    -------
    (StateSpace, Array or None, dtype)
        Arrays cast to the promoted floating dtype.

    Raises
    ------
    ValueError
        Naming the argument and the shapes or dtype at fault. The checks use static shapes
        only, so they also run under :func:`jax.jit` and :func:`jax.vmap`.
    """
    if not isinstance(ss, StateSpace):
        raise ValueError(f"ss must be a StateSpace, got {type(ss).__name__}")
    T = _as_float("transition", ss.transition)
    Z = _as_float("observation", ss.observation)
    Q = _as_float("state_cov", ss.state_cov)
    H = _as_float("obs_var", ss.obs_var, allow_python_scalar=True)
    m0 = _as_float("init_mean", ss.init_mean)
    P0 = _as_float("init_cov", ss.init_cov)
    d = _as_float("obs_offset", ss.obs_offset, allow_python_scalar=True)
    if T.ndim != 2 or T.shape[0] != T.shape[1]:
        raise ValueError(f"transition must be a square (state, state) matrix, got shape {T.shape}")
    n = T.shape[0]
    if n == 0:
        raise ValueError("transition is empty: the state needs at least one dimension")
    for name, x in (("state_cov", Q), ("init_cov", P0)):
        if x.shape != (n, n):
            raise ValueError(
                f"{name} must have shape (state, state) = {(n, n)} like transition, got {x.shape}"
            )
    if m0.shape != (n,):
        raise ValueError(f"init_mean must have shape (state,) = {(n,)}, got {m0.shape}")
    if y is not None:
        y = _as_float("y", y)
        if y.ndim != 1:
            raise ValueError(f"y must be a univariate series of shape (time,), got {y.shape}")
        num_steps = y.shape[0]
        if num_steps == 0:
            raise ValueError("y is empty: the series needs at least one step")
    if Z.ndim == 1:
        if Z.shape != (n,):
            raise ValueError(
                f"observation must have shape (state,) = {(n,)} or (time, state), got {Z.shape}"
            )
    elif Z.ndim == 2:
        if Z.shape != (num_steps, n):
            raise ValueError(
                f"time-varying observation must have shape (time, state) = {(num_steps, n)}, "
                f"got {Z.shape}"
            )
    else:
        raise ValueError(f"observation must have shape (state,) or (time, state), got {Z.shape}")
    for name, x in (("obs_var", H), ("obs_offset", d)):
        if x.ndim == 1 and x.shape != (num_steps,):
            raise ValueError(
                f"{name} must be a scalar or have shape (time,) = {(num_steps,)}, got {x.shape}"
            )
        if x.ndim > 1:
            raise ValueError(f"{name} must be a scalar or have shape (time,), got {x.shape}")
    if not isinstance(burn_in, int) or burn_in < 0:
        raise ValueError(f"burn_in must be a non-negative int, got {burn_in!r}")
    arrays = [T, Z, Q, m0, P0] + ([y] if y is not None else [])
    dtype = jnp.result_type(*[a.dtype for a in arrays])
    ss = StateSpace(
        T.astype(dtype),
        Z.astype(dtype),
        Q.astype(dtype),
        H.astype(dtype),
        m0.astype(dtype),
        P0.astype(dtype),
        d.astype(dtype),
    )
    if y is not None:
        y = y.astype(dtype)
    return ss, y, dtype


def choose_kalman_method(num_steps: int, backend: str | None = None) -> str:
    """The algorithm ``method="auto"`` runs: ``"sequential"`` on a CPU (and for
    ``num_steps <= 64`` elsewhere), ``"parallel"`` on a GPU or TPU for longer series."""
    backend = backend or jax.default_backend()
    if backend == "cpu" or num_steps <= _GPU_SEQUENTIAL_MAX_T:
        return "sequential"
    return "parallel"


def _resolve_method(method, num_steps):
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    return choose_kalman_method(num_steps) if method == "auto" else method


def _per_step(ss: StateSpace, num_steps: int):
    """Broadcast the per-step inputs to (time, ...) arrays."""
    n = ss.transition.shape[0]
    z = jnp.broadcast_to(ss.observation, (num_steps, n))
    h = jnp.broadcast_to(ss.obs_var, (num_steps,))
    d = jnp.broadcast_to(ss.obs_offset, (num_steps,))
    return z, h, d


def _sym(P):
    return 0.5 * (P + jnp.swapaxes(P, -1, -2))


# Small-matrix products as broadcast-multiply-sum. For the few-state systems of structural
# models, XLA fuses these into one loop nest per step; a ``dot`` per 8x8 product costs a
# library call each, ~20x slower per step on a CPU (measured: benchmarks/README.md, Kalman section).
# Above _SMALL states a real matrix product is cheaper than the n^3 broadcast.
_SMALL = 16


def _mm(A, B):
    """``A @ B`` for small matrices, batched over leading axes."""
    if A.shape[-1] > _SMALL:
        return jnp.matmul(A, B)
    return jnp.sum(A[..., :, :, None] * B[..., None, :, :], axis=-2)


def _mv(A, x):
    """``A @ x`` for a small matrix, batched over leading axes."""
    if A.shape[-1] > _SMALL:
        return jnp.einsum("...ij,...j->...i", A, x)
    return jnp.sum(A * x[..., None, :], axis=-1)


def _vdot(x, w):
    return jnp.sum(x * w, axis=-1)


def _outer(a, b):
    return a[..., :, None] * b[..., None, :]


def _observed(y):
    """Mask of observed steps and a NaN-free copy of ``y`` (for the double-where trick)."""
    observed = ~jnp.isnan(y)
    return observed, jnp.where(observed, y, 0.0)


def _sum_burn(steps, burn_in):
    return jnp.sum(steps[burn_in:]) if burn_in else jnp.sum(steps)


def _innovation(m, P, z, h, d, y, observed):
    """Innovation ``v``, its variance ``F``, ``P z`` and the log-likelihood term (batched over
    leading axes)."""
    Pz = _mv(P, z)
    F = _vdot(z, Pz) + h
    v = y - _vdot(z, m) - d
    safe_F = jnp.where(observed, F, 1.0)
    ll = jnp.where(observed, -0.5 * (_LOG_2PI + jnp.log(safe_F) + v * v / safe_F), 0.0)
    return v, F, Pz, safe_F, ll


def _filtered(m, P, K, v, z, h):
    """Condition the predicted moments on one observation (Joseph form, symmetrised)."""
    B = jnp.eye(m.shape[-1], dtype=m.dtype) - _outer(K, z)  # I - K z'
    hKK = jnp.asarray(h)[..., None, None] * _outer(K, K)
    return m + K * jnp.asarray(v)[..., None], _sym(_mm(_mm(B, P), jnp.swapaxes(B, -1, -2)) + hKK)
