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
The kernel takes ``init_mean`` / ``init_cov`` as given. For a diffuse start use a large but
finite variance (statsmodels' ``approximate_diffuse`` uses ``1e6``) and drop the first
``burn_in`` log-likelihood terms (statsmodels' ``loglikelihood_burn``, by default the number of
diffuse states). In float64 this matches statsmodels to ~1e-10 relative; in float32 a variance
of ``1e6`` times the data's variance leaves too few digits after the first updates (float32
has 7), so in float32 use a prior scaled to the data (e.g. ``(10 * sd(y))**2``).

Dimension vocabulary: ``time``, ``state`` (``docs/architecture.md``). Batch axes: use
:func:`jax.vmap`. The parallel-in-time twin is :mod:`bayes_ssm.kernels.kalman_parallel`;
the slow NumPy twin is :func:`bayes_ssm.kernels.reference.kalman_filter_ref`.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

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
]

Array = jax.Array
KalmanMethod = Literal["auto", "sequential", "parallel"]
_METHODS = ("auto", "sequential", "parallel")
_LOG_2PI = math.log(2.0 * math.pi)
# A GPU pays one kernel launch per sequential step; past a few dozen steps the parallel
# (associative-scan) filter wins there. On a CPU the sequential filter wins at every length.
_GPU_SEQUENTIAL_MAX_T = 64
_UNROLL = 4


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
    pred_obs_mean, pred_obs_var : Array, shape ``(time,)``
        Moments of ``y_t | y_{1:t-1}`` (defined also where ``y_t`` is missing).
    """

    log_likelihood: Array
    log_lik_steps: Array
    predicted_means: Array
    predicted_covs: Array
    filtered_means: Array
    filtered_covs: Array
    pred_obs_mean: Array
    pred_obs_var: Array


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
    pred_obs_mean: Array
    pred_obs_var: Array
    smoothed_means: Array
    smoothed_covs: Array


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
    return 0.5 * (P + P.T)


def _observed(y):
    """Mask of observed steps and a NaN-free copy of ``y`` (for the double-where trick)."""
    observed = ~jnp.isnan(y)
    return observed, jnp.where(observed, y, 0.0)


def _sum_burn(steps, burn_in):
    return jnp.sum(steps[burn_in:]) if burn_in else jnp.sum(steps)


# --------------------------------------------------------------------------- sequential


def _innovation(m, P, z, h, d, y, observed):
    """Innovation ``v``, its variance ``F``, ``P z`` and the log-likelihood term."""
    Pz = P @ z
    F = z @ Pz + h
    v = y - z @ m - d
    safe_F = jnp.where(observed, F, 1.0)
    ll = jnp.where(observed, -0.5 * (_LOG_2PI + jnp.log(safe_F) + v * v / safe_F), 0.0)
    return v, F, Pz, safe_F, ll


def _joseph_predict(T, Q, m, P, z, h, v, Pz, safe_F, observed):
    """Fused update + prediction in Joseph form; the gain is zero at missing steps."""
    K = jnp.where(observed, Pz / safe_F, 0.0)
    g = T @ K
    L = T - jnp.outer(g, z)
    m_next = T @ m + g * v
    P_next = L @ P @ L.T + h * jnp.outer(g, g) + Q
    return m_next, _sym(P_next), K


def _filter_sequential(ss: StateSpace, y, *, history: bool):
    num_steps = y.shape[0]
    T, Q = ss.transition, ss.state_cov
    z_t, h_t, d_t = _per_step(ss, num_steps)
    observed, y0 = _observed(y)

    def step(carry, inputs):
        m, P = carry
        z, h, d, yy, obs = inputs
        v, F, Pz, safe_F, ll = _innovation(m, P, z, h, d, yy, obs)
        m_next, P_next, K = _joseph_predict(T, Q, m, P, z, h, v, Pz, safe_F, obs)
        if not history:
            return (m_next, P_next), ll
        # Filtered moments (Joseph form: (I - K z') P (I - K z')' + h K K').
        B = jnp.eye(m.shape[0], dtype=m.dtype) - jnp.outer(K, z)
        m_f = m + K * v
        P_f = _sym(B @ P @ B.T + h * jnp.outer(K, K))
        out = (ll, m, P, m_f, P_f, z @ m + d, F)
        return (m_next, P_next), out

    unroll = max(1, min(_UNROLL, num_steps))
    _, out = lax.scan(
        step, (ss.init_mean, ss.init_cov), (z_t, h_t, d_t, y0, observed), unroll=unroll
    )
    return out


def _last_sequential(ss: StateSpace, y):
    """Log-likelihood terms plus the last filtered moments, storing no history."""
    num_steps = y.shape[0]
    T, Q = ss.transition, ss.state_cov
    z_t, h_t, d_t = _per_step(ss, num_steps)
    observed, y0 = _observed(y)

    def step(carry, inputs):
        m, P = carry
        z, h, d, yy, obs = inputs
        v, F, Pz, safe_F, ll = _innovation(m, P, z, h, d, yy, obs)
        m_next, P_next, _ = _joseph_predict(T, Q, m, P, z, h, v, Pz, safe_F, obs)
        return (m_next, P_next), ll

    unroll = max(1, min(_UNROLL, num_steps))
    # All steps but the last: predict through; the last step only updates.
    (m, P), ll = lax.scan(
        step,
        (ss.init_mean, ss.init_cov),
        (z_t[:-1], h_t[:-1], d_t[:-1], y0[:-1], observed[:-1]),
        unroll=unroll,
    )
    z, h, d, yy, obs = z_t[-1], h_t[-1], d_t[-1], y0[-1], observed[-1]
    v, F, Pz, safe_F, ll_last = _innovation(m, P, z, h, d, yy, obs)
    K = jnp.where(obs, Pz / safe_F, 0.0)
    B = jnp.eye(m.shape[0], dtype=m.dtype) - jnp.outer(K, z)
    m_f = m + K * v
    P_f = _sym(B @ P @ B.T + h * jnp.outer(K, K))
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
    method = _resolve_method(method, y.shape[0])
    if method == "parallel":
        from bayes_ssm.kernels.kalman_parallel import parallel_filter

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
    method = _resolve_method(method, y.shape[0])
    if method == "parallel":
        from bayes_ssm.kernels.kalman_parallel import parallel_filter

        res = parallel_filter(ss, y, burn_in=burn_in)
        return LastFilterResult(
            res.log_likelihood, res.log_lik_steps, res.filtered_means[-1], res.filtered_covs[-1]
        )
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
        L = T - jnp.outer(T @ K, z)
        u = jnp.where(obs, v / safe_F, 0.0)
        w = jnp.where(obs, 1.0 / safe_F, 0.0)
        r_prev = z * u + L.T @ r
        N_prev = _sym(w * jnp.outer(z, z) + L.T @ N @ L)
        m_s = m + P @ r_prev
        P_s = _sym(P - P @ N_prev @ P)
        return (r_prev, N_prev), (m_s, P_s)

    n = T.shape[0]
    zeros = (jnp.zeros(n, T.dtype), jnp.zeros((n, n), T.dtype))
    unroll = max(1, min(_UNROLL, y.shape[0]))
    _, (m_s, P_s) = lax.scan(
        step, zeros, (m_p, P_p, z_t, h_t, d_t, y0, observed), reverse=True, unroll=unroll
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
    method = _resolve_method(method, y.shape[0])
    res = kalman_filter(ss, y, method=method, burn_in=burn_in)
    if method == "parallel":
        from bayes_ssm.kernels.kalman_parallel import parallel_smooth_backward

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
    T, Q = ss.transition, ss.state_cov
    z_t, h_t, d_t = _per_step(ss, horizon)

    def step(carry, inputs):
        m, P = carry
        z, h, d = inputs
        m = T @ m
        P = _sym(T @ P @ T.T + Q)
        return (m, P), (z @ m + d, z @ P @ z + h, m, P)

    _, (obs_m, obs_v, m, P) = lax.scan(step, (ss.init_mean, ss.init_cov), (z_t, h_t, d_t))
    return ForecastResult(obs_m, obs_v, m, P)
