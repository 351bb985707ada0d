"""The immutable result of a fit, and everything read out of it (forecasts, fitted values, ...).

A :class:`Fit` holds the posterior draws of the model's latent sites (from NUTS, or drawn from
the fitted SVI guide), the model's hyperparameters, the validated data with its index, and the
data scales that fixed the priors. Every read-out reruns the same NumPyro program under
``Predictive`` with the draws substituted, so forecasts are conditioning, not a second simulator.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bayes_ssm.data.types import CovariatesLike, KeyLike, PathLike, Prob, SeriesLike
from bayes_ssm.data.validation import (
    SeriesData,
    check_future_covariates,
    future_index,
    to_model_time,
)
from bayes_ssm.inference import engine as _engine
from bayes_ssm.inference.forecast import (
    summarize_draws,
    validate_horizon,
    validate_prob,
    warn_exploding_counts,
    warn_exploding_forecast,
)
from bayes_ssm.inference.readouts import ReadOuts
from bayes_ssm.models.base import TimeSeriesModel

if TYPE_CHECKING:
    import xarray

__all__ = ["Fit", "MAX_FORECAST_BYTES", "check_forecast_size"]

#: Largest forecast (posterior draws x horizon x (states + 2) x 8 bytes) computed; beyond it
#: ``forecast`` refuses before computing (XLA would abort the process, a notebook kernel dies).
MAX_FORECAST_BYTES = 4 * 2**30


def check_forecast_size(model, data: SeriesData, draws: int, horizon: int) -> pd.Index:
    """Refuse, before computing anything, a forecast too large to hold or to label.

    Parameters
    ----------
    model : TimeSeriesModel
    data : SeriesData
        The series the forecast continues.
    draws : int
        Posterior draws the forecast uses.
    horizon : int

    Returns
    -------
    pandas.Index
        The forecast's timestamps (:func:`bayes_ssm.data.future_index`).

    Raises
    ------
    ValueError
        ``draws * horizon * (states + 2) * 8`` bytes exceed :data:`MAX_FORECAST_BYTES`, or the
        timestamps run past what pandas can represent at the index's resolution.
    """
    states = getattr(model, "state_size", 1)
    states = states if isinstance(states, int) and states > 0 else 1
    need = draws * horizon * (states + 2) * 8  # state paths and observations, float64
    if need > MAX_FORECAST_BYTES:
        raise ValueError(
            f"a {horizon}-step forecast with {draws} draws of {states} states needs about "
            f"{need / 2**30:.3g} GiB, above the {MAX_FORECAST_BYTES / 2**30:.3g} GiB limit "
            "(bayes_ssm.fit.MAX_FORECAST_BYTES); forecast fewer steps or pass num_samples="
        )
    try:
        return future_index(data, horizon)
    except (OverflowError, ValueError) as err:  # pandas: OutOfBoundsDatetime, overflow
        raise ValueError(
            f"a {horizon}-step forecast from {data.index[-1]} at frequency "
            f"{getattr(data.freq, 'freqstr', data.freq)} runs past the dates pandas can hold "
            f"at resolution {getattr(data.index, 'unit', '')!r} ({err}); forecast fewer steps "
            "(or fit on an index with unit 'us' or 's')"
        ) from None


def _frozen_arrays(arrays: Mapping[str, Any]) -> Mapping[str, np.ndarray]:
    out = {}
    for name, value in arrays.items():
        arr = np.array(value, copy=True)
        arr.setflags(write=False)
        out[name] = arr
    return MappingProxyType(out)


@dataclasses.dataclass(frozen=True, eq=False)
class Fit(ReadOuts):
    """A fitted model: posterior draws + model + data. Immutable; build it with ``fit_nuts``,
    ``fit_svi`` or ``bs.load``.

    Attributes
    ----------
    model : TimeSeriesModel
        The model (hyperparameters) that was fitted.
    data : SeriesData
        The validated training data, with its index and frequency.
    scales : mapping of str to float
        ``model.data_scales`` of the training data (they fix the priors).
    method : {"nuts", "svi"}
    draws : mapping of str to ndarray, each shape ``(chain, draw, ...)``
        Posterior draws of the latent sites (SVI: draws from the fitted guide, one chain).
    sample_stats : mapping of str to ndarray, each shape ``(chain, draw)``
        Sampler statistics (NUTS: ``diverging``, ``energy``, ``n_steps``, ``tree_depth``,
        ``acceptance_rate``, ``step_size``); empty for SVI.
    info : mapping
        JSON-serialisable settings and results of the run (seed, num_warmup, elapsed seconds,
        SVI convergence, ...).
    guide_params : mapping of str to ndarray
        The fitted SVI guide's parameters (empty for NUTS).
    svi_loss : ndarray, shape ``(step,)``, or None
        The SVI loss (negative ELBO) at every step.
    """

    model: TimeSeriesModel
    data: SeriesData
    scales: Mapping[str, float]
    method: str
    draws: Mapping[str, np.ndarray]
    sample_stats: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    info: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    guide_params: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    svi_loss: np.ndarray | None = None

    def __post_init__(self):
        if self.method not in ("nuts", "svi"):
            raise ValueError(f"method must be 'nuts' or 'svi'; got {self.method!r}")
        set_ = object.__setattr__
        set_(self, "scales", MappingProxyType({k: float(v) for k, v in self.scales.items()}))
        set_(self, "draws", _frozen_arrays(self.draws))
        set_(self, "sample_stats", _frozen_arrays(self.sample_stats))
        set_(self, "guide_params", _frozen_arrays(self.guide_params))
        set_(self, "info", MappingProxyType(dict(self.info)))
        if self.svi_loss is not None:
            set_(self, "svi_loss", _frozen_arrays({"loss": self.svi_loss})["loss"])
        shapes = {k: v.shape[:2] for k, v in self.draws.items()}
        if len(set(shapes.values())) > 1:
            raise ValueError(f"draws must share (chain, draw) dimensions; got {shapes}")

    # ------------------------------------------------------------------ sizes
    @property
    def num_chains(self) -> int:
        return int(next(iter(self.draws.values())).shape[0]) if self.draws else 1

    @property
    def num_draws(self) -> int:
        return int(next(iter(self.draws.values())).shape[1]) if self.draws else 1

    @property
    def num_samples(self) -> int:
        """Total posterior draws, ``chain * draw``."""
        return self.num_chains * self.num_draws

    def __repr__(self) -> str:
        idx = self.data.index
        return (
            f"Fit(model={self.model.kind!r}, method={self.method!r}, "
            f"chains={self.num_chains}, draws={self.num_draws}, time={self.data.num_steps}, "
            f"from {idx[0]} to {idx[-1]}, sites={list(self.draws)})"
        )

    # ------------------------------------------------------------ internals
    def _flat_draws(self, num_samples=None) -> dict[str, np.ndarray]:
        total = self.num_samples
        if num_samples is None:
            sel = slice(None)
        else:
            if isinstance(num_samples, bool) or not isinstance(num_samples, int | np.integer):
                raise ValueError(f"num_samples must be a positive integer; got {num_samples!r}")
            if not 0 < num_samples <= total:
                raise ValueError(
                    f"num_samples must be between 1 and the {total} posterior draws the fit "
                    f"holds; got {num_samples}"
                )
            sel = np.unique(np.linspace(0, total - 1, int(num_samples)).round().astype(int))
        flat = {k: v.reshape((total,) + v.shape[2:])[sel] for k, v in self.draws.items()}
        if not flat:  # a model with no latent sites (everything fixed): one "sample" per draw
            n = total if num_samples is None else len(sel)
            flat = {"_no_latent_sites": np.zeros(n)}
        return flat

    def _predict(
        self,
        key,
        sites,
        *,
        horizon=0,
        future_covariates=None,
        components=False,
        num_samples=None,
        model=None,
    ):
        return _engine.predict(
            self.model if model is None else model,
            key,
            self._flat_draws(num_samples),
            self.data.y,
            dict(self.scales),
            covariates=self.data.covariates,
            future_covariates=future_covariates,
            horizon=horizon,
            components=components,
            sites=tuple(sites),
        )

    # ------------------------------------------------------------- forecasts
    def _check_forecast_size(self, horizon: int, num_samples) -> pd.Index:
        draws = self.num_samples if num_samples is None else int(num_samples)
        return check_forecast_size(self.model, self.data, draws, horizon)

    def _forecast_setup(self, horizon, times, num_samples=None):
        """``(horizon, model, index)`` of a forecast: at ``times`` (continuous time) or over
        ``horizon`` steps of the fitted grid (its size checked before anything is computed)."""
        if times is None:
            horizon = validate_horizon(horizon)
            return horizon, self.model, self._check_forecast_size(horizon, num_samples)
        future = to_model_time(self.data, times)
        if horizon is not None and validate_horizon(horizon) != future.size:
            raise ValueError(f"horizon={horizon} but {future.size} forecast times were given")
        model = self.model.with_times(
            self.model.obs_times, self.model.time_unit, forecast_times=future
        )
        if isinstance(self.data.index, pd.DatetimeIndex):
            index = pd.DatetimeIndex(times, name=self.data.index.name)
        else:
            index = pd.Index(np.asarray(times, dtype=np.float64).ravel(), name=self.data.index.name)
        return int(future.size), model, index

    def forecast_samples(
        self,
        horizon: int | None = None,
        *,
        covariates: CovariatesLike | None = None,
        num_samples: int | None = None,
        key: KeyLike = 0,
        times: Any = None,
    ) -> np.ndarray:
        """Draws of the posterior predictive of the next ``horizon`` observations.

        Parameters
        ----------
        horizon : int, optional
            Number of future steps (> 0); may be left out when ``times`` are given.
        times : sequence of timestamps (or floats), optional
            Continuous-time fits only: forecast at these strictly increasing times after the
            last fitted timestamp (any spacing) instead of on the fitted grid.
        covariates : pandas.DataFrame or array-like, shape ``(horizon, covariate)``, optional
            Future covariates; required when the model was fitted with covariates.
        num_samples : int, optional
            Use this many posterior draws (evenly thinned); all of them by default.
        key : int or jax.random key
            Same key, same draws.

        Returns
        -------
        numpy.ndarray, shape ``(sample, horizon)``
            Each row carries parameter, state and observation uncertainty.

        Warns
        -----
        UserWarning
            For a count model (``likelihood="negative_binomial"``), when draws exceed
            ``COUNT_FORECAST_FACTOR`` (1000) times the largest observed count: the sign of a
            failed fit (:func:`~bayes_ssm.inference.forecast.warn_exploding_counts`); for other
            models,
            when draws lie more than ``FORECAST_SPAN_FACTOR`` (1000) data ranges from the data
            or are not finite (:func:`bayes_ssm.inference.forecast.warn_exploding_forecast`).
        """
        horizon, model, index = self._forecast_setup(horizon, times, num_samples)
        future_cov = check_future_covariates(self.data, covariates, horizon, index=index)
        out = self._predict(
            key,
            ("y_forecast",),
            horizon=horizon,
            future_covariates=future_cov,
            num_samples=num_samples,
            model=model,
        )
        draws = out["y_forecast"].reshape(-1, horizon)
        if getattr(self.model, "likelihood", None) == "negative_binomial":
            warn_exploding_counts(draws, self.data.y, stacklevel=3)
        else:
            warn_exploding_forecast(draws, self.data.y, stacklevel=3)
        return draws

    def forecast(
        self,
        horizon: int | None = None,
        *,
        prob: Prob = (0.8, 0.95),
        covariates: CovariatesLike | None = None,
        num_samples: int | None = None,
        key: KeyLike = 0,
        times: Any = None,
    ) -> pd.DataFrame:
        """Forecast as a DataFrame of the posterior predictive on the future timestamps.

        Parameters
        ----------
        horizon : int
            Number of future steps (> 0); timestamps continue the fitted index at its frequency.
        prob : float or sequence of float
            Central credible-interval levels, each in (0, 1).
        covariates, num_samples, key, times
            As in :meth:`forecast_samples` (``times``: continuous-time fits only, any future
            timestamps; the result is indexed by them).

        Returns
        -------
        pandas.DataFrame, shape ``(horizon, 2 + 2 * len(prob))``
            Columns ``mean, median, lower_80, upper_80, lower_95, upper_95`` (for the default
            levels), indexed by the future timestamps (name ``data.index.name``).
        """
        levels = validate_prob(prob)
        horizon, _, index = self._forecast_setup(horizon, times, num_samples)
        draws = self.forecast_samples(
            horizon, covariates=covariates, num_samples=num_samples, key=key, times=times
        )
        index.name = self.data.index.name
        return summarize_draws(draws, index, levels)

    # -------------------------------------------------------- in-sample
    def fitted(
        self, *, prob: Prob = (0.8, 0.95), num_samples: int | None = None, key: KeyLike = 0
    ) -> pd.DataFrame:
        """In-sample one-step-ahead predictive means ``E[y_t | y_<t, theta]`` with credible bands.

        The bands show posterior (parameter) uncertainty of the fitted mean, not observation
        noise. Requires the model to emit the ``"y_fitted"`` site.

        Returns
        -------
        pandas.DataFrame, shape ``(time, 2 + 2 * len(prob))``, on the fitted index.
        """
        levels = validate_prob(prob)
        out = self._predict(key, ("y_fitted",), components=True, num_samples=num_samples)
        if "y_fitted" not in out:
            raise ValueError(f"model {self.model.kind!r} does not emit the 'y_fitted' site")
        return summarize_draws(out["y_fitted"], self.data.index, levels)

    def components(
        self, *, prob: Prob = (0.8, 0.95), num_samples: int | None = None, key: KeyLike = 0
    ) -> pd.DataFrame:
        """Smoothed components (level, trend, seasonal, regression, ar, ...) with credible bands.

        Each posterior draw contributes one draw of the smoothed components, so the bands carry
        parameter and state uncertainty.

        Returns
        -------
        pandas.DataFrame, shape ``(time, component * (2 + 2 * len(prob)))``
            Columns are a MultiIndex ``(component, statistic)``: ``fc["level"]["median"]``.
            ``attrs["scale"]`` is ``"log"`` for a negative-binomial model (its components add
            up to the log of the rate; ``exp`` of one is a multiplicative effect), else
            ``"data"``.
        """
        levels = validate_prob(prob)
        names = _engine.trace_site_names(
            self.model,
            self.data.y,
            dict(self.scales),
            covariates=self.data.covariates,
            components=True,
        )
        sites = tuple(n for n in names if n.startswith("component/"))
        if not sites:
            raise ValueError(f"model {self.model.kind!r} emits no 'component/<name>' sites")
        out = self._predict(key, sites, components=True, num_samples=num_samples)
        frames = {
            s.split("/", 1)[1]: summarize_draws(out[s], self.data.index, levels) for s in sites
        }
        table = pd.concat(frames, axis=1, names=["component", "statistic"])
        log = getattr(self.model, "likelihood", None) == "negative_binomial"
        table.attrs["scale"] = "log" if log else "data"
        return table

    # ------------------------------------------------------------ update
    def update(self, y_new: SeriesLike, *, covariates: CovariatesLike | None = None) -> Fit:
        """Condition on newly arrived observations without refitting the parameters.

        The posterior draws of the parameters stay as they are; the state is filtered forward
        through ``y_new``, so the next forecast starts from the end of ``y_new``.

        Parameters
        ----------
        y_new : pandas.Series, or array-like of shape ``(new,)``
            Observations after the last fitted timestamp. A Series' labels are read like the
            fitted index (:mod:`bayes_ssm.data.time_labels`): they must all lie after the last
            fitted timestamp (overlaps and re-sent history are refused) and on the fitted grid (the
            frequency, or the integer step); a gap before or inside them is filled with NaN
            (missing values are data), except with covariates, where ``y_new`` must continue
            the index without gaps. An array is placed at the next ``new`` timestamps.
        covariates : pandas.DataFrame or array-like, shape ``(new, covariate)``, optional
            Covariates for the new steps (required when the model uses covariates).

        Returns
        -------
        Fit
            A new fit; this one is untouched.
        """
        from bayes_ssm.inference.fit_update import updated_fit

        return updated_fit(self, y_new, covariates)

    # ----------------------------------------------------------- exports
    def to_arviz(self, *, key: KeyLike = 0) -> xarray.DataTree:
        """The fit as an ArviZ 1.x ``xarray.DataTree``.

        Groups: ``posterior`` (latent sites), ``sample_stats`` (NUTS), ``log_likelihood``
        (variable ``y``: ``log p(y_t | y_<t, theta)`` per observed step), ``posterior_predictive``
        (variable ``y``: one-step-ahead replicates, when the model emits ``"y_rep"``),
        ``observed_data`` (``y``) and ``constant_data`` (covariates, when used). The time
        dimension of the last three covers the observed (non-NaN) steps.
        """
        from bayes_ssm.inference.diagnostics import to_datatree

        return to_datatree(self, key=key)

    def save(self, path: PathLike) -> None:
        """Write the fit to ``path`` (netCDF + JSON spec, no pickle; atomic). See ``bs.load``."""
        from bayes_ssm.inference import _fit_file

        _fit_file.write(self, path)
