"""The NumPyro program of :class:`~bayes_ssm.models.heavy_level.HeavyLevelTS` (private).

The structural program with Student-t level innovations written as a scale mixture: latent
per-step level precisions ``lambda_t ~ Gamma(nu_level / 2, nu_level / 2)`` (site
``level_precision``), the level variance ``sigma_level^2 / lambda_t`` at step ``t``; given the
precisions the model is linear-Gaussian and the time-varying Kalman filter of
:mod:`._continuous_program` (:func:`~bayes_ssm.models._continuous_program.tv_filter`) gives
its exact likelihood. Forecasts draw fresh precisions for the future steps, so their level
shocks follow the Student-t law.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

from bayes_ssm.models import _continuous_program as tv
from bayes_ssm.models import _structural_program as program
from bayes_ssm.models._shared import psd_sqrt
from bayes_ssm.models.components import structural_system
from bayes_ssm.models.likelihoods import student_t_predictive_log_prob
from bayes_ssm.models.structural_priors import NU_MIN, ShiftedGamma, prior_from_spec

__all__ = [
    "run",
    "level_noise",
    "sample_nu_level",
    "conditional_filter",
    "NU_SITE",
    "PRECISION_SITE",
    "FORECAST_PRECISION_SITE",
]

NU_SITE = "nu_level"
PRECISION_SITE = "level_precision"
FORECAST_PRECISION_SITE = "forecast_level_precision"


def sample_nu_level(model):
    """``nu_level``: ``2 + Gamma(2, model.nu_level_rate)`` (rate 0.1: the Student-t observation
    noise's ``nu`` prior) unless the model's priors override it."""
    overrides = model.prior_overrides
    if NU_SITE in overrides:
        prior = prior_from_spec(NU_SITE, overrides[NU_SITE])
    else:
        prior = ShiftedGamma(2.0, model.nu_level_rate, NU_MIN)
    return numpyro.sample(NU_SITE, prior)


def level_noise(noise_var, precision):
    """Per-step state-noise variances: the level's (state 0) divided by ``precision``.

    ``noise_var`` shape ``(state,)``, ``precision`` shape ``(time,)`` -> ``(time, state)``.
    """
    is_level = jnp.zeros(noise_var.shape[0], bool).at[0].set(True)
    return jnp.where(is_level[None, :], noise_var[None, :] / precision[:, None], noise_var)


def _system(model, params, scales, dtype):
    system = structural_system(model, program.to_variances(model, params), scales)
    return system._replace(
        **{k: getattr(system, k).astype(dtype) for k in system._fields if k != "spans"}
    )


def conditional_filter(model, params, scales, y, precision, offset=None):
    """The Kalman filter given the level precisions.

    Parameters
    ----------
    precision : Array, shape ``(time - 1,)``
        ``lambda_t`` of the level innovation that arrives at step ``t = 1..time-1`` (0-based).

    Returns
    -------
    (TimeVaryingFilter, System, Array)
        The filter output (``log_lik``: ``log p(y_t | y_<t, lambda_1..t)``), the system at
        ``params`` and the per-step noise variances ``(time, state)`` (row ``t`` carries
        ``alpha_t`` to ``alpha_{t+1}``; the last row is unused).
    """
    y = jnp.asarray(y)
    dtype = y.dtype
    num_steps = y.shape[0]
    system = _system(model, params, scales, dtype)
    lam = jnp.concatenate([jnp.asarray(precision, dtype), jnp.ones((1,), dtype)])
    q = level_noise(system.noise_var, lam)
    n = system.init_mean.shape[0]
    transitions = jnp.broadcast_to(system.transition, (num_steps, n, n))
    obs_var = params["sigma_obs"].astype(dtype) ** 2
    offset = jnp.zeros((), dtype) if offset is None else offset
    res = tv.tv_filter(
        transitions, _diag(q), system.observation, obs_var, offset, system.init_mean,
        system.init_cov, y,
    )  # fmt: skip
    return res, system, q


def marginal_log_lik(res, system, q, y, nu):
    """``log p(y_t | y_<t, lambda_<t)``: the filter's one-step law with the step's own level
    precision ``lambda_t`` integrated out (:func:`student_t_predictive_log_prob`); step 0 has
    no level innovation and keeps the Gaussian term."""
    level_var = system.noise_var[0]
    own = jnp.concatenate([jnp.zeros((1,), q.dtype), q[:-1, 0]])  # level variance at step t
    rest = jnp.clip(res.predicted_obs_vars - own, jnp.finfo(q.dtype).tiny)  # >= sigma_obs^2
    marginal = student_t_predictive_log_prob(
        y, res.predicted_obs_means, rest, jnp.sqrt(level_var), nu
    )
    return marginal.at[0].set(res.log_lik[0])


def run(model, y, *, scales, covariates, horizon, future_covariates, components):
    """The program behind :meth:`HeavyLevelTS.model`."""
    y = jnp.asarray(y)
    if not jnp.issubdtype(y.dtype, jnp.floating):
        y = y.astype(jnp.result_type(float))
    dtype = y.dtype
    num_cov = program.check_inputs(model, y, covariates, horizon)
    if y.shape[0] < 2:
        raise ValueError(f"HeavyLevelTS needs at least 2 observations; got {y.shape[0]}")
    params = program.sample_parameters(model, scales, num_cov)
    nu = sample_nu_level(model)
    params[NU_SITE] = nu
    num_steps = y.shape[0]
    half = 0.5 * nu
    precision = numpyro.sample(
        PRECISION_SITE, dist.Gamma(half, half).expand((num_steps - 1,)).to_event(1)
    )
    offset, future_offset = program.regression_offset(
        model, covariates, future_covariates, horizon, params, dtype
    )
    res, system, q = conditional_filter(model, params, scales, y, precision, offset)
    numpyro.factor("y_log_likelihood", jnp.sum(res.log_lik))
    numpyro.deterministic("log_lik", marginal_log_lik(res, system, q, y, nu))
    obs_var = params["sigma_obs"].astype(dtype) ** 2
    n = system.init_mean.shape[0]
    transitions = jnp.broadcast_to(system.transition, (num_steps, n, n))
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
        future = numpyro.sample(
            FORECAST_PRECISION_SITE, dist.Gamma(half, half).expand((horizon,)).to_event(1)
        )
        zs = numpyro.sample(
            "forecast_state_z", dist.Normal(jnp.zeros((horizon + 1, n), dtype), 1.0).to_event(2)
        )
        last = res.filt_means[-1] + psd_sqrt(res.filt_covs[-1]) @ zs[0]
        f_trans = jnp.broadcast_to(system.transition, (horizon, n, n))
        f_roots = _diag(jnp.sqrt(level_noise(system.noise_var, future.astype(dtype))))
        signal = tv._propagate(f_trans, f_roots, system.observation, last, zs[1:])
        numpyro.sample("y_forecast", dist.Normal(signal + future_offset, jnp.sqrt(obs_var)))
    if components:
        roots = _diag(jnp.sqrt(q))
        states = tv._simulation_smoother(transitions, _diag(q), roots, system, obs_var, offset, y)
        for name, start, stop in system.spans:
            value = states[:, start:stop] @ system.observation[start:stop]
            numpyro.deterministic(f"component/{name}", value)
        if num_cov and "beta" in params:
            numpyro.deterministic("component/regression", jnp.broadcast_to(offset, y.shape))


def _diag(v):
    """``(time, n)`` -> ``(time, n, n)`` diagonal matrices."""
    return v[..., :, None] * jnp.eye(v.shape[-1], dtype=v.dtype)
