"""Observation laws of :class:`~bayes_ssm.models.structural.StructuralTS`.

``gaussian``
    ``y_t = Z alpha_t + d_t + eps_t``, ``eps_t ~ N(0, sigma_obs^2)``; states integrated out by the
    Kalman filter.
``student_t``
    ``eps_t ~ t_nu(0, sigma_obs)`` written as a scale mixture of normals,
    ``eps_t | lambda_t ~ N(0, sigma_obs^2 / lambda_t)``,
    ``lambda_t ~ Gamma(nu / 2, rate = nu / 2)``.
    The latent precisions ``lambda_t`` (site ``obs_precision``) are sampled; given them the model is
    linear-Gaussian with a time-varying observation variance and still filtered exactly.
``negative_binomial``
    ``y_t ~ NB(mean = exp(eta_t), concentration)`` with the log-intensity
    ``eta_t = Z alpha_t + d_t``; the states are sampled non-centred (standard-normal innovations
    ``state_z`` mapped through the state equation), since no filter integrates them exactly.

Functions here sample sites (NumPyro) but know nothing about the state space.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

__all__ = [
    "LIKELIHOODS",
    "validate_counts",
    "student_t_precisions",
    "negative_binomial_log_prob",
    "observation_distribution",
]

LIKELIHOODS = ("gaussian", "student_t", "negative_binomial")


def validate_counts(y: np.ndarray) -> None:
    """Raise ``ValueError`` unless the observed values are non-negative integers."""
    obs = np.asarray(y, dtype=np.float64)
    obs = obs[~np.isnan(obs)]
    bad = obs[(obs < 0) | (obs != np.round(obs))]
    if bad.size:
        raise ValueError(
            "likelihood='negative_binomial' needs non-negative integer counts; got "
            f"{bad.size} other values, e.g. {bad[:3].tolist()}"
        )


def student_t_precisions(nu, num_steps: int):
    """Sample the latent per-step precisions ``lambda_t ~ Gamma(nu/2, nu/2)``, shape ``(time,)``."""
    half = 0.5 * nu
    return numpyro.sample("obs_precision", dist.Gamma(half, half).expand((num_steps,)).to_event(1))


def negative_binomial_log_prob(y, log_mean, concentration):
    """Pointwise NB log-pmf, 0 where ``y`` is NaN; ``y`` and ``log_mean`` shape ``(time,)``."""
    missing = jnp.isnan(y)
    y_safe = jnp.where(missing, 0.0, y)
    lp = _nb(log_mean, concentration).log_prob(y_safe)
    return jnp.where(missing, 0.0, lp)


def _nb(log_mean, concentration):
    # NB2 with mean mu and shape k: logits = log(mu) - log(k).
    return dist.NegativeBinomialLogits(concentration, log_mean - jnp.log(concentration))


def observation_distribution(likelihood: str, signal, params: dict):
    """The observation law given the signal (mean or log-intensity), for forecast draws.

    Parameters
    ----------
    likelihood : str
    signal : Array, shape ``(horizon,)``
        ``Z alpha_t + d_t``.
    params : dict
        Sampled parameters (``sigma_obs``, ``nu``, ``concentration``).
    """
    if likelihood == "gaussian":
        return dist.Normal(signal, params["sigma_obs"])
    if likelihood == "student_t":
        return dist.StudentT(params["nu"], signal, params["sigma_obs"])
    return _nb(signal, params["concentration"])
