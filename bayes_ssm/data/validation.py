"""The one input-validation boundary: pandas (or arrays) in, a validated ``SeriesData`` out.

Everything below this module (models, kernels) sees plain arrays and trusts them. Missing
values inside a series are data (NaN), not an error; everything else that would make a silent
wrong answer is refused here with a message that names the problem.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayes_ssm.data.frequency import infer_offset
from bayes_ssm.data.time_labels import as_time_index, period_offset

__all__ = [
    "SeriesData",
    "as_series_data",
    "future_index",
    "check_future_covariates",
    "to_model_time",
]


@dataclass(frozen=True)
class SeriesData:
    """A validated univariate series with its time index and optional covariates.

    Attributes
    ----------
    y : ndarray, shape ``(time,)``, float64
        Observations; NaN marks a missing value.
    index : pandas.DatetimeIndex or pandas.RangeIndex, length ``time``
        Sorted, unique timestamps (zone and resolution as given), or integer time as a
        ``RangeIndex`` whose ``step`` is the labels' step (``0, 1, ...`` for a plain array),
        named like the input's index. See :mod:`bayes_ssm.data.time_labels` for what each index
        kind becomes.
    freq : pandas.DateOffset or None
        The sampling frequency, inferred from the index or given explicitly.
    covariates : ndarray, shape ``(time, covariate)``, float64, or None
        Exogenous regressors aligned with ``y`` (no NaN allowed).
    covariate_names : tuple of str
        Column names of ``covariates``.
    name : str
        The series' name (for labels and saved fits).
    times : ndarray, shape ``(time,)``, float64, or None
        Continuous time only: the observation times in units of ``time_unit`` from the first
        timestamp (``None`` on a regular grid).
    time_unit : pandas.Timedelta or None
        Continuous time on a DatetimeIndex: the length of one time unit (the given ``freq``,
        else the most common gap); ``None`` for float times.
    """

    y: np.ndarray
    index: pd.Index
    freq: object
    covariates: np.ndarray | None = None
    covariate_names: tuple[str, ...] = ()
    name: str = "y"
    times: np.ndarray | None = None
    time_unit: object = None

    @property
    def num_steps(self) -> int:
        return int(self.y.shape[0])

    @property
    def num_observed(self) -> int:
        return int(np.sum(~np.isnan(self.y)))


def _as_float(values, what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise ValueError(f"{what} must be numeric; got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{what} must be real; got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if np.isinf(arr).any():
        raise ValueError(f"{what} contains +/-inf at positions {np.flatnonzero(np.isinf(arr))[:5]}")
    return arr


def _check_index(index: pd.Index, what: str) -> None:
    if index.has_duplicates:
        dup = index[index.duplicated()][:3].tolist()
        raise ValueError(f"{what} has duplicated timestamps, e.g. {dup}")
    if not index.is_monotonic_increasing:
        raise ValueError(f"{what} is not sorted in increasing time order; sort it first")


def _infer_freq(index: pd.DatetimeIndex, freq):
    if freq is not None:
        return pd.tseries.frequencies.to_offset(freq)
    if index.freq is not None:
        return index.freq
    if len(index) >= 3:
        inferred = infer_offset(index)
        if inferred is not None:
            return inferred
    raise ValueError(
        "cannot infer the frequency of the time index (irregular or too few timestamps); "
        "pass freq= (e.g. 'W-SAT', 'D', 'B') and put NaN at the missing timestamps, or fit "
        "an irregular series in continuous time (StructuralTS(time='continuous'))"
    )


def as_series_data(
    y, *, covariates=None, freq=None, min_length: int = 2, time: str = "discrete"
) -> SeriesData:
    """Validate a series (and covariates) and return a :class:`SeriesData`.

    Parameters
    ----------
    y : pandas.Series, one-column pandas.DataFrame, or array-like of shape ``(time,)``
        With a DatetimeIndex (sorted, unique; any zone and resolution), a PeriodIndex
        (converted with ``to_timestamp``), integer time labels (kept; their step is the greatest
        common divisor of the differences), or date strings (parsed; ambiguous day/month
        labels are refused); a plain array gets a RangeIndex. Gaps are filled with NaN at the
        missing timestamps (missing values are data); other index kinds are refused.
    covariates : pandas.DataFrame or array-like of shape ``(time, covariate)``, optional
        Exogenous regressors on the same index as ``y``; NaN is not allowed in them.
    freq : str or pandas.DateOffset, optional
        Sampling frequency; inferred from the index when omitted.
    min_length : int
        Fewest observed (non-NaN) values accepted.
    time : {"discrete", "continuous", "auto"}
        ``"discrete"``: a regular grid (timestamps off it are refused). ``"continuous"``: any
        strictly increasing DatetimeIndex or numeric index; ``times`` are set (in units of
        ``freq`` when given, else of the most common gap; a numeric index is its own unit).
        ``"auto"``: continuous when the index is irregular (a DatetimeIndex off every grid, or
        a float index with unequal spacing), discrete otherwise.

    Returns
    -------
    SeriesData
    """
    if time not in ("discrete", "continuous", "auto"):
        raise ValueError(f"time must be 'discrete', 'continuous' or 'auto'; got {time!r}")
    if time == "continuous" or (time == "auto" and _is_irregular(y, freq)):
        return _continuous_series_data(y, covariates, freq, min_length)
    name = "y"
    if isinstance(y, pd.DataFrame):
        if y.shape[1] != 1:
            raise ValueError(
                f"y must be a Series or a one-column DataFrame; got {y.shape[1]} columns "
                f"{list(y.columns)[:5]}"
            )
        y = y.iloc[:, 0]
    if isinstance(y, pd.Series):
        name = str(y.name) if y.name is not None else "y"
        index = as_time_index(y.index)
        if freq is None and isinstance(y.index, pd.PeriodIndex) and len(y.index):
            freq = period_offset(y.index)
        if isinstance(index, pd.DatetimeIndex):
            if index.hasnans:
                raise ValueError("the index of y contains NaT (missing timestamps)")
            _check_index(index, "the index of y")
            y = pd.Series(y.to_numpy(), index=index)
            freq = _infer_freq(index, freq)
            full = pd.date_range(index[0], index[-1], freq=freq, name=index.name, unit=index.unit)
            if len(full) != len(index) or not full.equals(index):
                extra = index.difference(full)
                if len(extra):
                    raise ValueError(
                        f"timestamps {extra[:3].tolist()} are off the {freq.freqstr} grid "
                        f"that starts at {index[0]} (an irregular series can be fitted in "
                        "continuous time: StructuralTS(time='continuous'))"
                    )
                y = y.reindex(full)
                index = full
            else:
                index = full  # carries freq
        else:
            _check_index(y.index, "the index of y")
            if len(index) != len(y) or not np.array_equal(index, y.index):
                # integer time with gaps: the gaps are missing values, not renumbered away
                y = pd.Series(y.to_numpy(), index=np.asarray(y.index, dtype=np.float64))
                y = y.reindex(np.asarray(index, dtype=np.float64))
            freq = None
        values = _as_float(y.to_numpy(), "y")
    else:
        values = _as_float(y, "y")
        if values.ndim != 1:
            raise ValueError(f"y must be one-dimensional (time,); got shape {values.shape}")
        index = pd.RangeIndex(len(values))
        freq = pd.tseries.frequencies.to_offset(freq) if freq is not None else None
    if values.ndim != 1:
        raise ValueError(f"y must be one-dimensional (time,); got shape {values.shape}")
    observed = int(np.sum(~np.isnan(values)))
    if observed < min_length:
        raise ValueError(
            f"y has {observed} observed values; at least {min_length} are needed for this model"
        )
    cov, cov_names = None, ()
    if covariates is not None:
        cov, cov_names = _align_covariates(covariates, index, "covariates")
    return SeriesData(values, index, freq, cov, cov_names, name)


def _align_covariates(covariates, index: pd.Index, what: str):
    if isinstance(covariates, pd.Series):
        covariates = covariates.to_frame()
    if isinstance(covariates, pd.DataFrame):
        names = tuple(str(c) for c in covariates.columns)
        if isinstance(index, pd.DatetimeIndex):
            missing = index.difference(covariates.index)
            if len(missing):
                raise ValueError(
                    f"{what} have no rows for {len(missing)} timestamps, e.g. "
                    f"{missing[:3].tolist()}"
                )
            covariates = covariates.reindex(index)
        elif (
            isinstance(index, pd.RangeIndex)
            and covariates.index.dtype.kind in "iu"
            and not covariates.index.equals(pd.RangeIndex(len(covariates)))
        ):  # integer time labels: aligned by label, so rows at the gaps must exist too
            missing = index.difference(covariates.index)
            if len(missing):
                raise ValueError(
                    f"{what} have no rows for {len(missing)} integer time steps, e.g. "
                    f"{missing[:3].tolist()}"
                )
            covariates = covariates.reindex(index)
        elif len(covariates) != len(index):
            raise ValueError(f"{what} have {len(covariates)} rows; expected {len(index)}")
        values = _as_float(covariates.to_numpy(), what)
    else:
        values = _as_float(covariates, what)
        if values.ndim == 1:
            values = values[:, None]
        if values.shape[0] != len(index):
            raise ValueError(f"{what} have {values.shape[0]} rows; expected {len(index)}")
        names = tuple(f"x{i}" for i in range(values.shape[1]))
    if values.ndim != 2:
        raise ValueError(f"{what} must be 2-D (time, covariate); got shape {values.shape}")
    if np.isnan(values).any():
        rows = np.flatnonzero(np.isnan(values).any(axis=1))
        raise ValueError(f"{what} contain NaN at {len(rows)} rows, e.g. {index[rows[:3]].tolist()}")
    return values, names


def _is_irregular(y, freq) -> bool:
    """Whether ``y`` has an index that no regular grid holds (for ``time="auto"``)."""
    if isinstance(y, pd.DataFrame) and y.shape[1] == 1:
        y = y.iloc[:, 0]
    if not isinstance(y, pd.Series) or len(y) < 2:
        return False
    index = y.index
    if isinstance(index, pd.DatetimeIndex):
        if not index.is_monotonic_increasing or index.has_duplicates:
            return False  # the discrete path names the problem
        try:
            step = _infer_freq(index, freq)
        except ValueError:
            return True
        return len(index.difference(pd.date_range(index[0], index[-1], freq=step))) > 0
    if pd.api.types.is_float_dtype(index.dtype):
        gaps = np.diff(index.to_numpy(dtype=np.float64))
        return bool(np.ptp(gaps) > 1e-9 * max(np.abs(gaps).max(), 1.0))
    return False


def _time_unit(index: pd.DatetimeIndex, freq) -> pd.Timedelta:
    if freq is not None:
        offset = pd.tseries.frequencies.to_offset(freq)
        try:
            return pd.Timedelta(offset.nanos, unit="ns")
        except ValueError:
            if isinstance(offset, pd.offsets.Week):
                return pd.Timedelta(weeks=offset.n)
            raise ValueError(
                f"continuous time needs freq of a fixed length (e.g. '7D', 'W', 'h'); got "
                f"{offset.freqstr}"
            ) from None
    gaps = pd.Series(index[1:] - index[:-1])  # Timedeltas: independent of the index's unit
    return pd.Timedelta(gaps.mode().iloc[0])


def _continuous_series_data(y, covariates, freq, min_length) -> SeriesData:
    """The continuous-time path of :func:`as_series_data`: keep the index, compute ``times``."""
    name = "y"
    if isinstance(y, pd.DataFrame):
        if y.shape[1] != 1:
            raise ValueError(f"y must be a Series or a one-column DataFrame; got {y.shape[1]}")
        y = y.iloc[:, 0]
    if not isinstance(y, pd.Series):
        y = pd.Series(np.asarray(y))
    name = str(y.name) if y.name is not None else "y"
    index = y.index
    _check_index(index, "the index of y")
    if len(index) < 2:
        raise ValueError("continuous time needs at least 2 timestamps")
    values = _as_float(y.to_numpy(), "y")
    unit = None
    if isinstance(index, pd.DatetimeIndex):
        unit = _time_unit(index, freq)
        times = np.asarray((index - index[0]) / unit, dtype=np.float64)
    elif pd.api.types.is_numeric_dtype(index.dtype):
        raw = index.to_numpy(dtype=np.float64)
        if not np.all(np.isfinite(raw)):
            raise ValueError("the index of y contains NaN or inf times")
        times = raw - raw[0]
    else:
        raise ValueError(
            f"continuous time needs a DatetimeIndex or a numeric index; got {type(index).__name__}"
        )
    observed = int(np.sum(~np.isnan(values)))
    if observed < min_length:
        raise ValueError(
            f"y has {observed} observed values; at least {min_length} are needed for this model"
        )
    cov, cov_names = None, ()
    if covariates is not None:
        cov, cov_names = _align_covariates(covariates, index, "covariates")
    return SeriesData(values, index, None, cov, cov_names, name, times, unit)


def to_model_time(data: SeriesData, stamps) -> np.ndarray:
    """Future timestamps (or floats) in the continuous time units of ``data``, shape ``(k,)``.

    Raises
    ------
    ValueError
        ``data`` is not in continuous time, or the stamps are not strictly increasing after the
        last fitted timestamp.
    """
    if data.times is None:
        raise ValueError("forecast times need a fit in continuous time (time='continuous')")
    if isinstance(data.index, pd.DatetimeIndex):
        stamps = pd.DatetimeIndex(stamps)
        if stamps.tz != data.index.tz:
            raise ValueError(f"forecast times have time zone {stamps.tz}; the fit {data.index.tz}")
        out = np.asarray((stamps - data.index[0]) / data.time_unit, dtype=np.float64)
    else:
        out = np.asarray(stamps, dtype=np.float64).ravel() - float(data.index[0])
    if (
        out.size == 0
        or not np.all(np.isfinite(out))
        or np.any(np.diff(np.r_[data.times[-1], out]) <= 0)
    ):
        raise ValueError(
            f"forecast times must be strictly increasing and after the last fitted timestamp "
            f"{data.index[-1]}"
        )
    return out


def future_index(data: SeriesData, horizon: int) -> pd.Index:
    """Timestamps of the ``horizon`` steps after the end of ``data`` (named like its index)."""
    if not isinstance(horizon, int | np.integer) or horizon <= 0:
        raise ValueError(f"horizon must be a positive integer; got {horizon!r}")
    name = data.index.name
    if data.times is not None:  # continuous time: one unit apart after the last timestamp
        steps = np.arange(1, horizon + 1)
        if isinstance(data.index, pd.DatetimeIndex):
            return pd.DatetimeIndex(data.index[-1] + steps * data.time_unit, name=name)
        return pd.Index(float(data.index[-1]) + steps.astype(float), name=name)
    if isinstance(data.index, pd.DatetimeIndex):
        return pd.date_range(
            data.index[-1], periods=horizon + 1, freq=data.freq, name=name, unit=data.index.unit
        )[1:]
    step = data.index.step if isinstance(data.index, pd.RangeIndex) else 1
    start = int(data.index[-1]) + step
    return pd.RangeIndex(start, start + step * horizon, step, name=name)


def check_future_covariates(
    data: SeriesData, covariates, horizon: int, *, index: pd.Index | None = None
) -> np.ndarray | None:
    """Validate covariates over the forecast horizon; ``None`` when the model has none.

    ``index``: the forecast's timestamps (default: ``horizon`` steps of the fitted grid)."""
    if data.covariates is None:
        if covariates is not None:
            raise ValueError("covariates were given for the horizon but the fit used none")
        return None
    if covariates is None:
        raise ValueError(
            f"the model uses covariates {list(data.covariate_names)}; pass covariates= for the "
            f"{horizon} forecast steps"
        )
    if index is None:
        index = future_index(data, horizon)
    values, names = _align_covariates(covariates, index, "future covariates")
    if isinstance(covariates, pd.DataFrame) and names != data.covariate_names:
        raise ValueError(
            f"future covariates have columns {list(names)}; expected {list(data.covariate_names)}"
        )
    return values
