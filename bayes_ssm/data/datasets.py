"""Real, bundled time series (no download at run time).

The CSV files live in the repository's top-level ``datasets/`` folder with their provenance and
licences (``datasets/README.md``). Loaders return pandas objects with real dates.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path

import pandas as pd

__all__ = ["load", "available", "data_dir", "mmwr_week_ending"]

_FILES = {
    "ili": "cdc_ilinet_national_1997_2025.csv",
    "exchange_rate": "exchange_rate.csv",
    "covid": "covid19_jhu_daily_selected_2020_2023.csv",
    "national_illness": "national_illness.csv",
    "etth1": "ETTh1.csv",
}
# national_illness.csv's own dates are synthetic; its rows really run from MMWR 2002-W40.
_NATIONAL_ILLNESS_FIRST_WEEK = (2002, 40)


def data_dir() -> Path:
    """The folder holding the bundled CSV files (``$BAYES_SSM_DATA`` overrides it)."""
    env = os.environ.get("BAYES_SSM_DATA")
    if env:
        return Path(env)
    # An installed wheel carries the files in ``bayes_ssm/data/bundled``; in a source checkout
    # that folder is a link to the repository's top-level ``datasets/``.
    return Path(__file__).resolve().parent / "bundled"


def available() -> list[str]:
    """Names accepted by :func:`load`."""
    return sorted(_FILES)


def mmwr_week_ending(year: int, week: int) -> pd.Timestamp:
    """The Saturday that ends MMWR ``week`` of MMWR ``year``.

    MMWR week 1 is the first Sunday-to-Saturday week with at least four days in the calendar
    year, i.e. the week that contains January 4.
    """
    jan4 = _dt.date(year, 1, 4)
    week1_sunday = jan4 - _dt.timedelta(days=(jan4.weekday() + 1) % 7)
    return pd.Timestamp(week1_sunday + _dt.timedelta(days=6 + 7 * (week - 1)))


def _path(name: str) -> Path:
    if name not in _FILES:
        raise ValueError(f"unknown dataset {name!r}; available: {available()}")
    path = data_dir() / _FILES[name]
    if not path.is_file():
        raise FileNotFoundError(
            f"dataset file {path} is missing; bayes_ssm reads bundled files only "
            "(set BAYES_SSM_DATA to the folder that holds them)"
        )
    return path


def _load_ili(column: str = "% WEIGHTED ILI") -> pd.Series:
    raw = pd.read_csv(_path("ili"), skiprows=1, na_values=["X"])
    if column not in raw.columns:
        raise ValueError(f"ILINet has no column {column!r}; columns: {list(raw.columns)}")
    dates = [
        mmwr_week_ending(int(y), int(w)) for y, w in zip(raw["YEAR"], raw["WEEK"], strict=True)
    ]
    series = pd.Series(raw[column].to_numpy(float), index=pd.DatetimeIndex(dates), name="ili")
    full = pd.date_range(series.index[0], series.index[-1], freq="W-SAT")
    series = series.reindex(full)  # a week absent from the file becomes NaN
    series.index.name = "week_ending"
    return series


def _load_exchange_rate() -> pd.DataFrame:
    frame = pd.read_csv(_path("exchange_rate"))
    frame = frame.drop(columns=["date"])
    frame.columns = ["AUD", "GBP", "CAD", "CHF", "unknown_4", "JPY", "SGD", "NZD"]
    # The upstream dates are synthetic consecutive days; the rows are really (roughly) business
    # days from 1990. We index by business day from 1990-01-01: the spacing is honest, the
    # calendar dates are approximate (holidays are not known).
    frame.index = pd.bdate_range("1990-01-01", periods=len(frame), name="business_day")
    return frame


def _load_covid() -> pd.DataFrame:
    frame = pd.read_csv(_path("covid"), parse_dates=["date"], index_col="date")
    return frame.asfreq("D")


def _load_national_illness() -> pd.DataFrame:
    frame = pd.read_csv(_path("national_illness")).drop(columns=["date"])
    start = mmwr_week_ending(*_NATIONAL_ILLNESS_FIRST_WEEK)
    frame.index = pd.date_range(start, periods=len(frame), freq="W-SAT", name="week_ending")
    return frame


def _load_etth1() -> pd.DataFrame:
    frame = pd.read_csv(_path("etth1"), parse_dates=["date"], index_col="date")
    return frame.asfreq("h")


def load(name: str, **kwargs):
    """Load a bundled dataset.

    Parameters
    ----------
    name : {"ili", "exchange_rate", "covid", "national_illness", "etth1"}
        ``"ili"``: US national % weighted ILI (CDC ILINet), weekly ``pd.Series`` indexed by the
        MMWR week-ending Saturday, 1997-10-04 .. 2025-04-05, on a complete weekly grid (a week
        missing from the file, or marked 'X', is NaN; the current file has none).
        ``column=`` picks another ILINet column (e.g. ``"ILITOTAL"``).
        ``"exchange_rate"``: 8 daily exchange rates against the USD, ``pd.DataFrame`` on a
        business-day index (see ``datasets/README.md`` for the caveat on dates).
        ``"covid"``: JHU CSSE daily cumulative and new cases and deaths, ``pd.DataFrame``.
        ``"national_illness"``: the long-horizon benchmarks' copy of ILINet (Autoformer,
        DLinear, PatchTST; 966 weeks, 7 columns, ``OT`` = total patients), re-dated to its real
        MMWR week-ending Saturdays 2002-10-05 .. 2021-04-03 (the file's own dates are
        synthetic), so published scores can be compared on the same rows.
        ``"etth1"``: Electricity Transformer Temperature, hourly 2016-07-01 .. 2018-06-26,
        6 load features and the oil temperature ``OT`` (Informer's ETTh1), ``pd.DataFrame``.

    Returns
    -------
    pandas.Series or pandas.DataFrame
    """
    loaders = {
        "ili": _load_ili,
        "exchange_rate": _load_exchange_rate,
        "covid": _load_covid,
        "national_illness": _load_national_illness,
        "etth1": _load_etth1,
    }
    if name not in loaders:
        raise ValueError(f"unknown dataset {name!r}; available: {available()}")
    return loaders[name](**kwargs)
