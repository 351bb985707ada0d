"""Poisson and negative-binomial draws as floats, correct for any mean.

``jax.random.poisson`` returns an integer type (int32 unless float64 is on) and clips there:
a Poisson mean of 1e10 comes back as 2,147,483,647 for every draw. Its exact sampler
(Hörmann's transformed rejection) also runs in float32 whatever the input, and its acceptance
test ``-lam + k log(lam) - lgamma(k + 1)`` cancels terms of size ``lam log(lam)``: from a mean of
about 1e5 up the variance of its draws is measurably wrong (~5 % at 1e6). Here the count is
returned in the floating type of the mean, and the sampler depends on the mean ``lam``:

``lam < 1e4``
    ``jax.random.poisson(method="exact")``: exact (its float32 rounding error in the log
    acceptance ratio is below ``1e4 log(1e4) eps_32 ~ 5e-3`` there).
``1e4 <= lam <= 1e7``
    ``jax.random.poisson(method="approximate")``: the Peizer-Pratt inversion, total variation
    from the Poisson law below 1e-4 (JAX's documentation), computed in float64 when the mean is
    float64; int32 holds every draw.
``lam > 1e7``
    ``max(0, round(lam + sqrt(lam) z))``, ``z ~ N(0, 1)``: the normal approximation. Its
    quantiles differ from the Poisson ones by about ``(z^2 - 1) / 6`` counts (the skewness
    term), a relative error below 1e-6 at these means, and finer than float32 resolves
    (its spacing is 1 from 2^24 ~ 1.7e7 up).

A negative-binomial draw is the gamma-Poisson mixture: ``log theta = logit + log G``,
``G ~ Gamma(k, 1)`` (drawn as ``jax.random.loggamma``, so a small concentration ``k`` does not
underflow the rate), then a Poisson draw of mean ``theta`` as above. ``tests/test_counts.py``
checks mean, variance and probabilities against ``scipy.stats`` at means from 3 to 1e10.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

__all__ = ["POISSON_EXACT_BELOW", "POISSON_NORMAL_ABOVE", "poisson_counts", "gamma_poisson_counts"]

POISSON_EXACT_BELOW = 1e4
POISSON_NORMAL_ABOVE = 1e7


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
        Non-negative integers stored as floats (exact up to 2^24 in float32).
    """
    rate = jnp.asarray(rate)
    if not jnp.issubdtype(rate.dtype, jnp.floating):
        rate = rate.astype(jnp.float32)
    shape = rate.shape if shape is None else tuple(shape)
    rate = jnp.broadcast_to(rate, shape)
    dtype = rate.dtype
    k_exact, k_approx, k_normal = jax.random.split(key, 3)
    small = rate < POISSON_EXACT_BELOW
    large = ~(rate <= POISSON_NORMAL_ABOVE)  # NaN goes to the normal branch and stays NaN
    # each branch sees a harmless mean where its result is not used
    exact = jax.random.poisson(k_exact, jnp.where(small, rate, 0.0), shape, jnp.int32)
    mid_rate = jnp.where(small | large, POISSON_EXACT_BELOW, rate)
    approx = jax.random.poisson(k_approx, mid_rate, shape, jnp.int32, method="approximate")
    z = jax.random.normal(k_normal, shape, dtype)
    normal = jnp.maximum(jnp.round(rate + jnp.sqrt(rate) * z), 0.0)
    normal = jnp.where(rate == jnp.inf, rate, normal)  # not inf - inf = NaN
    return jnp.where(small, exact.astype(dtype), jnp.where(large, normal, approx.astype(dtype)))


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
