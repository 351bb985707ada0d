"""The panels of ``benchmarks/default_suite.py``: bundled series, origins, horizon, season.

Each panel is a few series (<= 8) of one kind, a few rolling origins (<= 3), one horizon and
the season length the peers use. Every model at an origin sees all data before it (the
default then keeps its own window, ``bs.auto_fit``'s ``fit_last``). Provenance of the data:
``datasets/README.md``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from bayes_ssm.data import datasets


@dataclasses.dataclass(frozen=True)
class Panel:
    """A set of series scored at the same origins.

    Attributes
    ----------
    name : str
    series : dict of str to pandas.Series
        Each with a regular DatetimeIndex.
    horizon : int
        Steps forecast at each origin.
    origins : tuple of int
        Training lengths: at origin ``k`` every model sees ``y.iloc[:k]`` and is scored on
        ``y.iloc[k:k + horizon]`` (the same positions for every series of the panel).
    season : int
        Season length for the peers (seasonal naive, AutoETS, AutoTheta, MSTL, UC); 1 = none.
    steps : tuple of int
        Horizon steps the tables single out (besides 1..horizon pooled).
    note : str
        What the series are, in one line.
    """

    name: str
    series: dict
    horizon: int
    origins: tuple
    season: int
    steps: tuple
    note: str


def _spaced(n: int, horizon: int, count: int, step: int) -> tuple:
    """``count`` origins ``step`` apart, the last at ``n - horizon``; earliest first."""
    return tuple(n - horizon - step * k for k in reversed(range(count)))


def _pick(origins: tuple, count: int | None) -> tuple:
    """The last ``count`` origins (all when None)."""
    return origins if count is None else origins[-count:]


def _more(default: int, count: int | None) -> int:
    """How many origins to lay out: the panel's ``default``, or more when ``count`` asks
    (the default origins stay the last ones, so earlier scores remain comparable)."""
    return max(default, count or 0)


def ili(count=None) -> Panel:
    y = datasets.load("ili").rename("% weighted ILI")
    # three of the 20 origins of benchmarks/default_model.py (13 weeks apart, last at n-26):
    # the autumns of 2022, 2023, 2024 (outside the pandemic)
    origins = _spaced(len(y), 26, 3, 52)
    return Panel("ili", {"% weighted ILI": y}, 26, _pick(origins, count), 52, (1, 4, 26),
                 "US ILINet % weighted ILI, weekly 1997-2025")  # fmt: skip


def national_illness(count=None) -> Panel:
    frame = datasets.load("national_illness")
    n = len(frame)
    # autumn 2019 (season onset) and January 2021 (the pandemic winter without flu)
    origins = (n - 13 - 65, n - 13)
    return Panel(
        "national_illness",
        {c: frame[c] for c in frame},
        13,
        _pick(origins, count),
        52,
        (1, 4, 13),
        "ILINet benchmark copy, 7 columns (percentages, visit counts, providers, patients)",
    )


def covid_weekly_cases(count=None) -> Panel:
    frame = datasets.load("covid")
    cols = [c for c in frame if c.endswith("_new_cases") and not c.startswith("world")]
    daily = frame[cols].loc["2020-03-01":]
    weekly = daily.resample("W-SAT").sum()
    # complete weeks only: drop a last week that the data do not reach to its Saturday
    weekly = weekly[weekly.index <= daily.index[-1]]
    weekly.columns = [c.removesuffix("_new_cases") for c in cols]
    origins = _spaced(len(weekly), 8, _more(2, count), 26)
    return Panel(
        "covid_weekly_cases",
        {c: weekly[c].asfreq("W-SAT") for c in weekly},
        8,
        _pick(origins, count),
        1,
        (1, 4, 8),
        "JHU daily new COVID cases summed per week, 8 countries, 2020-03 .. 2023-03",
    )


def monthly_deaths(count=None) -> Panel:
    from monthly_deaths import HOLDOUT
    from monthly_deaths import monthly_deaths as load

    frame = load()
    return Panel(
        "monthly_deaths",
        {c: frame[c].asfreq("MS") for c in frame},
        HOLDOUT,
        (len(frame) - HOLDOUT,),
        1,
        (1, 3, 12),
        "JHU COVID deaths per month, 8 countries, 23 months to fit, 12 held out",
    )


def fx_levels(count=None) -> Panel:
    frame = datasets.load("exchange_rate")
    # the Chronos Benchmark II window (last 30 days), plus earlier ones when asked
    origins = _spaced(len(frame), 30, _more(3, count), 250)
    return Panel("fx_levels", {c: frame[c] for c in frame}, 30, _pick(origins, count or 1), 5,
                 (1, 10, 30), "8 daily exchange rates (LSTNet), levels")  # fmt: skip


def fx_returns(count=None) -> Panel:
    frame = datasets.load("exchange_rate")
    returns = 100 * np.log(frame).diff().iloc[1:]
    origins = _spaced(len(returns), 10, _more(2, count), 250)
    return Panel(
        "fx_returns",
        {c: returns[c] for c in returns},
        10,
        _pick(origins, count),
        1,
        (1, 5, 10),
        "daily log returns x100 of the 8 exchange rates",
    )


def etth1(count=None) -> Panel:
    y = datasets.load("etth1")["OT"]
    origins = _spaced(len(y), 48, 3, 168)
    return Panel("etth1", {"OT": y}, 48, _pick(origins, count), 24, (1, 24, 48),
                 "ETTh1 oil temperature, hourly")  # fmt: skip


PANELS = {
    f.__name__: f
    for f in (
        ili,
        national_illness,
        covid_weekly_cases,
        monthly_deaths,
        fx_levels,
        fx_returns,
        etth1,
    )
}


def load_panels(names, count=None) -> list[Panel]:
    """Build the named panels; ``count`` keeps each panel's last ``count`` origins."""
    unknown = [n for n in names if n not in PANELS]
    if unknown:
        raise SystemExit(f"unknown panel(s) {unknown}; choose from {sorted(PANELS)}")
    return [PANELS[name](count) for name in names]


def training_scale(train: pd.Series) -> float:
    """Mean |y| of the training data (NaN skipped): the scale that divides the CRPS."""
    value = float(np.nanmean(np.abs(train.to_numpy(float))))
    if not value > 0:
        raise ValueError(f"series {train.name!r}: mean |y| of the training data is {value}")
    return value
