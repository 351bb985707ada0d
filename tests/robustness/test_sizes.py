"""Sizes are checked before computing (issue 13: ``fit.forecast(10**8)`` aborted the process in
XLA; horizon 100,000 weekly failed in pandas after computing every draw)."""

from __future__ import annotations

import time

import pytest
from robust_helpers import relabel

from bayes_ssm.inference import fit as fit_module


def test_a_huge_horizon_is_refused_at_once(level_fit):
    start = time.perf_counter()
    with pytest.raises(ValueError, match="GiB, above the .* GiB limit"):
        level_fit.forecast(10**8)
    with pytest.raises(ValueError, match="MAX_FORECAST_BYTES"):
        level_fit.forecast_samples(10**8)
    assert time.perf_counter() - start < 1.0  # nothing was computed


def test_the_bound_counts_draws(level_fit, monkeypatch):
    per_step = (level_fit.model.state_size + 2) * 8  # bytes per draw and step
    monkeypatch.setattr(fit_module, "MAX_FORECAST_BYTES", 100 * 3 * per_step)  # 100 draws x 3
    with pytest.raises(ValueError, match="4-step forecast with 100 draws"):
        level_fit.forecast(4)
    with pytest.raises(ValueError, match="2-step forecast with 200 draws"):
        fit_module.check_forecast_size(level_fit.model, level_fit.data, 200, 2)
    assert level_fit.forecast(3).shape[0] == 3  # at the bound: computed


def test_dates_past_the_resolution_are_refused_before_computing(level_fit):
    fit = relabel(level_fit, level_fit.data.index.as_unit("ns"))  # pandas 3 would give "us"
    start = time.perf_counter()
    with pytest.raises(ValueError, match="runs past the dates pandas can hold"):
        fit.forecast(100_000)  # 1917 years of weeks: beyond 2262 at nanoseconds
    assert time.perf_counter() - start < 1.0


def test_a_microsecond_index_forecasts_100000_weeks(level_fit):
    fit = relabel(level_fit, level_fit.data.index.as_unit("us"))
    index = fit_module.check_forecast_size(fit.model, fit.data, 100, 100_000)
    assert len(index) == 100_000 and index[-1].year > 3800 and index.unit == "us"
