"""Baseline forecasters for the evaluation harness: the peers an analyst would otherwise run.

Each baseline is an immutable object of settings with one method,

``forecast_samples(y_train, horizon, *, num_samples, key) -> ndarray (sample, horizon)``

taking only the training values (a 1-D float array ending at the forecast origin, NaN =
missing) so that it cannot see the future, and returning draws from its predictive
distribution of the next ``horizon`` steps. The same scores then apply to every method.

* :class:`SeasonalNaive` - repeats the last season; a point mass (every draw equal), as in the
  Chronos / fev benchmark protocol.
* :class:`StatsmodelsETS` - ``statsmodels`` ``ETSModel`` (maximum likelihood), draws by
  simulating future paths from the fitted model.
* :class:`StatsmodelsUC` - ``statsmodels`` ``UnobservedComponents`` (maximum likelihood,
  exact Kalman filter, NaN handled), draws from its Gaussian marginal predictive.
* :class:`ProphetBaseline` - ``prophet`` (optional dependency), draws from its predictive
  simulation.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayes_ssm.data.frequency import infer_offset

__all__ = [
    "SeasonalNaive",
    "StatsmodelsETS",
    "StatsmodelsUC",
    "ProphetBaseline",
    "baseline_from_name",
]


def _check(y_train, horizon: int, num_samples: int) -> np.ndarray:
    y = np.asarray(y_train, dtype=float)
    if y.ndim != 1:
        raise ValueError(f"y_train must be one-dimensional (time,); got shape {y.shape}")
    if not isinstance(horizon, int | np.integer) or horizon < 1:
        raise ValueError(f"horizon must be a positive integer; got {horizon!r}")
    if not isinstance(num_samples, int | np.integer) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer; got {num_samples!r}")
    if np.sum(~np.isnan(y)) < 2:
        raise ValueError("y_train has fewer than 2 observed values")
    return y


def _rng(key) -> np.random.Generator:
    if isinstance(key, np.random.Generator):
        return key
    return np.random.default_rng(key)


def _fill_missing(y: np.ndarray) -> np.ndarray:
    """Linear interpolation over NaN (ends: nearest value), for libraries without NaN support."""
    if not np.isnan(y).any():
        return y
    return pd.Series(y).interpolate(limit_direction="both").to_numpy()


@dataclass(frozen=True)
class SeasonalNaive:
    """Seasonal naive: step ``h`` repeats the value one season before it.

    Parameters
    ----------
    season : int
        Season length (1 = the last value). A missing value in the last season is replaced
        by the same position one season earlier (and so on).
    """

    season: int = 1

    @property
    def name(self) -> str:
        return "seasonal_naive" if self.season > 1 else "naive"

    def point_forecast(self, y_train, horizon: int) -> np.ndarray:
        """The forecast, shape ``(horizon,)``."""
        y = _check(y_train, horizon, 1)
        if not isinstance(self.season, int | np.integer) or self.season < 1:
            raise ValueError(f"season must be a positive integer; got {self.season!r}")
        n = y.shape[0]
        if n < self.season:
            raise ValueError(f"y_train has {n} steps; season={self.season} needs at least that")
        out = np.empty(horizon)
        for h in range(horizon):
            t = n - self.season + (h % self.season)
            while t >= 0 and np.isnan(y[t]):
                t -= self.season
            if t < 0:
                raise ValueError(f"no observed value at seasonal position {h % self.season}")
            out[h] = y[t]
        return out

    def forecast_samples(self, y_train, horizon: int, *, num_samples: int = 1, key=None):
        """``num_samples`` identical draws of :meth:`point_forecast`, shape (sample, horizon)."""
        del key  # deterministic
        _check(y_train, horizon, num_samples)
        return np.broadcast_to(self.point_forecast(y_train, horizon), (num_samples, horizon)).copy()


@dataclass(frozen=True)
class StatsmodelsETS:
    """``statsmodels.tsa.exponential_smoothing.ets.ETSModel`` fitted by maximum likelihood.

    Parameters
    ----------
    error, trend, seasonal : str or None
        ETS components (``"add"`` / ``"mul"`` / None).
    damped_trend : bool
    season : int or None
        Seasonal period (needed when ``seasonal`` is set).

    Notes
    -----
    ``ETSModel`` does not accept missing values; NaN in the training data is linearly
    interpolated first. Draws are simulated future paths (parameters fixed at the MLE).
    """

    error: str = "add"
    trend: str | None = "add"
    damped_trend: bool = True
    seasonal: str | None = None
    season: int | None = None
    name: str = "statsmodels_ets"

    def forecast_samples(self, y_train, horizon: int, *, num_samples: int = 1000, key=None):
        from statsmodels.tsa.exponential_smoothing.ets import ETSModel

        y = _fill_missing(_check(y_train, horizon, num_samples))
        model = ETSModel(
            y,
            error=self.error,
            trend=self.trend,
            damped_trend=self.damped_trend if self.trend else False,
            seasonal=self.seasonal,
            seasonal_periods=self.season if self.seasonal else None,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = model.fit(disp=False)
            paths = result.simulate(horizon, anchor="end", repetitions=num_samples, rng=_rng(key))
        return np.asarray(paths, dtype=float).reshape(horizon, num_samples).T


@dataclass(frozen=True)
class StatsmodelsUC:
    """``statsmodels`` ``UnobservedComponents`` fitted by maximum likelihood.

    Parameters
    ----------
    level : str
        statsmodels' level/trend specification (``"local level"``, ``"local linear trend"``,
        ``"smooth trend"`` ...).
    season : int or None
        Stochastic dummy seasonal of this period.

    Notes
    -----
    Missing values are handled by statsmodels' Kalman filter. Draws are independent per step
    from the Gaussian marginal predictive ``N(mean_h, var_h)`` (parameters at the MLE), which
    is what per-step scores (CRPS, coverage, quantiles) need; they are not joint paths.
    """

    level: str = "local linear trend"
    season: int | None = None
    name: str = "statsmodels_uc"

    def forecast_samples(self, y_train, horizon: int, *, num_samples: int = 1000, key=None):
        from statsmodels.tsa.statespace.structural import UnobservedComponents

        y = _check(y_train, horizon, num_samples)
        model = UnobservedComponents(y, level=self.level, seasonal=self.season)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = model.fit(disp=False)
            pred = result.get_forecast(horizon)
        mean = np.asarray(pred.predicted_mean, dtype=float)
        sd = np.sqrt(np.asarray(pred.var_pred_mean, dtype=float))
        return mean + sd * _rng(key).standard_normal((num_samples, horizon))


@dataclass(frozen=True)
class ProphetBaseline:
    """``prophet.Prophet`` (optional dependency: ``pip install prophet``).

    Prophet needs timestamps: :meth:`forecast_samples` takes ``index`` (the training
    DatetimeIndex) and ``freq``; without them a daily index is assumed.
    """

    yearly_seasonality: bool | str = "auto"
    weekly_seasonality: bool | str = "auto"
    name: str = "prophet"

    def forecast_samples(
        self, y_train, horizon: int, *, num_samples: int = 1000, key=None, index=None, freq=None
    ):
        try:
            from prophet import Prophet
        except ImportError as err:  # pragma: no cover - optional dependency
            raise ImportError("the Prophet baseline needs `pip install prophet`") from err
        import logging

        y = _check(y_train, horizon, num_samples)
        if index is None:
            index = pd.date_range("2000-01-01", periods=len(y), freq="D")
            freq = "D"
        freq = freq or infer_offset(index) or "D"
        seed = int(_rng(key).integers(2**31 - 1))
        model = Prophet(
            uncertainty_samples=num_samples,
            yearly_seasonality=self.yearly_seasonality,
            weekly_seasonality=self.weekly_seasonality,
        )
        future = pd.DataFrame({"ds": pd.date_range(index[-1], periods=horizon + 1, freq=freq)[1:]})
        # Prophet draws from NumPy's global generator: seed it from the key, then restore it.
        state = np.random.get_state()  # noqa: NPY002 (Prophet uses it)
        log = logging.getLogger("cmdstanpy")
        was_disabled, log.disabled = log.disabled, True
        try:
            np.random.seed(seed)  # noqa: NPY002
            model.fit(pd.DataFrame({"ds": index, "y": y}), seed=seed)
            draws = model.predictive_samples(future)["yhat"]  # (horizon, sample)
        finally:
            np.random.set_state(state)  # noqa: NPY002
            log.disabled = was_disabled
        return np.asarray(draws, dtype=float).T


def baseline_from_name(name: str, *, season: int = 1):
    """A baseline by name: ``"naive"``, ``"seasonal_naive"``, ``"ets"``, ``"uc"``, ``"prophet"``.

    ``season`` (> 1) sets the season of ``seasonal_naive``, of ``ets`` (additive seasonal
    component) and of ``uc`` (stochastic dummy seasonal).
    """
    table = {
        "naive": lambda: SeasonalNaive(1),
        "seasonal_naive": lambda: SeasonalNaive(season),
        "ets": lambda: (
            StatsmodelsETS(seasonal="add", season=season) if season > 1 else StatsmodelsETS()
        ),
        "uc": lambda: StatsmodelsUC(season=season if season > 1 else None),
        "prophet": lambda: ProphetBaseline(),
    }
    if name not in table:
        raise ValueError(f"unknown baseline {name!r}; known: {sorted(table)}")
    return table[name]()
