"""``infer_offset``: the frequency pandas infers, as an offset, under pandas 2 and 3 alike,
without a pandas-4 deprecation warning and without touching the user's pandas options."""

import warnings

import pandas as pd
import pytest

from bayes_ssm.data.frequency import infer_offset


@pytest.mark.parametrize("freq", ["W-SAT", "D", "MS", "h", "B", "QS-OCT", "2W-SUN", "15min"])
def test_infer_offset_equals_the_index_frequency(freq):
    index = pd.date_range("2021-01-01", periods=12, freq=freq)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a FutureWarning / Pandas4Warning fails the test
        got = infer_offset(index)
    assert isinstance(got, pd.offsets.BaseOffset)
    # the inferred offset regenerates the index (QS-OCT from January is also QS-JAN)
    assert pd.date_range(index[0], periods=len(index), freq=got).equals(index)


def test_irregular_index_gives_none_and_options_are_left_alone():
    index = pd.DatetimeIndex(["2021-01-01", "2021-01-02", "2021-01-05", "2021-01-06"])
    try:
        before = pd.get_option("future.infer_freq_returns_offset")
    except (KeyError, pd.errors.OptionError):
        before = None
    assert infer_offset(index) is None
    if before is not None:
        assert pd.get_option("future.infer_freq_returns_offset") == before
