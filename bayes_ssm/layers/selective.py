"""Stochastic decay for the selective SSM (Mamba-1): a random, input-dependent step.

The selective SSM already has a per-step, per-channel step ``Δ_{t d}`` (a function of the input
in Mamba). Here it is a random variable: each channel's half-life ``tau_d`` has a
:class:`~bayes_ssm.priors.HalfLife` prior, which fixes the base step for its slowest mode
(``A = -(1..n)`` by Mamba's S4D-Real initialisation, so the slowest rate is 1):
``Δ_d = log 2 / tau_d``; each step multiplies it by ``eps_{t d}`` of mean
``m_{t d} = 2 sigmoid(x_t · w_d)`` (``contextual=True``, the default: the *selection*) or one.
Every draw is computed exactly by :func:`bayes_ssm.kernels.selective.selective_scan` in
``O(T)``; with ``noise_scale = 0`` and ``contextual=False`` the layer is that kernel at step
``Δ_d``.

Sites under the caller's scope (API): ``"half_life"`` ``(channel,)``; ``"context_weight"``
``(channel, channel)`` (input channel, output channel); ``"step_noise"`` ``(*batch, time,
channel)``; ``"B_weight"``, ``"C_weight"`` ``(channel, state)`` ~ ``Normal(0, 1/√d)``
(``B_t = x_t W_B``); ``"D"`` ``(channel,)`` ~ ``Normal(0, 1)``.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, field
from typing import Literal

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

from bayes_ssm.kernels.selective import SelectiveParams, init_selective_A, selective_scan
from bayes_ssm.layers import _memory
from bayes_ssm.priors import HalfLife

__all__ = ["StochasticDecaySelective"]

_LOG2 = math.log(2.0)


@dataclass(frozen=True)
class StochasticDecaySelective:
    """A selective SSM whose step has a half-life prior and per-step randomness.

    Parameters
    ----------
    channels : int
        ``d``.
    state_size : int
        ``n``.
    half_life : HalfLife
        Prior on each channel's half-life (of its slowest mode).
    noise, noise_scale, context_scale, step
        As in :class:`~bayes_ssm.layers.decay.StochasticDecaySSD`.
    contextual : bool
        Input-dependent mean step (the selection mechanism), default True.

    Examples
    --------
    >>> import jax.numpy as jnp, numpyro
    >>> layer = StochasticDecaySelective(channels=2, state_size=3)
    >>> y = numpyro.handlers.seed(layer, 0)(jnp.ones((12, 2)))
    >>> y.shape
    (12, 2)
    """

    channels: int
    state_size: int = 4
    half_life: HalfLife = field(default_factory=lambda: HalfLife(steps=8.0))
    noise: Literal["lognormal", "gamma", "none"] = "lognormal"
    noise_scale: float = 0.25
    contextual: bool = True
    context_scale: float = 1.0
    step: _dt.timedelta | None = None

    def __post_init__(self):
        _memory.positive_int(self.channels, "channels")
        _memory.positive_int(self.state_size, "state_size")
        _memory.validate_memory(self)

    def sample_params(self, x, *, dt=None) -> SelectiveParams:
        """Sample everything and return the selective-scan inputs (``dt, A, B, C, D``)."""
        d, n = self.channels, self.state_size
        A = init_selective_A(d, n, dtype=x.dtype)
        tau = _memory.sample_half_life(self, d)
        delta = _LOG2 / (tau * jnp.min(-A, axis=-1))  # (d,)
        w = _memory.sample_context_weight(self, (d, d))
        mean = 1.0 if w is None else _memory.contextual_mean(x @ w)
        steps = delta * _memory.step_multiplier(self, "step_noise", x.shape, mean, x.dtype)
        if dt is not None:
            steps = jnp.asarray(dt, x.dtype)[..., None] * steps
        s = 1.0 / math.sqrt(d)
        wb = numpyro.sample("B_weight", dist.Normal(0.0, s).expand((d, n)).to_event(2))
        wc = numpyro.sample("C_weight", dist.Normal(0.0, s).expand((d, n)).to_event(2))
        D = numpyro.sample("D", dist.Normal(0.0, 1.0).expand((d,)).to_event(1))
        return SelectiveParams(dt=steps, A=A, B=x @ wb, C=x @ wc, D=D)

    def __call__(self, x, *, dt=None):
        """Run the layer (a NumPyro fragment).

        Parameters
        ----------
        x : Array, shape ``(*batch, time, channel)``
        dt : Array, broadcastable to ``(*batch, time)``, optional
            Gaps between observations, in steps.

        Returns
        -------
        Array, shape ``(*batch, time, channel)``
        """
        x = _memory.channel_input(x, self.channels)
        p = self.sample_params(x, dt=dt)
        return selective_scan(x, p.dt, p.A, p.B, p.C, D=p.D)
