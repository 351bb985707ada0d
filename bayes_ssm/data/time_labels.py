"""Time labels in, a regular time axis out: what every index kind becomes, or a clear refusal.

The one place that decides what a series' index means (used by the validation boundary and by
the command line's date columns):

- ``DatetimeIndex`` (naive or tz-aware, any resolution): kept as it is, zone and unit included.
- ``PeriodIndex``: converted with ``to_timestamp`` (the start of each period).
- integer labels (``RangeIndex`` or any integer index, e.g. years 1990, 1991, ... or steps
  1000, 1007, ...): kept as integer time. The step is the greatest common divisor of the
  differences, so a gap stays a gap (filled with NaN by the caller), never renumbered.
- floats that are all whole numbers: as integers; other floats are refused.
- strings: parsed as dates with :func:`parse_dates` (an explicit ``date_format``, or a format
  that reads every label one way only; ``01/02/2020`` style labels that read both as day-first
  and month-first are refused unless ``dayfirst`` or ``date_format`` says which).
- anything else (timedeltas, intervals, categories, a MultiIndex, mixed objects): refused.
"""

from __future__ import annotations

import math
import warnings
from functools import reduce

import numpy as np
import pandas as pd

from bayes_ssm.data.frequency import infer_offset

__all__ = ["parse_dates", "as_time_index", "period_offset", "MAX_INTEGER_STEPS"]

#: Longest integer time axis accepted after the gaps are filled (steps), so that two labels far
#: apart (e.g. 0 and 10**12) are refused instead of allocating a huge NaN-filled series.
MAX_INTEGER_STEPS = 10_000_000


def _integer_like(values) -> np.ndarray | None:
    """The labels as int64 when every one is a whole number (ints, whole floats, or strings of
    digits are NOT included: a string is a date label); else ``None``."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f":
        if (
            np.all(np.isfinite(arr))
            and np.all(arr == np.round(arr))
            and np.all(np.abs(arr) < 2**62)
        ):
            return arr.astype(np.int64)
    return None


def parse_dates(
    labels, *, date_format: str | None = None, dayfirst: bool | None = None, what="the dates"
):
    """Parse date labels (strings, or anything ``pd.to_datetime`` reads) to a ``DatetimeIndex``.

    Parameters
    ----------
    labels : array-like of str, length ``time``
    date_format : str, optional
        An explicit ``strftime`` format (e.g. ``"%d/%m/%Y"``); every label must match it.
    dayfirst : bool, optional
        For labels such as ``03/04/2020``: ``True`` reads day/month, ``False`` month/day.
        Without it (and without ``date_format``) such labels are parsed both ways, and refused
        when both readings succeed and differ.
    what : str
        Names the labels in error messages.

    Returns
    -------
    pandas.DatetimeIndex

    Raises
    ------
    ValueError
        A label does not parse, or the labels are ambiguous (day-first vs month-first).
    """
    values = pd.Index(labels)
    if values.hasnans:
        raise ValueError(
            f"{what} contain missing labels at positions "
            f"{np.flatnonzero(values.isna())[:5].tolist()}"
        )
    if date_format is not None:
        try:
            return pd.DatetimeIndex(pd.to_datetime(values, format=date_format))
        except (ValueError, TypeError) as err:
            raise ValueError(
                f"{what} do not all match --date-format/date_format {date_format!r}: {err}"
            ) from None

    try:  # ISO 8601 (year first) is never ambiguous; pandas' dayfirst would misread it
        return pd.DatetimeIndex(pd.to_datetime(values, format="ISO8601"))
    except (ValueError, TypeError, OverflowError):
        pass

    def attempt(first: bool):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            try:
                return pd.DatetimeIndex(pd.to_datetime(values, dayfirst=first))
            except (ValueError, TypeError, OverflowError):
                return None

    if dayfirst is not None:
        parsed = attempt(dayfirst)
        if parsed is None:
            raise ValueError(
                f"{what} cannot be read as dates (dayfirst={dayfirst}), e.g. {values[:3].tolist()}"
            )
        return parsed
    month_first, day_first = attempt(False), attempt(True)
    if month_first is None and day_first is None:
        raise ValueError(
            f"{what} cannot be read as dates, e.g. {values[:3].tolist()}; give an explicit "
            "date format (date_format= / --date-format, e.g. '%d/%m/%Y')"
        )
    if month_first is not None and day_first is not None and not month_first.equals(day_first):
        at = int(np.flatnonzero(month_first != day_first)[0])
        raise ValueError(
            f"{what} are ambiguous: {values[at]!r} reads as {month_first[at].date()} (month "
            f"first) and as {day_first[at].date()} (day first); say which with an explicit date "
            "format "
            "(date_format= / --date-format '%d/%m/%Y') or dayfirst= / --dayfirst"
        )
    return month_first if month_first is not None else day_first


def _integer_axis(labels: np.ndarray, name, what: str) -> pd.RangeIndex:
    if len(labels) == 1:
        return pd.RangeIndex(int(labels[0]), int(labels[0]) + 1, name=name)
    diffs = np.diff(labels)
    if np.any(diffs <= 0):
        bad = int(np.flatnonzero(diffs <= 0)[0])
        kind = "duplicated" if diffs[bad] == 0 else "not sorted in increasing order"
        raise ValueError(
            f"{what} is {kind} (labels {labels[bad]} then {labels[bad + 1]}); fix it first"
        )
    step = int(reduce(math.gcd, (int(d) for d in np.unique(diffs))))
    steps = (int(labels[-1]) - int(labels[0])) // step + 1
    if steps > MAX_INTEGER_STEPS:
        raise ValueError(
            f"{what} is integer time from {labels[0]} to {labels[-1]} in steps of {step}: "
            f"{steps} steps with the gaps filled, above the limit of {MAX_INTEGER_STEPS}; "
            "relabel the series (e.g. reset_index) if the labels are not times"
        )
    return pd.RangeIndex(int(labels[0]), int(labels[-1]) + step, step, name=name)


def period_offset(index: pd.PeriodIndex):
    """The offset between the start timestamps of consecutive periods (``M`` -> ``MS``), known
    from the periods' frequency even for one or two periods or periods with gaps."""
    probe = pd.period_range(index[0], periods=3, freq=index.freq).to_timestamp(how="start")
    return infer_offset(probe)


