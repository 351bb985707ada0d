"""What every kind of time label becomes at the validation boundary (issue 13: labels that are
not dates were thrown away; integer time was renumbered; gaps collapsed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from robust_helpers import relabel

from bayes_ssm.data.time_labels import MAX_INTEGER_STEPS, parse_dates
from bayes_ssm.data.validation import as_series_data, future_index


def _data(index, values=None):
    values = np.arange(len(index), dtype=float) if values is None else values
    return as_series_data(pd.Series(values, index=index))


def test_integer_steps_of_seven_stay_integer_time():
    labels = np.arange(1000, 1000 + 7 * 120, 7)
    data = _data(labels)
    assert np.array_equal(data.index.to_numpy(), labels)  # not renumbered 0..119
    assert list(future_index(data, 3)) == [1840, 1847, 1854]


def test_integer_years_with_a_gap_keep_the_gap_as_missing_values():
    years = [*range(1960, 1980), *range(1990, 2000)]
    data = _data(pd.Index(years, name="year"))
    assert data.num_steps == 40 and data.index.name == "year"
    assert np.isnan(data.y[20:30]).all() and data.num_observed == 30
    assert data.y[30] == 20.0  # 1990 keeps its value, after the gap
    assert list(future_index(data, 2)) == [2000, 2001]


def test_whole_floats_are_integer_time_and_fractions_are_refused():
    assert list(_data(pd.Index([3.0, 4.0, 5.0])).index) == [3, 4, 5]
    with pytest.raises(ValueError, match="non-integer numbers"):
        _data(pd.Index([0.5, 1.5, 2.5]))


def test_period_index_becomes_timestamps():
    periods = pd.period_range("2001-01", periods=24, freq="M")
    data = _data(periods)
    assert data.index.equals(periods.to_timestamp())
    assert future_index(data, 1)[0] == pd.Timestamp("2003-01-01")


def test_iso_date_strings_are_parsed():
    dates = pd.date_range("2020-01-01", periods=30, freq="D")
    data = _data(pd.Index(dates.strftime("%Y-%m-%d")))
    assert data.index.equals(dates) and data.freq == pd.tseries.frequencies.to_offset("D")


def test_day_first_strings_that_read_one_way_only_are_parsed():
    dates = pd.date_range("2020-01-04", periods=30, freq="W-SAT")  # day 11 > 12 reads one way
    data = _data(pd.Index(dates.strftime("%d/%m/%Y")))
    assert data.index.equals(dates)


def test_ambiguous_day_month_strings_are_refused_unless_told():
    months = pd.date_range("2020-01-01", periods=12, freq="MS")
    labels = months.strftime("%d/%m/%Y")  # 01/02/2020: 1 February or 2 January?
    with pytest.raises(ValueError, match="ambiguous.*date format"):
        _data(pd.Index(labels))
    assert parse_dates(labels, dayfirst=True).equals(months)
    assert parse_dates(labels, date_format="%d/%m/%Y").equals(months)


@pytest.mark.parametrize(
    "index, message",
    [
        (pd.Index(["a", "b", "c"]), "cannot be read as dates"),
        (pd.timedelta_range(0, periods=3, freq="D"), "TimedeltaIndex"),
        (pd.interval_range(0, 3), "IntervalIndex"),
        (pd.CategoricalIndex(["x", "y", "z"]), "CategoricalIndex"),
        (pd.MultiIndex.from_arrays([[1, 2, 3], [4, 5, 6]]), "MultiIndex"),
        (pd.Index([True, False, True]), "booleans"),
        (pd.Index([1, "2020-01-01", 3.5], dtype=object), "labels of types"),
        (pd.Index([3, 1, 2]), "not sorted"),
        (pd.Index([1, 1, 2]), "duplicated"),
        (pd.Index([0, 1, MAX_INTEGER_STEPS * 10]), "above the limit"),
        (pd.DatetimeIndex(["2020-01-01", None, "2020-01-03"]), "NaT"),
    ],
)
def test_index_kinds_that_are_not_time_are_refused(index, message):
    with pytest.raises(ValueError, match=message):
        _data(index)


def test_zone_and_resolution_are_kept():
    index = pd.date_range("2021-03-01", periods=30, freq="D", tz="Europe/Berlin").as_unit("us")
    data = _data(index)
    assert data.index.equals(index) and str(data.index.dtype) == "datetime64[us, Europe/Berlin]"
    future = future_index(data, 40)  # across the DST change of 28 March
    assert str(future.dtype) == "datetime64[us, Europe/Berlin]"
    assert (future.hour == 0).all()


def test_forecast_index_continues_every_kind(level_fit):
    years = relabel(level_fit, pd.RangeIndex(1970, 1970 + 48))
    assert list(years.forecast(3).index) == [2018, 2019, 2020]
    months = relabel(level_fit, pd.period_range("2020-01", periods=48, freq="M"))
    assert months.forecast(3).index[0] == pd.Timestamp("2024-01-01")


def test_covariates_on_integer_labels_align_by_label():
    y = pd.Series([1.0, 2.0, 3.0, 4.0], index=[1990, 1991, 1995, 1996])
    x_gappy = pd.DataFrame({"a": [0.0, 1.0, 0.0, 1.0]}, index=y.index)
    with pytest.raises(ValueError, match="no rows for 3 integer time steps"):
        as_series_data(y, covariates=x_gappy)
    x = pd.DataFrame({"a": np.arange(7.0)}, index=range(1990, 1997))
    data = as_series_data(y, covariates=x)
    np.testing.assert_array_equal(data.covariates[:, 0], np.arange(7.0))
    assert data.y[5] == 3.0  # 1995: value and covariate on the same step


def test_iso_strings_with_small_days_are_not_ambiguous():
    days = pd.date_range("2020-01-01", periods=6, freq="D")  # pandas' dayfirst misreads these
    assert parse_dates(days.strftime("%Y-%m-%d")).equals(days)
    assert parse_dates(days.strftime("%Y-%m-%d"), dayfirst=True).equals(days)
