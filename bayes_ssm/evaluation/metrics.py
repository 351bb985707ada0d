"""Forecast scores: proper scoring rules, interval calibration, point errors and PIT values.

Every function takes the actuals ``y`` (a ``pandas.Series`` or a 1-D array, NaN = missing)
and a forecast, aligned on the index: a forecast whose index differs from the actuals'
(missing or extra timestamps, or a horizon running past the end of the test window) is refused
with a ``ValueError``. Forecasts are any of

* samples: an array of shape ``(sample, time)`` (e.g. ``fit.forecast_samples(...)``), or a
  ``DataFrame`` indexed by time with integer draw columns;
* bands: the forecast ``DataFrame`` of ``fit.forecast(...)`` (``mean``, ``median``,
  ``lower_80``, ``upper_80`` ...);
* quantiles: a ``DataFrame`` indexed by time whose float columns are quantile levels.

Missing actuals are skipped by every average (their pointwise score is NaN). Scores are
averaged over time; ``pointwise=True`` returns the per-step values (a Series on the actuals'
index when the actuals had one).

The scoring rules themselves come from ``scoringrules`` (CRPS, quantile and interval scores).

Examples
--------
>>> import numpy as np
>>> from bayes_ssm import metrics
>>> y = np.array([1.0, 2.0, 3.0])
>>> draws = np.random.default_rng(0).normal(loc=y, size=(2000, 3))  # (sample, time)
>>> round(metrics.crps(y, draws), 1)  # N(y, 1) scored at its mean: 0.234 in closed form
0.2
>>> metrics.interval_coverage(y, lower=y - 1, upper=y + 1)
1.0
>>> metrics.mase(y, y + 0.5, y_train=np.array([0.0, 1.0, 3.0]))  # scale: mean |diff| = 1.5
0.3333333333333333
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scoringrules as sr

from bayes_ssm.evaluation._scoring_inputs import (
    as_actuals,
    as_aligned_vector,
    as_point,
    as_quantiles,
    as_samples,
    check_levels,
    check_quantile_levels,
)

__all__ = [
    "QUANTILES",
    "crps",
    "pinball_loss",
    "wql",
    "interval_coverage",
    "interval_width",
    "coverage_table",
    "msis",
    "mase",
    "seasonal_scale",
    "mse",
    "mae",
    "pit",
]

#: Quantile levels of the weighted quantile loss (the Chronos / fev protocol).
QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)

_BACKEND = "numpy"


def _mean(values: np.ndarray, what: str) -> float:
    if np.all(np.isnan(values)):
        raise ValueError(f"cannot score {what}: the actuals have no observed (non-NaN) values")
    return float(np.nanmean(values))


def crps(y, samples, *, estimator: str = "fair", pointwise: bool = False):
    """Continuous ranked probability score of forecast draws (lower is better).

    Parameters
    ----------
    y : Series or array, shape ``(time,)``
        Actuals; NaN steps are skipped.
    samples : array ``(sample, time)`` or DataFrame ``time x sample``
        Draws from the predictive distribution of each step.
    estimator : {"fair", "empirical"}
        ``"fair"`` (default) is unbiased for the CRPS of the distribution the draws come from
        (scoringrules' ``"pwm"`` estimator, equal to the ``"fair"`` one in O(S log S) rather
        than O(S^2) memory); ``"empirical"`` scores the empirical distribution of the draws
        itself (scoringrules' ``"qd"``).
    pointwise : bool
        Return the per-step scores instead of their mean.

    Returns
    -------
    float, or Series / array of shape ``(time,)``

    Notes
    -----
    ``CRPS(F, y) = E|X - y| - E|X - X'| / 2`` with ``X, X' ~ F`` independent.
    """
    estimators = {"fair": "pwm", "empirical": "qd"}
    if estimator not in estimators:
        raise ValueError(f"estimator must be one of {sorted(estimators)}; got {estimator!r}")
    actuals = as_actuals(y)
    draws = as_samples(samples, actuals)
    scores = np.full(actuals.num_steps, np.nan)
    obs = ~np.isnan(actuals.values)
    if obs.any():
        scores[obs] = sr.crps_ensemble(
            actuals.values[obs],
            draws[:, obs],
            m_axis=0,
            # one draw: the fair estimator divides by S(S-1); both equal |x - y| there
            estimator=estimators[estimator] if draws.shape[0] > 1 else "qd",
            backend=_BACKEND,
        )
    if pointwise:
        return actuals.wrap(scores, "crps")
    return _mean(scores, "CRPS")


def _pinball(obs: np.ndarray, quantiles: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Pinball losses, shape ``(time, quantile)`` (NaN where ``obs`` is NaN)."""
    out = np.full(quantiles.shape, np.nan)
    ok = ~np.isnan(obs)
    for j, level in enumerate(q):
        out[ok, j] = sr.quantile_score(obs[ok], quantiles[ok, j], float(level), backend=_BACKEND)
    return out


def pinball_loss(y, forecast, q: float, *, pointwise: bool = False):
    """Pinball (quantile) loss of the level-``q`` quantile forecast.

    ``rho_q(y, f) = q (y - f)`` if ``y > f`` else ``(1 - q)(f - y)``.

    Parameters
    ----------
    y : Series or array, shape ``(time,)``
    forecast : samples, bands DataFrame or quantile DataFrame
        The level-``q`` quantile is read from it (from the draws by linear interpolation).
    q : float in (0, 1)
    pointwise : bool

    Returns
    -------
    float, or Series / array of shape ``(time,)``
    """
    q_arr = check_quantile_levels(q)
    if q_arr.size != 1:
        raise ValueError(f"q must be a single quantile level; got {q!r}")
    actuals = as_actuals(y)
    quantiles = as_quantiles(forecast, q_arr, actuals)
    scores = _pinball(actuals.values, quantiles, q_arr)[:, 0]
    if pointwise:
        return actuals.wrap(scores, f"pinball_{q_arr[0]:g}")
    return _mean(scores, "the pinball loss")


def wql(y, forecast, *, q=QUANTILES) -> float:
    """Weighted quantile loss (the Chronos / fev protocol).

    ``WQL = mean_q [ 2 * sum_t rho_q(y_t, f_{q,t}) / sum_t |y_t| ]``, sums over observed steps.
    To pool several series (as the benchmark does), concatenate their actuals and forecasts.

    Parameters
    ----------
    y : Series or array, shape ``(time,)``
    forecast : samples, bands DataFrame or quantile DataFrame
        Must provide the quantiles ``q`` (a bands DataFrame needs ``median`` and the 20, 40, 60
        and 80% intervals for the default levels).
    q : sequence of float
        Quantile levels, default 0.1, 0.2, ..., 0.9.

    Returns
    -------
    float
    """
    q_arr = check_quantile_levels(q)
    actuals = as_actuals(y)
    quantiles = as_quantiles(forecast, q_arr, actuals)
    losses = _pinball(actuals.values, quantiles, q_arr)
    denom = np.nansum(np.abs(actuals.values))
    if denom == 0:
        raise ValueError("WQL is undefined: the sum of |actuals| is zero (or all are missing)")
    return float(np.mean(2 * np.nansum(losses, axis=0) / denom))


def _interval(forecast, level: float, actuals) -> tuple[np.ndarray, np.ndarray]:
    qs = as_quantiles(forecast, [(1 - level) / 2, (1 + level) / 2], actuals)
    return qs[:, 0], qs[:, 1]


def _bounds(forecast, level, lower, upper, actuals):
    if forecast is not None:
        if level is None:
            raise ValueError("level is required with a forecast (e.g. level=0.8)")
        if lower is not None or upper is not None:
            raise ValueError("pass either forecast= and level=, or lower= and upper=, not both")
        return _interval(forecast, float(check_levels(level)[0]), actuals)
    if lower is None or upper is None:
        raise ValueError("pass forecast= and level=, or both lower= and upper=")
    lo = as_aligned_vector(lower, actuals, "lower")
    hi = as_aligned_vector(upper, actuals, "upper")
    if np.any(lo > hi):
        raise ValueError(f"lower exceeds upper at {int(np.sum(lo > hi))} steps")
    return lo, hi


def interval_coverage(
    y, forecast=None, *, level=None, lower=None, upper=None, pointwise: bool = False
):
    """Fraction of observed steps inside the central ``level`` interval.

    Give either ``forecast`` (samples, bands or quantiles) with ``level``, or explicit
    ``lower`` / ``upper`` bounds.

    Returns
    -------
    float, or Series / array of shape ``(time,)`` with 1.0 (inside), 0.0 or NaN (missing)
    """
    actuals = as_actuals(y)
    lo, hi = _bounds(forecast, level, lower, upper, actuals)
    inside = ((actuals.values >= lo) & (actuals.values <= hi)).astype(float)
    inside[np.isnan(actuals.values)] = np.nan
    if pointwise:
        return actuals.wrap(inside, "covered")
    return _mean(inside, "coverage")


def interval_width(y, forecast=None, *, level=None, lower=None, upper=None, pointwise=False):
    """Mean width ``upper - lower`` of the central ``level`` interval over observed steps.

    Same arguments as :func:`interval_coverage` (``y`` fixes the index and which steps count).
    """
    actuals = as_actuals(y)
    lo, hi = _bounds(forecast, level, lower, upper, actuals)
    width = hi - lo
    width[np.isnan(actuals.values)] = np.nan
    if pointwise:
        return actuals.wrap(width, "width")
    return _mean(width, "interval width")


def coverage_table(y, forecast, *, levels=(0.5, 0.8, 0.95)) -> pd.DataFrame:
    """Empirical coverage and mean width of the central interval at each nominal level.

    Returns
    -------
    DataFrame with columns ``level`` (nominal), ``coverage`` (empirical), ``width`` (mean),
    ``num_observed``; one row per level. The input of :func:`plot_calibration`.
    """
    levels = check_levels(levels, "levels")
    actuals = as_actuals(y)
    rows = []
    for level in levels:
        lo, hi = _interval(forecast, float(level), actuals)
        obs = ~np.isnan(actuals.values)
        inside = (actuals.values[obs] >= lo[obs]) & (actuals.values[obs] <= hi[obs])
        rows.append(
            {
                "level": float(level),
                "coverage": float(inside.mean()) if obs.any() else np.nan,
                "width": float(np.mean(hi[obs] - lo[obs])) if obs.any() else np.nan,
                "num_observed": int(obs.sum()),
            }
        )
    return pd.DataFrame(rows)


def seasonal_scale(y_train, season: int = 1) -> float:
    """In-sample mean absolute ``season``-step difference of the training series (NaN-aware).

    The denominator of MASE and MSIS.
    """
    train = as_actuals(y_train, "y_train").values
    if not isinstance(season, int | np.integer) or season < 1:
        raise ValueError(f"season must be a positive integer; got {season!r}")
    if train.shape[0] <= season:
        raise ValueError(
            f"y_train has {train.shape[0]} steps; more than season={season} are needed"
        )
    diffs = np.abs(train[season:] - train[:-season])
    if np.all(np.isnan(diffs)):
        raise ValueError("y_train has no pair of observed values season steps apart")
    scale = float(np.nanmean(diffs))
    if scale == 0:
        raise ValueError(f"y_train is constant at lag {season}: the seasonal scale is zero")
    return scale


def msis(y, forecast=None, *, level=0.95, y_train, season: int = 1, lower=None, upper=None):
    """Mean scaled interval score of the central ``level`` interval (M4 definition).

    ``MSIS = mean_t IS_alpha(l_t, u_t, y_t) / scale`` with ``alpha = 1 - level``,
    ``IS = (u - l) + 2/alpha (l - y) 1{y < l} + 2/alpha (y - u) 1{y > u}`` and ``scale`` the
    in-sample mean absolute seasonal difference of ``y_train``.
    """
    level = float(check_levels(level)[0])
    actuals = as_actuals(y)
    lo, hi = _bounds(forecast, level if forecast is not None else None, lower, upper, actuals)
    scale = seasonal_scale(y_train, season)
    obs = ~np.isnan(actuals.values)
    scores = np.full(actuals.num_steps, np.nan)
    if obs.any():
        scores[obs] = sr.interval_score(
            actuals.values[obs], lo[obs], hi[obs], 1 - level, backend=_BACKEND
        )
    return _mean(scores, "MSIS") / scale


def mase(y, forecast, *, y_train, season: int = 1, point: str = "median") -> float:
    """Mean absolute scaled error: ``mean_t |y_t - f_t| / scale``.

    ``scale`` is the in-sample mean absolute ``season``-step difference of ``y_train``
    (:func:`seasonal_scale`). The point forecast is the ``point`` column of a bands DataFrame,
    the median (or mean) of samples, or a Series / 1-D array.
    """
    actuals = as_actuals(y)
    pred = as_point(forecast, actuals, point)
    return _mean(np.abs(actuals.values - pred), "MASE") / seasonal_scale(y_train, season)


def mse(y, forecast, *, point: str = "mean") -> float:
    """Mean squared error of the point forecast (default: the predictive mean)."""
    actuals = as_actuals(y)
    pred = as_point(forecast, actuals, point)
    return _mean((actuals.values - pred) ** 2, "MSE")


def mae(y, forecast, *, point: str = "median") -> float:
    """Mean absolute error of the point forecast (default: the predictive median)."""
    actuals = as_actuals(y)
    pred = as_point(forecast, actuals, point)
    return _mean(np.abs(actuals.values - pred), "MAE")


def pit(y, samples, *, key=None):
    """Probability integral transform values ``F_t(y_t)`` from forecast draws.

    With ``S`` draws, ``r_lo = #{x < y}`` and ``r_hi = #{x <= y}``, the PIT is
    ``(r + V) / (S + 1)`` with ``r`` uniform on ``r_lo .. r_hi`` and ``V ~ U(0, 1)`` (the
    randomised rank, exactly uniform on (0, 1) for a calibrated forecast, ties included).
    Without ``key`` the deterministic mid-point ``((r_lo + r_hi) / 2 + 1/2) / (S + 1)`` is used.

    Parameters
    ----------
    y : Series or array, shape ``(time,)``
    samples : array ``(sample, time)`` or DataFrame ``time x sample``
    key : int or numpy.random.Generator, optional (keyword-only)
        Seed of the randomisation.

    Returns
    -------
    Series / array of shape ``(time,)``, NaN at missing actuals
    """
    actuals = as_actuals(y)
    draws = as_samples(samples, actuals)
    num = draws.shape[0]
    r_lo = np.sum(draws < actuals.values, axis=0).astype(float)
    r_hi = np.sum(draws <= actuals.values, axis=0).astype(float)
    if key is None:
        values = ((r_lo + r_hi) / 2 + 0.5) / (num + 1)
    else:
        rng = key if isinstance(key, np.random.Generator) else np.random.default_rng(key)
        rank = r_lo + np.floor(rng.uniform(size=r_lo.shape) * (r_hi - r_lo + 1))
        values = (rank + rng.uniform(size=r_lo.shape)) / (num + 1)
    values[np.isnan(actuals.values)] = np.nan
    return actuals.wrap(values, "pit")
