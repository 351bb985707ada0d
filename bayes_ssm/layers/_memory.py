"""Shared pieces of the stochastic-decay layers: validation and the random step multipliers.

Each decaying layer (SSD, S4D, selective) has the same random memory: a half-life per head or
channel with a :class:`~bayes_ssm.priors.HalfLife` prior, and per-step multipliers ``eps`` of the
step size with mean one (log-normal, non-centred, or Gamma), optionally times a contextual mean
``m_t = 2 sigmoid(logit_t)`` computed by the layer from its input.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

from bayes_ssm.priors import HalfLife

__all__ = []

NOISES = ("lognormal", "gamma", "none")


def positive_int(value, what):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer; got {value!r}")


def channel_input(x, channels: int):
    """``x`` as an array of shape ``(*batch, time, channel)`` with ``channel == channels``."""
    x = jnp.asarray(x)
    if x.ndim < 2 or x.shape[-1] != channels:
        raise ValueError(
            f"x must have shape (*batch, time, channel) with channel = {channels}; got {x.shape}"
        )
    return x


def validate_memory(layer) -> None:
    """Check the memory hyperparameters every stochastic-decay layer shares."""
    if not isinstance(layer.half_life, HalfLife):
        raise ValueError(f"half_life must be a bayes_ssm.priors.HalfLife; got {layer.half_life!r}")
    layer.half_life.median_steps(layer.step)  # calendar units without a step fail here
    if layer.noise not in NOISES:
        raise ValueError(f"noise must be one of {NOISES}; got {layer.noise!r}")
    scale = layer.noise_scale
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not scale >= 0:
        raise ValueError(f"noise_scale must be a number >= 0; got {scale!r}")
    if not math.isfinite(scale):
        raise ValueError(f"noise_scale must be finite; got {scale!r}")
    if layer.noise == "gamma" and scale == 0:
        raise ValueError(
            "noise='gamma' needs noise_scale > 0 (its concentration is 1 / noise_scale**2); "
            "use noise='lognormal' with noise_scale=0 for a deterministic decay"
        )
    cs = layer.context_scale
    ok = isinstance(cs, int | float) and not isinstance(cs, bool)
    if not (ok and cs > 0 and math.isfinite(cs)):
        raise ValueError(f"context_scale must be a positive number; got {cs!r}")
    if layer.contextual and layer.noise == "none":
        raise ValueError("contextual=True needs noise='lognormal' or 'gamma'")


def sample_half_life(layer, size: int):
    """Site ``"half_life"``, shape ``(size,)``: half-lives in steps."""
    return layer.half_life.sample("half_life", shape=(size,), step=layer.step)


def sample_context_weight(layer, shape):
    """Site ``"context_weight"`` ~ ``Normal(0, context_scale)``, or ``None`` if not contextual."""
    if not layer.contextual:
        return None
    d = dist.Normal(0.0, layer.context_scale).expand(tuple(shape)).to_event(len(shape))
    return numpyro.sample("context_weight", d)


def contextual_mean(logits):
    """``2 sigmoid(logits)``: positive, one at ``logits = 0``."""
    return 2.0 * jax.nn.sigmoid(logits)


def step_multiplier(layer, name: str, shape, mean, dtype):
    """Positive multipliers ``eps`` of mean ``mean``, shape ``shape``, sampled at ``name``.

    ``noise="lognormal"``: the site is a standard normal ``z`` and
    ``eps = mean * exp(sigma z - sigma²/2)`` (non-centred; ``sigma = 0`` gives ``mean``).
    ``noise="gamma"``: the site is ``eps ~ Gamma(kappa, kappa / mean)``, ``kappa = sigma^-2``.
    ``noise="none"``: ``mean``, no site.
    """
    shape = tuple(shape)
    if layer.noise == "none":
        return jnp.broadcast_to(jnp.asarray(mean, dtype), shape)
    sigma = float(layer.noise_scale)
    if layer.noise == "lognormal":
        z = numpyro.sample(name, dist.Normal(0.0, 1.0).expand(shape).to_event(len(shape)))
        return mean * jnp.exp(sigma * z - 0.5 * sigma**2)
    kappa = 1.0 / sigma**2
    rate = jnp.broadcast_to(kappa / jnp.asarray(mean), shape)
    return numpyro.sample(name, dist.Gamma(kappa, rate).to_event(len(shape)))
