"""The NumPyro program of :class:`~bayes_ssm.models.seasonal_noise.SeasonalNoiseTS` (private).

The structural program with a state noise and an observation variance per step: parameters
as :mod:`._structural_program` samples them plus the harmonic coefficients of the two log
variances; the likelihood from the time-varying Kalman filter of :mod:`._continuous_program`
(:func:`~bayes_ssm.models._continuous_program.tv_filter`); forecasts propagate the last
filtered state with the future steps' own variances.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

from bayes_ssm.models import _continuous_program as tv
from bayes_ssm.models import _structural_program as program
from bayes_ssm.models._shared import psd_sqrt
from bayes_ssm.models.components import structural_system

__all__ = ["run", "noise_factors", "time_varying_system", "COEF_SITES", "COEF_PRIOR_SD"]

COEF_SITES = ("level_noise_coef", "obs_noise_coef")
COEF_PRIOR_SD = 1.0


def noise_factors(coef, period: float, num_steps: int, dtype):
    """``exp(sum_k a_k cos(2 pi k t / P) + b_k sin(2 pi k t / P))`` at ``t = 0..num_steps-1``.

    ``coef`` shape ``(2K,)`` (cosines, then sines) -> shape ``(num_steps,)``.
    """
    num_harmonics = coef.shape[-1] // 2
    t = jnp.arange(num_steps, dtype=dtype)
    k = jnp.arange(1, num_harmonics + 1, dtype=dtype)
    angle = 2.0 * jnp.pi * t[:, None] * k[None, :] / period
    basis = jnp.concatenate([jnp.cos(angle), jnp.sin(angle)], axis=1)  # (time, 2K)
    return jnp.exp(basis @ coef.astype(dtype))


def time_varying_system(model, params, scales, num_steps: int, dtype):
    """The state space at the sampled parameters and its per-step variances.

    Returns
    -------
    (System, numpy.ndarray, numpy.ndarray)
        The constant-variance system, the state-noise variances ``(num_steps, state)`` (row
        ``t``: the noise arriving at step ``t``) and the observation variances
        ``(num_steps,)``.
    """
    system = structural_system(model, program.to_variances(model, params), scales)
    system = system._replace(
        **{k: getattr(system, k).astype(dtype) for k in system._fields if k != "spans"}
    )
    level_f = noise_factors(params["level_noise_coef"], model.noise_period, num_steps, dtype)
    obs_f = noise_factors(params["obs_noise_coef"], model.noise_period, num_steps, dtype)
    is_level = jnp.zeros(system.noise_var.shape[0], bool).at[0].set(True)  # level is state 0
    q = jnp.where(is_level[None, :], system.noise_var[None, :] * level_f[:, None], system.noise_var)
    r = params["sigma_obs"].astype(dtype) ** 2 * obs_f
    return system, q, r


def _sample_coefs(model, dtype):
    size = 2 * model.noise_harmonics
    overrides = model.prior_overrides
    out = {}
    for site in COEF_SITES:
        if site in overrides:
            from bayes_ssm.models.structural_priors import resolve_prior

            prior = resolve_prior(site, overrides, {}, size=size)
        else:
            prior = dist.Normal(jnp.zeros(size, dtype), COEF_PRIOR_SD).to_event(1)
        out[site] = numpyro.sample(site, prior)
    return out


def run(model, y, *, scales, covariates, horizon, future_covariates, components):
    """The program behind :meth:`SeasonalNoiseTS.model`."""
    y = jnp.asarray(y)
    if not jnp.issubdtype(y.dtype, jnp.floating):
        y = y.astype(jnp.result_type(float))
    dtype = y.dtype
    num_cov = program.check_inputs(model, y, covariates, horizon)
    params = program.sample_parameters(model, scales, num_cov)
    params.update(_sample_coefs(model, dtype))
    num_steps = y.shape[0]
    system, q, r = time_varying_system(model, params, scales, num_steps + horizon + 1, dtype)
    offset, future_offset = program.regression_offset(
        model, covariates, future_covariates, horizon, params, dtype
    )
    n = system.init_mean.shape[0]
    transitions = jnp.broadcast_to(system.transition, (num_steps, n, n))
    noise_covs = jax_diag(q[1 : num_steps + 1])  # entry t carries alpha_t to alpha_{t+1}
    obs_var = r[:num_steps]
    res = tv.tv_filter(
        transitions, noise_covs, system.observation, obs_var, offset, system.init_mean,
        system.init_cov, y,
    )  # fmt: skip
    numpyro.factor("y_log_likelihood", jnp.sum(res.log_lik))
    numpyro.deterministic("log_lik", res.log_lik)
    if components:
        numpyro.deterministic("y_fitted", res.predicted_obs_means)
        key = numpyro.prng_key()
        if key is None:
            raise ValueError("components=True draws random paths: run under a seed handler")
        z = dist.Normal(jnp.zeros(num_steps, dtype), 1.0).sample(key)
        numpyro.deterministic(
            "y_rep", res.predicted_obs_means + jnp.sqrt(res.predicted_obs_vars) * z
        )
    if horizon > 0:
        zs = numpyro.sample(
            "forecast_state_z", dist.Normal(jnp.zeros((horizon + 1, n), dtype), 1.0).to_event(2)
        )
        last = res.filt_means[-1] + psd_sqrt(res.filt_covs[-1]) @ zs[0]
        f_trans = jnp.broadcast_to(system.transition, (horizon, n, n))
        f_roots = jax_diag(jnp.sqrt(q[num_steps : num_steps + horizon]))
        signal = tv._propagate(f_trans, f_roots, system.observation, last, zs[1:])
        signal = signal + future_offset
        obs_sd = jnp.sqrt(r[num_steps : num_steps + horizon])
        numpyro.sample("y_forecast", dist.Normal(signal, obs_sd))
    if components:
        roots = jax_diag(jnp.sqrt(q[1 : num_steps + 1]))
        states = tv._simulation_smoother(transitions, noise_covs, roots, system, obs_var, offset, y)
        for name, start, stop in system.spans:
            value = states[:, start:stop] @ system.observation[start:stop]
            numpyro.deterministic(f"component/{name}", value)
    if components and num_cov and "beta" in params:
        numpyro.deterministic("component/regression", jnp.broadcast_to(offset, y.shape))


def jax_diag(v):
    """``(time, n)`` -> ``(time, n, n)`` diagonal matrices."""
    return v[..., :, None] * jnp.eye(v.shape[-1], dtype=v.dtype)


def filtered_moments(model, params, scales, y, extra: int):
    """Filtered state moments at one parameter draw, and the per-step variances over the
    window and ``extra`` steps after it (for in-sample ``h``-step predictive laws).

    Returns
    -------
    tuple
        ``filt_means (time, state)``, ``filt_covs (time, state, state)``, ``transition (state,
        state)``, ``observation (state,)``, ``q (time + extra + 1, state)`` (row ``t``: the
        state noise arriving at step ``t``), ``r (time + extra + 1,)``.
    """
    y = jnp.asarray(y)
    num_steps = y.shape[0]
    system, q, r = time_varying_system(model, params, scales, num_steps + extra + 1, y.dtype)
    n = system.init_mean.shape[0]
    res = tv.tv_filter(
        jnp.broadcast_to(system.transition, (num_steps, n, n)), jax_diag(q[1 : num_steps + 1]),
        system.observation, r[:num_steps], jnp.zeros((), y.dtype), system.init_mean,
        system.init_cov, y,
    )  # fmt: skip
    return res.filt_means, res.filt_covs, system.transition, system.observation, q, r
