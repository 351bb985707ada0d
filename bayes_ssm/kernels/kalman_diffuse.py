"""Exact diffuse initialisation of the Kalman filter (Durbin & Koopman 2012, ch. 5).

The first state has a diffuse part: ``alpha_1 = a_1 + A delta + R_0 eta_0`` with
``delta ~ N(0, kappa I)``, ``kappa -> infinity``, so that
``P_1 = kappa P_inf + P_star``. The exact initial filter carries ``P_inf`` and ``P_star``
separately until ``P_inf`` vanishes (after ``d`` observed steps, ``d`` = its rank when the
diffuse states are identified). For a scalar observation, at step ``t`` (D&K section 5.2,
written as update then prediction)::

    F_inf = z' P_inf z,     F_star = z' P_star z + h,     v = y - z' a - d
    if F_inf > 0:   M_inf = P_inf z,  M_star = P_star z
        a       <- a + M_inf v / F_inf
        P_inf   <- P_inf - M_inf M_inf' / F_inf
        P_star  <- P_star - (M_inf M_star' + M_star M_inf') / F_inf + M_inf M_inf' F_star / F_inf^2
        log-lik term  -1/2 (log 2 pi + log F_inf)
    else:           the ordinary update with F_star (and P_inf unchanged)
    a <- T a,   P_star <- T P_star T' + Q,   P_inf <- T P_inf T'

The log-likelihood is D&K's diffuse log-likelihood (their eq. 7.3), which is also what
statsmodels' ``use_exact_diffuse=True`` returns. KFAS leaves the ``log 2 pi`` constant out of the
diffuse steps' terms: add ``0.5 log(2 pi)`` per diffuse step to compare with it.

``F_inf > 0`` is decided against ``sqrt(eps) z' z`` (``P_inf`` entries are O(1), so after its
last diffuse step ``F_inf`` is rounding).

Parallel in time: the diffuse recursion runs sequentially over the first ``diffuse_steps``
steps; the rest continues with :func:`bayes_ssm.kernels.kalman.kalman_filter` (any method) from
the moments there. If ``P_inf`` has not vanished by then, the log-likelihood is NaN (never a
silently wrong value).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from bayes_ssm.kernels.kalman import kalman_filter
from bayes_ssm.kernels.kalman_common import (
    _LOG_2PI,
    Array,
    KalmanMethod,
    StateSpace,
    _as_float,
    _mm,
    _mv,
    _observed,
    _outer,
    _per_step,
    _sym,
    _vdot,
    validate,
)

__all__ = ["DiffuseFilterResult", "diffuse_kalman_filter"]


class DiffuseFilterResult(NamedTuple):
    """Output of :func:`diffuse_kalman_filter`: :class:`FilterResult`'s fields plus the diffuse
    part.

    Attributes
    ----------
    log_likelihood : Array, shape ``()``
        The diffuse log-likelihood, ``sum(log_lik_steps)``.
    log_lik_steps : Array, shape ``(time,)``
        ``-1/2 (log 2 pi + log F_inf)`` at diffuse steps, the usual term elsewhere, 0 where
        ``y`` is missing.
    predicted_means, predicted_covs : Array, shapes ``(time, state)``, ``(time, state, state)``
        ``a_t`` and ``P_star,t`` (the finite part of the predicted covariance).
    filtered_means, filtered_covs : Array
        The same after the update with ``y_t``.
    predicted_obs_means, predicted_obs_vars : Array, shape ``(time,)``
        ``z' a_t + d_t`` and ``F_star,t`` (infinite in truth at diffuse steps: see
        ``diffuse_steps``).
    predicted_diffuse_covs : Array, shape ``(time, state, state)``
        ``P_inf,t``.
    diffuse_steps : Array, shape ``(time,)``, bool
        Steps with ``F_inf > 0`` (statsmodels' ``nobs_diffuse`` is their count).
    """

    log_likelihood: Array
    log_lik_steps: Array
    predicted_means: Array
    predicted_covs: Array
    filtered_means: Array
    filtered_covs: Array
    predicted_obs_means: Array
    predicted_obs_vars: Array
    predicted_diffuse_covs: Array
    diffuse_steps: Array


def _diffuse_step(T, Q, carry, inputs):
    a, P_star, P_inf = carry
    z, h, d, yy, obs = inputs
    v = yy - _vdot(z, a) - d
    M_inf, M_star = _mv(P_inf, z), _mv(P_star, z)
    F_inf, F_star = _vdot(z, M_inf), _vdot(z, M_star) + h
    tol = jnp.sqrt(jnp.finfo(F_inf.dtype).eps) * _vdot(z, z)
    diffuse = obs & (F_inf > tol)
    regular = obs & ~diffuse
    Fi = jnp.where(diffuse, F_inf, 1.0)
    Fs = jnp.where(regular, F_star, 1.0)
    # diffuse update
    a_d = a + M_inf * (v / Fi)
    Pinf_d = P_inf - _outer(M_inf, M_inf) / Fi
    cross = _outer(M_inf, M_star)
    Pstar_d = P_star - (cross + cross.T) / Fi + _outer(M_inf, M_inf) * (F_star / Fi**2)
    # ordinary update (Joseph form, as the sequential filter)
    K = M_star / Fs
    B = jnp.eye(a.shape[0], dtype=a.dtype) - _outer(K, z)
    a_r = a + K * v
    Pstar_r = _mm(_mm(B, P_star), B.T) + h * _outer(K, K)
    a_f = jnp.where(diffuse, a_d, jnp.where(regular, a_r, a))
    Pstar_f = _sym(jnp.where(diffuse, Pstar_d, jnp.where(regular, Pstar_r, P_star)))
    Pinf_f = _sym(jnp.where(diffuse, Pinf_d, P_inf))
    ll_diffuse = -0.5 * (_LOG_2PI + jnp.log(Fi))
    ll_regular = -0.5 * (_LOG_2PI + jnp.log(Fs) + v * v / Fs)
    ll = jnp.where(diffuse, ll_diffuse, jnp.where(regular, ll_regular, 0.0))
    nxt = (_mv(T, a_f), _sym(_mm(_mm(T, Pstar_f), T.T) + Q), _sym(_mm(_mm(T, Pinf_f), T.T)))
    out = (ll, a, P_star, a_f, Pstar_f, _vdot(z, a) + d, F_star, P_inf, diffuse)
    return nxt, out


def diffuse_kalman_filter(
    ss: StateSpace,
    diffuse_cov,
    y,
    *,
    diffuse_steps: int | None = None,
    method: KalmanMethod = "auto",
) -> DiffuseFilterResult:
    """Kalman filter with an exact diffuse initial state.

    Parameters
    ----------
    ss : StateSpace
        ``init_mean`` is ``a_1``; ``init_cov`` is ``P_star`` (the proper part: zero on the
        diffuse states, e.g. the stationary covariance of AR states).
    diffuse_cov : Array, shape ``(state, state)``
        ``P_inf = A A'``: typically a diagonal of ones on the diffuse states, zeros elsewhere.
    y : Array, shape ``(time,)``
        NaN = missing.
    diffuse_steps : int, optional
        Run the diffuse recursion over the first ``diffuse_steps`` steps only and the rest with
        the ordinary filter (``method``: ``"parallel"`` runs it in ``O(log T)`` depth). ``None``:
        the diffuse recursion runs over the whole series (sequential). Choose at least the
        number of diffuse states plus the missing values among the first steps; if ``P_inf``
        has not vanished by then, the log-likelihood is NaN.
    method : {"auto", "sequential", "parallel"}
        The ordinary filter after ``diffuse_steps``.

    Returns
    -------
    DiffuseFilterResult

    Raises
    ------
    ValueError
        Shapes or dtypes that disagree (as :func:`~bayes_ssm.kernels.kalman.kalman_filter`), a
        ``diffuse_cov`` that is not ``(state, state)``, or ``diffuse_steps`` out of range.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from bayes_ssm.kernels import StateSpace
    >>> ss = StateSpace(jnp.eye(1), jnp.ones(1), 0.1 * jnp.eye(1), jnp.array(1.0),
    ...                 jnp.zeros(1), jnp.zeros((1, 1)))
    >>> res = diffuse_kalman_filter(ss, jnp.eye(1), jnp.array([0.5, 0.7, 1.0]))
    >>> [bool(b) for b in res.diffuse_steps]
    [True, False, False]
    """
    ss, y, dtype = validate(ss, y)
    P_inf = _as_float("diffuse_cov", diffuse_cov).astype(dtype)
    n = ss.transition.shape[0]
    if P_inf.shape != (n, n):
        raise ValueError(
            f"diffuse_cov must have shape (state, state) = {(n, n)}, got {P_inf.shape}"
        )
    num_steps = y.shape[0]
    if diffuse_steps is not None:
        if isinstance(diffuse_steps, bool) or not isinstance(diffuse_steps, int):
            raise ValueError(f"diffuse_steps must be an int or None, got {diffuse_steps!r}")
        if not 1 <= diffuse_steps <= num_steps:
            raise ValueError(f"diffuse_steps must be in [1, time={num_steps}], got {diffuse_steps}")
        if diffuse_steps == num_steps:
            diffuse_steps = None
    return _diffuse_jit(ss, P_inf, y, diffuse_steps, method)


@partial(jax.jit, static_argnums=(3, 4))
def _diffuse_jit(ss, P_inf, y, diffuse_steps, method):
    observed, y0 = _observed(y)
    inputs = (*_per_step(ss, y.shape[0]), y0, observed)
    k = y.shape[0] if diffuse_steps is None else diffuse_steps
    step = jax.checkpoint(partial(_diffuse_step, ss.transition, ss.state_cov), prevent_cse=False)
    carry, out = lax.scan(step, (ss.init_mean, ss.init_cov, P_inf), tuple(x[:k] for x in inputs))
    ll, m_p, P_p, m_f, P_f, obs_mean, F, Pinf_p, diffuse = out
    if diffuse_steps is not None:
        a, P_star, P_inf_left = carry
        rest = ss._replace(
            observation=ss.observation if ss.observation.ndim == 1 else ss.observation[k:],
            obs_var=ss.obs_var if ss.obs_var.ndim == 0 else ss.obs_var[k:],
            obs_offset=ss.obs_offset if ss.obs_offset.ndim == 0 else ss.obs_offset[k:],
            init_mean=a,
            init_cov=P_star,
        )
        res = kalman_filter(rest, y[k:], method=method)
        # P_inf must have vanished: otherwise the remaining terms are not the diffuse likelihood
        left = jnp.max(jnp.abs(P_inf_left))
        ok = left <= jnp.sqrt(jnp.finfo(left.dtype).eps) * (1.0 + jnp.max(jnp.abs(P_inf)))
        res_ll = jnp.where(ok, res.log_lik_steps, jnp.nan)
        zeros = jnp.zeros_like(res.predicted_covs)
        ll = jnp.concatenate([ll, res_ll])
        m_p, P_p = (
            jnp.concatenate([m_p, res.predicted_means]),
            jnp.concatenate([P_p, res.predicted_covs]),
        )
        m_f, P_f = (
            jnp.concatenate([m_f, res.filtered_means]),
            jnp.concatenate([P_f, res.filtered_covs]),
        )
        obs_mean = jnp.concatenate([obs_mean, res.predicted_obs_means])
        F = jnp.concatenate([F, res.predicted_obs_vars])
        Pinf_p = jnp.concatenate([Pinf_p, zeros])
        diffuse = jnp.concatenate([diffuse, jnp.zeros(y.shape[0] - k, bool)])
    return DiffuseFilterResult(jnp.sum(ll), ll, m_p, P_p, m_f, P_f, obs_mean, F, Pinf_p, diffuse)
