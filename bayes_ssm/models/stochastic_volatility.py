"""Stochastic volatility for returns: :class:`StochasticVolatility`.

The standard discrete-time stochastic-volatility model (Kim, Shephard and Chib 1998; the Stan
User's Guide, "Stochastic volatility models"): a return ``r_t`` has a constant mean and a
log-variance ``h_t`` that follows a stationary AR(1),

.. math::

    r_t = \\mu + e^{h_t / 2} \\varepsilon_t, \\qquad
    h_t = \\mu_h + \\phi (h_{t-1} - \\mu_h) + \\sigma_h \\eta_t, \\qquad
    h_1 \\sim \\mathcal{N}\\big(\\mu_h, \\sigma_h^2 / (1 - \\phi^2)\\big),

with ``eta_t ~ N(0, 1)`` and ``eps_t ~ N(0, 1)`` (``likelihood="gaussian"``) or a standard
Student-t with ``nu`` degrees of freedom (``likelihood="student_t"``; then ``exp(h_t / 2)`` is
the scale of ``r_t``, its sd being ``exp(h_t / 2) sqrt(nu / (nu - 2))`` when ``nu > 2``).

The log-variance path is sampled non-centred: standard normals ``h_z`` ``(time,)`` are the
latent sites and the path is their deterministic image, computed by the scan kernel
:func:`bayes_ssm.kernels.linear_recurrence` on the deviations ``x_t = h_t - mu_h``
(``x_t = phi x_{t-1} + b_t`` with ``b_1 = sigma_h z_1 / sqrt(1 - phi^2)``,
``b_t = sigma_h z_t``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from bayes_ssm.models._shared import freeze_prior, jsonable, prior_json
from bayes_ssm.models.base import TimeSeriesModel, register_model
from bayes_ssm.models.structural_priors import prior_from_spec
from bayes_ssm.models.sv_math import log_variance_path, one_step_log_lik

__all__ = ["StochasticVolatility", "sv_default_prior", "log_variance_path", "one_step_log_lik"]

SV_LIKELIHOODS = ("gaussian", "student_t")
_SITES = ("mu", "mu_h", "phi", "sigma_h", "nu")


def sv_default_prior(name: str, scales: dict[str, float]) -> dist.Distribution:
    """The default prior of parameter site ``name`` of :class:`StochasticVolatility`.

    Parameters
    ----------
    name : {"mu", "mu_h", "phi", "sigma_h", "nu"}
    scales : dict
        From :meth:`StochasticVolatility.data_scales`: ``y_loc`` (mean return) and ``y_scale``
        (sd of the returns).

    Returns
    -------
    numpyro.distributions.Distribution
    """
    if name == "mu":
        return dist.Normal(scales["y_loc"], scales["y_scale"])
    if name == "mu_h":
        return dist.Normal(2.0 * jnp.log(scales["y_scale"]), 2.0)
    if name == "phi":
        return dist.TransformedDistribution(
            dist.Beta(20.0, 1.5),
            dist.transforms.AffineTransform(-1.0, 2.0, domain=dist.constraints.unit_interval),
        )
    if name == "sigma_h":
        return dist.HalfNormal(0.5)
    if name == "nu":
        return dist.Gamma(2.0, 0.1)
    raise KeyError(f"no default prior for site {name!r}; sites are {_SITES}")


def _check_phi_support(prior) -> None:
    support = prior.support
    lo = getattr(support, "lower_bound", None)
    hi = getattr(support, "upper_bound", None)
    if lo is None or hi is None or float(np.min(lo)) < -1.0 or float(np.max(hi)) > 1.0:
        raise ValueError(
            f"the prior of 'phi' must live on (-1, 1) (stationary log-variance); got support "
            f"{support} (e.g. use {{'dist': 'Uniform', 'low': -1, 'high': 1}})"
        )


@register_model
@dataclass(frozen=True)
class StochasticVolatility(TimeSeriesModel):
    """Stochastic volatility of returns: AR(1) log-variance, Gaussian or Student-t noise.

    Fit it to *returns* (e.g. ``100 * log(p_t / p_{t-1})``), not to prices, and with
    :func:`~bayes_ssm.fit_nuts` for intervals: ``fit_svi`` finds the posterior's centre (phi
    0.984 against NUTS's 0.990 on GBP/USD) but its factorised guides are too narrow here
    (``docs/volatility.md`` has the numbers).

    Parameters
    ----------
    likelihood : {"gaussian", "student_t"}
        Law of the standardised return ``eps_t``.
    priors : dict, optional
        Overrides of the default priors by site name (the same format as
        :class:`~bayes_ssm.StructuralTS`: a ``numpyro.distributions`` name and its keyword
        arguments, e.g. ``{"sigma_h": {"dist": "HalfNormal", "scale": 0.2}}``, or a
        Distribution instance, which is not saved with ``spec()``). A prior for ``phi`` must
        live on ``(-1, 1)``.
    min_length : int
        Fewest observed returns accepted (the volatility dynamics need a long series; 20 is a
        floor, hundreds are typical).

    Notes
    -----
    Default priors (weakly informative, scaled to the data by :meth:`data_scales`; ``y_loc``
    and ``y_scale`` are the mean and sd of the observed returns):

    =============  =========================================  ===============================
    site           default                                    meaning
    =============  =========================================  ===============================
    ``mu``         ``Normal(y_loc, y_scale)``                 mean return
    ``mu_h``       ``Normal(log(y_scale^2), 2)``              mean log-variance
    ``phi``        ``(phi + 1) / 2 ~ Beta(20, 1.5)``          persistence (Kim et al. 1998)
    ``sigma_h``    ``HalfNormal(0.5)``                        sd of the log-variance shocks
    ``nu``         ``Gamma(2, 0.1)`` (Juarez and Steel 2010)  Student-t degrees of freedom
    =============  =========================================  ===============================

    The ``phi`` prior has mean 0.86 and puts 90 % of its mass above 0.69: volatility is
    persistent in every financial series we know, and the data move it easily.

    Latent sites: the parameters above and ``h_z`` ``(time,)``, the standard-normal shocks of
    the log-variance (``h_z[0]`` standardises the stationary first value). With ``horizon >
    0`` also ``h_z_future`` ``(horizon,)``.

    Output sites: ``log_lik`` ``(time,)``: ``log p(r_t | h_{t-1}, theta)`` at each observed
    step (0 where missing), the return's density with its own log-variance ``h_t`` integrated
    out (adaptive Gauss-Hermite quadrature, :func:`one_step_log_lik`), so that LOO does not
    condition on a latent tied to the left-out return alone. It still conditions on the
    sampled past ``h_{t-1}`` (the exact ``p(r_t | r_<t, theta)`` needs a particle filter), so
    read the Pareto-k diagnostics of PSIS-LOO. The sampler itself uses the joint density
    (factor ``"obs"``: ``sum_t log p(r_t | h_t, theta)``). ``y_forecast``
    ``(horizon,)``: the log-variance run forward from each posterior draw's ``h_T`` with fresh
    shocks, and a return drawn from the observation law; ``volatility_forecast``
    ``(horizon,)``: ``exp(h / 2)`` along that path (see
    :func:`bayes_ssm.volatility_forecast`). With ``components=True``:
    ``component/volatility`` ``(time,)``: ``exp(h_t / 2)`` in sample (the conditional sd for
    the Gaussian law, the scale for Student-t), ``component/log_variance`` ``(time,)``,
    ``y_fitted`` ``(time,)`` (the predictive mean ``mu``) and ``y_rep`` ``(time,)``: a return
    drawn from the same one-step predictive as ``log_lik`` (a fresh ``h_t`` given the sampled
    ``h_{t-1}``, latent site ``y_rep_h_z``). Missing returns (NaN) drop out of the likelihood; their
    ``h_t`` is still sampled (from the AR(1) given its neighbours).

    Examples
    --------
    >>> import bayes_ssm as bs
    >>> model = bs.StochasticVolatility(likelihood="student_t")
    >>> model.parameter_sites
    ('mu', 'mu_h', 'phi', 'sigma_h', 'nu')
    """

    kind: ClassVar[str] = "stochastic_volatility"

    likelihood: str = "gaussian"
    priors: Any = field(default=None)
    min_length: int = 20

    def __post_init__(self):
        if self.likelihood not in SV_LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {SV_LIKELIHOODS}; got {self.likelihood!r}")
        if isinstance(self.min_length, bool) or not isinstance(self.min_length, int | np.integer):
            raise ValueError(f"min_length must be an integer >= 3; got {self.min_length!r}")
        if self.min_length < 3:
            raise ValueError(f"min_length must be an integer >= 3; got {self.min_length!r}")
        object.__setattr__(self, "min_length", int(self.min_length))
        priors = self.priors or {}
        if not isinstance(priors, dict | tuple):
            raise ValueError(f"priors must be a dict of site name -> prior; got {priors!r}")
        priors = dict(priors)
        unknown = sorted(set(priors) - set(_SITES))
        if unknown:
            raise ValueError(f"priors: unknown sites {unknown}; the sites are {list(_SITES)}")
        for name, spec in priors.items():
            if not isinstance(spec, tuple):
                prior = prior_from_spec(name, spec, checking=True)  # fail early on a bad override
                if name == "phi":
                    _check_phi_support(prior)
        object.__setattr__(
            self, "priors", tuple(sorted(freeze_prior(k, v) for k, v in priors.items()))
        )

    # -- structure ------------------------------------------------------------------------
    @property
    def prior_overrides(self) -> dict:
        """The prior overrides as ``{site: Distribution or {"dist": ..., **kwargs}}``."""
        return {k: (dict(v) if isinstance(v, tuple) else v) for k, v in self.priors}

    @property
    def parameter_sites(self) -> tuple[str, ...]:
        sites = ("mu", "mu_h", "phi", "sigma_h")
        return sites + (("nu",) if self.likelihood == "student_t" else ())

    def prior(self, name: str, scales: dict[str, float]) -> dist.Distribution:
        """The prior of parameter site ``name``: the override if given, else the default."""
        overrides = self.prior_overrides
        if name in overrides:
            return prior_from_spec(name, overrides[name], scales)
        return sv_default_prior(name, scales)

    # -- data -----------------------------------------------------------------------------
    def data_scales(self, y: np.ndarray, covariates: np.ndarray | None = None) -> dict[str, float]:
        """``y_loc`` and ``y_scale``: mean and sd of the observed returns; ``num_steps``."""
        y = np.asarray(y, dtype=np.float64)
        obs = y[~np.isnan(y)]
        if obs.size == 0:
            raise ValueError("y has no observed values; cannot scale the priors")
        sd = float(np.std(obs))
        return {
            "y_loc": float(np.mean(obs)),
            "y_scale": max(sd, 1e-8 * max(1.0, abs(float(np.mean(obs))))),
            "num_steps": float(y.shape[0]),
        }

    def validate(self, y: np.ndarray, covariates: np.ndarray | None = None) -> None:
        """Model-specific checks (``data.py`` has already checked types and infinities).

        Raises
        ------
        ValueError
            Non-numeric or non-1-D ``y``; infinities; fewer than ``min_length`` observed
            returns; a constant series (no variance to model); covariates (not supported).
        """
        raw = np.asarray(y)
        if raw.dtype == object or not (
            np.issubdtype(raw.dtype, np.number) or np.issubdtype(raw.dtype, np.bool_)
        ):
            raise ValueError(f"y must be numeric returns; got dtype {raw.dtype}")
        y = raw.astype(np.float64)
        if y.ndim != 1:
            raise ValueError(f"y must have shape (time,); got {y.shape}")
        if np.isinf(y).any():
            raise ValueError("y contains +/-inf; use NaN for missing values")
        obs = y[~np.isnan(y)]
        if obs.size < self.min_length:
            raise ValueError(
                f"y has {obs.size} observed returns; StochasticVolatility needs at least "
                f"{self.min_length} (min_length)"
            )
        if np.ptp(obs) <= 1e-12 * max(1.0, float(np.abs(obs).max())):
            raise ValueError(
                f"y is constant (every observed value is {obs[0]!r}): there is no volatility to "
                "model; pass returns (e.g. 100 * diff(log(price))), not a constant series"
            )
        if covariates is not None:
            raise ValueError("StochasticVolatility takes no covariates")

    # -- the NumPyro program -------------------------------------------------------------
    def _observation(self, mu, h, nu):
        scale = jnp.exp(0.5 * h)
        if self.likelihood == "student_t":
            return dist.StudentT(nu, mu, scale)
        return dist.Normal(mu, scale)

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
        """The NumPyro program (see the class Notes for its sites).

        Parameters
        ----------
        y : Array, shape ``(time,)``
            Returns, NaN where missing; all NaN gives prior (predictive) draws.
        scales : dict
            From :meth:`data_scales` on the training data.
        covariates, future_covariates : None
            Not supported (must be ``None``).
        horizon : int
            Steps to draw at ``y_forecast`` and ``volatility_forecast``.
        components : bool
            Emit ``component/volatility``, ``component/log_variance``, ``y_fitted``, ``y_rep``.
        """
        if covariates is not None or future_covariates is not None:
            raise ValueError("StochasticVolatility takes no covariates")
        y = jnp.asarray(y)
        num_steps = y.shape[0]
        mu = numpyro.sample("mu", self.prior("mu", scales))
        mu_h = numpyro.sample("mu_h", self.prior("mu_h", scales))
        phi = numpyro.sample("phi", self.prior("phi", scales))
        sigma_h = numpyro.sample("sigma_h", self.prior("sigma_h", scales))
        nu = (
            numpyro.sample("nu", self.prior("nu", scales))
            if self.likelihood == "student_t"
            else None
        )
        z = numpyro.sample("h_z", dist.Normal(0.0, 1.0).expand([num_steps]).to_event(1))
        h = log_variance_path(z, mu_h, phi, sigma_h)
        observed = ~jnp.isnan(y)
        y_filled = jnp.where(observed, y, mu)
        cond_ll = jnp.where(observed, self._observation(mu, h, nu).log_prob(y_filled), 0.0)
        numpyro.factor("obs", cond_ll.sum())  # the joint density NUTS samples from
        # each step's log-variance given the previous one: N(h_mean, h_sd^2)
        stationary_sd = sigma_h / jnp.sqrt(jnp.maximum(1.0 - phi**2, 1e-7))
        h_mean = jnp.concatenate([jnp.reshape(mu_h, (1,)), mu_h + phi * (h[:-1] - mu_h)])
        h_sd = jnp.concatenate(
            [jnp.reshape(stationary_sd, (1,)), jnp.broadcast_to(sigma_h, (num_steps - 1,))]
        )
        # a read-out, never differentiated: stop_gradient keeps the quadrature (Newton steps
        # with second derivatives) out of the sampler's gradient and compile time
        sg = jax.lax.stop_gradient
        ll = one_step_log_lik(
            sg(y_filled), sg(mu), sg(h_mean), sg(h_sd), likelihood=self.likelihood,
            nu=None if nu is None else sg(nu), num_nodes=32,
        )  # fmt: skip
        numpyro.deterministic("log_lik", jnp.where(observed, ll, 0.0))
        if components:
            numpyro.deterministic("component/volatility", jnp.exp(0.5 * h))
            numpyro.deterministic("component/log_variance", h)
            numpyro.deterministic("y_fitted", jnp.broadcast_to(mu, (num_steps,)))
            rep_z = numpyro.sample(
                "y_rep_h_z", dist.Normal(0.0, 1.0).expand([num_steps]).to_event(1)
            )
            numpyro.sample("y_rep", self._observation(mu, h_mean + h_sd * rep_z, nu).to_event(1))
        if horizon > 0:
            zf = numpyro.sample("h_z_future", dist.Normal(0.0, 1.0).expand([horizon]).to_event(1))
            h_future = log_variance_path(zf, mu_h, phi, sigma_h, h0=h[-1])
            numpyro.deterministic("volatility_forecast", jnp.exp(0.5 * h_future))
            numpyro.sample("y_forecast", self._observation(mu, h_future, nu).to_event(1))

    # -- serialisation --------------------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        params = {
            "likelihood": self.likelihood,
            "priors": {k: prior_json(k, v) for k, v in self.priors},
            "min_length": self.min_length,
        }
        return {"kind": self.kind, "params": jsonable(params)}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> StochasticVolatility:
        return cls(**dict(params))
