"""The NumPyro program of :class:`~bayes_ssm.models.structural.StructuralTS` (private).

``run`` samples the parameters, assembles the state space (:mod:`.components`) and then either
integrates the states out with the Kalman filter (Gaussian, Student-t) or samples them
(negative binomial; non-centred or centred coordinates, :mod:`._state_paths`). Forecasts draw
the final state from its filtered law (or take the sampled one), propagate it with state noise
and add observation noise; components come from a Durbin-Koopman simulation smoother (one
exact joint draw from the smoothing distribution).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax import lax

from bayes_ssm.models import _continuous_program as continuous_program
from bayes_ssm.models import _kalman_adapter as kalman
from bayes_ssm.models._state_path_densities import state_path
from bayes_ssm.models._state_paths import (
    RMS_PARAMETERIZATIONS,
    centred_states,
    path_guess,
    resolve_parameterization,
    sample_states,
)
from bayes_ssm.models._structural_extras_program import prior_signal, run_filtered_extras
from bayes_ssm.models.components import noise_mask, pacf_to_ar, structural_system
from bayes_ssm.models.likelihoods import (
    negative_binomial_log_prob,
    observation_distribution,
    student_t_precisions,
    student_t_predictive_log_prob,
)
from bayes_ssm.models.structural_extras import (
    extra_variances,
    full_system,
    sample_extra_parameters,
)
from bayes_ssm.models.structural_priors import resolve_prior

__all__ = [
    "run",
    "prior_program",
    "sample_parameters",
    "to_variances",
    "check_inputs",
    "regression_offset",
    "one_step_replicate",
    "simulation_smoother",
    "emit_components",
    "psd_sqrt",
]


def sample_parameters(model, scales: dict, num_covariates: int, *, skip=()) -> dict:
    """Sample every parameter site of ``model`` but those in ``skip``; returns ``{site: value}``."""
    overrides = model.prior_overrides

    def draw(name, size=None):
        if name == "ar_pacf" and name not in overrides and model.obs_times is not None:
            # continuous time: AR(1) is an Ornstein-Uhlenbeck process, phi = exp(-kappa) > 0
            return numpyro.sample(name, dist.Uniform(jnp.zeros(size), 1.0).to_event(1))
        return numpyro.sample(name, resolve_prior(name, overrides, scales, size=size))

    params = {}
    if model.likelihood != "negative_binomial":
        params["sigma_obs"] = draw("sigma_obs")
    if model.level and "sigma_level" not in skip:
        params["sigma_level"] = draw("sigma_level")
    if model.trend is not None and "sigma_slope" not in skip:
        params["sigma_slope"] = draw("sigma_slope")
    if model.trend == "damped":
        params["damping"] = draw("damping")
    for s in model.seasonal:
        params[f"sigma_{s.name}"] = draw(f"sigma_{s.name}")
    if model.ar_order:
        params["ar_pacf"] = draw("ar_pacf", model.ar_order)
        params["sigma_ar"] = draw("sigma_ar")
    if num_covariates:
        params["beta"] = draw("beta", num_covariates)
    if model.likelihood == "student_t":
        params["nu"] = draw("nu")
    if model.likelihood == "negative_binomial":
        params["concentration"] = draw("concentration")
    return params


def to_variances(model, params: dict) -> dict:
    """Sampled sds / partial autocorrelations -> the inputs of ``structural_system``."""
    out = {}
    if model.level:
        out["level_var"] = params["sigma_level"] ** 2
    if model.trend is not None:
        out["slope_var"] = params["sigma_slope"] ** 2
    if model.trend == "damped":
        out["damping"] = params["damping"]
    for s in model.seasonal:
        out[f"{s.name}_var"] = params[f"sigma_{s.name}"] ** 2
    if model.ar_order:
        out["ar_coefs"] = pacf_to_ar(params["ar_pacf"])
        out["ar_var"] = params["sigma_ar"] ** 2
    return out


def regression_offset(model, covariates, future_covariates, horizon, params, dtype):
    if "beta" not in params:
        return jnp.zeros((), dtype), jnp.zeros((), dtype)
    beta = params["beta"]
    offset = jnp.asarray(covariates, dtype) @ beta
    future = jnp.zeros((), dtype)
    if horizon > 0:
        if future_covariates is None:
            raise ValueError(
                f"the model regresses on {beta.shape[0]} covariates; future_covariates of shape "
                f"(horizon={horizon}, {beta.shape[0]}) are needed to forecast"
            )
        fc = future_covariates
        if jnp.ndim(fc) == 1:
            fc = jnp.reshape(fc, (-1, 1))
        if jnp.shape(fc) != (horizon, beta.shape[0]):
            raise ValueError(
                f"future_covariates must have shape (horizon={horizon}, "
                f"covariate={beta.shape[0]}); got {jnp.shape(fc)}"
            )
        if not isinstance(fc, jax.core.Tracer) and not np.all(np.isfinite(np.asarray(fc))):
            raise ValueError("future_covariates contain NaN or inf over the forecast horizon")
        future = jnp.asarray(fc, dtype) @ beta
    return offset, future


def psd_sqrt(cov):
    """A square root ``L`` with ``L L' = cov`` for a PSD (possibly singular) matrix."""
    cov = 0.5 * (cov + cov.T)
    w, v = jnp.linalg.eigh(cov)
    return v * jnp.sqrt(jnp.clip(w, 0.0))


