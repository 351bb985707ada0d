"""The filtered (Gaussian, Student-t) program of StructuralTS for the new options (private):
a cycle, regression coefficients as states (a time-varying observation row), the
irregular-only model and the exact diffuse start.

Same sites and laws as :func:`._structural_program._run_filtered`; differences:

* ``initialization="diffuse"``: the log-likelihood and the last filtered moments come from
  :func:`~bayes_ssm.kernels.kalman_diffuse.diffuse_kalman_filter`; components are drawn by the
  simulation smoother with the diffuse part of the first state's covariance replaced by
  ``1e6 y_scale^2`` (an approximation of the diffuse limit; the smoothed means move by
  ~1e-6 relative).
* regression states: the observation row at step ``t`` is ``[z, x_t]``; forecasts need the
  covariates over the horizon, which extend the rows.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax import lax

from bayes_ssm.kernels.kalman_diffuse import diffuse_kalman_filter
from bayes_ssm.models import _kalman_adapter as kalman
from bayes_ssm.models._shared import psd_sqrt
from bayes_ssm.models._state_path_densities import state_path
from bayes_ssm.models.likelihoods import (
    observation_distribution,
    student_t_precisions,
    student_t_predictive_log_prob,
)

__all__ = ["run_filtered_extras", "diffuse_prefix_length", "prior_signal"]

_APPROX_DIFFUSE = 1e6


def diffuse_prefix_length(model, y, num_diffuse: int):
    """Steps the diffuse recursion runs before the (parallel) ordinary filter takes over.

    ``None`` (the whole series, sequential) unless the method is parallel and ``y`` is concrete;
    then the step after twice the number of diffuse states has been observed (a margin for
    steps where ``F_inf`` is 0; if ``P_inf`` is still not 0 there the log-likelihood is NaN).
    """
    from bayes_ssm.kernels.kalman_common import choose_kalman_method

    num_steps = y.shape[0]
    method = model.method
    if method == "auto":
        method = choose_kalman_method(num_steps)
    if method != "parallel" or isinstance(y, jax.core.Tracer):
        return None
    observed = np.cumsum(~np.isnan(np.asarray(y)))
    enough = np.flatnonzero(observed >= 2 * num_diffuse)
    if not enough.size or enough[0] + 1 >= num_steps:
        return None
    return int(enough[0] + 1)


def _future_rows(system, future_covariates, horizon, dtype):
    """Observation rows over the forecast horizon: ``(horizon, state)``."""
    if system.observation.ndim == 1:
        return jnp.broadcast_to(system.observation, (horizon, system.observation.shape[0]))
    name, start, stop = next(s for s in system.spans if s[0] == "regression")
    k = stop - start
    if future_covariates is None:
        raise ValueError(
            f"the model has {k} regression states; future_covariates of shape "
            f"(horizon={horizon}, {k}) are needed to forecast"
        )
    fc = jnp.asarray(future_covariates, dtype)
    if fc.ndim == 1:
        fc = fc.reshape(-1, 1)
    if fc.shape != (horizon, k):
        raise ValueError(
            f"future_covariates must have shape (horizon={horizon}, covariate={k}); got {fc.shape}"
        )
    if not isinstance(fc, jax.core.Tracer) and not np.all(np.isfinite(np.asarray(fc))):
        raise ValueError("future_covariates contain NaN or inf over the forecast horizon")
    rows = jnp.broadcast_to(system.observation[-1], (horizon, system.observation.shape[1]))
    return rows.at[:, start:stop].set(fc)


def _propagate_rows(transition, rows, noise_sd, start, z):
    """Signal ``z_k . alpha_k``, ``k = 1..K``, of ``alpha_k = T alpha_{k-1} + sd * z_k``."""

    def step(state, inputs):
        zk, row = inputs
        nxt = transition @ state + noise_sd * zk
        return nxt, row @ nxt

    _, signal = lax.scan(step, start, (z, rows))
    return signal


def _signal_rows(states, observation):
    """``(time,)`` signal of ``states (time, state)`` under a constant or per-step loading."""
    if observation.ndim == 1:
        return states @ observation
    return jnp.sum(states * observation, axis=-1)


def _simulation_smoother(ss, y, system, method):
    """One joint draw of the states given ``y`` (Durbin and Koopman 2002, mean correction)."""
    key = numpyro.prng_key()
    if key is None:
        raise ValueError("components=True draws random paths: run the model under a seed handler")
    num_steps, n = y.shape[0], ss.init_mean.shape[0]
    k0, k1, k2 = jax.random.split(key, 3)
    noise_sd = jnp.sqrt(system.noise_var)
    alpha1 = ss.init_mean + psd_sqrt(ss.init_cov) @ jax.random.normal(k0, (n,), y.dtype)
    z = jax.random.normal(k1, (num_steps - 1, n), y.dtype)
    alpha_plus = state_path(ss.transition, alpha1, noise_sd * z)
    obs_sd = jnp.sqrt(jnp.broadcast_to(ss.obs_var, (num_steps,)))
    y_plus = _signal_rows(alpha_plus, ss.observation) + ss.obs_offset
    y_plus = y_plus + obs_sd * jax.random.normal(k2, (num_steps,), y.dtype)
    centred = ss._replace(init_mean=jnp.zeros_like(ss.init_mean), obs_offset=jnp.zeros((), y.dtype))
    return alpha_plus + kalman.smoothed_means(centred, y - y_plus, method=method)


def _filter(model, ss, diffuse_cov, y, components):
    """``(log_lik (time,), last mean, last cov, pred_mean, pred_var or None)``."""
    if model.initialization == "diffuse":
        inert = model.state_size == 0 and model.regression_states is None  # the null state
        num_diffuse = 0 if inert else diffuse_cov.shape[0] - model.ar_order
        k = diffuse_prefix_length(model, y, num_diffuse)
        res = diffuse_kalman_filter(ss, diffuse_cov, y, diffuse_steps=k, method=model.method)
        return (
            res.log_lik_steps,
            res.filtered_means[-1],
            res.filtered_covs[-1],
            res.predicted_obs_means,
            res.predicted_obs_vars,
            res.diffuse_steps,
        )
    log_lik, mean, cov = kalman.filter_final(ss, y, method=model.method)
    pred_mean = pred_var = None
    if components or model.likelihood == "student_t":
        res = kalman.filter_full(ss, y, method=model.method)
        pred_mean, pred_var = res.predicted_obs_means, res.predicted_obs_vars
    return log_lik, mean, cov, pred_mean, pred_var, None


def run_filtered_extras(
    model, y, params, system, diffuse_cov, offset, future_offset, future_covariates, horizon,
    components, scales,
):  # fmt: skip
    """The Gaussian / Student-t program for the new options (see the module docstring)."""
    num_steps = y.shape[0]
    obs_var = params["sigma_obs"] ** 2
    if model.likelihood == "student_t":
        obs_var = obs_var / student_t_precisions(params["nu"], num_steps)
    ss = system.state_space(obs_var, offset)
    log_lik, final_mean, final_cov, pred_mean, pred_var, diffuse = _filter(
        model, ss, diffuse_cov, y, components
    )
    numpyro.factor("y_log_likelihood", jnp.sum(log_lik))
    if pred_var is not None:
        state_var = jnp.clip(pred_var - obs_var, 0.0)
    if model.likelihood == "student_t":
        t_lik = student_t_predictive_log_prob(
            y, pred_mean, state_var, params["sigma_obs"], params["nu"]
        )
        log_lik = t_lik if diffuse is None else jnp.where(diffuse, log_lik, t_lik)
    numpyro.deterministic("log_lik", log_lik)
    if components:
        numpyro.deterministic("y_fitted", pred_mean)
        key = numpyro.prng_key()
        k1, k2 = jax.random.split(key)
        noise = observation_distribution(model.likelihood, jnp.zeros_like(pred_mean), params)
        z = jax.random.normal(k1, pred_mean.shape, pred_mean.dtype)
        numpyro.deterministic("y_rep", pred_mean + jnp.sqrt(state_var) * z + noise.sample(k2))
    if horizon > 0:
        n = system.init_mean.shape[0]
        z = numpyro.sample(
            "forecast_state_z", dist.Normal(jnp.zeros((horizon + 1, n), y.dtype), 1.0).to_event(2)
        )
        last = final_mean + psd_sqrt(final_cov) @ z[0]
        rows = _future_rows(system, future_covariates, horizon, y.dtype)
        signal = _propagate_rows(system.transition, rows, jnp.sqrt(system.noise_var), last, z[1:])
        signal = signal + future_offset
        numpyro.sample("y_forecast", observation_distribution(model.likelihood, signal, params))
    if components:
        if diffuse_cov is not None and model.initialization == "diffuse":
            kappa = _APPROX_DIFFUSE * scales["y_scale"] ** 2
            ss = ss._replace(init_cov=ss.init_cov + kappa * diffuse_cov)
        states = _simulation_smoother(ss, y, system, model.method)
        for name, start, stop in system.spans:
            obs = system.observation[..., start:stop]
            numpyro.deterministic(f"component/{name}", _signal_rows(states[:, start:stop], obs))


def prior_signal(model, system, num_steps: int, dtype):
    """Prior predictive signal ``(time,)`` (no offset) for the new options; a diffuse start
    has no prior predictive."""
    if model.initialization == "diffuse":
        raise ValueError(
            "initialization='diffuse' is an improper prior on the first state: it has no prior "
            "predictive; use initialization='proper'"
        )
    n = system.init_mean.shape[0]
    z = numpyro.sample(
        "prior_state_z", dist.Normal(jnp.zeros((num_steps, n), dtype), 1.0).to_event(2)
    )
    first = system.init_mean + psd_sqrt(system.init_cov) @ z[0]
    rows = jnp.broadcast_to(system.observation, (num_steps, n))
    signal = _propagate_rows(system.transition, rows[1:], jnp.sqrt(system.noise_var), first, z[1:])
    return jnp.concatenate([(rows[0] @ first)[None], signal])
