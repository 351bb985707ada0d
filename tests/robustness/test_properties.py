"""Property-based tests over the public API (Hypothesis): random lengths, gaps, scales from 1e-8
to 1e8, NaN runs, spikes and every index kind. Each input gets a clear ``ValueError`` or a
validated series that keeps every value at its label; fitted, it gets finite forecasts whose
bands contain the median and widen with the horizon.

The fast profile is small (few examples, SVI with few steps); the larger one is ``slow``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bayes_ssm as bs
from bayes_ssm.data.validation import as_series_data
from bayes_ssm.models import StructuralTS

INDEX_KINDS = ("datetime", "datetime_tz", "period", "integer", "integer_gaps", "strings", "range")


@st.composite
def hostile_series(draw, lengths=None):
    n = draw(st.integers(2, 80) if lengths is None else lengths)
    kind = draw(st.sampled_from(INDEX_KINDS))
    scale = 10.0 ** draw(st.integers(-8, 8))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    values = scale * (5 + np.cumsum(rng.normal(0, 1, n)))
    if draw(st.booleans()) and n > 4:  # a run of NaN
        start = draw(st.integers(0, n - 2))
        values[start : start + draw(st.integers(1, max(1, n // 3)))] = np.nan
    if draw(st.booleans()):  # a spike
        values[draw(st.integers(0, n - 1))] = scale * 10 ** draw(st.integers(1, 4))
    start = pd.Timestamp("2019-12-28")
    if kind == "datetime":
        index = pd.date_range(start, periods=n, freq="W-SAT")
    elif kind == "datetime_tz":
        index = pd.date_range(start, periods=n, freq="D", tz="Europe/Paris").as_unit("us")
    elif kind == "period":
        index = pd.period_range("2001-01", periods=n, freq="M")
    elif kind == "integer":
        index = pd.Index(1000 + 7 * np.arange(n))
    elif kind == "integer_gaps":
        steps = rng.integers(1, 4, n)
        index = pd.Index(1990 + np.cumsum(steps))
    elif kind == "strings":
        index = pd.Index(pd.date_range(start, periods=n, freq="D").strftime("%Y-%m-%d"))
    else:
        index = pd.RangeIndex(n)
    return pd.Series(values, index=index, name="y")


def _expected_positions(y: pd.Series, data) -> np.ndarray:
    """Where each input label lands on the validated axis (computed independently)."""
    index = y.index
    if isinstance(index, pd.PeriodIndex):
        index = index.to_timestamp()
    if index.dtype == object:
        index = pd.DatetimeIndex(pd.to_datetime(index, format="%Y-%m-%d"))
    if isinstance(data.index, pd.DatetimeIndex):
        return data.index.get_indexer(index)
    return (np.asarray(index) - data.index.start) // data.index.step


@settings(max_examples=40, deadline=None, derandomize=True)
@given(hostile_series())
def test_validation_keeps_every_value_at_its_label_or_refuses(y):
    try:
        data = as_series_data(y)
    except ValueError as err:
        assert str(err)  # a message: too few observed values, or too few dates to infer a freq
        assert "observed values" in str(err) or "cannot infer the frequency" in str(err)
        return
    positions = _expected_positions(y, data)
    assert (positions >= 0).all()
    np.testing.assert_array_equal(data.y[positions], y.to_numpy())
    filled = np.setdiff1d(np.arange(data.num_steps), positions)
    assert np.isnan(data.y[filled]).all()  # gaps are missing values, nothing else was added


def _check_forecast(y, steps, horizon=8):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # convergence / exploding-draw warnings
        try:
            fit = bs.fit_svi(StructuralTS(), y, key=0, steps=steps, num_samples=200, progress=False)
        except ValueError as err:
            assert str(err)
            return None
        fc = fit.forecast(horizon, key=1)
    values = fc.to_numpy()
    assert np.isfinite(values).all()
    assert (fc["lower_95"] <= fc["median"]).all() and (fc["median"] <= fc["upper_95"]).all()
    assert (fc["lower_95"] <= fc["lower_80"]).all() and (fc["upper_80"] <= fc["upper_95"]).all()
    width = (fc["upper_95"] - fc["lower_95"]).to_numpy()
    assert width[-1] >= 0.9 * width[0]  # wider at the horizon (sampling noise allowed)
    assert fc.index[0] > fit.data.index[-1]
    return fc


@settings(
    max_examples=2,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(hostile_series(lengths=st.just(30)))
def test_forecasts_are_finite_and_bands_widen_fast(y):
    _check_forecast(y, steps=100)


@pytest.mark.slow
@settings(
    max_examples=5,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(hostile_series(lengths=st.sampled_from([6, 12, 30, 60])))
def test_forecasts_are_finite_and_bands_widen(y):
    _check_forecast(y, steps=400)
