"""Event effects (holidays, reporting breaks, policy changes) as regression covariates.

Turn user-supplied dates with windows into a covariate DataFrame on a time index, to be passed to
a regression model such as ``StructuralTS(regression=True)``; the same call on the forecast
horizon's index gives the future covariates::

    events = [Event("christmas", ["2023-12-25", "2024-12-25"], before=1, after=1),
              Event("new_test", "2024-03-01", kind="step")]
    x = event_covariates(y.index, events)
    x_future = event_covariates(bayes_ssm.data.validation.future_index(data, 26), events)

Kinds of effect (one column per event, shared by all its dates):

``"pulse"``
    1 on the step that contains each date and on ``before`` steps before / ``after`` steps after
    it, 0 elsewhere (a holiday, a one-off outbreak report).
``"step"``
    0 before the date (minus ``before`` steps), 1 from then on (a level shift: a change in
    case definition, a policy change, a reporting break).

A date is mapped to the step whose period contains it (a Wednesday holiday falls in the week
ending on the following Saturday for a ``W-SAT`` index). Dates outside the index contribute
nothing (so one event list serves the training and the forecast index alike).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bayes_ssm.data.frequency import infer_offset

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["Event", "event_covariates"]

_KINDS = ("pulse", "step")


@dataclass(frozen=True)
class Event:
    """An event with one or more dates.

    Parameters
    ----------
    name : str
        Column name of the covariate.
    dates : date-like or sequence of date-likes
    before, after : int
        Window, in steps of the index, before and after each date (``after`` is ignored for
        ``kind="step"``).
    kind : {"pulse", "step"}
    """

    name: str
    dates: object
    before: int = 0
    after: int = 0
    kind: str = "pulse"

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"event name must be a non-empty string; got {self.name!r}")
        if self.kind not in _KINDS:
            raise ValueError(
                f"event {self.name!r}: kind must be one of {_KINDS}; got {self.kind!r}"
            )
        for label in ("before", "after"):
            value = getattr(self, label)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise ValueError(
                    f"event {self.name!r}: {label} must be a non-negative integer number of "
                    f"steps; got {value!r}"
                )
        dates = [self.dates] if isinstance(self.dates, str | pd.Timestamp) else self.dates
        try:
            stamps = pd.DatetimeIndex(pd.to_datetime(list(np.atleast_1d(dates))))
        except (ValueError, TypeError) as err:
            raise ValueError(
                f"event {self.name!r}: cannot read dates {self.dates!r}: {err}"
            ) from None
        if stamps.hasnans:
            raise ValueError(f"event {self.name!r}: dates contain missing values")
        object.__setattr__(self, "dates", tuple(stamps))


def _as_events(events) -> list[Event]:
    if isinstance(events, Event):
        return [events]
    if isinstance(events, pd.DataFrame):
        required = {"event", "date"}
        if not required <= set(events.columns):
            raise ValueError(
                f"an events DataFrame needs columns {sorted(required)} (optional: before, after, "
                f"kind); got {list(events.columns)}"
            )
        out = []
        for name, rows in events.groupby("event", sort=False):
            first = rows.iloc[0]
            out.append(
                Event(
                    str(name),
                    list(rows["date"]),
                    before=int(first.get("before", 0)),
                    after=int(first.get("after", 0)),
                    kind=str(first.get("kind", "pulse")),
                )
            )
        return out
    if isinstance(events, list | tuple) and all(isinstance(e, Event) for e in events):
        return list(events)
    raise ValueError(
        "events must be an Event, a list of Event, or a DataFrame with columns event, date; "
        f"got {type(events).__name__}"
    )


def _positions(index: pd.DatetimeIndex, dates) -> np.ndarray:
    """Step number (0 = ``index[0]``) of the period containing each date; may lie outside
    ``[0, len(index))`` for dates off the index."""
    dates = pd.DatetimeIndex(dates)
    try:
        periods = index.to_period()
        wanted = dates.to_period(periods.freq)
        return np.array([(w - periods[0]).n for w in wanted], dtype=np.int64)
    except (ValueError, TypeError, AttributeError):  # frequencies without a period: by position
        return np.asarray(index.searchsorted(dates, side="left"), dtype=np.int64)


def event_covariates(index: pd.Index, events: Event | Sequence[Event]) -> pd.DataFrame:
    """Covariates of event effects on ``index``.

    Parameters
    ----------
    index : pandas.DatetimeIndex
        The time index (training or forecast), with a frequency.
    events : Event, list of Event, or DataFrame
        A DataFrame has one row per date and columns ``event``, ``date`` and optionally
        ``before``, ``after``, ``kind`` (taken from the event's first row).

    Returns
    -------
    pandas.DataFrame, shape ``(time, event)``
        Float columns named after the events, on ``index``.
    """
    if not isinstance(index, pd.DatetimeIndex):
        raise ValueError(f"index must be a pandas.DatetimeIndex; got {type(index).__name__}")
    if index.freq is None and len(index) >= 3:
        inferred = infer_offset(index)
        if inferred is None:
            raise ValueError("index has no regular frequency; pass an index with freq set")
        index = pd.DatetimeIndex(index, freq=inferred)
    evs = _as_events(events)
    names = [e.name for e in evs]
    if len(set(names)) != len(names):
        raise ValueError(f"event names must be distinct; got {names}")
    out = np.zeros((len(index), len(evs)))
    steps = np.arange(len(index))
    for j, event in enumerate(evs):
        pos = _positions(index, event.dates)
        for p in pos:
            if event.kind == "pulse":
                lo, hi = p - event.before, p + event.after
                out[(steps >= lo) & (steps <= hi), j] = 1.0
            else:
                out[steps >= p - event.before, j] = 1.0
    return pd.DataFrame(out, index=index, columns=names)
