"""``fit.update`` reads the new points' labels (issue 13: on a fit from a plain array, overlaps,
the whole series again, and points after a 50-step gap were all accepted as a continuation)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from robust_helpers import NUM_STEPS, relabel


@pytest.fixture(scope="module")
def steps_fit(level_fit):
    return relabel(level_fit, pd.RangeIndex(NUM_STEPS))  # as fitted from a plain array


def test_overlap_and_resent_history_are_refused(steps_fit):
    with pytest.raises(ValueError, match="1 of its 2 points overlap"):
        steps_fit.update(pd.Series([1.0, 2.0], index=[NUM_STEPS - 1, NUM_STEPS]))
    whole = pd.Series(steps_fit.data.y, index=steps_fit.data.index)
    with pytest.raises(ValueError, match=f"{NUM_STEPS} of its {NUM_STEPS} points overlap"):
        steps_fit.update(whole)


def test_a_gap_is_missing_values_not_a_continuation(steps_fit):
    later = pd.Series([11.0, 12.0], index=[NUM_STEPS + 50, NUM_STEPS + 51])
    grown = steps_fit.update(later)
    assert grown.data.num_steps == NUM_STEPS + 52
    assert np.isnan(grown.data.y[NUM_STEPS : NUM_STEPS + 50]).all()
    assert list(grown.data.y[-2:]) == [11.0, 12.0]
    assert grown.forecast(3).index[0] == NUM_STEPS + 52
    # the gap widens the forecast compared with the same points sent without one
    direct = steps_fit.update(np.array([11.0, 12.0]))
    a, b = grown.forecast(3, key=3), direct.forecast(3, key=3)
    assert (a["upper_95"] - a["lower_95"]).iloc[0] > (b["upper_95"] - b["lower_95"]).iloc[0]


def test_off_grid_and_wrong_kind_labels_are_refused(steps_fit, level_fit):
    sevens = relabel(level_fit, pd.RangeIndex(1000, 1000 + 7 * NUM_STEPS, 7))
    with pytest.raises(ValueError, match="off the fitted integer grid"):
        sevens.update(pd.Series([1.0], index=[1000 + 7 * NUM_STEPS + 3]))
    assert sevens.update(pd.Series([1.0], index=[1000 + 7 * NUM_STEPS])).data.index.step == 7
    with pytest.raises(ValueError, match="labelled with dates but the fit with integer"):
        steps_fit.update(pd.Series([1.0], index=pd.DatetimeIndex(["2030-01-01"])))
    with pytest.raises(ValueError, match="naive"):
        level_fit.update(pd.Series([1.0], index=pd.DatetimeIndex(["2030-01-05"], tz="UTC")))


def test_dates_continue_with_zone_and_resolution(level_fit):
    index = level_fit.data.index.tz_localize("America/New_York").as_unit("us")
    fit = relabel(level_fit, index)
    nxt = pd.date_range(index[-1], periods=2, freq="W-SAT")[1:].tz_convert("UTC").as_unit("ns")
    grown = fit.update(pd.Series([10.0], index=nxt))  # same instant, other zone and unit
    assert str(grown.data.index.dtype) == "datetime64[us, America/New_York]"
    assert grown.data.index[-1] == nxt[0]