def as_time_index(index: pd.Index, *, what: str = "the index of y") -> pd.Index:
    """The time axis an index stands for: a ``DatetimeIndex`` (possibly irregular, to be put on
    its frequency grid by the caller) or a regular integer ``RangeIndex`` (gaps included).

    Parameters
    ----------
    index : pandas.Index
    what : str
        Names the index in error messages.

    Returns
    -------
    pandas.DatetimeIndex or pandas.RangeIndex
        A ``RangeIndex`` is the full integer grid from the first to the last label (its
        ``step`` the greatest common divisor of the differences); the caller reindexes onto it.

    Raises
    ------
    ValueError
        The index cannot stand for time (see the module docstring).
    """
    name = index.name
    if isinstance(index, pd.MultiIndex):
        raise ValueError(f"{what} is a MultiIndex; a series needs one time label per row")
    if isinstance(index, pd.DatetimeIndex):
        return index
    if isinstance(index, pd.PeriodIndex):
        return pd.DatetimeIndex(index.to_timestamp(how="start"), name=name)
    if isinstance(index, pd.RangeIndex):
        if len(index) and index.step < 0:
            raise ValueError(f"{what} is not sorted in increasing time order; sort it first")
        return index
    if isinstance(index, pd.TimedeltaIndex | pd.IntervalIndex | pd.CategoricalIndex):
        raise ValueError(
            f"{what} is a {type(index).__name__}; use a DatetimeIndex, a PeriodIndex, integer "
            "time steps, or date strings"
        )
    if index.dtype == bool:
        raise ValueError(f"{what} holds booleans; use dates or integer time steps")
    ints = _integer_like(index.to_numpy())
    if ints is not None:
        return _integer_axis(ints, name, what)
    if index.dtype.kind == "f":
        raise ValueError(
            f"{what} holds non-integer numbers (e.g. {index[:3].tolist()}); use dates or integer "
            "time steps"
        )
    values = index.to_numpy()
    if index.dtype.kind in "OUS" or str(index.dtype).startswith("str"):
        if all(isinstance(v, str) for v in values):
            return pd.DatetimeIndex(parse_dates(values, what=what), name=name)
        kinds = sorted({type(v).__name__ for v in values})
        if kinds in (["Timestamp"], ["datetime"], ["Timestamp", "datetime"]):
            try:
                return pd.DatetimeIndex(values, name=name)
            except (ValueError, TypeError) as err:
                raise ValueError(
                    f"{what} holds timestamps that do not form one index: {err}"
                ) from None
        raise ValueError(
            f"{what} holds labels of types {kinds}; use a DatetimeIndex, a PeriodIndex, integer "
            "time steps, or date strings"
        )
    raise ValueError(f"{what} has dtype {index.dtype}; use dates or integer time steps")
