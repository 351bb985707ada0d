"""The maths of Bayesian attention (Fan et al., 2020): random attention weights, pure JAX.

Bayesian Attention Modules replace the deterministic attention weights ``w[t, s]`` (each row a
probability vector over keys ``s``) by random, unnormalised weights ``S[t, s] > 0`` whose mean is
``w[t, s]``, then normalise them again:

.. math::

    S \\sim \\mathrm{Weibull}(k, \\lambda), \\quad \\lambda = \\frac{w}{\\Gamma(1 + 1/k)}
    \\;(\\text{so } E[S] = w), \\qquad W_{t s} = \\frac{S_{t s}}{\\sum_{s'} S_{t s'}}.

The Weibull sample is reparameterised, ``S = \\lambda (-\\log(1 - u))^{1/k}`` with
``u ~ Uniform(0, 1)``, so gradients flow to ``w`` (and ``k``). As ``k -> inf`` the draw collapses
onto its mean (``S = w``) and the layer is the deterministic attention it wraps. The log-normal
variant uses ``S = exp(mu + sigma z)``, ``mu = log w - sigma**2 / 2`` (mean ``w`` again); it
collapses at ``sigma = 0``.

The prior is a *contextual* Gamma: ``S[t, s] ~ Gamma(alpha_s, beta)`` with
``alpha_s = beta * softmax_s(g(key_s))`` for a small network ``g`` of the keys, so that the prior
mean ``alpha / beta`` is itself an attention distribution over keys and ``beta`` sets how tightly
the prior holds. The KL divergence of the Weibull from the Gamma has a closed form
(:func:`weibull_gamma_kl`), as does the log-normal's (:func:`lognormal_gamma_kl`).

Dimension vocabulary: weights carry ``(..., head, time, time)`` axes, query time ``t`` then key
time ``s``; every function here is elementwise except the normalisations over the key axis.

References
----------
Xinjie Fan, Shujian Zhang, Bo Chen, Mingyuan Zhou. "Bayesian Attention Modules". NeurIPS 2020.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln

from bayes_ssm.kernels.attention import elu_feature_map

__all__ = [
    "EULER_GAMMA",
    "weibull_scale",
    "weibull_reparam",
    "lognormal_loc",
    "lognormal_reparam",
    "normalize_weights",
    "contextual_gamma_shape",
    "weibull_gamma_kl",
    "lognormal_gamma_kl",
    "attention_weights",
    "decay_attention_row",
]

EULER_GAMMA = float(np.euler_gamma)


def weibull_scale(mean, concentration):
    """Weibull scale ``lambda = mean / Gamma(1 + 1/k)`` whose distribution has mean ``mean``.

    Parameters
    ----------
    mean : Array, any shape
        Target means ``w >= 0``.
    concentration : float or Array, broadcastable
        Weibull shape ``k > 0``; ``inf`` gives ``lambda = mean`` (the collapsed, point-mass case).

    Returns
    -------
    Array, broadcast shape
    """
    return mean * jnp.exp(-gammaln(1.0 + 1.0 / concentration))


def weibull_reparam(mean, concentration, u):
    """Reparameterised Weibull draw ``S = lambda * (-log(1 - u))**(1/k)`` with ``E[S] = mean``.

    Parameters
    ----------
    mean : Array, any shape
        Means ``w`` of the draws (attention weights).
    concentration : float or Array, broadcastable
        Weibull shape ``k > 0`` (larger is tighter; ``inf`` returns ``mean`` exactly).
    u : Array, broadcastable
        Uniform(0, 1) noise.

    Returns
    -------
    Array, broadcast shape
        Positive draws (zero where ``mean`` is zero).
    """
    e = -jnp.log1p(-u)
    # e ** (1/k) in log space: exact 1 when 1/k == 0 and safe gradients for e near 0.
    return weibull_scale(mean, concentration) * jnp.exp(jnp.log(e) / concentration)


def lognormal_loc(mean, sigma):
    """Log-normal location ``mu = log(mean) - sigma**2 / 2``, so ``E[exp(mu + sigma z)] = mean``."""
    return jnp.log(mean) - 0.5 * jnp.square(sigma)


def lognormal_reparam(mean, sigma, z):
    """Reparameterised log-normal draw ``S = mean * exp(sigma z - sigma**2 / 2)``, ``E[S] = mean``.

    Written as a product so that ``mean = 0`` (masked entries) gives ``S = 0``, not NaN, and
    ``sigma = 0`` returns ``mean`` exactly.
    """
    return mean * jnp.exp(sigma * z - 0.5 * jnp.square(sigma))


def normalize_weights(s, *, axis: int = -1):
    """``W = S / sum(S)`` over the key axis (rows of zeros stay zero instead of NaN).

    Parameters
    ----------
    s : Array, shape ``(..., time, time)``
        Non-negative unnormalised weights (zero at masked entries).
    axis : int
        The key axis.
    """
    total = jnp.sum(s, axis=axis, keepdims=True)
    safe = jnp.where(total > 0, total, 1.0)
    return jnp.where(total > 0, s / safe, 0.0)


def contextual_gamma_shape(logits, rate, *, mask=None, axis: int = -1):
    """Contextual Gamma prior shapes ``alpha_s = beta * softmax_s(logits_s)``.

    Parameters
    ----------
    logits : Array, shape ``(..., time)`` or ``(..., time, time)``
        ``g(key_s)`` for each key (broadcast over queries).
    rate : float or Array
        The Gamma rate ``beta > 0``.
    mask : bool Array, broadcastable, optional
        Entries that exist (e.g. ``s <= t`` for causal attention); the softmax runs over them.
    axis : int
        The key axis.

    Returns
    -------
    Array
        Shapes ``alpha``; positive where ``mask`` holds (zero elsewhere).
    """
    if mask is not None:
        logits = jnp.where(mask, logits, -jnp.inf)
    p = jax.nn.softmax(logits, axis=axis)
    if mask is not None:
        p = jnp.where(mask, p, 0.0)
    return rate * p


def weibull_gamma_kl(concentration, scale, alpha, beta):
    """Closed-form ``KL(Weibull(k, lambda) || Gamma(alpha, beta))``, elementwise.

    .. math::

        \\mathrm{KL} = -\\alpha \\log\\lambda + \\frac{\\gamma \\alpha}{k} + \\log k
            + \\beta \\lambda \\Gamma(1 + 1/k) - \\gamma - 1
            - \\alpha \\log\\beta + \\log\\Gamma(\\alpha)

    with ``gamma`` Euler's constant (Fan et al. 2020, eq. 7; Gamma in the shape-rate
    parameterisation).

    Parameters
    ----------
    concentration, scale : Array
        Weibull shape ``k > 0`` and scale ``lambda > 0``.
    alpha, beta : Array
        Gamma shape and rate, positive. All four broadcast.

    Returns
    -------
    Array, broadcast shape
    """
    k, lam = concentration, scale
    return (
        -alpha * jnp.log(lam)
        + EULER_GAMMA * alpha / k
        + jnp.log(k)
        + beta * lam * jnp.exp(gammaln(1.0 + 1.0 / k))
        - EULER_GAMMA
        - 1.0
        - alpha * jnp.log(beta)
        + gammaln(alpha)
    )


def lognormal_gamma_kl(loc, sigma, alpha, beta):
    """Closed-form ``KL(LogNormal(mu, sigma) || Gamma(alpha, beta))``, elementwise.

    With ``E[log S] = mu`` and ``E[S] = exp(mu + sigma**2 / 2)``:

    .. math::

        \\mathrm{KL} = -\\mu - \\tfrac12 - \\log(\\sigma \\sqrt{2\\pi})
        - \\alpha \\log\\beta + \\log\\Gamma(\\alpha) - (\\alpha - 1)\\mu
        + \\beta e^{\\mu + \\sigma^2 / 2}
    """
    mu = loc
    neg_entropy = -(mu + 0.5 + jnp.log(sigma) + 0.5 * jnp.log(2.0 * jnp.pi))
    cross = (
        -alpha * jnp.log(beta)
        + gammaln(alpha)
        - (alpha - 1.0) * mu
        + beta * jnp.exp(mu + 0.5 * jnp.square(sigma))
    )
    return neg_entropy + cross


def attention_weights(q, k, *, kind: str = "softmax", causal: bool = True, scale=None):
    """The deterministic attention weights ``w[..., h, t, s]`` (rows sum to one).

    Parameters
    ----------
    q, k : Array, shape ``(*batch, time, head, key_dim)``
    kind : {"softmax", "linear"}
        ``softmax_s(scale q_t·k_s)``, or ``φ(q_t)·φ(k_s) / Σ_s' φ(q_t)·φ(k_s')`` with
        ``φ = elu + 1``.
    causal : bool
        Only ``s <= t`` (weights above the diagonal are zero).
    scale : float, optional
        Softmax temperature; ``1 / sqrt(key_dim)`` by default.

    Returns
    -------
    w : Array, shape ``(*batch, head, time, time)``
    mask : bool Array, shape ``(time, time)``
        Where ``w`` may be non-zero.
    """
    t = q.shape[-3]
    mask = jnp.tril(jnp.ones((t, t), bool)) if causal else jnp.ones((t, t), bool)
    if kind == "softmax":
        scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
        logits = scale * jnp.einsum("...thn,...shn->...hts", q, k)
        logits = jnp.where(mask, logits, -jnp.inf)
        return jax.nn.softmax(logits, axis=-1), mask
    if kind == "linear":
        sim = jnp.einsum("...thn,...shn->...hts", elu_feature_map(q), elu_feature_map(k))
        sim = jnp.where(mask, sim, 0.0)
        return sim / jnp.sum(sim, axis=-1, keepdims=True), mask
    raise ValueError(f"kind must be 'softmax' or 'linear'; got {kind!r}")


def decay_attention_row(log_a, weight, origin: int):
    """One row of the implied attention of a decay layer: how step ``origin`` weighs the past.

    ``row[s] = exp(sum_{k=s+1..origin} log_a[k]) * weight[s]`` for ``s <= origin`` (the
    1-semiseparable mask times the per-step input weight, e.g. ``(1 - a_s) C_t·B_s``), computed
    by suffix sums in log space (no division of cumulative products).

    Parameters
    ----------
    log_a : Array, shape ``(..., time)``
        Log decays.
    weight : Array, broadcastable to ``(..., time)``
        Per-source-step weights.
    origin : int
        The query step ``t`` (static, ``0 <= origin < time``).

    Returns
    -------
    Array, shape ``(..., origin + 1)``
        ``row[..., s]`` for ``s = 0 .. origin``; ``row[..., -1]`` is the weight of ``origin``.
    """
    la = log_a[..., 1 : origin + 1]
    suffix = jnp.flip(jnp.cumsum(jnp.flip(la, -1), axis=-1), -1)  # sum_{k=s+1..origin}
    seg = jnp.concatenate([suffix, jnp.zeros_like(log_a[..., :1])], axis=-1)
    w = jnp.broadcast_to(weight, log_a.shape)[..., : origin + 1]
    return jnp.exp(seg) * w