@jax.jit
def _propagate(transition, observation, noise_sd, start, z):
    """Signal ``Z alpha_{k}``, ``k = 1..K``, of the path ``alpha_k = T alpha_{k-1} + sd * z_k``
    from ``alpha_0 = start``; ``z`` shape ``(K, state)``, returns ``(K,)``."""

    def step(state, zk):
        nxt = transition @ state + noise_sd * zk
        return nxt, observation @ nxt

    _, signal = lax.scan(step, start, z)
    return signal


def check_inputs(model, y, covariates, horizon):
    if y.ndim != 1:
        raise ValueError(f"y must have shape (time,); got {y.shape}")
    if horizon < 0:
        raise ValueError(f"horizon must be >= 0; got {horizon}")
    reg = model.uses_regression(covariates)
    if reg and covariates is None:
        raise ValueError("regression=True needs covariates of shape (time, covariate)")
    if reg and (jnp.ndim(covariates) != 2 or covariates.shape[0] != y.shape[0]):
        raise ValueError(
            f"covariates must have shape (time={y.shape[0]}, covariate); got "
            f"{jnp.shape(covariates)}"
        )
    return int(covariates.shape[1]) if reg else 0


def run(model, y, *, scales, covariates, horizon, future_covariates, components):
    """The program behind :meth:`StructuralTS.model`."""
    y = jnp.asarray(y)
    if not jnp.issubdtype(y.dtype, jnp.floating):
        y = y.astype(jnp.result_type(float))
    dtype = y.dtype
    num_cov = check_inputs(model, y, covariates, horizon)
    parameterization = None
    if model.likelihood == "negative_binomial":
        parameterization = resolve_parameterization(model, y.shape[0])
    # "*_rms" sample the centred states' sds after the path (ratios to their innovations' rms)
    ratio_sites = _ratio_sd_sites(model, parameterization)
    num_beta = 0 if model.regression_states is not None else num_cov
    params = sample_parameters(model, scales, num_beta, skip=ratio_sites)
    params.update(sample_extra_parameters(model, scales, num_cov))
    for site in ratio_sites:
        params[site] = jnp.ones((), dtype)  # placeholder: set in _run_counts
    system, diffuse_cov = _system(model, params, scales, covariates, num_cov)
    system = system._replace(
        **{k: getattr(system, k).astype(dtype) for k in system._fields if k != "spans"}
    )
    offset, future_offset = regression_offset(
        model, covariates, future_covariates, horizon, params, dtype
    )
    if model.likelihood == "negative_binomial":
        _run_counts(
            model, y, params, system, offset, future_offset, horizon, components, parameterization,
            scales,
        )  # fmt: skip
    elif _uses_extras(model):
        run_filtered_extras(
            model, y, params, system, diffuse_cov, offset, future_offset, future_covariates,
            horizon, components, scales,
        )  # fmt: skip
    else:
        _run_filtered(model, y, params, system, offset, future_offset, horizon, components)
    if components and num_cov and model.regression_states is None:
        numpyro.deterministic("component/regression", jnp.broadcast_to(offset, y.shape))


def _uses_extras(model) -> bool:
    """A model with a cycle, regression states, no state or a diffuse start (new paths)."""
    return bool(
        model.cycle
        or model.regression_states is not None
        or model.initialization != "proper"
        or model.state_size == 0
    )


