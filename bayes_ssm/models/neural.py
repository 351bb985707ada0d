"""``NeuralSSM``: a probabilistic forecaster whose next-step law is a small deep SSM of the past.

The standardised series ``z_t = (y_t - loc) / scale`` (missing values carried forward) runs
through a causal network of S4D layers (:mod:`bayes_ssm.models._neural_net`): an input
projection of the ``input_lags`` latest values to ``width`` channels, ``num_layers`` residual blocks
``u <- u + gelu(S4D(u)) M`` and a linear read-out, so that

.. math::

    y_{t+1} \\mid y_{\\le t}, \\theta \\sim \\mathcal{N}\\big(\\mathrm{loc} + \\mathrm{scale}
        (c + w_{out}^\\top u_t),\\; (\\mathrm{scale}\\, \\sigma_t)^2\\big)
    \\quad (\\text{or Student-}t_\\nu),

with ``sigma_t = obs_sd`` or, with ``neural_scale=True``,
``sigma_t = obs_sd * exp(w_scale^T u_t)``. Every weight has a Gaussian prior (a weight
decay): ``W_in, b_in ~ N(0, s)``, mixing matrices and read-outs ``~ N(0, s / sqrt(width))``
with ``s = prior_scale``; the S4D layers keep their own priors (``C ~ CN(0, 1)``,
``D ~ N(0, 1)``, half-life ``half_life``).

Forecasts simulate paths: from the recurrent state after the last observation, draw
``y_{T+1}``, feed it back through the layers in recurrent mode, draw ``y_{T+2}``, ... The
network reads its input clipped to the observed range widened by its width on each side
(``scales["input_lo"]``, ``scales["input_hi"]``; never active in sample), and the selective
and SSD mixers normalise their own input (RMSNorm), so fed-back paths stay bounded.

Sites (beside the contract's ``log_lik``, ``y_fitted``, ``y_forecast``; ``y_rep`` with
``components=True``): the network's under scope ``"net"`` (``"net.w_in"``, ``"net.b_in"``,
``"net.layer0.half_life"``, ``"net.layer0.C_real"``, ``"net.layer0.C_imag"``,
``"net.layer0.D"``, ``"net.layer0.mix"``, ...; ``"net.w_in"`` is ``(lag, width)``),
``"net.w_out"`` ``(width,)``,
``"net.w_scale"`` ``(width,)`` (``neural_scale=True``), ``"intercept"`` ~ ``N(0, 1)``,
``"obs_sd"`` ~ ``HalfNormal(1)`` (standardised units), ``"nu"`` ~ ``Gamma(2, 0.1)``
(Student-t), ``"forecast_noise"`` ``(horizon,)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.handlers import scope

from bayes_ssm.models import _neural_net as net
from bayes_ssm.models._neural_mixers import MIXERS
from bayes_ssm.models._shared import ffill as _ffill
from bayes_ssm.models.base import HalfLifeSpecMixin, TimeSeriesModel, register_model
from bayes_ssm.models.neural_identified import sample_network_weights
from bayes_ssm.priors import HalfLife

__all__ = ["NeuralSSM", "NEURAL_LIKELIHOODS", "NEURAL_LAYERS", "DIRECTIONS"]

NEURAL_LIKELIHOODS = ("gaussian", "student_t")
NEURAL_LAYERS = MIXERS
DIRECTIONS = ("causal", "bidirectional")


def _positive_int(value, name, maximum=None):
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {maximum}; got {value!r}")


def _positive_float(value, name):
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not (ok and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive, finite number; got {value!r}")


@register_model
@dataclass(frozen=True)
class NeuralSSM(HalfLifeSpecMixin, TimeSeriesModel):
    """A Bayesian deep-SSM forecaster: S4D layers over the past, Gaussian priors on the weights.

    Parameters
    ----------
    width : int
        Channels of the network (``d``).
    state_size : int
        Complex modes per channel of each S4D layer (``n``).
    num_layers : int
        Residual S4D blocks (1 to 4).
    input_lags : int
        ``p``: the input projection sees the ``p`` most recent values (the S4D layers carry
        the longer memory; their kernels share one decay envelope per channel, so a sharp
        dependence on the last few lags is cheaper to learn here).
    half_life : HalfLife
        Prior on each channel's memory half-life (in steps by default; calendar units need
        ``step_days``). The default spans about 1.6 to 41 steps (90%).
    likelihood : {"gaussian", "student_t"}
        Observation law of ``y_{t+1}`` given the past.
    neural_scale : bool
        Let the network also drive the log noise scale (heteroscedastic forecasts).
    prior_scale : float
        ``s``, the prior sd of the input weights; mixing and read-out weights get
        ``s / sqrt(width)`` (smaller is stronger weight decay).
    step_days : float, optional
        Sampling interval in days, for a ``half_life`` in calendar units.
    min_length : int
        Fewest observed values accepted.
    identifiable : bool
        Sample the network on one copy of its channel permutations and sign flips (ordered
        layer-0 half-lives, positive ``w_in[0]``; :mod:`bayes_ssm.models.neural_identified`):
        the same model, a posterior NUTS can mix on. ``layer="s4d"``, causal only.

    Examples
    --------
    >>> model = NeuralSSM(width=4, num_layers=1)
    >>> model.kind
    'neural_ssm'
    """

    kind: ClassVar[str] = "neural_ssm"
    # how fit_svi fits it when no schedule or optimizer is given: a linear warm-up, then a
    # cosine decay over the step budget (bayes_ssm.inference.schedules; issue 15)
    svi_schedule: ClassVar[str] = "warmup_cosine"

    width: int = 8
    state_size: int = 4
    num_layers: int = 2
    input_lags: int = 2
    half_life: HalfLife = field(default_factory=lambda: HalfLife(steps=8.0, spread=1.0))
    likelihood: str = "gaussian"
    neural_scale: bool = False
    prior_scale: float = 1.0
    step_days: float | None = None
    min_length: int = 20
    layer: str = "s4d"
    direction: str = "causal"
    identifiable: bool = False

    def __post_init__(self):
        _positive_int(self.width, "width")
        _positive_int(self.state_size, "state_size")
        _positive_int(self.num_layers, "num_layers", maximum=4)
        _positive_int(self.input_lags, "input_lags", maximum=64)
        if not isinstance(self.half_life, HalfLife):
            raise ValueError(
                f"half_life must be a bayes_ssm.priors.HalfLife; got {self.half_life!r}"
            )
        if self.likelihood not in NEURAL_LIKELIHOODS:
            raise ValueError(
                f"likelihood must be one of {NEURAL_LIKELIHOODS}; got {self.likelihood!r}"
            )
        if not isinstance(self.neural_scale, bool):
            raise ValueError(f"neural_scale must be True or False; got {self.neural_scale!r}")
        _positive_float(self.prior_scale, "prior_scale")
        if self.step_days is not None:
            _positive_float(self.step_days, "step_days")
        _positive_int(self.min_length, "min_length")
        if self.min_length < 3:
            raise ValueError(f"min_length must be >= 3; got {self.min_length!r}")
        if self.layer not in MIXERS:
            raise ValueError(f"layer must be one of {MIXERS}; got {self.layer!r}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}; got {self.direction!r}")
        if self.bidirectional and self.neural_scale:
            raise ValueError("neural_scale=True is available with direction='causal' only")
        if not isinstance(self.identifiable, bool):
            raise ValueError(f"identifiable must be True or False; got {self.identifiable!r}")
        if self.identifiable and (self.layer != "s4d" or self.bidirectional):
            raise ValueError(
                "identifiable=True is available for layer='s4d', direction='causal' (the "
                f"symmetries it removes are those of the S4D network); got layer={self.layer!r}, "
                f"direction={self.direction!r}"
            )
        _ = net.layer_of(self)  # checks the half-life prior against step_days

    @property
    def bidirectional(self) -> bool:
        """Whether the in-sample prediction of ``y_t`` also reads ``y_{>t}`` (no forecasts)."""
        return self.direction == "bidirectional"

    # ------------------------------------------------------------------ contract
    def data_scales(self, y: np.ndarray, covariates: np.ndarray | None = None) -> dict[str, float]:
        obs = np.asarray(y, float)
        obs = obs[~np.isnan(obs)]
        if obs.size == 0:
            raise ValueError("y has no observed values")
        loc, scale = float(np.mean(obs)), float(max(np.std(obs), 1e-6))
        return {"loc": loc, "scale": scale, **net.input_bounds(obs, loc, scale)}

    def validate(self, y: np.ndarray, covariates: np.ndarray | None = None) -> None:
        y = np.asarray(y, float)
        if y.ndim != 1:
            raise ValueError(f"y must have shape (time,); got {y.shape}")
        if np.isinf(y).any():
            raise ValueError("y contains +/-inf; use NaN for missing values")
        n = int(np.sum(~np.isnan(y)))
        if n < self.min_length:
            raise ValueError(
                f"y has {n} observed values; NeuralSSM needs at least min_length="
                f"{self.min_length} (lower min_length for a short series, at your own risk)"
            )
        if covariates is not None:
            raise ValueError("NeuralSSM takes no covariates")

    @property
    def unread_sites(self) -> tuple[str, ...]:
        """Sampled sites no output reads as they are (``identifiable=True``: the reflected
        ``w_in_lead`` and unsorted ``half_life_raw``; ``bs.check`` skips them)."""
        if not self.identifiable:
            return ()
        return ("net.w_in_lead", "net.layer0.half_life_raw")

    @property
    def parameter_sites(self):
        sites = ["intercept", "obs_sd"] + (["nu"] if self.likelihood == "student_t" else [])
        return tuple(sites)

    # ------------------------------------------------------------------ program
    def sample_network(self, dtype: jnp.dtype) -> tuple[jax.Array, ...]:
        """Sample the network (scope ``"net"``): ``(Weights, w_out, w_scale or None)``."""
        d = self.width
        with scope(prefix="net", divider="."):
            w = sample_network_weights(self, dtype)
            s = self.prior_scale / math.sqrt(d)
            w_out = numpyro.sample("w_out", dist.Normal(0.0, s).expand((d,)).to_event(1))
            w_scale = None
            if self.neural_scale:
                w_scale = numpyro.sample(
                    "w_scale", dist.Normal(0.0, 0.5 * s).expand((d,)).to_event(1)
                )
            if self.bidirectional:  # the backward stack reads the reversed series
                with scope(prefix="back", divider="."):
                    w_b = net.sample_weights(self, dtype)
                    w_b_out = numpyro.sample("w_out", dist.Normal(0.0, s).expand((d,)).to_event(1))
                w = (w, w_b, w_b_out)
        return w, w_out, w_scale

    def next_step_means(
        self,
        w: Any,
        w_out: jax.Array,
        intercept: jax.Array,
        zf: jax.Array,
        zb: jax.Array | None = None,
    ) -> tuple[jax.Array, jax.Array]:
        """Means of the standardised ``z_0 .. z_T`` given the rest, shape ``(time + 1,)``, and
        the forward features ``u`` ``(time, width)``.

        Causal: entry ``t`` is ``c + w_out·u_{t-1}`` (``u_{t-1}`` reads ``z_{<t}``; ``c`` at
        ``t = 0``). Bidirectional (``w`` is ``(forward, backward, w_back)``): plus
        ``w_back·b_{t+1}``, with ``b_{t+1}`` the backward stack's features of ``z_{>t}``
        (``zb``: the series with missing values carried backward); ``z_t`` itself is never read.
        """
        if not self.bidirectional:
            u = net.features(w, zf, self.layer)
            return jnp.concatenate([intercept[None], intercept + u @ w_out]), u
        w_f, w_b, w_b_out = w
        u = net.features(w_f, zf, self.layer)
        b = jnp.flip(net.features(w_b, jnp.flip(zb), self.layer), axis=0)  # b_t reads z_{>=t}
        fwd = jnp.concatenate([jnp.zeros((1,), zf.dtype), u @ w_out])
        back = jnp.concatenate([b[1:] @ w_b_out, jnp.zeros((2,), zf.dtype)])
        return intercept + fwd + back, u

    def _noise(self, loc, sd, nu):
        if self.likelihood == "student_t":
            return dist.StudentT(nu, loc, sd)
        return dist.Normal(loc, sd)

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
        """The NumPyro program (sites: the module docstring)."""
        if covariates is not None:
            raise ValueError("NeuralSSM takes no covariates")
        y = jnp.asarray(y)
        if not jnp.issubdtype(y.dtype, jnp.floating):
            y = y.astype(jnp.result_type(float))
        if y.ndim != 1:
            raise ValueError(f"y must have shape (time,); got {y.shape}")
        if horizon > 0 and self.bidirectional:
            raise ValueError(
                "a NeuralSSM with direction='bidirectional' reads the future of every step, so "
                "it cannot forecast; use it for in-sample jobs (impute, anomalies) and fit "
                "direction='causal' to forecast"
            )
        loc, scale = scales["loc"], scales["scale"]
        z = net.bounded_input((_ffill(y) - loc) / scale, scales)
        zb = None
        if self.bidirectional:
            zb = net.bounded_input((jnp.flip(_ffill(jnp.flip(y))) - loc) / scale, scales)
        w, w_out, w_scale = self.sample_network(y.dtype)
        intercept = numpyro.sample("intercept", dist.Normal(0.0, 1.0))
        obs_sd = numpyro.sample("obs_sd", dist.HalfNormal(1.0))
        nu = None
        if self.likelihood == "student_t":
            nu = numpyro.sample("nu", dist.Gamma(2.0, 0.1))

        def head(u):  # (..., d) -> (mean, sd) of the next z
            sd = obs_sd if w_scale is None else obs_sd * jnp.exp(u @ w_scale)
            return intercept + u @ w_out, sd

        means, u = self.next_step_means(w, w_out, intercept, z, zb)  # u_t sees z_1..z_t
        pred = means[:-1]  # prediction of z_t
        if w_scale is None:
            sd = jnp.broadcast_to(obs_sd, pred.shape)
        else:
            sd = jnp.concatenate([obs_sd[None], (obs_sd * jnp.exp(u @ w_scale))[:-1]])
        mean, sd = loc + scale * pred, scale * sd
        observed = ~jnp.isnan(y)
        law = self._noise(mean, sd, nu)
        ll = jnp.where(observed, law.log_prob(jnp.where(observed, y, mean)), 0.0)
        numpyro.deterministic("log_lik", ll)
        numpyro.factor("obs", ll.sum())
        numpyro.deterministic("y_fitted", mean)
        if components:
            key = numpyro.prng_key()
            if key is None:
                raise ValueError("components=True draws y_rep: run the model under a seed handler")
            numpyro.deterministic("y_rep", law.sample(key))
        if horizon > 0:
            base = dist.StudentT(nu) if nu is not None else dist.Normal(0.0, 1.0)
            eps = numpyro.sample("forecast_noise", base.expand([horizon]).to_event(1))
            if self.layer != "s4d":
                zs = self._forecast_by_recomputing(w, z, u[-1], head, eps.astype(y.dtype), scales)
                numpyro.deterministic("y_forecast", loc + scale * zs)
                return
            states = net.final_states(w, z)

            def body(carry, e):
                states, u = carry
                m, s = head(u)
                zt = m + s * e
                states, u = net.step(w, states, net.bounded_input(zt, scales))
                return (states, u), zt

            _, zs = jax.lax.scan(body, (states, u[-1]), eps.astype(y.dtype))
            numpyro.deterministic("y_forecast", loc + scale * zs)

    def _forecast_by_recomputing(self, w, z, u_last, head, eps, scales):
        """Simulate a path: each drawn value is appended and the (causal) network re-run on the
        extended series (the mixers other than S4D have no recurrent step here)."""
        T, horizon = z.shape[0], eps.shape[0]
        buf = jnp.concatenate([z, jnp.zeros((horizon,), z.dtype)])

        def body(carry, inp):
            buf, u = carry
            k, e = inp
            m, s = head(u)
            zt = m + s * e
            buf = buf.at[T + k].set(net.bounded_input(zt, scales))
            u = net.features(w, buf, self.layer)[T + k]
            return (buf, u), zt

        _, zs = jax.lax.scan(body, (buf, u_last), (jnp.arange(horizon), eps))
        return zs

    def implied_attention(
        self, y: jax.Array, *, scales: dict[str, float], origin: int, max_lag: int
    ) -> None:
        """NumPyro program: the implied attention of the prediction of step ``origin + 1``.

        The network is nonlinear, so its attention is the local one: the gradient of the
        predicted mean of ``y_{origin+1}`` with respect to each past value (exact weights
        for a linear network). Records ``"attention"`` ``(max_lag,)`` (lag ``l`` = the value at
        ``origin + 1 - l``; 0 before the start) and, for a bidirectional model,
        ``"attention_ahead"`` ``(max_lag,)`` (lead ``l`` = the value at ``origin + 1 + l``).
        Missing values are carried forward in both directions here.
        """
        y = jnp.asarray(y)
        z = net.bounded_input((_ffill(y) - scales["loc"]) / scales["scale"], scales)
        w, w_out, _ = self.sample_network(y.dtype)
        intercept = numpyro.sample("intercept", dist.Normal(0.0, 1.0))
        numpyro.sample("obs_sd", dist.HalfNormal(1.0))
        if self.likelihood == "student_t":
            numpyro.sample("nu", dist.Gamma(2.0, 0.1))
        target = origin + 1

        def mean_at(v):
            return self.next_step_means(w, w_out, intercept, v, v)[0][target]

        grad = jax.grad(mean_at)(z)  # (time,)
        past = jnp.flip(grad[:target])[:max_lag]
        numpyro.deterministic("attention", jnp.pad(past, (0, max_lag - past.shape[0])))
        if self.bidirectional:
            ahead = grad[target + 1 :][:max_lag]
            numpyro.deterministic("attention_ahead", jnp.pad(ahead, (0, max_lag - ahead.shape[0])))

    def implied_attention_matrix(self, y: jax.Array, *, scales: dict[str, float]) -> None:
        """NumPyro program: ``"attention_matrix"`` ``(time, time)``, entry ``[t, s]`` the
        gradient of the predicted mean of ``z_t`` with respect to ``z_s`` (lower triangular,
        zero diagonal, for a causal model; two-sided with a zero diagonal when
        bidirectional)."""
        y = jnp.asarray(y)
        z = net.bounded_input((_ffill(y) - scales["loc"]) / scales["scale"], scales)
        w, w_out, _ = self.sample_network(y.dtype)
        intercept = numpyro.sample("intercept", dist.Normal(0.0, 1.0))

        def means(v):
            return self.next_step_means(w, w_out, intercept, v, v)[0][:-1]

        numpyro.deterministic("attention_matrix", jax.jacfwd(means)(z))
