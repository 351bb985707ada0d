"""The continuous-time branch of the :class:`StructuralTS` program (private).

With observation times bound to the model (``obs_times``), the transition and state noise vary
with the gap between consecutive observations (:mod:`.continuous`), so the time-invariant Kalman
kernels do not apply; this module holds a time-varying Kalman filter (sequential, with the same
conventions as :func:`~bayes_ssm.kernels.kalman.kalman_filter`: ``log_lik`` 0 where ``y`` is
missing), a Rauch-Tung-Striebel smoother for the simulation smoother, and the forecast
propagation over arbitrary future gaps.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from jax import lax

from bayes_ssm.kernels.kalman_common import _mm, _mv, _outer, _vdot
from bayes_ssm.models._shared import psd_sqrt
from bayes_ssm.models.continuous import continuous_system
from bayes_ssm.models.likelihoods import observation_distribution

__all__ = ["TimeVaryingFilter", "tv_filter", "tv_smoothed_means", "gaps_of", "run_filtered"]

_LOG_2PI = math.log(2.0 * math.pi)


class TimeVaryingFilter(NamedTuple):
    """Output of :func:`tv_filter`; shapes ``(time,)``, ``(time, state)``,
    ``(time, state, state)``."""

    log_lik: jnp.ndarray
    predicted_obs_means: jnp.ndarray
    predicted_obs_vars: jnp.ndarray
    pred_means: jnp.ndarray
    pred_covs: jnp.ndarray
    filt_means: jnp.ndarray
    filt_covs: jnp.ndarray


def tv_filter(transitions, noise_covs, observation, obs_var, obs_offset, init_mean, init_cov, y):
    """Kalman filter with a transition and state noise per step.

    Parameters
    ----------
    transitions, noise_covs : Array, shape ``(time, state, state)``
        Entry ``t`` carries ``alpha_t`` to ``alpha_{t+1}`` (the last one is not used).
    observation : Array, shape ``(state,)``
    obs_var, obs_offset : Array, shape ``()`` or ``(time,)``
    init_mean : Array, shape ``(state,)``
    init_cov : Array, shape ``(state, state)``
    y : Array, shape ``(time,)``, NaN where missing

    Returns
    -------
    TimeVaryingFilter
    """
    num_steps = y.shape[0]
    obs_var = jnp.broadcast_to(obs_var, (num_steps,))
    obs_offset = jnp.broadcast_to(obs_offset, (num_steps,))
    z = observation

    def step(carry, inputs):
        m, p = carry
        trans, noise, yt, rt, dt = inputs
        # Small-matrix products as broadcast-multiply-sums (``kalman_common._mm``): a ``dot``
        # per few-state product is a library call each, ~20x slower per step on a CPU.
        f = _vdot(z, m) + dt
        pz = _mv(p, z)
        var = _vdot(z, pz) + rt
        observed = ~jnp.isnan(yt)
        v = jnp.where(observed, yt - f, 0.0)
        safe = jnp.where(observed, var, 1.0)
        gain = pz / safe
        mf = jnp.where(observed, m + gain * v, m)
        pf = jnp.where(observed, p - _outer(gain, pz), p)
        pf = 0.5 * (pf + pf.T)
        ll = jnp.where(observed, -0.5 * (_LOG_2PI + jnp.log(safe) + v**2 / safe), 0.0)
        mp = _mv(trans, mf)
        pp = _mm(_mm(trans, pf), trans.T) + noise
        return (mp, 0.5 * (pp + pp.T)), (ll, f, var, m, p, mf, pf)

    inputs = (transitions, noise_covs, y, obs_var, obs_offset)
    _, out = lax.scan(step, (init_mean, init_cov), inputs)
    return TimeVaryingFilter(*out)


def tv_smoothed_means(transitions, res: TimeVaryingFilter):
    """Rauch-Tung-Striebel smoothed means ``E[alpha_t | y]``, shape ``(time, state)``."""

    def step(ms_next, inputs):
        trans, mf, pf, mp_next, pp_next = inputs
        gain = pf @ trans.T @ jnp.linalg.pinv(pp_next, hermitian=True)
        ms = mf + gain @ (ms_next - mp_next)
        return ms, ms

    inputs = (
        transitions[:-1],
        res.filt_means[:-1],
        res.filt_covs[:-1],
        res.pred_means[1:],
        res.pred_covs[1:],
    )
    last = res.filt_means[-1]
    _, earlier = lax.scan(step, last, inputs, reverse=True)
    return jnp.concatenate([earlier, last[None]], axis=0)


def gaps_of(times, dtype):
    """Gaps between consecutive ``times`` (time - 1,) padded with a final 1 (unused)."""
    times = jnp.asarray(times, dtype)
    return jnp.concatenate([jnp.diff(times), jnp.ones((1,), dtype)])


def run_filtered(model, y, params, variances, system, obs_var, offset, future_offset, horizon,
                 components, emit_readouts):  # fmt: skip
    """Likelihood, read-outs, forecasts and (optionally) components in continuous time.

    ``obs_var`` is the observation variance (per step for Student-t); ``emit_readouts(log_lik,
    pred_mean, state_var)`` is the discrete program's (``log_lik``, ``y_fitted``, ``y_rep``),
    called in the same order as there so that the same key gives the same draws.
    """
    dtype = y.dtype
    transitions, noise_covs, roots = continuous_system(
        model, variances, gaps_of(model.obs_times, dtype)
    )
    res = tv_filter(
        transitions, noise_covs, system.observation, obs_var, offset, system.init_mean,
        system.init_cov, y,
    )  # fmt: skip
    numpyro.factor("y_log_likelihood", jnp.sum(res.log_lik))
    emit_readouts(
        res.log_lik, res.predicted_obs_means, jnp.clip(res.predicted_obs_vars - obs_var, 0.0)
    )
    if horizon > 0:
        future = _future_gaps(model, horizon, dtype)
        f_trans, _, f_roots = continuous_system(model, variances, future)
        n = system.init_mean.shape[0]
        zs = numpyro.sample(
            "forecast_state_z", dist.Normal(jnp.zeros((horizon + 1, n), dtype), 1.0).to_event(2)
        )
        last = res.filt_means[-1] + psd_sqrt(res.filt_covs[-1]) @ zs[0]
        signal = _propagate(f_trans, f_roots, system.observation, last, zs[1:])
        signal = signal + future_offset
        numpyro.sample("y_forecast", observation_distribution(model.likelihood, signal, params))
    if components:
        states = _simulation_smoother(transitions, noise_covs, roots, system, obs_var, offset, y)
        for name, start, stop in system.spans:
            value = states[:, start:stop] @ system.observation[start:stop]
            numpyro.deterministic(f"component/{name}", value)


def _propagate(transitions, roots, observation, start, z):
    """Signal ``Z alpha_k`` of ``alpha_k = T_k alpha_{k-1} + L_k z_k`` from ``start``, (K,)."""

    def step(state, inputs):
        trans, root, zk = inputs
        nxt = _mv(trans, state) + _mv(root, zk)
        return nxt, _vdot(observation, nxt)

    _, signal = lax.scan(step, start, (transitions, roots, z))
    return signal


def _future_gaps(model, horizon, dtype):
    if model.forecast_times is None:
        return jnp.ones((horizon,), dtype)
    times = jnp.asarray((model.obs_times[-1],) + tuple(model.forecast_times), dtype)
    if len(model.forecast_times) != horizon:
        raise ValueError(
            f"the model holds {len(model.forecast_times)} forecast times; horizon is {horizon}"
        )
    return jnp.diff(times)


def _simulation_smoother(transitions, noise_covs, roots, system, obs_var, offset, y):
    """One joint draw of the states given ``y`` (Durbin-Koopman mean correction, as in the
    discrete program, with the time-varying filter and an RTS smoother)."""
    key = numpyro.prng_key()
    if key is None:
        raise ValueError("components=True draws random paths: run the model under a seed handler")
    dtype = y.dtype
    num_steps, n = y.shape[0], system.init_mean.shape[0]
    k0, k1, k2 = jax.random.split(key, 3)
    first = system.init_mean + psd_sqrt(system.init_cov) @ jax.random.normal(k0, (n,), dtype)
    z = jax.random.normal(k1, (num_steps - 1, n), dtype)

    def step(state, inputs):
        trans, root, zk = inputs
        nxt = _mv(trans, state) + _mv(root, zk)
        return nxt, nxt

    _, rest = lax.scan(step, first, (transitions[:-1], roots[:-1], z))
    alpha_plus = jnp.concatenate([first[None], rest], axis=0)
    obs_sd = jnp.sqrt(jnp.broadcast_to(obs_var, (num_steps,)))
    y_plus = alpha_plus @ system.observation + offset
    y_plus = y_plus + obs_sd * jax.random.normal(k2, (num_steps,), dtype)
    res = tv_filter(
        transitions, noise_covs, system.observation, obs_var, jnp.zeros((), dtype),
        jnp.zeros_like(system.init_mean), system.init_cov, y - y_plus,
    )  # fmt: skip
    return alpha_plus + tv_smoothed_means(transitions, res)
