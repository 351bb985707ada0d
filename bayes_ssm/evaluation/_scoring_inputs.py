"""Normalise what the metrics accept (pandas or arrays) into aligned NumPy arrays.

Three kinds of forecast are understood, each aligned on the actuals' time index:

samples
    ``ndarray`` (or any array, e.g. a JAX array) of shape ``(sample, time)``, or a
    ``pandas.DataFrame`` indexed by time whose columns are integer draw numbers
    (``time x sample``).
bands
    the forecast ``DataFrame`` of :meth:`Fit.forecast`: columns ``mean``, ``median``,
    ``lower_80``, ``upper_80``, ... (``lower_<100*level:g>`` / ``upper_<100*level:g>``).
quantiles
    a ``DataFrame`` indexed by time whose columns are quantile levels (floats in (0, 1)).

No JAX, no numpyro: this module is NumPy and pandas only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bayes_ssm.inference.forecast import check_levels

__all__ = [
    "Actuals",
    "as_actuals",
    "as_samples",
    "as_quantiles",
    "as_point",
    "as_aligned_vector",
    "band_columns",
    "check_levels",
    "check_quantile_levels",
]


class Actuals:
    """Observed values ``y`` of shape ``(time,)`` (NaN = missing) and their index (or None)."""

    __slots__ = ("values", "index", "name")

    def __init__(self, values: np.ndarray, index: pd.Index | None, name: str = "y"):
        self.values = values
        self.index = index
        self.name = name

    @property
    def num_steps(self) -> int:
        return int(self.values.shape[0])

    def wrap(self, values: np.ndarray, name: str | None = None):
        """Return per-step ``values`` as a Series on the actuals' index (or the bare array)."""
        if self.index is None:
            return values
        return pd.Series(values, index=self.index, name=name)


