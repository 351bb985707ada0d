"""``HybridTS``: a structural time series plus a neural term of the past, likelihood still exact.

The observation equation of a Gaussian :class:`~bayes_ssm.models.structural.StructuralTS`
gains a term computed by a small deep SSM (:mod:`bayes_ssm.models._neural_net`) from the
values already seen:

.. math::

    y_t = Z \\alpha_t + x_t^\\top \\beta + f_\\theta(y_{<t}) + \\varepsilon_t, \\qquad
    f_\\theta(y_{<t}) = \\mathrm{scale} \\cdot w_{out}^\\top u_{t-1}, \\quad f_\\theta = 0
    \\text{ at } t = 1,

with ``u_{t-1}`` the network's features of the standardised ``z_{1..t-1}``
(``z = (y - y_loc) / y_scale``, missing values carried forward). Given ``theta`` and the past,
``f`` is a known number, so it enters the Kalman filter as an observation offset
(``obs_offset``) and ``log p(y | theta, variances)`` is exact: the states are integrated out
as in StructuralTS. With ``w_out = 0`` the model *is* the StructuralTS.

Forecasts simulate paths: the final state is drawn from its filtered law, then step by step
``alpha_{T+k}`` is propagated with state noise, ``y_{T+k}`` drawn with the neural term computed
from the path so far, and fed back through the network's recurrence.

Sites: the structural model's parameters (``sigma_obs``, ``sigma_level``, ...); the network's
under scope ``"neural"`` (``"neural.w_in"``, ``"neural.layer0.C_real"``, ...,
``"neural.w_out"`` ``(width,)``); ``log_lik``, ``y_forecast`` (with ``"forecast_state_z"``
``(horizon + 1, state)`` and ``"forecast_noise"`` ``(horizon,)``); with ``components=True``:
``y_fitted``, ``y_rep`` and ``component/<name>`` for the structural components plus
``component/neural`` (the offset ``f``) and ``component/regression``.
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

from bayes_ssm.models import _kalman_adapter as kalman
from bayes_ssm.models import _neural_net as net
from bayes_ssm.models import _structural_program as program
from bayes_ssm.models._shared import ffill as _ffill
from bayes_ssm.models.base import TimeSeriesModel, model_from_spec, register_model
from bayes_ssm.models.components import structural_system
from bayes_ssm.models.neural import NeuralSSM
from bayes_ssm.models.neural_identified import sample_network_weights
from bayes_ssm.models.structural import StructuralTS

__all__ = ["HybridTS"]


def _default_neural():
    return NeuralSSM(width=4, num_layers=1)


@register_model
@dataclass(frozen=True)
class HybridTS(TimeSeriesModel):
    """StructuralTS (Gaussian) plus a neural autoregressive term, filtered exactly.

    Parameters
    ----------
    structural : StructuralTS
        The state-space part; ``likelihood`` must be ``"gaussian"``.
    neural : NeuralSSM
        The network's hyperparameters (``width``, ``state_size``, ``num_layers``,
        ``input_lags``, ``half_life``, ``prior_scale``, ``min_length``); its noise options
        must be the defaults (the noise law is the structural model's).

    Examples
    --------
    >>> import bayes_ssm as bs
    >>> model = bs.HybridTS(structural=bs.StructuralTS(trend="local_linear"),
    ...                     neural=bs.NeuralSSM(width=4, num_layers=1))
    >>> model.kind
    'hybrid'
    """

    kind: ClassVar[str] = "hybrid"
    # fit_svi's default for it: warm-up + cosine, like NeuralSSM (bayes_ssm.inference.schedules)
    svi_schedule: ClassVar[str] = "warmup_cosine"

    structural: StructuralTS = field(default_factory=StructuralTS)
    neural: NeuralSSM = field(default_factory=_default_neural)

    def __post_init__(self):
        if not isinstance(self.structural, StructuralTS):
            raise ValueError(f"structural must be a StructuralTS; got {self.structural!r}")
        if not isinstance(self.neural, NeuralSSM):
            raise ValueError(f"neural must be a NeuralSSM; got {self.neural!r}")
        if self.structural.likelihood != "gaussian":
            raise ValueError(
                "HybridTS keeps the exact Kalman likelihood, which needs "
                f"structural.likelihood='gaussian'; got {self.structural.likelihood!r}"
            )
        sts = self.structural
        if sts.cycle or sts.regression_states is not None or sts.initialization != "proper":
            raise ValueError(
                "HybridTS supports the structural components of components.structural_system "
                "only: give structural= a StructuralTS without cycle, regression_states or "
                "initialization='diffuse'"
            )
        if sts.state_size == 0:
            raise ValueError("HybridTS needs a structural state: set level, seasonal or ar_order")
        if self.neural.layer != "s4d" or self.neural.bidirectional:
            raise ValueError(
                "HybridTS runs its neural term as an S4D recurrence: give neural= a NeuralSSM "
                f"with layer='s4d' and direction='causal'; got layer={self.neural.layer!r}, "
                f"direction={self.neural.direction!r}"
            )
        if self.neural.likelihood != "gaussian" or self.neural.neural_scale:
            raise ValueError(
                "the hybrid's noise law is the structural model's: give neural= a NeuralSSM "
                "with likelihood='gaussian' and neural_scale=False"
            )

    # ------------------------------------------------------------------ contract
    def data_scales(self, y: np.ndarray, covariates: np.ndarray | None = None) -> dict[str, float]:
        scales = self.structural.data_scales(y, covariates)
        return {**scales, **net.input_bounds(y, scales["y_loc"], scales["y_scale"])}

    def validate(self, y: np.ndarray, covariates: np.ndarray | None = None) -> None:
        self.structural.validate(y, covariates)
        n = int(np.sum(~np.isnan(np.asarray(y, float))))
        if n < self.neural.min_length:
            raise ValueError(
                f"y has {n} observed values; the neural term needs at least "
                f"neural.min_length={self.neural.min_length}"
            )

    def spec(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "params": {"structural": self.structural.spec(), "neural": self.neural.spec()},
        }

    @classmethod
    def from_params(cls, params):
        return cls(
            structural=model_from_spec(params["structural"]),
            neural=model_from_spec(params["neural"]),
        )

    @property
    def unread_sites(self) -> tuple[str, ...]:
        """As :attr:`NeuralSSM.unread_sites`, under scope ``"neural"``."""
        return tuple("neural." + n[len("net.") :] for n in self.neural.unread_sites)

    @property
    def parameter_sites(self):
        return self.structural.parameter_sites

    # ------------------------------------------------------------------ program
    def sample_network(self, dtype: jnp.dtype) -> tuple[jax.Array, ...]:
        """The network's weights and read-out, sampled under scope ``"neural"``."""
        d = self.neural.width
        with scope(prefix="neural", divider="."):
            w = sample_network_weights(self.neural, dtype)  # identified if neural asks
            s = self.neural.prior_scale / math.sqrt(d)
            w_out = numpyro.sample("w_out", dist.Normal(0.0, s).expand((d,)).to_event(1))
        return w, w_out

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
        sts = self.structural
        y = jnp.asarray(y)
        if not jnp.issubdtype(y.dtype, jnp.floating):
            y = y.astype(jnp.result_type(float))
        dtype = y.dtype
        horizon = int(horizon)
        num_cov = program.check_inputs(sts, y, covariates, horizon)
        params = program.sample_parameters(sts, scales, num_cov)
        system = structural_system(sts, program.to_variances(sts, params), scales)
        system = system._replace(
            **{k: getattr(system, k).astype(dtype) for k in system._fields if k != "spans"}
        )
        reg, future_reg = program.regression_offset(
            sts, covariates, future_covariates, horizon, params, dtype
        )
        loc, scale = scales["y_loc"], scales["y_scale"]
        z = net.bounded_input((_ffill(y) - loc) / scale, scales)
        w, w_out = self.sample_network(dtype)
        u = net.features(w, z)  # u_t sees z_1..z_t
        neural_term = scale * jnp.concatenate([jnp.zeros((1,), dtype), (u @ w_out)[:-1]])
        obs_var = params["sigma_obs"] ** 2
        ss = system.state_space(obs_var, reg + neural_term)
        log_lik, final_mean, final_cov = kalman.filter_final(ss, y, method=sts.method)
        numpyro.factor("y_log_likelihood", jnp.sum(log_lik))
        numpyro.deterministic("log_lik", log_lik)
        if components:
            res = kalman.filter_full(ss, y, method=sts.method)
            state_var = jnp.clip(res.predicted_obs_vars - obs_var, 0.0)
            numpyro.deterministic("y_fitted", res.predicted_obs_means)
            numpyro.deterministic(
                "y_rep", program.one_step_replicate(sts, res.predicted_obs_means, state_var, params)
            )
            states = program.simulation_smoother(ss, y, system, sts.method)
            program.emit_components(states, system)
            numpyro.deterministic("component/neural", neural_term)
            if num_cov:
                numpyro.deterministic("component/regression", jnp.broadcast_to(reg, y.shape))
        if horizon > 0:
            n = system.init_mean.shape[0]
            zs = numpyro.sample(
                "forecast_state_z",
                dist.Normal(jnp.zeros((horizon + 1, n), dtype), 1.0).to_event(2),
            )
            eps = numpyro.sample(
                "forecast_noise", dist.Normal(jnp.zeros((horizon,), dtype), 1.0).to_event(1)
            )
            alpha = final_mean + program.psd_sqrt(final_cov) @ zs[0]
            noise_sd = jnp.sqrt(system.noise_var)
            future_reg = jnp.broadcast_to(future_reg, (horizon,))

            def body(carry, inp):
                alpha, state, u_t = carry
                z_k, e_k, r_k = inp
                alpha = system.transition @ alpha + noise_sd * z_k  # predict the next state
                y_k = system.observation @ alpha + r_k + scale * (u_t @ w_out)
                y_k = y_k + params["sigma_obs"] * e_k  # and draw the observation
                state, u_t = net.step(w, state, net.bounded_input((y_k - loc) / scale, scales))
                return (alpha, state, u_t), y_k

            carry = (alpha, net.final_states(w, z), u[-1])
            _, path = jax.lax.scan(body, carry, (zs[1:], eps, future_reg))
            numpyro.deterministic("y_forecast", path)