def _system(model, params, scales, covariates, num_cov):
    """The state space (and ``P_inf``) at the sampled parameters."""
    variances = to_variances(model, params)
    if not _uses_extras(model):
        return structural_system(model, variances, scales), None
    variances.update(extra_variances(model, params))
    if not variances:  # irregular only: the dtype comes from sigma_obs
        variances["obs"] = params["sigma_obs"] ** 2
    cov = covariates if model.regression_states is not None and num_cov else None
    diffuse = 0.0 if model.initialization == "diffuse" else None
    return full_system(model, variances, scales, cov, diffuse=diffuse)


def _run_filtered(model, y, params, system, offset, future_offset, horizon, components):
    num_steps = y.shape[0]
    obs_var = params["sigma_obs"] ** 2
    if model.likelihood == "student_t":
        obs_var = obs_var / student_t_precisions(params["nu"], num_steps)
    if model.obs_times is not None:
        continuous_program.run_filtered(
            model, y, params, to_variances(model, params), system, obs_var, offset,
            future_offset, horizon, components,
            lambda *moments: _emit_readouts(model, y, params, *moments, components),
        )  # fmt: skip
        return
    ss = system.state_space(obs_var, offset)
    # The fast path (no covariance history) carries the likelihood that NUTS differentiates.
    log_lik, final_mean, final_cov = kalman.filter_final(ss, y, method=model.method)
    numpyro.factor("y_log_likelihood", jnp.sum(log_lik))
    pred_mean = state_var = None
    if components or model.likelihood == "student_t":
        # Read-outs only (dead code in the gradient): one-step predictive moments.
        res = kalman.filter_full(ss, y, method=model.method)
        pred_mean = res.predicted_obs_means
        state_var = jnp.clip(res.predicted_obs_vars - obs_var, 0.0)
    _emit_readouts(model, y, params, log_lik, pred_mean, state_var, components)
    if horizon > 0:
        n = system.init_mean.shape[0]
        z = numpyro.sample(
            "forecast_state_z", dist.Normal(jnp.zeros((horizon + 1, n), y.dtype), 1.0).to_event(2)
        )
        last = final_mean + psd_sqrt(final_cov) @ z[0]
        noise_sd = jnp.sqrt(system.noise_var)
        signal = _propagate(system.transition, system.observation, noise_sd, last, z[1:])
        signal = signal + future_offset
        numpyro.sample("y_forecast", observation_distribution(model.likelihood, signal, params))
    if components:
        emit_components(simulation_smoother(ss, y, system, model.method), system)


def _emit_readouts(model, y, params, log_lik, pred_mean, state_var, components):
    """``log_lik`` (Student-t: marginal over the step's own precision), ``y_fitted``, ``y_rep``."""
    if model.likelihood == "student_t":
        # log p(y_t | y_<t, lambda_<t): marginal over the step's own precision lambda_t
        log_lik = student_t_predictive_log_prob(
            y, pred_mean, state_var, params["sigma_obs"], params["nu"]
        )
    numpyro.deterministic("log_lik", log_lik)
    if components:
        numpyro.deterministic("y_fitted", pred_mean)
        numpyro.deterministic("y_rep", one_step_replicate(model, pred_mean, state_var, params))


def one_step_replicate(model, pred_mean, state_var, params):
    """A draw from ``y_t | y_<t``: state prediction plus a fresh observation error."""
    key = numpyro.prng_key()
    if key is None:
        raise ValueError("components=True draws random paths: run the model under a seed handler")
    k1, k2 = jax.random.split(key)
    z = jax.random.normal(k1, pred_mean.shape, pred_mean.dtype)
    noise = observation_distribution(model.likelihood, jnp.zeros_like(pred_mean), params)
    return pred_mean + jnp.sqrt(state_var) * z + noise.sample(k2)


def simulation_smoother(ss, y, system, method):
    """One joint draw of the states given ``y`` (Durbin and Koopman 2002, mean correction).

    Simulate ``(alpha+, y+)`` from the model; then ``alpha+ + E[alpha | y] - E[alpha | y+]`` is
    an exact draw from ``p(alpha | y)``. The smoothed mean is affine in the data, so the
    difference of the two smoothed means is one smoother run on ``y - y+`` with zero initial
    mean and offset.
    """
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
    y_plus = alpha_plus @ ss.observation + ss.obs_offset
    y_plus = y_plus + obs_sd * jax.random.normal(k2, (num_steps,), y.dtype)
    centred = ss._replace(init_mean=jnp.zeros_like(ss.init_mean), obs_offset=jnp.zeros((), y.dtype))
    return alpha_plus + kalman.smoothed_means(centred, y - y_plus, method=method)


