"""``AttentionAR``: forecasts from a Bayesian memory of the past, one stochastic-decay layer.

The smallest forecaster built from a Bayesian attention layer. The standardised series
``x_t = (y_t - loc) / scale`` (missing values carried forward) runs through a
:class:`~bayes_ssm.layers.decay.StochasticDecaySSD` layer with one state per head and
``B = C = 1``, so head ``h`` keeps an exponentially weighted average of the past with a random,
per-step decay,

.. math::

    m_{t h} = a_{t h} m_{t-1, h} + (1 - a_{t h}) x_t, \\qquad
    \\log a_{t h} = -\\log 2 \\cdot \\varepsilon_{t h} / \\tau_h,

and the next value is predicted by mixing the heads:

.. math::

    y_{t+1} \\sim \\mathcal{N}\\big(\\mathrm{loc} + \\mathrm{scale}
        (c + \\textstyle\\sum_h g_h m_{t h}),\\; (\\mathrm{scale}\\, \\sigma)^2\\big).

Unrolled, the prediction made at origin ``t`` is ``c + sum_s A[t, s] x_s`` with the implied
attention ``A[t, s] = sum_h g_h (1 - a_{s h}) prod_{k=s+1..t} a_{k h}``: which past steps drive
this forecast. Its posterior is what :func:`bayes_ssm.inference.attention_maps` reports.

Sites (model-specific, beside the contract's ``log_lik``, ``y_fitted``, ``y_forecast``; the
layer's sites sit under scope ``"memory"`` with divider ``"."``, which keeps them valid xarray
variable names for ``fit.save`` and ``fit.to_arviz``):
``"memory.half_life"`` ``(head,)`` (prior ``half_life``), ``"memory.step_noise"``
``(time, head)`` (and ``"memory.future_step_noise"`` ``(horizon, head)``), ``"gain"``
``(head,)`` ~ ``Normal(1/head, 1)``, ``"intercept"`` ~ ``Normal(0, 1)``, ``"obs_sd"`` ~
``HalfNormal(1)`` (standardised units), ``"forecast_noise"`` ``(horizon,)``; and, from
:meth:`AttentionAR.implied_attention`, ``"attention"`` ``(lag,)``.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, field
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.handlers import scope

from bayes_ssm.kernels.stochastic_attention import decay_attention_row
from bayes_ssm.layers.decay import StochasticDecaySSD
from bayes_ssm.models._shared import ffill
from bayes_ssm.models.base import HalfLifeSpecMixin, TimeSeriesModel, register_model
from bayes_ssm.priors import HalfLife

__all__ = ["AttentionAR"]


@register_model
@dataclass(frozen=True)
class AttentionAR(HalfLifeSpecMixin, TimeSeriesModel):
    """Autoregression through a Bayesian, decaying attention over the past.

    Parameters
    ----------
    half_life : HalfLife
        Prior on each head's memory half-life, e.g. ``HalfLife(weeks=8)`` (then give
        ``step_days``).
    num_heads : int
        Number of memories mixed (e.g. 2: a short and a long one).
    noise : {"lognormal", "gamma", "none"}
        Per-step randomness of the decay (see :class:`StochasticDecaySSD`).
    noise_scale : float
        Its scale (``sigma`` of the log multiplier, or coefficient of variation).
    step_days : float, optional
        Sampling interval of the series in days (7 for weekly data); needed when
        ``half_life`` is in calendar units.
    method : {"scan", "chunked", "quadratic"}
        SSD algorithm (all exact). With one state per head, ``"scan"`` (a sequential scan on
        a CPU, the associative scan on a GPU for long series) compiles fastest.
    min_length : int
        Fewest observed values accepted.

    Examples
    --------
    >>> import bayes_ssm as bs
    >>> from bayes_ssm.models.attention_ar import AttentionAR
    >>> model = AttentionAR(half_life=bs.priors.HalfLife(weeks=8), step_days=7)
    >>> model.kind
    'attention_ar'
    """

    kind: ClassVar[str] = "attention_ar"

    half_life: HalfLife = field(default_factory=lambda: HalfLife(steps=8.0))
    num_heads: int = 1
    noise: str = "lognormal"
    noise_scale: float = 0.25
    step_days: float | None = None
    method: str = "scan"
    min_length: int = 10

    def __post_init__(self):
        if self.step_days is not None and not (
            isinstance(self.step_days, int | float) and math.isfinite(self.step_days)
            and self.step_days > 0
        ):  # fmt: skip
            raise ValueError(f"step_days must be a positive number of days; got {self.step_days!r}")
        if not isinstance(self.min_length, int) or self.min_length < 2:
            raise ValueError(f"min_length must be an int >= 2; got {self.min_length!r}")
        _ = self.layer  # validates the layer's hyperparameters (half_life, noise, heads, ...)

    @property
    def layer(self) -> StochasticDecaySSD:
        """The memory layer (under scope ``"memory"``)."""
        step = None if self.step_days is None else _dt.timedelta(days=self.step_days)
        return StochasticDecaySSD(
            num_heads=self.num_heads,
            head_dim=1,
            state_dim=1,
            half_life=self.half_life,
            noise=self.noise,
            noise_scale=self.noise_scale,
            step=step,
            method=self.method,
        )

    # ------------------------------------------------------------------ contract
    def data_scales(self, y: np.ndarray, covariates: np.ndarray | None = None) -> dict[str, float]:
        obs = np.asarray(y, float)
        obs = obs[~np.isnan(obs)]
        return {"loc": float(np.mean(obs)), "scale": float(max(np.std(obs), 1e-6))}

    def validate(self, y: np.ndarray, covariates: np.ndarray | None = None) -> None:
        n = int(np.sum(~np.isnan(np.asarray(y, float))))
        if n < self.min_length:
            raise ValueError(f"y has {n} observed values; AttentionAR needs >= {self.min_length}")
        if covariates is not None:
            raise ValueError("AttentionAR takes no covariates")

    @property
    def parameter_sites(self):
        return ("memory.half_life", "gain", "intercept", "obs_sd")

    # ------------------------------------------------------------------ program
    def _memory(self, y, scales, horizon):
        """Sample every parameter; return the standardised inputs, decays and head weights."""
        z = (ffill(y) - scales["loc"]) / scales["scale"]
        x = jnp.broadcast_to(z[:, None, None], (z.shape[0], self.num_heads, 1))
        layer = self.layer
        with scope(prefix="memory", divider="."):
            log_a, delta = layer.log_decay(x, horizon=horizon)
        h = self.num_heads
        gain = numpyro.sample("gain", dist.Normal(1.0 / h, 1.0).expand([h]).to_event(1))
        intercept = numpyro.sample("intercept", dist.Normal(0.0, 1.0))
        obs_sd = numpyro.sample("obs_sd", dist.HalfNormal(1.0))
        return x, log_a, delta, gain, intercept, obs_sd

    def model(
        self,
        y: jax.Array,
        *,
        scales: dict[str, float],
        covariates: jax.Array | None = None,
        horizon: int = 0,
        future_covariates: jax.Array | None = None,
        components: bool = False,
    ) -> None:
        T = y.shape[0]
        x, log_a, delta, gain, intercept, obs_sd = self._memory(y, scales, horizon)
        ones = jnp.ones((T, 1, 1), x.dtype)
        m, state = self.layer.apply(
            x, log_a[:T], delta[:T], ones, ones, return_final_state=True
        )  # m (t, h, 1), state (h, 1, 1)
        pred = intercept + m[:, :, 0] @ gain  # prediction of z_{t+1} made at t
        pred = jnp.concatenate([intercept[None], pred[:-1]])  # prediction of z_t
        loc, scale = scales["loc"], scales["scale"]
        mean, sd = loc + scale * pred, scale * obs_sd
        observed = ~jnp.isnan(y)
        ll = jnp.where(observed, dist.Normal(mean, sd).log_prob(jnp.where(observed, y, mean)), 0.0)
        numpyro.deterministic("log_lik", ll)
        numpyro.factor("obs", ll.sum())
        numpyro.deterministic("y_fitted", mean)
        if horizon > 0:
            eps = numpyro.sample("forecast_noise", dist.Normal(0, 1).expand([horizon]).to_event(1))
            a_future = jnp.exp(log_a[T:])  # (horizon, h)

            def step(s, inp):
                a, e = inp
                zt = intercept + s @ gain + obs_sd * e
                return a * s + (1.0 - a) * zt, zt

            _, zs = jax.lax.scan(step, state[:, 0, 0], (a_future, eps))
            numpyro.deterministic("y_forecast", loc + scale * zs)

    def implied_attention(
        self, y: jax.Array, *, scales: dict[str, float], origin: int, max_lag: int
    ) -> jax.Array:
        """NumPyro program: the implied attention of the forecast made at step ``origin``.

        Samples the same parameter sites as :meth:`model` (so posterior draws substitute) and
        records ``"attention"`` ``(max_lag,)``: entry ``l - 1`` is the weight ``A[origin, s]`` of
        the value at ``s = origin + 1 - l`` (lag ``l``) in the prediction of step
        ``origin + 1``; 0 where ``s < 0``. ``"attention_by_head"`` ``(head, max_lag)`` splits it
        into each head's contribution ``g_h (1 - a_{s h}) prod a``.
        """
        x, log_a, delta, gain, _, _ = self._memory(y, scales, 0)
        la = log_a.T  # (h, t)
        weight = self.layer.gate(la, delta.T)
        row = decay_attention_row(la, weight, origin)  # (h, origin + 1)
        per_head = jnp.flip(gain[:, None] * row, axis=-1)[:, :max_lag]  # lag 1 first
        per_head = jnp.pad(per_head, ((0, 0), (0, max_lag - per_head.shape[-1])))
        numpyro.deterministic("attention_by_head", per_head)
        numpyro.deterministic("attention", per_head.sum(0))
