"""``transform="auto"``'s guard against the log scale (issue 12): the random-walk check's scores
equal closed forms, it fires where small counts make the log scale explode and not where the
log scale is right, and the default forecaster says when it fired."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scoringrules as sr

import bayes_ssm as bs
from bayes_ssm.inference import transform_check as tc
from bayes_ssm.inference.stacked_fit import Transform, resolve_transform
from bayes_ssm.models import StructuralTS


def _wave_counts(seed=0, n=30):
    """Poisson counts in waves that pass through single digits between peaks of ~3000
    (epidemic counts): on the log scale the window's steps are huge, so its random walk puts
    the upper quantiles of a forecast from a peak at many times the data."""
    rng = np.random.default_rng(seed)
    rate = 3.0 + 3000.0 * np.sin(np.pi * np.arange(n) / 10) ** 8
    return np.maximum(rng.poisson(rate), 1).astype(float)


def _seasonal_multiplicative(seed=0, n=200):
    """A weekly-like series: a yearly multiplicative season, lognormal noise (log is right)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    log_level = np.cumsum(rng.normal(0, 0.02, n)) + 0.8 * np.sin(2 * np.pi * t / 52)
    return np.exp(1.0 + log_level + rng.normal(0, 0.05, n))


def test_log_scale_score_equals_the_lognormal_closed_form():
    """On the log scale a random walk's predictive is lognormal: the check's quantile CRPS
    equals scoringrules' closed form (averaged over the same origins and steps) within the
    39-level approximation."""
    y = _seasonal_multiplicative(n=80)
    horizon = 6
    got = tc._random_walk_crps(y, 0.0, horizon)
    z = np.log(y)
    sd = np.std(np.diff(z), ddof=1)
    scores = [
        sr.crps_lognormal(y[t + h], z[t], np.sqrt(h) * sd)
        for t in range(len(y) // 4, len(y) - 1)
        for h in range(1, horizon + 1)
        if t + h <= len(y) - 1
    ]
    assert got == pytest.approx(np.mean(scores), rel=0.02)


def test_square_root_score_equals_a_monte_carlo_twin():
    y = _wave_counts(n=24)
    horizon = 5
    got = tc._random_walk_crps(y, 0.5, horizon)
    z = 2 * (np.sqrt(y) - 1)
    sd = np.std(np.diff(z), ddof=1)
    rng = np.random.default_rng(1)
    scores = []
    for t in range(len(y) // 4, len(y) - 1):
        for h in range(1, min(horizon, len(y) - 1 - t) + 1):
            draws = np.maximum(0.5 * (z[t] + np.sqrt(h) * sd * rng.standard_normal(20_000)) + 1, 0)
            scores.append(sr.crps_ensemble(y[t + h], draws**2))
    assert got == pytest.approx(np.mean(scores), rel=0.03)


def test_guard_fires_on_counts_through_small_values():
    for seed in range(3):
        y = _wave_counts(seed)
        assert tc.log_scale_ratio(y) >= tc.LOG_GUARD_RATIO
        tf = resolve_transform("auto", y)
        assert tf == Transform("boxcox", 0.5)
        assert "square root, not log" in tf.reason
        # asked for by name, the log scale is kept
        assert resolve_transform("log", y) == Transform("log")


def test_guard_keeps_log_where_log_is_right():
    """Data whose log is a seasonal series or a volatile random walk (the log scale is the
    right one, however large the steps) keep the log scale."""
    for seed in range(3):
        y = _seasonal_multiplicative(seed)
        assert tc.log_scale_ratio(y) < tc.LOG_GUARD_RATIO
        assert resolve_transform("auto", y) == Transform("log")
        assert resolve_transform("auto", y).reason == ""
    for seed in range(10):
        walk = np.exp(np.cumsum(np.random.default_rng(seed).normal(0, 0.5, 40)))
        assert tc.log_scale_ratio(walk) < tc.LOG_GUARD_RATIO


@pytest.mark.parametrize("name", ["ili", "national_illness", "exchange_rate"])
def test_guard_keeps_log_on_the_long_bundled_series(name):
    """The long weekly and daily series the default was measured on keep the log scale
    (their windows: the last 400 values, as ``auto_fit`` fits)."""
    data = bs.datasets.load(name)
    columns = data.items() if isinstance(data, pd.DataFrame) else [(name, data)]
    for _, column in columns:
        y = column.to_numpy(float)[-400:]
        if np.all(y[np.isfinite(y)] > 0):
            assert tc.log_scale_ratio(y) < tc.LOG_GUARD_RATIO


def test_short_windows_and_missing_values():
    y = _wave_counts(n=30)
    assert np.isnan(tc.log_scale_ratio(y[: tc.GUARD_MIN_LENGTH - 1]))
    assert resolve_transform("auto", y[: tc.GUARD_MIN_LENGTH - 1]) == Transform("log")
    gappy = y.copy()
    gappy[[5, 17, 18]] = np.nan
    ratio = tc.log_scale_ratio(gappy)
    assert np.isfinite(ratio) and ratio >= tc.LOG_GUARD_RATIO


def test_default_forecaster_reports_the_guard():
    y = pd.Series(_wave_counts(n=30), index=pd.date_range("2020-01", periods=30, freq="MS"))
    stacked = bs.auto_fit(
        y,
        key=0,
        candidates={"level": StructuralTS(trend=None)},
        fit_kwargs={"steps": 300, "num_samples": 200, "progress": False},
        recalibrate=False,
    )
    assert stacked.transform == Transform("boxcox", 0.5)
    frame = stacked.forecast(3, num_samples=200, key=1)
    assert frame.attrs["transform"] == "boxcox(0.5)"
    assert frame.attrs["transform_reason"] == stacked.transform.reason
    assert (frame["lower_95"] >= 0).all()
