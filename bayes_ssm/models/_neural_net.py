"""The small deep SSM shared by :class:`NeuralSSM` and :class:`HybridTS` (private).

A causal network over a standardised series ``z`` (shape ``(time,)``) that returns one feature
vector per step, ``u_t`` (``(time, channel)``), a function of ``z_1..z_t`` only:

.. math::

    u^{(0)}_t = \\textstyle\\sum_{j<p} z_{t-j} W_{in, j} + b_{in}, \\qquad
    u^{(l+1)} = u^{(l)} + \\mathrm{gelu}\\big(\\mathrm{S4D}_l(u^{(l)})\\big) M_l,

over the ``p = input_lags`` most recent values (zeros before the start). The network reads
``z`` clipped to the band of :func:`input_bounds` (the observed range widened by its width on
each side; in sample the clip never acts), so a forecast that feeds its own draws back sees
bounded inputs and cannot grow without bound (every layer is a stable filter or a bounded
function of a bounded input; the selective and SSD mixers normalise their own input,
:func:`bayes_ssm.models._neural_mixers.rms_norm`). ``S4D_l`` is the
per-channel diagonal SSM of :func:`bayes_ssm.kernels.s4d.s4d` (its ``C``,
``D`` and half-lives sampled by :class:`bayes_ssm.layers.s4d.StochasticDecayS4D` with
``noise="none"``, so the layer is time-invariant) and ``M_l`` a channel-mixing matrix. In
sample the layers run in convolution mode (FFT); forecasts run the very same layers as
recurrences, one step at a time (:func:`final_states`, :func:`step`), so a drawn value can be
fed back.

Sites (under the caller's scope, divider ``"."``): ``"w_in"`` ``(lag, channel)``,
``"b_in"`` ``(channel,)``;
per layer ``l``: ``"layer<l>.half_life"`` ``(channel,)``, ``"layer<l>.C_real"``,
``"layer<l>.C_imag"`` ``(channel, state)``, ``"layer<l>.D"`` ``(channel,)``,
``"layer<l>.mix"`` ``(channel, channel)``.
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.handlers import scope

from bayes_ssm.kernels.recurrence import linear_recurrence
from bayes_ssm.kernels.s4d import S4DParams, s4d, s4d_discretize
from bayes_ssm.layers.s4d import StochasticDecayS4D
from bayes_ssm.models._neural_mixers import apply_mixer, sample_mixer

__all__ = [
    "Weights",
    "sample_weights",
    "features",
    "final_states",
    "step",
    "layer_of",
    "lagged",
    "input_bounds",
    "bounded_input",
]


class Weights(NamedTuple):
    """All network weights of one draw.

    Attributes
    ----------
    w_in : Array, shape ``(lag, channel)``
    b_in : Array, shape ``(channel,)``
    layers : tuple of S4DParams (or of the mixer parameters of another ``layer`` kind)
    mix : tuple of Array, each shape ``(channel, channel)``
    """

    w_in: jax.Array
    b_in: jax.Array
    layers: tuple[S4DParams, ...]
    mix: tuple[jax.Array, ...]


def layer_of(net) -> StochasticDecayS4D:
    """The (time-invariant) S4D layer of the hyperparameters ``net``."""
    days = getattr(net, "step_days", None)
    return StochasticDecayS4D(
        channels=net.width,
        state_size=net.state_size,
        half_life=net.half_life,
        noise="none",
        step=None if days is None else _dt.timedelta(days=days),
    )


def sample_weights(net, dtype) -> Weights:
    """Sample every network weight (a NumPyro fragment; call it under a scope).

    ``w_in, b_in ~ Normal(0, prior_scale)``, ``mix ~ Normal(0, prior_scale / sqrt(channel))``;
    the S4D layer's own priors: ``C ~ CN(0, 1)`` (real and imaginary parts ``Normal(0, 1/√2)``),
    ``D ~ Normal(0, 1)``, half-life ``net.half_life``.
    """
    d, s = net.width, float(net.prior_scale)
    p = int(getattr(net, "input_lags", 1))
    w_in = numpyro.sample("w_in", dist.Normal(0.0, s).expand((p, d)).to_event(2))
    b_in = numpyro.sample("b_in", dist.Normal(0.0, s).expand((d,)).to_event(1))
    layer = layer_of(net)
    kind = getattr(net, "layer", "s4d")
    step = layer.step
    params, mixes = [], []
    for i in range(net.num_layers):
        with scope(prefix=f"layer{i}", divider="."):
            p = sample_mixer(kind, layer, net.half_life, step, d, net.state_size, dtype)
            m = numpyro.sample("mix", dist.Normal(0.0, s / math.sqrt(d)).expand((d, d)).to_event(2))
        params.append(p)
        mixes.append(m)
    return Weights(w_in, b_in, tuple(params), tuple(mixes))


def lagged(z, lags: int):
    """``Z[t, j] = z_{t-j}`` (0 before the start), shape ``(time, lag)``."""
    cols = [jnp.concatenate([jnp.zeros((j,), z.dtype), z[: z.shape[0] - j]]) for j in range(lags)]
    return jnp.stack(cols, axis=-1)


def input_bounds(y, loc: float, scale: float) -> dict[str, float]:
    """``{"input_lo", "input_hi"}``: the standardised observed range of ``y`` widened by its
    width on each side (the band the network's input is clipped to)."""
    obs = np.asarray(y, float)
    obs = (obs[~np.isnan(obs)] - loc) / scale
    lo, hi = float(obs.min()), float(obs.max())
    width = max(hi - lo, 1e-6)
    return {"input_lo": lo - width, "input_hi": hi + width}


def bounded_input(z, scales):
    """``z`` clipped to ``scales``' input band (unchanged for scales without one: older fits)."""
    if "input_lo" not in scales:
        return z
    return jnp.clip(z, scales["input_lo"], scales["input_hi"])


def _project(w: Weights, z):
    return lagged(z, w.w_in.shape[0]) @ w.w_in + w.b_in


def features(w: Weights, z, kind: str = "s4d"):
    """Features ``u_t`` of ``z_1..z_t``, shape ``(time, channel)`` (S4D: convolution mode)."""
    u = _project(w, z)
    for p, m in zip(w.layers, w.mix, strict=True):
        u = u + jax.nn.gelu(apply_mixer(kind, p, u)) @ m
    return u


def _layer_states(p: S4DParams, x):
    """Hidden states ``h_t = Ā h_{t-1} + B̄ x_t`` of one layer, shape ``(time, channel, state)``."""
    a_bar, b_bar = s4d_discretize(p)  # (d, n)
    return linear_recurrence(a_bar[None], b_bar * x[..., None].astype(b_bar.dtype), axis=-3)


def final_states(w: Weights, z):
    """The recurrent state after ``z_1..z_T``: ``(layer states, recent values)``.

    Layer states: a tuple of ``(channel, state)`` per layer, computed by the recurrence
    (:func:`bayes_ssm.kernels.linear_recurrence`) on each layer's input (the layers' outputs
    in between come from the convolution mode). Recent values: ``(lag,)``, ``z_T`` first.
    """
    u = _project(w, z)
    states = []
    for p, m in zip(w.layers, w.mix, strict=True):
        states.append(_layer_states(p, u)[-1])
        u = u + jax.nn.gelu(s4d(p, u, mode="convolution")) @ m
    return tuple(states), lagged(z, w.w_in.shape[0])[-1]


def step(w: Weights, state, z_t):
    """One recurrent step: new value ``z_t`` in, ``(new state, u_t (channel,))`` out."""
    states, recent = state
    recent = jnp.concatenate([jnp.reshape(z_t, (1,)), recent[:-1]])
    u = recent @ w.w_in + w.b_in
    new = []
    for p, m, h in zip(w.layers, w.mix, states, strict=True):
        a_bar, b_bar = s4d_discretize(p)
        h = a_bar * h + b_bar * u[:, None]
        y = 2 * jnp.sum(p.C * h, axis=-1).real + p.D * u
        u = u + jax.nn.gelu(y.astype(u.dtype)) @ m
        new.append(h)
    return (tuple(new), recent), u
