"""Kalman filter, smoother and forecast moments for a linear-Gaussian state space with a
univariate observation, computed sequentially (one :func:`jax.lax.scan`).

The model (statsmodels' / Durbin & Koopman's timing: the initial moments describe the FIRST
state, and prediction happens after the update of each step)::

    alpha_1 ~ N(init_mean, init_cov)
    y_t = observation_t . alpha_t + obs_offset_t + eps_t,        eps_t ~ N(0, obs_var_t)
    alpha_{t+1} = transition @ alpha_t + eta_t,                  eta_t ~ N(0, state_cov)

with ``t = 1 .. time``. A NaN in ``y`` is a missing observation: the update is skipped, and its
log-likelihood term is 0 (exactly; NaN never reaches values or gradients).

Numerics
--------
The observation is a scalar, so the innovation variance ``F_t = z' P_t z + h_t`` is a scalar
and no matrix is ever inverted. The update and the prediction are fused into one step in
Joseph form::

    K_t = P_t z / F_t,     g_t = T K_t,     L_t = T - g_t z'
    a_{t+1} = T a_t + g_t v_t
    P_{t+1} = L_t P_t L_t' + h_t g_t g_t' + Q            (Joseph form, then symmetrised)

which costs the same as the textbook ``T (P - P z z' P / F) T' + Q`` but is a sum of
positive semi-definite terms, so rounding cannot make ``P`` indefinite.

Initialisation
--------------
The kernel takes ``init_mean`` / ``init_cov`` as given. The exact diffuse start (Durbin &
Koopman ch. 5) is :func:`bayes_ssm.kernels.kalman_diffuse.diffuse_kalman_filter`. For an
approximately diffuse start use a large but finite variance (statsmodels'
``approximate_diffuse`` uses ``1e6``) and drop the first ``burn_in`` log-likelihood terms
(statsmodels' ``loglikelihood_burn``, by default the number of diffuse states). In float64
this matches statsmodels' ``UnobservedComponents.loglike`` to ~1e-11 relative
(``benchmarks/kalman.py`` checks it at every length).

In float32 a variance of ``1e6`` is NOT usable: after the first updates the covariance is a
difference of numbers ~1e6 apart in float32's 7 digits, turns indefinite and the
log-likelihood becomes NaN (measured on the 8-state benchmark model, data variance ~10).
With a prior variance ~1e4 the float32 log-likelihood is within 1e-6 (sequential) / 2e-5
(parallel) of float64, with ~1e2 within 4e-7 / 3e-6. So in float32 scale the initial
variance to the data, e.g. ``(10 * sd(y))**2``, or run in float64.

Speed
-----
Small products are written as broadcast-multiply-sums (``_mm``), which XLA fuses into one loop
nest per step; a ``dot`` per 8x8 product is a library call, ~20x slower per step on a CPU.
Dimension vocabulary: ``time``, ``state`` (``docs/architecture.md``). Batch axes: use
:func:`jax.vmap`. The parallel-in-time twin is :mod:`bayes_ssm.kernels.kalman_parallel`;
the slow NumPy twin is :func:`bayes_ssm.kernels.reference.kalman_filter_ref`.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

from bayes_ssm.kernels.kalman_common import (
    Array,
    FilterResult,
    ForecastResult,
    KalmanMethod,
    LastFilterResult,
    SmootherResult,
    StateSpace,
    _as_float,
    _filtered,
    _innovation,
    _mm,
    _mv,
    _observed,
    _outer,
    _per_step,
    _resolve_method,
    _sum_burn,
    _sym,
    _vdot,
    choose_kalman_method,
    validate,
)
from bayes_ssm.kernels.kalman_parallel import parallel_filter, parallel_smooth_backward

__all__ = [
    "StateSpace",
    "FilterResult",
    "LastFilterResult",
    "SmootherResult",
    "ForecastResult",
    "kalman_filter",
    "kalman_filter_last",
    "kalman_log_likelihood",
    "kalman_smoother",
    "kalman_forecast",
    "choose_kalman_method",
    "validate",
]

_UNROLL = 1


def _remat(step):
    """Recompute a scan step in the backward pass instead of storing its intermediates:
    reverse mode then keeps only the carry per step (measured 2-3x faster gradients at
    T = 1e5, where the stored intermediates no longer fit in cache)."""
    return jax.checkpoint(step, prevent_cse=False)


# --------------------------------------------------------------------------- sequential


def _joseph_predict(T, Q, m, P, z, h, v, Pz, safe_F, observed):
    """Fused update + prediction in Joseph form; the gain is zero at missing steps."""
    K = jnp.where(observed, Pz / safe_F, 0.0)
    g = _mv(T, K)
    L = T - _outer(g, z)
    m_next = _mv(T, m) + g * v
    P_next = _mm(_mm(L, P), L.T) + h * _outer(g, g) + Q
    return m_next, _sym(P_next), K


def _scan(ss: StateSpace, inputs, *, history: bool):
    """One ``lax.scan`` of the fused update + predict step over ``inputs = (z, h, d, y, obs)``.

    Returns ``(last predicted (m, P), outputs)``; outputs are the log-likelihood terms, plus the
    predicted and filtered moments, predicted observation mean and variance when ``history``.
    """
    T, Q = ss.transition, ss.state_cov

    def step(carry, inputs):
        m, P = carry
        z, h, d, yy, obs = inputs
        v, F, Pz, safe_F, ll = _innovation(m, P, z, h, d, yy, obs)
        m_next, P_next, K = _joseph_predict(T, Q, m, P, z, h, v, Pz, safe_F, obs)
        if not history:
            return (m_next, P_next), ll
        m_f, P_f = _filtered(m, P, K, v, z, h)
        return (m_next, P_next), (ll, m, P, m_f, P_f, _vdot(z, m) + d, F)

    unroll = max(1, min(_UNROLL, inputs[0].shape[0]))
    return lax.scan(_remat(step), (ss.init_mean, ss.init_cov), inputs, unroll=unroll)


def _filter_sequential(ss: StateSpace, y, *, history: bool):
    observed, y0 = _observed(y)
    inputs = (*_per_step(ss, y.shape[0]), y0, observed)
    return _scan(ss, inputs, history=history)[1]


def _last_sequential(ss: StateSpace, y):
    """Log-likelihood terms plus the last filtered moments, storing no history."""
    observed, y0 = _observed(y)
    inputs = (*_per_step(ss, y.shape[0]), y0, observed)
    # All steps but the last: predict through; the last step only updates.
    (m, P), ll = _scan(ss, tuple(x[:-1] for x in inputs), history=False)
    z, h, d, yy, obs = (x[-1] for x in inputs)
    v, F, Pz, safe_F, ll_last = _innovation(m, P, z, h, d, yy, obs)
    K = jnp.where(obs, Pz / safe_F, 0.0)
    m_f, P_f = _filtered(m, P, K, v, z, h)
    return jnp.concatenate([ll, ll_last[None]]), m_f, P_f


# --------------------------------------------------------------------------- public API


def kalman_filter(
    ss: StateSpace, y, *, method: KalmanMethod = "auto", burn_in: int = 0
) -> FilterResult:
    """Kalman filter: log-likelihood, one-step predictions and filtered moments.

    Parameters
    ----------
    ss : StateSpace
        The system; see :class:`StateSpace` for shapes.
    y : Array, shape ``(time,)``
        Observations; NaN marks a missing step (update skipped, log-likelihood term 0).
    method : {"auto", "sequential", "parallel"}
        ``"sequential"``: one :func:`jax.lax.scan` (fastest on a CPU). ``"parallel"``: the
        associative scan of Särkkä & García-Fernández (2021), ``O(log T)`` depth (the GPU
        path). ``"auto"``: :func:`choose_kalman_method`. Results agree to rounding.
    burn_in : int
        Number of leading terms left out of ``log_likelihood`` (statsmodels'
        ``loglikelihood_burn``, for an approximately diffuse start). ``log_lik_steps``
        keeps all terms.

    Returns
    -------
    FilterResult

    Raises
    ------
    ValueError
        Shapes that disagree (``y`` vs the system), a non-square transition, non-floating
        dtypes, an unknown method or a negative ``burn_in``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from bayes_ssm.kernels import StateSpace, kalman_filter
    >>> ss = StateSpace(jnp.eye(1), jnp.ones(1), 0.1 * jnp.eye(1), jnp.array(1.0),
    ...                 jnp.zeros(1), jnp.eye(1))
    >>> res = kalman_filter(ss, jnp.array([0.5, jnp.nan, 1.0]))
    >>> res.log_lik_steps.shape, float(res.log_lik_steps[1])
    ((3,), 0.0)
    """
    ss, y, _ = validate(ss, y, burn_in=burn_in)
    return _filter_jit(ss, y, _resolve_method(method, y.shape[0]), burn_in)


@partial(jax.jit, static_argnums=(2, 3))
def _filter_jit(ss, y, method, burn_in):
    if method == "parallel":
        return parallel_filter(ss, y, burn_in=burn_in)
    ll, m_p, P_p, m_f, P_f, obs_mean, obs_var = _filter_sequential(ss, y, history=True)
    return FilterResult(_sum_burn(ll, burn_in), ll, m_p, P_p, m_f, P_f, obs_mean, obs_var)


def kalman_filter_last(
    ss: StateSpace, y, *, method: KalmanMethod = "auto", burn_in: int = 0
) -> LastFilterResult:
    """Log-likelihood terms and the last filtered moments, without storing the history.

    The fast path for a likelihood inside NUTS that also forecasts: memory ``O(time)``
    (plus what reverse-mode differentiation stores). Arguments as :func:`kalman_filter`.

    Returns
    -------
    LastFilterResult
    """
    ss, y, _ = validate(ss, y, burn_in=burn_in)
    return _last_jit(ss, y, _resolve_method(method, y.shape[0]), burn_in)


@partial(jax.jit, static_argnums=(2, 3))
def _last_jit(ss, y, method, burn_in):
    if method == "parallel":
        return LastFilterResult(*parallel_filter(ss, y, burn_in=burn_in, history=False))
    ll, m, P = _last_sequential(ss, y)
    return LastFilterResult(_sum_burn(ll, burn_in), ll, m, P)


def kalman_log_likelihood(
    ss: StateSpace, y, *, method: KalmanMethod = "auto", burn_in: int = 0
) -> Array:
    """Marginal log-likelihood ``log p(y_{burn_in+1:T})`` with the states integrated out.

    Arguments as :func:`kalman_filter`; stores no covariance history (the path for NUTS).

    Returns
    -------
    Array, shape ``()``
    """
    return kalman_filter_last(ss, y, method=method, burn_in=burn_in).log_likelihood


def _smooth_backward(ss: StateSpace, y, m_p, P_p):
    """Durbin-Koopman backward recursion (no matrix inverse) on the predicted moments."""
    T = ss.transition
    z_t, h_t, d_t = _per_step(ss, y.shape[0])
    observed, y0 = _observed(y)

    def step(carry, inputs):
        r, N = carry  # r_t, N_t (information from steps after t)
        m, P, z, h, d, yy, obs = inputs
        v, F, Pz, safe_F, _ = _innovation(m, P, z, h, d, yy, obs)
        K = jnp.where(obs, Pz / safe_F, 0.0)
        L = T - _outer(_mv(T, K), z)
        u = jnp.where(obs, v / safe_F, 0.0)
        w = jnp.where(obs, 1.0 / safe_F, 0.0)
        r_prev = z * u + _mv(L.T, r)
        N_prev = _sym(w * _outer(z, z) + _mm(_mm(L.T, N), L))
        m_s = m + _mv(P, r_prev)
        P_s = _sym(P - _mm(_mm(P, N_prev), P))
        return (r_prev, N_prev), (m_s, P_s)

    n = T.shape[0]
    zeros = (jnp.zeros(n, T.dtype), jnp.zeros((n, n), T.dtype))
    unroll = max(1, min(_UNROLL, y.shape[0]))
    _, (m_s, P_s) = lax.scan(
        _remat(step), zeros, (m_p, P_p, z_t, h_t, d_t, y0, observed), reverse=True, unroll=unroll
    )
    return m_s, P_s


def kalman_smoother(
    ss: StateSpace, y, *, method: KalmanMethod = "auto", burn_in: int = 0
) -> SmootherResult:
    """Fixed-interval smoother: moments of ``alpha_t | y_{1:T}`` for every step.

    Runs :func:`kalman_filter`, then the Durbin-Koopman backward recursion (equivalent to
    Rauch-Tung-Striebel, but with no inverse of the predicted covariance, so singular
    ``state_cov`` and deterministic components are fine)::

        r_{t-1} = z_t v_t / F_t + L_t' r_t,      N_{t-1} = z_t z_t' / F_t + L_t' N_t L_t
        E[alpha_t | y] = a_t + P_t r_{t-1},      Var[alpha_t | y] = P_t - P_t N_{t-1} P_t

    with ``r_T = 0``, ``N_T = 0`` (at missing steps ``r_{t-1} = T' r_t``, ``N_{t-1} = T' N_t T``).
    ``method="parallel"`` runs both recursions as associative scans.

    Parameters and Raises as :func:`kalman_filter`.

    Returns
    -------
    SmootherResult
    """
    ss, y, _ = validate(ss, y, burn_in=burn_in)
    return _smoother_jit(ss, y, _resolve_method(method, y.shape[0]), burn_in)


@partial(jax.jit, static_argnums=(2, 3))
def _smoother_jit(ss, y, method, burn_in):
    res = _filter_jit(ss, y, method, burn_in)
    if method == "parallel":
        m_s, P_s = parallel_smooth_backward(ss, y, res.predicted_means, res.predicted_covs)
    else:
        m_s, P_s = _smooth_backward(ss, y, res.predicted_means, res.predicted_covs)
    return SmootherResult(*res, m_s, P_s)


def kalman_forecast(ss: StateSpace, mean, cov, horizon: int) -> ForecastResult:
    """Predictive moments ``h = 1 .. horizon`` steps after the last observation.

    Parameters
    ----------
    ss : StateSpace
        The system over the forecast period: a time-varying ``observation`` must have
        ``(horizon, state)`` rows, ``obs_var`` / ``obs_offset`` ``()`` or ``(horizon,)``.
        ``init_mean`` / ``init_cov`` are ignored.
    mean, cov : Array, shapes ``(state,)``, ``(state, state)``
        Filtered moments of the last observed state (e.g. ``LastFilterResult.last_mean``).
    horizon : int
        Number of steps ahead (static).

    Returns
    -------
    ForecastResult
    """
    if not isinstance(horizon, int) or horizon < 1:
        raise ValueError(f"horizon must be a positive int, got {horizon!r}")
    mean = _as_float("mean", mean)
    cov = _as_float("cov", cov)
    ss = ss._replace(init_mean=mean, init_cov=cov)
    ss, _, _ = validate(ss, num_steps=horizon)
    return _forecast_jit(ss, horizon)


@partial(jax.jit, static_argnums=(1,))
def _forecast_jit(ss, horizon):
    T, Q = ss.transition, ss.state_cov
    z_t, h_t, d_t = _per_step(ss, horizon)

    def step(carry, inputs):
        m, P = carry
        z, h, d = inputs
        m = _mv(T, m)
        P = _sym(_mm(_mm(T, P), T.T) + Q)
        return (m, P), (_vdot(z, m) + d, _vdot(z, _mv(P, z)) + h, m, P)

    _, (obs_m, obs_v, m, P) = lax.scan(step, (ss.init_mean, ss.init_cov), (z_t, h_t, d_t))
    return ForecastResult(obs_m, obs_v, m, P)
