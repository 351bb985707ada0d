"""Baselines: hand-computed seasonal naive, and the statsmodels / Prophet wrappers' draws."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_ssm.evaluation import baselines


def test_seasonal_naive_hand_computed_with_missing_values():
    y = np.array([1.0, 2.0, 3.0, 4.0, 5.0, np.nan, 7.0])
    # season 3: the last season is (5, nan, 7); the NaN falls back one season, to 3
    np.testing.assert_array_equal(
        baselines.SeasonalNaive(3).point_forecast(y, 5), [5.0, 3.0, 7.0, 5.0, 3.0]
    )
    draws = baselines.SeasonalNaive(1).forecast_samples(y, 2, num_samples=4)
    assert draws.shape == (4, 2) and (draws == 7.0).all()
    with pytest.raises(ValueError, match="horizon"):
        baselines.SeasonalNaive(1).forecast_samples(y, 0)


def _ar_series(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.normal(0.05, 1.0, n)) + 20


def test_statsmodels_ets_draws_follow_its_forecast():
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    y = _ar_series()
    b = baselines.StatsmodelsETS()
    draws = b.forecast_samples(y, 6, num_samples=4000, key=0)
    assert draws.shape == (4000, 6)
    np.testing.assert_array_equal(draws, b.forecast_samples(y, 6, num_samples=4000, key=0))
    res = ETSModel(pd.Series(y), error="add", trend="add", damped_trend=True).fit(disp=False)
    frame = res.get_prediction(start=len(y), end=len(y) + 5).summary_frame(alpha=0.05)
    np.testing.assert_allclose(draws.mean(axis=0), frame["mean"], atol=0.15)
    sd = (frame["pi_upper"] - frame["mean"]).to_numpy() / 1.959964  # analytic Gaussian interval
    np.testing.assert_allclose(draws.std(axis=0), sd, rtol=0.1)


def test_statsmodels_uc_draws_match_its_gaussian_predictive_and_take_nan():
    from statsmodels.tsa.statespace.structural import UnobservedComponents

    y = _ar_series(seed=1)
    y[50:53] = np.nan
    draws = baselines.StatsmodelsUC(level="local level").forecast_samples(
        y, 4, num_samples=20_000, key=1
    )
    res = UnobservedComponents(y, level="local level").fit(disp=False)
    fc = res.get_forecast(4)
    np.testing.assert_allclose(draws.mean(axis=0), fc.predicted_mean, atol=0.05)
    np.testing.assert_allclose(draws.std(axis=0), np.sqrt(fc.var_pred_mean), rtol=0.03)


@pytest.mark.bench
def test_prophet_baseline_runs_offline_and_leaves_numpy_global_state_alone():
    pytest.importorskip("prophet", reason="the bench extra: run with `make test-bench`")
    y = _ar_series(120, seed=2)
    index = pd.date_range("2023-01-01", periods=120, freq="D")
    state = np.random.get_state()[1].copy()  # noqa: NPY002
    b = baselines.ProphetBaseline()
    draws = b.forecast_samples(y, 5, num_samples=200, key=3, index=index, freq="D")
    assert draws.shape == (200, 5) and np.isfinite(draws).all()
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # noqa: NPY002
    np.testing.assert_array_equal(
        draws, b.forecast_samples(y, 5, num_samples=200, key=3, index=index, freq="D")
    )


def test_baseline_from_name():
    assert baselines.baseline_from_name("seasonal_naive", season=7) == baselines.SeasonalNaive(7)
    with pytest.raises(ValueError, match="unknown baseline"):
        baselines.baseline_from_name("arima")