def _float_array(values, what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise ValueError(f"{what} must be numeric; got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if np.isinf(arr).any():
        raise ValueError(f"{what} contains +/-inf")
    return arr


def as_actuals(y, what: str = "y") -> Actuals:
    """Validate observed values: a Series, a one-column DataFrame or a 1-D array."""
    if isinstance(y, pd.DataFrame):
        if y.shape[1] != 1:
            raise ValueError(f"{what} must be a Series or 1-D array; got a DataFrame {y.shape}")
        y = y.iloc[:, 0]
    if isinstance(y, pd.Series):
        if y.index.has_duplicates:
            raise ValueError(f"the index of {what} has duplicated entries")
        return Actuals(_float_array(y.to_numpy(), what), y.index, str(y.name or what))
    arr = _float_array(y, what)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional (time,); got shape {arr.shape}")
    return Actuals(arr, None, what)


def _reorder(actuals: Actuals, index: pd.Index, what: str) -> np.ndarray:
    """Positions of ``actuals.index`` inside ``index``; ValueError when they differ."""
    if index.has_duplicates:
        raise ValueError(f"the index of {what} has duplicated entries")
    if index.equals(actuals.index):
        return np.arange(len(index))
    extra = index.difference(actuals.index)
    missing = actuals.index.difference(index)
    if len(extra) and len(actuals.index):
        try:
            beyond = bool((extra > actuals.index.max()).all())
        except TypeError:
            beyond = False
        if beyond:
            raise ValueError(
                f"{what} runs past the end of the actuals: {len(extra)} forecast steps after "
                f"{actuals.index.max()} (e.g. {list(extra[:3])}); the horizon is longer than "
                f"the test window of {actuals.num_steps} steps"
            )
    if len(extra) or len(missing):
        raise ValueError(
            f"the index of {what} is not aligned with the index of the actuals: "
            f"{len(extra)} entries only in {what} (e.g. {list(extra[:3])}), "
            f"{len(missing)} only in the actuals (e.g. {list(missing[:3])})"
        )
    return index.get_indexer(actuals.index)


def _check_length(n: int, actuals: Actuals, what: str) -> None:
    if n != actuals.num_steps:
        if n > actuals.num_steps:
            raise ValueError(
                f"{what} has {n} time steps but the actuals have {actuals.num_steps}: the "
                "horizon is longer than the test window"
            )
        raise ValueError(f"{what} has {n} time steps; the actuals have {actuals.num_steps}")


def as_aligned_vector(x, actuals: Actuals, what: str) -> np.ndarray:
    """A per-step vector (Series or 1-D array) aligned with the actuals, shape ``(time,)``."""
    if isinstance(x, pd.DataFrame):
        if x.shape[1] != 1:
            raise ValueError(f"{what} must be a Series or 1-D array; got a DataFrame {x.shape}")
        x = x.iloc[:, 0]
    if isinstance(x, pd.Series):
        values = _float_array(x.to_numpy(), what)
        if actuals.index is not None:
            return values[_reorder(actuals, x.index, what)]
        _check_length(len(values), actuals, what)
        return values
    values = _float_array(x, what)
    if values.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional (time,); got shape {values.shape}")
    _check_length(len(values), actuals, what)
    return values


def _is_sample_frame(frame: pd.DataFrame) -> bool:
    return all(isinstance(c, int | np.integer) for c in frame.columns)


def as_samples(samples, actuals: Actuals, what: str = "samples") -> np.ndarray:
    """Forecast draws aligned with the actuals, shape ``(sample, time)``."""
    if isinstance(samples, pd.DataFrame):
        if not _is_sample_frame(samples):
            raise ValueError(
                f"{what} as a DataFrame must be time x sample with integer draw columns; got "
                f"columns {list(samples.columns)[:5]} (pass the forecast draws, not the bands)"
            )
        values = _float_array(samples.to_numpy(), what)
        if actuals.index is not None:
            values = values[_reorder(actuals, samples.index, what)]
        else:
            _check_length(values.shape[0], actuals, what)
        return values.T
    values = _float_array(samples, what)
    if values.ndim != 2:
        raise ValueError(f"{what} must have shape (sample, time); got shape {values.shape}")
    _check_length(values.shape[1], actuals, f"{what} (shape {values.shape})")
    if np.isnan(values).any():
        raise ValueError(f"{what} contain NaN")
    return values


def _fmt_level(level: float) -> str:
    return f"{100 * level:g}"


def band_columns(level: float) -> tuple[str, str]:
    """Column names of the central ``level`` interval in a forecast DataFrame."""
    check_levels([level])
    return f"lower_{_fmt_level(level)}", f"upper_{_fmt_level(level)}"


def check_quantile_levels(q) -> np.ndarray:
    return check_levels(q, what="quantile levels")


def _band_quantile_column(frame: pd.DataFrame, q: float) -> str:
    if np.isclose(q, 0.5):
        if "median" in frame.columns:
            return "median"
        raise ValueError("the forecast DataFrame has no 'median' column for quantile 0.5")
    level = abs(2 * q - 1)
    lower, upper = band_columns(level)
    name = lower if q < 0.5 else upper
    if name not in frame.columns:
        have = sorted(c for c in frame.columns if str(c).startswith(("lower_", "upper_")))
        raise ValueError(
            f"quantile {q:g} needs column {name!r} (the {_fmt_level(level)}% interval); the "
            f"forecast has {have}. Forecast with prob=... including {level:g}, or pass samples"
        )
    return name


def as_quantiles(
    forecast, q: Sequence[float], actuals: Actuals, what: str = "forecast"
) -> np.ndarray:
    """Quantile forecasts at levels ``q`` aligned with the actuals, shape ``(time, quantile)``.

    ``forecast`` may be samples ``(sample, time)``, a bands DataFrame (``median``,
    ``lower_80`` ...) or a quantile DataFrame (columns are the levels ``q``).
    """
    q = check_quantile_levels(q)
    if isinstance(forecast, pd.DataFrame) and not _is_sample_frame(forecast):
        if all(isinstance(c, float | np.floating) for c in forecast.columns):
            cols = []
            for level in q:
                match = [c for c in forecast.columns if np.isclose(c, level)]
                if not match:
                    raise ValueError(
                        f"{what} has no column for quantile {level:g}; columns "
                        f"{list(forecast.columns)}"
                    )
                cols.append(match[0])
        else:
            cols = [_band_quantile_column(forecast, level) for level in q]
        values = _float_array(forecast[cols].to_numpy(), what)
        if actuals.index is not None:
            return values[_reorder(actuals, forecast.index, what)]
        _check_length(values.shape[0], actuals, what)
        return values
    draws = as_samples(forecast, actuals, what)
    return np.quantile(draws, q, axis=0).T


def as_point(forecast, actuals: Actuals, point: str = "median", what: str = "forecast"):
    """A point forecast ``(time,)``: a Series/1-D array, a bands DataFrame column, or the
    median (or mean) of samples ``(sample, time)``."""
    if point not in ("median", "mean"):
        raise ValueError(f"point must be 'median' or 'mean'; got {point!r}")
    if isinstance(forecast, pd.DataFrame) and not _is_sample_frame(forecast):
        if point not in forecast.columns:
            raise ValueError(f"{what} has no {point!r} column; columns {list(forecast.columns)}")
        return as_aligned_vector(forecast[point], actuals, what)
    if isinstance(forecast, pd.DataFrame) or np.ndim(forecast) == 2:
        draws = as_samples(forecast, actuals, what)
        return np.median(draws, axis=0) if point == "median" else draws.mean(axis=0)
    return as_aligned_vector(forecast, actuals, what)
