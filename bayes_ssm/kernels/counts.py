"""Poisson and negative-binomial draws as floats, correct for any mean.

``jax.random.poisson`` returns an integer type (int32 unless float64 is on) and clips there:
a Poisson mean of 1e10 comes back as 2,147,483,647 for every draw. Its exact sampler
(Hörmann's transformed rejection) also runs in float32 whatever the input, and its acceptance
test ``-lam + k log(lam) - lgamma(k + 1)`` cancels terms of size ``lam log(lam)``: from a mean of
about 1e5 up the variance of its draws is measurably wrong (~5 % at 1e6). Here the count is
returned in the floating type of the mean, by one of two samplers:

``lam < 1e3``
    ``jax.random.poisson``, exact (the float32 rounding of its log acceptance ratio is below
    ``1e3 log(1e3) eps_32 ~ 4e-4`` there).
``lam >= 1e3``
    The normal approximation with its Cornish-Fisher skewness term,
    ``round(lam + sqrt(lam) z + (z^2 - 1) / 6)``, ``z ~ N(0, 1)``. Its total variation
    distance from the Poisson law is about ``0.023 / lam`` (2.3e-5 at 1e3, 2.3e-8 at 1e6;
    computed against ``scipy.stats.poisson.pmf``), below that of JAX's own approximate
    sampler (1e-4). The integer part ``round(lam)`` is split off before the normal part is
    added, so float32 keeps the count to a unit up to 2^24 ~ 1.7e7 and to its own resolution
    (relative 6e-8) beyond; nothing clips.

A negative-binomial draw is the gamma-Poisson mixture: ``log theta = logit + log G``,
``G ~ Gamma(k, 1)`` (drawn as ``jax.random.loggamma``, so a small concentration ``k`` does not
underflow the rate), then a Poisson draw of mean ``theta`` as above. ``tests/test_counts.py``
checks the draws against ``scipy.stats`` (distribution function, mean and variance) at means
from 0.7 to 1e12.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

__all__ = ["POISSON_EXACT_BELOW", "poisson_counts", "gamma_poisson_counts"]

POISSON_EXACT_BELOW = 1e3


@partial(jax.jit, static_argnames=("shape",))
def poisson_counts(key, rate, shape=None):
    """Poisson draws of mean ``rate``, returned in ``rate``'s floating type (never clipped).

    Parameters
    ----------
    key : jax.random key
    rate : Array, float, broadcastable to ``shape``
        Means, ``>= 0``. NaN gives NaN, ``inf`` gives ``inf``.
    shape : tuple of int, optional
        Output shape; ``rate.shape`` by default.

    Returns
    -------
    Array, shape ``shape``, dtype of ``rate`` (float32 for an integer ``rate``)
        Non-negative whole numbers stored as floats.
    """
    rate = jnp.asarray(rate)
    if not jnp.issubdtype(rate.dtype, jnp.floating):
        rate = rate.astype(jnp.float32)
    shape = rate.shape if shape is None else tuple(shape)
    rate = jnp.broadcast_to(rate, shape)
    dtype = rate.dtype
    k_exact, k_normal = jax.random.split(key)
    small = rate < POISSON_EXACT_BELOW  # NaN and inf take the other branch and stay so
    exact = jax.random.poisson(k_exact, jnp.where(small, rate, 0.0), shape, jnp.int32)
    z = jax.random.normal(k_normal, shape, dtype)
    whole = jnp.round(rate)
    # whole + round(the rest), the rest computed at the scale of sqrt(rate), not of rate
    rest = (rate - whole) + jnp.sqrt(rate) * z + (z * z - 1.0) / 6.0
    normal = jnp.where(jnp.isfinite(rate), jnp.maximum(whole + jnp.round(rest), 0.0), rate)
    return jnp.where(small, exact.astype(dtype), normal)


@partial(jax.jit, static_argnames=("shape",))
def gamma_poisson_counts(key, logits, concentration, shape=None):
    """Negative-binomial draws ``NB(total_count=k, logits)`` as floats (never clipped).

    The law of :class:`numpyro.distributions.NegativeBinomialLogits`: mean ``k exp(logits)``,
    variance ``mean + mean^2 / k``.

    Parameters
    ----------
    key : jax.random key
    logits : Array, float
        ``log(mean) - log(k)``.
    concentration : Array, float
        ``k > 0``; broadcast against ``logits``.
    shape : tuple of int, optional
        Output shape (a batch shape to which both broadcast); their broadcast shape by default.

    Returns
    -------
    Array, shape ``shape``, floating dtype of ``logits`` and ``concentration``
    """
    logits, concentration = jnp.asarray(logits), jnp.asarray(concentration)
    dtype = jnp.result_type(logits, concentration, float)
    if shape is None:
        shape = jnp.broadcast_shapes(logits.shape, concentration.shape)
    shape = tuple(shape)
    k_gamma, k_poisson = jax.random.split(key)
    k = jnp.broadcast_to(concentration.astype(dtype), shape)
    log_rate = logits.astype(dtype) + jax.random.loggamma(k_gamma, k, shape, dtype)
    return poisson_counts(k_poisson, jnp.exp(log_rate))
