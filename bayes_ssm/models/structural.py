"""Bayesian structural time series with an exact (Kalman) likelihood: :class:`StructuralTS`.

The hyperparameters choose components (level, trend, seasonalities, AR, regression) and an
observation law; :meth:`StructuralTS.model` is the NumPyro program. For the Gaussian and
Student-t laws the hidden states are integrated out by the Kalman filter, so NUTS samples only a
handful of variances and coefficients (plus, for Student-t, one latent precision per step); for
the negative binomial the states are sampled (centred or non-centred coordinates, option
``state_parameterization``). See :mod:`bayes_ssm.models.structural_priors`
for the default priors and :mod:`bayes_ssm.models.components` for the state equations (the same
as statsmodels' ``UnobservedComponents``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from bayes_ssm.models import _structural_program as program
from bayes_ssm.models._shared import freeze_prior, jsonable, prior_json
from bayes_ssm.models._state_paths import STATE_PARAMETERIZATIONS
from bayes_ssm.models.base import TimeSeriesModel, register_model
from bayes_ssm.models.continuous import check_continuous
from bayes_ssm.models.likelihoods import LIKELIHOODS, validate_counts
from bayes_ssm.models.seasonal import DEFAULT_HARMONICS, Seasonal, as_seasonals
from bayes_ssm.models.structural_extras import check_options
from bayes_ssm.models.structural_priors import compute_scales

if TYPE_CHECKING:
    import jax

__all__ = ["StructuralTS", "Seasonal", "TRENDS", "DEFAULT_HARMONICS", "STATE_PARAMETERIZATIONS"]

TRENDS = (None, "local_linear", "damped")
TIMES = ("auto", "discrete", "continuous")


@register_model
@dataclass(frozen=True)
class StructuralTS(TimeSeriesModel):
    """Structural time series: level, trend, seasonalities, AR(p), regression, one noise law.

    Parameters
    ----------
    level : bool
        Include a stochastic level (random walk).
    trend : {"local_linear", "damped", None}
        Add a stochastic slope to the level (``"damped"``: the slope decays by ``damping`` per
        step, which flattens long-range forecasts). Requires ``level=True``.
    seasonal : number, Seasonal, or list of them, optional
        ``52`` is ``Seasonal(52)`` (trigonometric, 3 harmonics); several at once, e.g.
        ``[Seasonal(7, kind="dummy"), Seasonal(365.25, harmonics=4)]`` on daily data.
    ar_order : int
        Order ``p`` of a stationary AR(p) component (0: none).
    regression : bool, optional
        Regress on the covariates (coefficients ``beta``). ``None``: whenever covariates are
        given. Covariates must then be supplied over the forecast horizon as well.
    likelihood : {"gaussian", "student_t", "negative_binomial"}
        Observation law. ``"student_t"`` is a scale mixture of normals with a latent precision
        per step (still filtered exactly given them); ``"negative_binomial"`` is for counts,
        with the log-intensity following the structural model and the states sampled.
    priors : dict, optional
        Overrides of the default priors by site name (:mod:`bayes_ssm.models.structural_priors`).
    method : {"auto", "sequential", "parallel"}
        Kalman filter algorithm.
    state_parameterization : {"auto", "mixed", "mixed_rms", "trend_rms", "centred", "noncentred"}
        Coordinates of the sampled states (negative binomial only; ignored otherwise).
        ``"noncentred"`` samples standard-normal innovations (site ``state_z``): right for
        short series of small counts, where the prior dominates, but on a long series the level
        is a (with a trend: double) cumulative sum of them and NUTS saturates its tree depth.
        ``"centred"`` samples the states themselves (site ``state_path``), which the counts pin
        down one by one, but slowly moving components (slope, a stable seasonal) then form
        funnels with their sds. ``"mixed"`` centres the level only and keeps the rest
        non-centred. ``"mixed_rms"`` is ``"mixed"`` with the level sd sampled as a ratio to
        the root mean square of the level innovations (site ``sigma_level_ratio``;
        ``sigma_level`` becomes a deterministic site), which removes the funnel between the
        level sd and the centred level path; ``"trend_rms"`` centres the slope as well, its sd
        sampled as a ratio too (``sigma_slope_ratio``). ``"auto"`` (default): ``"noncentred"`` for a
        series shorter than 200 steps without a trend, or without a level; ``"mixed"``
        otherwise (measurements:
        ``benchmarks/README.md``, "Negative binomial StructuralTS: parameterisations").
        All are the same model in other coordinates: forecasts, components and ``log_lik``
        have the same laws. Start NUTS with ``fit_nuts(..., init="median")``: the state path
        then starts on a smoothed ``log(y + 0.5)``.
    time : {"auto", "discrete", "continuous"}
        ``"discrete"``: the series lives on a regular grid (gaps in a DatetimeIndex become
        NaN at the missing timestamps; timestamps off the grid are refused). ``"continuous"``:
        the components are continuous-time processes (:mod:`bayes_ssm.models.continuous`)
        discretised exactly over each gap, so any increasing DatetimeIndex (or float times) can
        be fitted and forecast at arbitrary future timestamps (``fit.forecast(times=...)``).
        ``"auto"`` (default): discrete on a regular index, continuous on an irregular one.
        Continuous time supports a level, local linear or damped trend, trigonometric
        seasonals, AR(1) (an Ornstein-Uhlenbeck process, ``0 < phi < 1``), regression, and the
        Gaussian and Student-t laws. The level, the seasonals and the AR(1) equal the discrete
        model exactly when every gap is one step; the trends are Harvey's continuous-time
        trends, which do not (see :mod:`bayes_ssm.models.continuous`).
    obs_times, time_unit, forecast_times : optional
        Set by the fitting functions in continuous time (not by hand): the observation times
        in units of ``time_unit`` (its length in seconds, e.g. ``604800.0`` for a week, or
        ``None`` for float times), and the future times a forecast is drawn at (``None``: one unit
        apart after the last observation).
    cycle : bool
        Add a stochastic damped cycle (2 states; sites ``sigma_cycle``, ``cycle_frequency``
        ``lambda`` in radians per step, ``cycle_damping`` ``rho``), statsmodels'
        ``UnobservedComponents(cycle=True, stochastic_cycle=True, damped_cycle=True)``.
    regression_states : {None, "constant", "random_walk"}
        ``None`` (default): regression coefficients are parameters (site ``beta``).
        ``"constant"``: they are states with a constant law, integrated out by the Kalman filter
        (statsmodels' ``mle_regression=False``); ``"random_walk"``: time-varying coefficients,
        random walks with sds ``sigma_beta`` (covariate,). Gaussian and Student-t only.
    initialization : {"proper", "diffuse"}
        ``"proper"`` (default): the data-scaled prior on the first state below.
        ``"diffuse"``: exact diffuse initialisation of every non-stationary state (Durbin and
        Koopman 2012, ch. 5; :func:`~bayes_ssm.kernels.kalman_diffuse.diffuse_kalman_filter`):
        the likelihood is the diffuse likelihood of statsmodels' ``use_exact_diffuse=True``
        and KFAS, and its first ``d`` ``log_lik`` terms (``d`` = number of diffuse states) are
        ``-1/2 (log 2 pi + log F_inf)``, not predictive densities (use ``"proper"`` for LOO).
        Components are drawn with the diffuse part approximated by a variance ``1e6 y_scale^2``.
        Gaussian and Student-t only.

    Notes
    -----
    With ``level=False`` and no other component the model is the irregular one,
    ``y_t = x_t' beta + eps_t`` (a single inert state keeps the kernels' shapes).

    Parameter sites: ``sigma_obs`` (not for counts), ``sigma_level``, ``sigma_slope``,
    ``damping``, ``sigma_<seasonal name>``, ``ar_pacf`` (p,), ``sigma_ar``, ``beta``
    (covariate,), ``nu`` and ``obs_precision`` (time,) for Student-t, ``concentration`` and
    ``state_init_z`` (state,) for the negative binomial, with ``state_z`` (time - 1, noise)
    (non-centred), ``state_path`` (time - 1, noise) (centred: the noisy states
    ``alpha_2..alpha_T``), or ``state_path`` (time - 1, 1) (the level) and ``state_z``
    (time - 1, noise - 1) (mixed).

    Output sites: ``log_lik`` (time,), the one-step predictive log density
    ``log p(y_t | y_<t, theta)`` with the states integrated out (Gaussian); for Student-t
    ``log p(y_t | y_<t, theta, lambda_<t)``, marginal over the step's own precision
    ``lambda_t`` (by quadrature: ``likelihoods.student_t_predictive_log_prob``),
    so LOO does not condition on a latent tied to the left-out point; for the negative binomial
    the log-pmf given the sampled log-intensity (conditional, so PSIS-LOO is less reliable
    there). ``y_forecast`` (horizon,): the final state drawn from its filtered law (for counts:
    the sampled one), propagated with state noise, plus a draw from the observation law.
    With ``components=True``: ``component/<name>`` (time,) for ``level``, each seasonal,
    ``ar``, ``regression``, one joint draw from the smoothing distribution (Durbin-Koopman
    simulation smoother; for counts the sampled states themselves, on the log-intensity
    scale); ``y_fitted`` (time,), the one-step predictive mean (Gaussian, Student-t); and
    ``y_rep`` (time,), replicated data: a draw from ``y_t | y_<t`` (Gaussian, Student-t) or from
    the negative binomial given the sampled log-intensity.

    Initial state: a proper prior scaled to the data (:mod:`bayes_ssm.models.structural_priors`),
    integrated out exactly; so every ``log_lik`` term is a proper predictive density (no
    diffuse burn-in). A constant series is accepted: its scales are floored, the priors become
    tight but proper, and the output is finite.

    Speed: NUTS differentiates only the history-free Kalman pass
    (:func:`~bayes_ssm.kernels.kalman.kalman_filter_last`); ``log_lik`` read-outs that need
    more (Student-t) are dead code in the gradient. Trigonometric seasonals with few harmonics
    keep the state small (``seasonal=52`` is 6 states, not the 51 of a dummy seasonal).

    Examples
    --------
    >>> model = StructuralTS(trend="local_linear", seasonal=52)
    >>> model.state_size
    8
    """

    kind: ClassVar[str] = "structural"
    #: The module whose ``run`` is :meth:`model`'s program; a subclass with its own program
    #: (``SeasonalNoiseTS``, ``HeavyLevelTS``) names its module here instead of overriding
    #: :meth:`model`.
    program: ClassVar[ModuleType] = program

    level: bool = True
    trend: str | None = "local_linear"
    seasonal: Any = None
    ar_order: int = 0
    regression: bool | None = None
    likelihood: str = "gaussian"
    priors: Any = field(default=None)
    method: str = "auto"
    state_parameterization: str = "auto"
    cycle: bool = False
    regression_states: str | None = None
    initialization: str = "proper"
    time: str = "auto"
    obs_times: tuple | None = None
    time_unit: float | None = None
    forecast_times: tuple | None = None

    def __post_init__(self):
        if self.trend not in TRENDS:
            raise ValueError(f"trend must be one of {TRENDS}; got {self.trend!r}")
        if self.trend is not None and not self.level:
            raise ValueError(f"trend={self.trend!r} needs level=True")
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}; got {self.likelihood!r}")
        if isinstance(self.ar_order, bool) or int(self.ar_order) != self.ar_order:
            raise ValueError(f"ar_order must be a non-negative integer; got {self.ar_order!r}")
        if self.ar_order < 0:
            raise ValueError(f"ar_order must be a non-negative integer; got {self.ar_order!r}")
        object.__setattr__(self, "ar_order", int(self.ar_order))
        if self.method not in ("auto", "sequential", "parallel"):
            raise ValueError(
                f"method must be 'auto', 'sequential' or 'parallel'; got {self.method!r}"
            )
        if self.state_parameterization not in STATE_PARAMETERIZATIONS:
            raise ValueError(
                f"state_parameterization must be one of {STATE_PARAMETERIZATIONS}; got "
                f"{self.state_parameterization!r}"
            )
        object.__setattr__(self, "seasonal", as_seasonals(self.seasonal))
        priors = self.priors or {}
        if not isinstance(priors, dict | tuple):
            raise ValueError(f"priors must be a dict of site name -> prior; got {priors!r}")
        object.__setattr__(
            self, "priors", tuple(sorted(freeze_prior(k, v) for k, v in dict(priors).items()))
        )
        check_options(self)
        if self.time not in TIMES:
            raise ValueError(f"time must be one of {TIMES}; got {self.time!r}")
        for attr in ("obs_times", "forecast_times"):
            value = getattr(self, attr)
            if value is not None:
                object.__setattr__(self, attr, tuple(float(v) for v in np.ravel(value)))
        if self.obs_times is not None or self.time == "continuous":
            check_continuous(self)

    def with_times(
        self,
        obs_times: Any,
        time_unit: float | None = None,
        forecast_times: Any = None,
    ) -> StructuralTS:
        """This model in continuous time at the given observation (and forecast) times.

        Parameters
        ----------
        obs_times : array-like, shape ``(time,)``
            Strictly increasing observation times, in units of ``time_unit``.
        time_unit : float, optional
            Length of one time unit in seconds (``604800.0``: a week); ``None`` for float
            times.
        forecast_times : array-like, shape ``(horizon,)``, optional
            Future times, after the last observation time.
        """
        from dataclasses import replace

        return replace(
            self, obs_times=obs_times, time_unit=time_unit, forecast_times=forecast_times
        )

    # -- structure ------------------------------------------------------------------------
    @property
    def prior_overrides(self) -> dict:
        """The prior overrides as ``{site: Distribution or {"dist": ..., **kwargs}}``."""
        return {k: (dict(v) if isinstance(v, tuple) else v) for k, v in self.priors}

    @property
    def state_size(self) -> int:
        """Length of the state vector."""
        n = int(self.level) + int(self.trend is not None) + 2 * int(self.cycle)
        return n + sum(s.num_states for s in self.seasonal) + self.ar_order

    @property
    def component_names(self) -> tuple[str, ...]:
        """Names of the additive state components (``component/<name>`` sites)."""
        names = ["level"] if self.level else []
        names += [s.name for s in self.seasonal]
        if self.ar_order:
            names.append("ar")
        if self.cycle:
            names.append("cycle")
        return tuple(names)

    @property
    def parameter_sites(self) -> tuple[str, ...]:
        sites = [] if self.likelihood == "negative_binomial" else ["sigma_obs"]
        if self.level:
            sites.append("sigma_level")
        if self.trend is not None:
            sites.append("sigma_slope")
        if self.trend == "damped":
            sites.append("damping")
        sites += [f"sigma_{s.name}" for s in self.seasonal]
        if self.ar_order:
            sites += ["ar_pacf", "sigma_ar"]
        if self.cycle:
            sites += ["sigma_cycle", "cycle_frequency", "cycle_damping"]
        if self.regression and self.regression_states is None:
            sites.append("beta")
        if self.regression_states == "random_walk":
            sites.append("sigma_beta")
        if self.likelihood == "student_t":
            sites.append("nu")
        if self.likelihood == "negative_binomial":
            sites.append("concentration")
        return tuple(sites)

    def uses_regression(self, covariates: np.ndarray | None) -> bool:
        return bool(self.regression) if self.regression is not None else covariates is not None

    # -- data -----------------------------------------------------------------------------
    def data_scales(self, y: np.ndarray, covariates: np.ndarray | None = None) -> dict[str, float]:
        """Scales of the training data for the default priors (see :mod:`.priors`).

        For the negative binomial they are computed on ``log1p(y)``, the log-intensity scale.
        """
        y = np.asarray(y, dtype=np.float64)
        if self.likelihood == "negative_binomial":
            y = np.log1p(np.where(np.isnan(y), np.nan, np.maximum(y, 0.0)))
        return compute_scales(y, covariates if self.uses_regression(covariates) else None)

    def validate(self, y: np.ndarray, covariates: np.ndarray | None = None) -> None:
        """Model-specific checks (``data.py`` has already checked types, NaN covariates, length).

        Raises
        ------
        ValueError
            A seasonal period longer than the series; ``regression=True`` without covariates;
            negative or non-integer values for the count likelihood; too few observations.
        """
        raw = np.asarray(y)
        if not (np.issubdtype(raw.dtype, np.number) or np.issubdtype(raw.dtype, np.bool_)):
            raise ValueError(f"y must be numeric; got dtype {raw.dtype}")
        y = raw.astype(np.float64)
        if y.ndim != 1:
            raise ValueError(f"y must have shape (time,); got {y.shape}")
        if np.isinf(y).any():
            raise ValueError("y contains +/-inf; use NaN for missing values")
        num_steps = y.shape[0]
        num_obs = int(np.sum(~np.isnan(y)))
        if num_obs < 2:
            raise ValueError(f"y has {num_obs} observed values; StructuralTS needs at least 2")
        for s in self.seasonal:
            if s.period > num_steps:
                raise ValueError(
                    f"seasonal period {s.period} ({s.name}) is longer than the series "
                    f"({num_steps} steps); drop it or supply at least one full period"
                )
        if self.regression and covariates is None:
            raise ValueError("regression=True needs covariates of shape (time, covariate)")
        if self.regression_states is not None and covariates is None:
            raise ValueError(
                f"regression_states={self.regression_states!r} needs covariates of shape "
                "(time, covariate)"
            )
        if covariates is not None and self.uses_regression(covariates):
            cov = np.asarray(covariates)
            if cov.ndim != 2 or cov.shape[0] != num_steps:
                raise ValueError(
                    f"covariates must have shape (time={num_steps}, covariate); got {cov.shape}"
                )
            if not np.all(np.isfinite(cov)):
                raise ValueError("covariates contain NaN or inf")
        if self.likelihood == "negative_binomial":
            validate_counts(y)
        if self.obs_times is not None and len(self.obs_times) != num_steps:
            raise ValueError(
                f"the model holds {len(self.obs_times)} observation times; y has {num_steps}"
            )

    # -- the NumPyro program -------------------------------------------------------------
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
            Observations, NaN where missing; all NaN gives prior (predictive) draws.
        scales : dict
            From :meth:`data_scales` on the training data.
        covariates : Array, shape ``(time, covariate)``, optional
        horizon : int
            Steps to draw at ``y_forecast``.
        future_covariates : Array, shape ``(horizon, covariate)``, optional
            Required when the model regresses and ``horizon > 0``.
        components : bool
            Emit ``component/<name>`` and ``y_fitted``.
        """
        self.program.run(
            self,
            y,
            scales=scales,
            covariates=covariates,
            horizon=int(horizon),
            future_covariates=future_covariates,
            components=components,
        )

    def prior_predictive(
        self,
        num_steps: int,
        *,
        key: int | jax.Array,
        scales: dict[str, float],
        num_samples: int = 200,
        covariates: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """Draws from the prior predictive: parameters and ``y_prior`` (sample, time).

        Parameters
        ----------
        num_steps : int
            Length of the simulated series.
        key : int or jax.random.PRNGKey
        scales : dict
            From :meth:`data_scales` (the priors are scaled to the data).
        num_samples : int
        covariates : Array, shape ``(num_steps, covariate)``, optional

        Returns
        -------
        dict of ndarray
            Every parameter site and ``"y_prior"`` of shape ``(num_samples, num_steps)``.
        """
        import jax
        from numpyro.infer import Predictive

        if int(num_steps) < 1:
            raise ValueError(f"num_steps must be a positive integer; got {num_steps!r}")
        if isinstance(key, int | np.integer):
            key = jax.random.PRNGKey(int(key))
        draws = Predictive(program.prior_program, num_samples=int(num_samples))(
            key, self, int(num_steps), scales=scales, covariates=covariates
        )
        return {k: np.asarray(v) for k, v in draws.items() if k != "prior_state_z"}

    # -- serialisation --------------------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        params = {
            "level": self.level,
            "trend": self.trend,
            "seasonal": [
                {"period": s.period, "harmonics": s.harmonics, "kind": s.kind, "name": s.name}
                for s in self.seasonal
            ],
            "ar_order": self.ar_order,
            "regression": self.regression,
            "likelihood": self.likelihood,
            "priors": {k: prior_json(k, v) for k, v in self.priors},
            "method": self.method,
            "state_parameterization": self.state_parameterization,
            "cycle": self.cycle,
            "regression_states": self.regression_states,
            "initialization": self.initialization,
            "time": self.time,
        }
        for attr in ("obs_times", "time_unit", "forecast_times"):
            if getattr(self, attr) is not None:
                params[attr] = getattr(self, attr)
        return {"kind": self.kind, "params": jsonable(params)}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> StructuralTS:
        params = dict(params)
        # specs saved before the option existed sampled the count model's states non-centred
        params.setdefault("state_parameterization", "noncentred")
        params["seasonal"] = [Seasonal(**s) for s in params.get("seasonal") or []] or None
        return cls(**params)