def emit_components(states, system):
    for name, start, stop in system.spans:
        value = states[:, start:stop] @ system.observation[start:stop]
        numpyro.deterministic(f"component/{name}", value)


_STATE_OF = {"sigma_level": 0, "sigma_slope": 1}


def _ratio_sd_sites(model, parameterization) -> tuple[str, ...]:
    """The sd sites sampled as ratios under ``"*_rms"`` (static), in state order."""
    if parameterization not in RMS_PARAMETERIZATIONS:
        return ()
    idx = np.flatnonzero(noise_mask(model))
    cidx, _ = centred_states(parameterization, idx, model.level, model.trend is not None)
    names = {v: k for k, v in _STATE_OF.items()}
    return tuple(names[int(i)] for i in cidx)


def _run_counts(
    model, y, params, system, offset, future_offset, horizon, components, parameterization, scales
):
    num_steps = y.shape[0]
    idx = np.flatnonzero(noise_mask(model))
    guess = path_guess(y, offset, system.init_mean.shape[0], model.level, model.trend is not None)
    sites = _ratio_sd_sites(model, parameterization)
    sd_priors = {k: resolve_prior(k, model.prior_overrides, scales) for k in sites} or None
    states, sds = sample_states(
        system,
        idx,
        num_steps,
        y.dtype,
        parameterization,
        guess,
        level=model.level,
        trend=model.trend is not None,
        sd_priors=sd_priors,
    )
    if sds:  # "*_rms": the centred states' sds come with the path (level 0, slope 1)
        params.update(sds)
        where = np.array([_STATE_OF[k] for k in sds])
        var = jnp.stack(list(sds.values())) ** 2
        system = system._replace(noise_var=system.noise_var.at[where].set(var.astype(y.dtype)))
    log_mean = states @ system.observation + offset
    log_lik = negative_binomial_log_prob(y, log_mean, params["concentration"])
    numpyro.deterministic("log_lik", log_lik)
    numpyro.factor("y_log_likelihood", jnp.sum(log_lik))
    if horizon > 0:
        n = system.init_mean.shape[0]
        z = numpyro.sample(
            "forecast_state_z", dist.Normal(jnp.zeros((horizon, n), y.dtype), 1.0).to_event(2)
        )
        noise_sd = jnp.sqrt(system.noise_var)
        signal = _propagate(system.transition, system.observation, noise_sd, states[-1], z)
        signal = signal + future_offset
        numpyro.sample("y_forecast", observation_distribution(model.likelihood, signal, params))
    if components:
        emit_components(states, system)
        numpyro.sample("y_rep", observation_distribution(model.likelihood, log_mean, params))


def prior_program(model, num_steps: int, *, scales, covariates=None) -> None:
    """Prior predictive program: parameters, then a state path and ``y_prior`` (time,)."""
    dtype = jnp.result_type(float)
    num_cov = 0 if not model.uses_regression(covariates) else int(np.shape(covariates)[1])
    if _uses_extras(model):
        num_beta = 0 if model.regression_states is not None else num_cov
        params = sample_parameters(model, scales, num_beta)
        params.update(sample_extra_parameters(model, scales, num_cov))
        system, _ = _system(model, params, scales, covariates, num_cov)
        signal = prior_signal(model, system, num_steps, dtype)
        if "beta" in params:
            signal = signal + jnp.asarray(covariates, dtype) @ params["beta"]
        numpyro.sample("y_prior", observation_distribution(model.likelihood, signal, params))
        return
    params = sample_parameters(model, scales, num_cov)
    system = structural_system(model, to_variances(model, params), scales)
    offset = jnp.zeros((), dtype)
    if num_cov:
        offset = jnp.asarray(covariates, dtype) @ params["beta"]
    n = system.init_mean.shape[0]
    z = numpyro.sample(
        "prior_state_z", dist.Normal(jnp.zeros((num_steps, n), dtype), 1.0).to_event(2)
    )
    first = system.init_mean + psd_sqrt(system.init_cov) @ z[0]
    noise_sd = jnp.sqrt(system.noise_var)
    signal = _propagate(system.transition, system.observation, noise_sd, first, z[1:])
    signal = jnp.concatenate([(system.observation @ first)[None], signal]) + offset
    numpyro.sample("y_prior", observation_distribution(model.likelihood, signal, params))
