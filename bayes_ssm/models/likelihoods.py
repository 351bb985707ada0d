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
    ``eta_t = Z alpha_t + d_t``; the states are sampled, since no filter integrates them
    exactly, in non-centred, centred or mixed coordinates (``state_z`` / ``state_path``;
    :mod:`bayes_ssm.models._state_paths`). The log-pmf is computed so that float32 stays
    accurate for counts of 1e4 and more (:func:`_log_gamma_ratio`). Predictive draws
    (``y_forecast``, ``y_rep``, ``y_prior``) are floats from
    :func:`bayes_ssm.kernels.counts.gamma_poisson_counts`, correct at any mean (NumPyro's own
    sampler returns int32 and clips at 2^31 - 1).

Functions here sample sites (NumPyro) but know nothing about the state space.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax import lax
from jax.scipy.special import gammaln

from bayes_ssm.kernels.counts import gamma_poisson_counts

__all__ = [
    "LIKELIHOODS",
    "validate_counts",
    "student_t_precisions",
    "negative_binomial_log_prob",
    "observation_distribution",
    "NegativeBinomialCounts",
    "student_t_predictive_log_prob",
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
    log_mean = jnp.clip(log_mean, -_MAX_LOG_MEAN, _MAX_LOG_MEAN)
    k = concentration
    logits = log_mean - jnp.log(k)
    lp = (
        _log_gamma_ratio(y_safe, k)
        - gammaln(k)
        - k * jax.nn.softplus(logits)
        - y_safe * jax.nn.softplus(-logits)
    )
    return jnp.where(missing, 0.0, lp)


def _log_gamma_ratio(y, k):
    """``lgamma(y + k) - lgamma(y + 1)``, accurate in float32 for large counts.

    The direct difference of two ``lgamma`` values of size ``y log y`` loses all precision
    for counts of ~1e4 and more in float32 (and ``betaln`` as well): the log density then
    jitters by whole units as ``k`` moves, which wrecks the NUTS energy check. For ``y >= 10``
    Stirling's series with the cancellation done analytically:
    ``(y + 1/2) log1p((k - 1)/(y + 1)) + (k - 1)(log(y + k) - 1) + c(y + k) - c(y + 1)``,
    ``c(x) = 1/(12x) - 1/(360x^3)`` (error below 1e-8 there).
    """
    big = y >= 10.0
    yb = jnp.where(big, y, 10.0)

    def corr(x):
        return 1.0 / (12.0 * x) - 1.0 / (360.0 * x**3)

    stirling = (
        (yb + 0.5) * jnp.log1p((k - 1.0) / (yb + 1.0))
        + (k - 1.0) * (jnp.log(yb + k) - 1.0)
        + corr(yb + k)
        - corr(yb + 1.0)
    )
    ys = jnp.where(big, 0.0, y)
    direct = gammaln(ys + k) - gammaln(ys + 1.0)
    return jnp.where(big, stirling, direct)


_MAX_LOG_MEAN = 40.0  # counts beyond e^40 ~ 2e17 are not representable in float32 anyway


def _nb(log_mean, concentration):
    # NB2 with mean mu and shape k: logits = log(mu) - log(k). The log-mean is clipped to
    # +-40 so that a wild state path (e.g. a random initial point of NUTS over a long series)
    # gives a finite, if flat, density instead of an overflow.
    log_mean = jnp.clip(log_mean, -_MAX_LOG_MEAN, _MAX_LOG_MEAN)
    return NegativeBinomialCounts(concentration, log_mean - jnp.log(concentration))


class NegativeBinomialCounts(dist.NegativeBinomialLogits):
    """``NegativeBinomialLogits`` whose draws are floats that never clip.

    The log-pmf, support and moments are NumPyro's; only :meth:`sample` differs: NumPyro draws
    the gamma-mixed rate and then ``jax.random.poisson``, whose int32 result (without float64)
    saturates at 2,147,483,647, so a forecast whose mean passed ~2e9 came back as that number.
    Here the draw is :func:`~bayes_ssm.kernels.counts.gamma_poisson_counts`: integer counts
    stored in the logits' floating type (float32: exact up to 2^24, then rounded to float32).
    """

    def sample(self, key, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape
        return gamma_poisson_counts(key, self.logits, self.total_count, shape)


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


@partial(jax.jit, static_argnames=("num_nodes",))
def student_t_predictive_log_prob(y, mean, state_var, scale, nu, *, num_nodes: int = 256):
    """``log p(y_t | y_<t)`` of the Student-t scale mixture, marginal over the step's precision.

    Given the one-step state prediction ``y_t - eps_t ~ N(mean_t, state_var_t)`` and
    ``eps_t | lambda ~ N(0, scale^2 / lambda)``, ``lambda ~ Gamma(nu/2, nu/2)``,

    .. math:: p(y_t) = \\int N(y_t; m_t, S_t + \\sigma^2 e^{-s}) \\, p(s) \\, ds,
              \\qquad s = \\log\\lambda,

    computed by the trapezoid rule on a grid centred, per step, near the integrand's mode
    ``c_t = log((a + 1/2) / (a + r_t^2 / 2))`` (``a = nu / 2``, ``r_t^2`` the squared
    standardised residual) and spanning +-30 of its widths ``1 / sqrt(a + 1/2)``. The integrand is
    smooth with exponentially decaying tails, so the rule converges geometrically for every
    ``nu`` and every residual; ``tests/test_structural.py`` checks it against the Student-t
    density at ``S = 0`` and adaptive quadrature at ``S > 0``. Memory ``O(time)`` (a scan over
    the nodes).

    Parameters
    ----------
    y, mean, state_var : Array, shape ``(time,)``
        Observations (NaN: term 0), predictive mean and the state part of the predictive
        variance (``F_t - scale^2 / lambda_t``).
    scale, nu : Array, shape ``()``

    Returns
    -------
    Array, shape ``(time,)``
    """
    missing = jnp.isnan(y)
    resid2 = (jnp.where(missing, mean, y) - mean) ** 2
    a = 0.5 * nu
    width = 1.0 / jnp.sqrt(a + 0.5)
    centre = jnp.log(a + 0.5) - jnp.log(a + 0.5 * resid2 / (state_var + scale**2))
    u = jnp.linspace(-30.0, 30.0, num_nodes, dtype=mean.dtype)
    log_du = jnp.log(u[1] - u[0]) + jnp.log(width)
    log_norm = a * jnp.log(a) - gammaln(a)
    log_state_var = jnp.log(state_var)
    log_scale2 = 2.0 * jnp.log(scale)

    def accumulate(acc, uk):
        s = centre + width * uk
        log_prior = log_norm + a * s - a * jnp.exp(s)
        log_var = jnp.logaddexp(log_state_var, log_scale2 - s)
        term = (
            log_du + log_prior - 0.5 * (jnp.log(2 * jnp.pi) + log_var + resid2 * jnp.exp(-log_var))
        )
        return jnp.logaddexp(acc, term), None

    init = jnp.full(mean.shape, -jnp.inf, mean.dtype)
    out, _ = lax.scan(accumulate, init, u)
    return jnp.where(missing, 0.0, out)
