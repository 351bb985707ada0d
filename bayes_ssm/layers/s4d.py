"""Stochastic decay for S4D: a diagonal complex SSM whose per-step step size is random.

An S4D channel ``d`` has ``n`` complex modes ``A_n`` with a common real part (``-1/2`` for the
S4D-Lin and S4D-Inv initialisations), so the envelope of its memory decays like
``exp(Re A · sum Δ)``. The layer samples each channel's half-life ``tau_d`` (prior
:class:`~bayes_ssm.priors.HalfLife`) and sets the step that realises it for the slowest mode,
``Δ_d = log 2 / (tau_d · min_n |Re A_{d n}|)``; each step then gets a random multiplier,
``Δ_{t d} = dt_t · Δ_d · eps_{t d}`` (mean one). A random step makes the layer time-varying,
so it runs in recurrent mode (``O(T)``, exact); with ``noise="none"`` it is time-invariant and
runs as the FFT convolution. With ``noise_scale = 0`` it equals the deterministic S4D kernel
:func:`bayes_ssm.kernels.s4d.s4d` at step ``Δ_d`` in either mode.

Sites under the caller's scope (API): ``"half_life"`` ``(channel,)``; ``"step_noise"``
``(*batch, time, channel)`` (absent for ``noise="none"``); ``"context_weight"`` ``(channel,)``
with ``contextual=True`` (mean multiplier ``2 sigmoid(w_d x_{t d})``); ``"C_real"``,
``"C_imag"`` ``(channel, state)`` ~ ``Normal(0, 1/√2)``; ``"D"`` ``(channel,)`` ~ ``Normal(0, 1)``.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, field
from typing import Literal

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

from bayes_ssm.kernels.s4d import S4DParams, init_s4d, s4d
from bayes_ssm.layers import _memory
from bayes_ssm.priors import HalfLife

__all__ = ["StochasticDecayS4D"]

_LOG2 = math.log(2.0)


@dataclass(frozen=True)
class StochasticDecayS4D:
    """An S4D layer with a half-life prior per channel and a random step per time step.

    Parameters
    ----------
    channels : int
        ``d``.
    state_size : int
        ``n``, complex modes per channel.
    half_life : HalfLife
        Prior on each channel's memory half-life (of the slowest mode's envelope).
    noise, noise_scale, contextual, context_scale, step
        As in :class:`~bayes_ssm.layers.decay.StochasticDecaySSD`.
    init : {"lin", "inv"}
        S4D-Lin or S4D-Inv imaginary parts of ``A``.

    Examples
    --------
    >>> import jax.numpy as jnp, numpyro
    >>> layer = StochasticDecayS4D(channels=3, state_size=4)
    >>> y = numpyro.handlers.seed(layer, 0)(jnp.ones((20, 3)))
    >>> y.shape
    (20, 3)
    """

    channels: int
    state_size: int = 4
    half_life: HalfLife = field(default_factory=lambda: HalfLife(steps=8.0))
    noise: Literal["lognormal", "gamma", "none"] = "lognormal"
    noise_scale: float = 0.25
    contextual: bool = False
    context_scale: float = 1.0
    step: _dt.timedelta | None = None
    init: Literal["lin", "inv"] = "lin"

    def __post_init__(self):
        _memory.positive_int(self.channels, "channels")
        _memory.positive_int(self.state_size, "state_size")
        _memory.validate_memory(self)
        if self.init not in ("lin", "inv"):
            raise ValueError(f"init must be 'lin' or 'inv'; got {self.init!r}")

    def base_params(self, dtype=None) -> S4DParams:
        """The fixed part of the parameters: ``A`` (and ``B = 1``) of the initialisation."""
        return init_s4d(jax.random.key(0), self.channels, self.state_size, init=self.init,
                        dtype=dtype)  # fmt: skip

    def sample_params(self, dtype=None):
        """Sample ``C``, ``D`` and the half-lives; return the S4D parameters and ``Δ_d``."""
        d, n = self.channels, self.state_size
        base = self.base_params(dtype)
        tau = _memory.sample_half_life(self, d)
        rate = jnp.min(jnp.exp(base.log_A_real), axis=-1)  # slowest mode, |Re A| (d,)
        delta = _LOG2 / (tau * rate)
        s = math.sqrt(0.5)
        c_re = numpyro.sample("C_real", dist.Normal(0.0, s).expand((d, n)).to_event(2))
        c_im = numpyro.sample("C_imag", dist.Normal(0.0, s).expand((d, n)).to_event(2))
        D = numpyro.sample("D", dist.Normal(0.0, 1.0).expand((d,)).to_event(1))
        params = base._replace(
            log_dt=jnp.log(delta), C=jax.lax.complex(c_re, c_im).astype(base.C.dtype), D=D
        )
        return params, delta

    def steps(self, x, delta, *, dt=None):
        """Per-step steps ``Δ_{t d} = dt_t Δ_d eps_{t d}``, shape ``(*batch, time, channel)``."""
        w = _memory.sample_context_weight(self, (self.channels,))
        mean = 1.0 if w is None else _memory.contextual_mean(x * w)
        eps = _memory.step_multiplier(self, "step_noise", x.shape, mean, x.dtype)
        steps = delta * eps
        if dt is not None:
            steps = jnp.asarray(dt, x.dtype)[..., None] * steps
        return steps

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
        params, delta = self.sample_params(x.dtype)
        if self.noise == "none" and dt is None:
            return s4d(params, x, mode="convolution")  # time-invariant: the FFT convolution
        return s4d(params, x, dt=self.steps(x, delta, dt=dt), mode="recurrent")
