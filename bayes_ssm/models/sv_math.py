"""The arithmetic of :class:`~bayes_ssm.StochasticVolatility` (no sampling).

``log_variance_path``: the AR(1) log-variance from standard normals through
:func:`bayes_ssm.kernels.linear_recurrence`; ``one_step_log_lik``: a return's density with its
own log-variance integrated out (adaptive Gauss-Hermite quadrature).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from bayes_ssm.kernels.recurrence import linear_recurrence

__all__ = ["log_variance_path", "one_step_log_lik"]


def log_variance_path(z, mu_h, phi, sigma_h, *, h0=None):
    """The AR(1) log-variance path from standard normals (non-centred parametrisation).

    Parameters
    ----------
    z : Array, shape ``(time,)``
        Standard normal innovations.
    mu_h, phi, sigma_h : Array, scalar
        Mean, persistence (``|phi| < 1``) and innovation sd of the log-variance.
    h0 : Array, scalar, optional
        The log-variance before the first step. Omitted: the first step is drawn from the
        stationary law ``N(mu_h, sigma_h^2 / (1 - phi^2))`` (``z[0]`` standardised); given:
        ``h_1 = mu_h + phi (h0 - mu_h) + sigma_h z_1`` (used to run forecasts forward).

    Returns
    -------
    Array, shape ``(time,)``
        ``h_1 .. h_T``.
    """
    b = sigma_h * z
    if h0 is None:
        # floored so that |phi| rounding to 1 in float32 gives a huge, finite variance
        b = b.at[0].set(b[0] / jnp.sqrt(jnp.maximum(1.0 - phi**2, 1e-7)))
        start = None
    else:
        start = h0 - mu_h
    a = jnp.broadcast_to(phi, b.shape).astype(b.dtype)
    return mu_h + linear_recurrence(a, b, start, axis=-1)


def _obs_log_prob(likelihood, r, mu, h, nu):
    """``log p(r | h)``: Normal or Student-t with location ``mu`` and scale ``exp(h / 2)``."""
    scale = jnp.exp(0.5 * h)
    if likelihood == "student_t":
        return dist.StudentT(nu, mu, scale).log_prob(r)
    return dist.Normal(mu, scale).log_prob(r)


def one_step_log_lik(r, mu, h_mean, h_sd, *, likelihood="gaussian", nu=None, num_nodes=32):
    """``log p(r_t | h_{t-1}, theta)``: the density of a return, its own log-variance integrated.

    ``h_t ~ N(h_mean_t, h_sd_t^2)`` given the past; the integral over ``h_t`` is done by
    adaptive Gauss-Hermite quadrature (centred at the mode of the integrand, found by Newton
    steps, and scaled by its curvature), accurate also for returns far in the tails.

    Parameters
    ----------
    r : Array, shape ``(time,)``
        Returns (no NaN: mask them before).
    mu : Array, scalar
        Mean return.
    h_mean, h_sd : Array, shape ``(time,)``
        Mean and sd of each step's log-variance given the previous one.
    likelihood : {"gaussian", "student_t"}
    nu : Array, scalar, optional
        Degrees of freedom (Student-t).
    num_nodes : int
        Quadrature nodes.

    Returns
    -------
    Array, shape ``(time,)``
    """

    def log_joint(h):  # elementwise log p(r | h) + log N(h | h_mean, h_sd)
        z = (h - h_mean) / h_sd
        return (
            _obs_log_prob(likelihood, r, mu, h, nu)
            - 0.5 * z**2
            - jnp.log(h_sd)
            - 0.5 * jnp.log(2 * jnp.pi)
        )

    d2 = (r - mu) ** 2

    def derivatives(h):  # first and second derivative of log_joint (concave in h)
        if likelihood == "student_t":
            u = d2 * jnp.exp(-h) / nu
            pull, curv = 0.5 * (nu + 1.0) * u / (1.0 + u), -0.5 * (nu + 1.0) * u / (1.0 + u) ** 2
        else:
            pull = 0.5 * d2 * jnp.exp(-h)
            curv = -pull
        return -0.5 + pull - (h - h_mean) / h_sd**2, curv - 1.0 / h_sd**2

    def newton(_, h):
        grad, hess = derivatives(h)
        return h - jnp.clip(grad / hess, -5.0 * h_sd - 1.0, 5.0 * h_sd + 1.0)

    mode = jax.lax.fori_loop(0, 30, newton, h_mean)
    spread = 1.0 / jnp.sqrt(-derivatives(mode)[1])
    x, w = np.polynomial.hermite.hermgauss(num_nodes)
    x = jnp.asarray(x, mode.dtype)
    logw = jnp.asarray(np.log(w), mode.dtype) + x**2
    nodes = mode[:, None] + np.sqrt(2.0) * spread[:, None] * x
    vals = jax.vmap(log_joint, in_axes=1, out_axes=1)(nodes)
    return jnp.log(np.sqrt(2.0) * spread) + jax.nn.logsumexp(logw + vals, axis=1)
