"""Event covariates: windows, step effects, period mapping, and train/forecast consistency."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_ssm.data.events import Event, event_covariates


def test_daily_pulse_and_step_match_direct_date_arithmetic():
    index = pd.date_range("2024-01-01", periods=60, freq="D")
    events = [
        Event("holiday", ["2024-01-10", "2024-02-20"], before=2, after=1),
        Event("policy", "2024-02-01", before=3, kind="step"),
    ]
    x = event_covariates(index, events)
    days = index.values.astype("datetime64[D]")
    direct = np.zeros(60)
    for d in ["2024-01-10", "2024-02-20"]:
        delta = (days - np.datetime64(d)).astype(int)
        direct[(delta >= -2) & (delta <= 1)] = 1.0
    np.testing.assert_array_equal(x["holiday"], direct)
    step = (days >= np.datetime64("2024-02-01") - np.timedelta64(3, "D")).astype(float)
    np.testing.assert_array_equal(x["policy"], step)
    assert list(x.columns) == ["holiday", "policy"] and x.index.equals(index)


def test_weekly_dates_fall_in_the_week_that_contains_them():
    index = pd.date_range("2023-12-02", periods=8, freq="W-SAT")  # weeks ending Saturday
    x = event_covariates(index, Event("xmas", "2023-12-25"))  # a Monday
    assert x.index[x["xmas"] == 1].tolist() == [pd.Timestamp("2023-12-30")]


def test_training_and_forecast_indexes_agree_with_the_full_index():
    full = pd.date_range("2020-01-04", periods=120, freq="W-SAT")
    events = pd.DataFrame(
        {
            "event": ["flu_season_start", "flu_season_start", "case_def_change"],
            "date": ["2020-10-01", "2021-10-01", "2021-06-15"],
            "before": [0, 0, 0],
            "after": [3, 3, 0],
            "kind": ["pulse", "pulse", "step"],
        }
    )
    whole = event_covariates(full, events)
    # a window straddling the split: the pulse starting in the last training week
    split = int(np.flatnonzero(whole["flu_season_start"].to_numpy())[-1]) - 1
    parts = pd.concat(
        [event_covariates(full[:split], events), event_covariates(full[split:], events)]
    )
    pd.testing.assert_frame_equal(parts, whole, check_freq=False)
    assert whole["flu_season_start"].sum() == 8 and whole["case_def_change"].iloc[-1] == 1


def test_bad_events_raise():
    index = pd.date_range("2024-01-01", periods=10, freq="D")
    with pytest.raises(ValueError, match="kind"):
        Event("a", "2024-01-01", kind="ramp")
    with pytest.raises(ValueError, match="before"):
        Event("a", "2024-01-01", before=-1)
    with pytest.raises(ValueError, match="cannot read dates"):
        Event("a", "not a date")
    with pytest.raises(ValueError, match="distinct"):
        event_covariates(index, [Event("a", "2024-01-01"), Event("a", "2024-01-02")])
    with pytest.raises(ValueError, match="DatetimeIndex"):
        event_covariates(pd.RangeIndex(10), Event("a", "2024-01-01"))
    with pytest.raises(ValueError, match="columns"):
        event_covariates(index, pd.DataFrame({"name": ["a"], "ds": ["2024-01-01"]}))
