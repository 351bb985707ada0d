"""Metrics: checked against closed forms and hand-computed cases, and their input errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayes_ssm.evaluation import metrics
from bayes_ssm.evaluation.baselines import SeasonalNaive


def gaussian_crps(y, mu, sigma):
    """Closed form CRPS of N(mu, sigma^2) (Gneiting & Raftery 2007, eq. 21)."""
    z = (y - mu) / sigma
    return sigma * (z * (2 * stats.norm.cdf(z) - 1) + 2 * stats.norm.pdf(z) - 1 / np.sqrt(np.pi))


def test_crps_from_samples_matches_gaussian_closed_form():
    rng = np.random.default_rng(0)
    mu = np.array([0.0, 1.0, -2.0, 5.0])
    sigma = np.array([1.0, 0.5, 2.0, 3.0])
    y = np.array([0.3, 2.5, -2.0, -1.0])
    draws = mu + sigma * rng.standard_normal((20_000, 4))
    got = metrics.crps(y, draws, pointwise=True)
    np.testing.assert_allclose(got, gaussian_crps(y, mu, sigma), rtol=0.02)
    assert metrics.crps(y, draws) == pytest.approx(np.mean(gaussian_crps(y, mu, sigma)), rel=0.02)


def test_crps_point_mass_is_absolute_error():
    y = np.array([1.0, 2.0, 4.0])
    point = np.array([1.5, 2.0, 1.0])
    draws = np.tile(point, (10, 1))
    np.testing.assert_allclose(metrics.crps(y, draws, pointwise=True), np.abs(y - point))
    single = point[None, :]  # one draw
    np.testing.assert_allclose(metrics.crps(y, single, pointwise=True), np.abs(y - point))


def test_coverage_and_width_hand_computed():
    y = pd.Series([1.0, 2.0, 3.0, 4.0, np.nan], index=pd.date_range("2024-01-01", periods=5))
    lower = pd.Series([0.0, 2.5, 2.0, 4.0, 0.0], index=y.index)
    upper = pd.Series([2.0, 3.0, 3.0, 6.0, 1.0], index=y.index)
    # inside: 1 in [0,2] yes; 2 in [2.5,3] no; 3 in [2,3] yes (closed); 4 in [4,6] yes; NaN skip
    assert metrics.interval_coverage(y, lower=lower, upper=upper) == pytest.approx(0.75)
    # widths over observed steps: 2, 0.5, 1, 2
    assert metrics.interval_width(y, lower=lower, upper=upper) == pytest.approx(5.5 / 4)
    pointwise = metrics.interval_coverage(y, lower=lower, upper=upper, pointwise=True)
    assert pointwise.index.equals(y.index)
    assert pointwise.iloc[:4].tolist() == [1.0, 0.0, 1.0, 1.0] and np.isnan(pointwise.iloc[4])


def test_wql_and_pinball_hand_computed():
    y = np.array([10.0, 20.0])
    quantiles = pd.DataFrame({0.1: [8.0, 22.0], 0.5: [10.0, 18.0], 0.9: [11.0, 25.0]})
    # pinball: q=0.1: y1 above f by 2 -> 0.2 ; y2 below f by 2 -> 0.9*2 = 1.8 ; sum 2.0
    #          q=0.5: 0 ; 0.5*2 = 1.0 ; sum 1.0
    #          q=0.9: 0.1*1 = 0.1 ; 0.1*5 = 0.5 ; sum 0.6
    # WQL = mean(2*2.0/30, 2*1.0/30, 2*0.6/30) = (4 + 2 + 1.2) / 90
    assert metrics.wql(y, quantiles, q=(0.1, 0.5, 0.9)) == pytest.approx(7.2 / 90)
    assert metrics.pinball_loss(y, quantiles, 0.1) == pytest.approx(1.0)
    np.testing.assert_allclose(metrics.pinball_loss(y, quantiles, 0.9, pointwise=True), [0.1, 0.5])


def test_wql_reads_the_forecast_bands():
    idx = pd.date_range("2024-01-01", periods=3, freq="D")
    y = pd.Series([1.0, 2.0, 3.0], index=idx)
    rng = np.random.default_rng(1)
    draws = 2.0 + rng.standard_normal((4000, 3))
    qs = np.quantile(draws, metrics.QUANTILES, axis=0).T  # (time, quantile)
    bands = pd.DataFrame(
        {
            "median": qs[:, 4],
            **{f"lower_{lv}": qs[:, 4 - k] for k, lv in enumerate((20, 40, 60, 80), start=1)},
            **{f"upper_{lv}": qs[:, 4 + k] for k, lv in enumerate((20, 40, 60, 80), start=1)},
        },
        index=idx,
    )
    quantile_frame = pd.DataFrame(qs, index=idx, columns=list(metrics.QUANTILES))
    assert metrics.wql(y, bands) == pytest.approx(metrics.wql(y, quantile_frame))
    assert metrics.wql(y, bands) == pytest.approx(metrics.wql(y.to_numpy(), draws))
    with pytest.raises(ValueError, match="lower_95"):
        metrics.interval_coverage(y, bands, level=0.95)


def test_mase_msis_point_errors_hand_computed():
    y_train = np.array([1.0, 3.0, 2.0, 5.0])  # |diffs| = 2, 1, 3 -> scale 2
    y = np.array([6.0, 4.0])
    pred = np.array([5.0, 5.0])
    assert metrics.seasonal_scale(y_train, 1) == pytest.approx(2.0)
    assert metrics.mase(y, pred, y_train=y_train) == pytest.approx(0.5)
    assert metrics.mae(y, pred) == pytest.approx(1.0)
    assert metrics.mse(y, pred) == pytest.approx(1.0)
    # season 2: |2-1|, |5-3| -> scale 1.5
    assert metrics.mase(y, pred, y_train=y_train, season=2) == pytest.approx(1 / 1.5)
    # MSIS, level 0.8 (alpha 0.2): [5,7] holds 6 -> IS 2; [4.5,5] misses 4 -> 0.5 + 10*0.5 = 5.5
    lower, upper = np.array([5.0, 4.5]), np.array([7.0, 5.0])
    got = metrics.msis(y, level=0.8, lower=lower, upper=upper, y_train=y_train)
    assert got == pytest.approx((2 + 5.5) / 2 / 2.0)


def test_coverage_table_from_samples_is_nominal_for_a_calibrated_forecast():
    rng = np.random.default_rng(2)
    n = 4000
    y = rng.standard_normal(n)
    draws = rng.standard_normal((500, n))
    table = metrics.coverage_table(y, draws, levels=(0.5, 0.8, 0.95))
    np.testing.assert_allclose(table["coverage"], table["level"], atol=0.03)
    np.testing.assert_allclose(
        table["width"], 2 * stats.norm.ppf(0.5 + table["level"] / 2), rtol=0.05
    )


def test_pit_uniform_when_calibrated_and_not_when_overconfident():
    rng = np.random.default_rng(3)
    n = 2000
    mu = rng.normal(size=n)
    y = mu + rng.standard_normal(n)
    good = mu + rng.standard_normal((400, n))
    narrow = mu + 0.5 * rng.standard_normal((400, n))
    assert stats.kstest(metrics.pit(y, good, key=0), "uniform").pvalue > 0.01
    assert stats.kstest(metrics.pit(y, narrow, key=0), "uniform").pvalue < 1e-6
    # ties: a point-mass forecast equal to y gets a uniform randomised PIT, mid-rank 0.5
    tied = metrics.pit(np.zeros(3000), np.zeros((9, 3000)), key=1)
    assert stats.kstest(tied, "uniform").pvalue > 0.01
    np.testing.assert_allclose(metrics.pit(np.zeros(2), np.zeros((9, 2))), 0.5)


def test_missing_actuals_are_skipped():
    y = np.array([1.0, np.nan, 3.0])
    draws = np.tile([1.0, 100.0, 4.0], (5, 1))
    assert metrics.crps(y, draws) == pytest.approx(0.5)
    assert np.isnan(metrics.pit(y, draws)[1])
    with pytest.raises(ValueError, match="no observed"):
        metrics.crps(np.array([np.nan, np.nan]), np.zeros((3, 2)))


def test_misaligned_index_is_refused():
    idx = pd.date_range("2024-01-01", periods=4, freq="D")
    y = pd.Series([1.0, 2.0, 3.0, 4.0], index=idx)
    shifted = pd.Series([1.0, 2.0, 3.0, 4.0], index=pd.date_range("2023-12-31", periods=4))
    with pytest.raises(ValueError, match="not aligned"):
        metrics.mae(y, shifted)
    with pytest.raises(ValueError, match="not aligned"):
        metrics.interval_coverage(y, lower=y - 1, upper=shifted)
    # same set of timestamps in another order is aligned, not refused
    assert metrics.mae(y, y.iloc[::-1] + 1) == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"shape \(sample, time\)"):
        metrics.crps(y, np.zeros(4))


def test_horizon_longer_than_test_window_is_refused():
    idx = pd.date_range("2024-01-01", periods=6, freq="D")
    y = pd.Series(np.arange(4.0), index=idx[:4])
    forecast = pd.DataFrame({"median": np.arange(6.0), "mean": np.arange(6.0)}, index=idx)
    with pytest.raises(ValueError, match="horizon is longer than the test window"):
        metrics.mae(y, forecast)
    with pytest.raises(ValueError, match="horizon is longer than the test window"):
        metrics.crps(y.to_numpy(), np.zeros((5, 6)))


@pytest.mark.parametrize("level", [0.0, 1.0, 1.2, -0.1, 80])
def test_levels_outside_unit_interval_are_refused(level):
    y = np.arange(3.0)
    draws = np.zeros((5, 3))
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        metrics.interval_coverage(y, draws, level=level)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        metrics.coverage_table(y, draws, levels=(0.5, level))


def test_exchange_rate_seasonal_naive_reproduces_published_protocol():
    """Chronos Benchmark II on exchange_rate: WQL 0.01298, MASE 1.740 (datasets/README.md)."""
    from bayes_ssm.data import datasets

    frame = datasets.load("exchange_rate")
    horizon, season = 30, 5
    actual, predicted, mases = [], [], []
    for column in frame:
        train, test = frame[column].iloc[:-horizon], frame[column].iloc[-horizon:]
        draws = SeasonalNaive(season).forecast_samples(train.to_numpy(), horizon, num_samples=1)
        actual.append(test.to_numpy())
        predicted.append(draws)
        mases.append(metrics.mase(test.to_numpy(), draws, y_train=train, season=season))
    pooled = metrics.wql(np.concatenate(actual), np.concatenate(predicted, axis=1))
    assert f"{pooled:.3g}" == "0.013" and round(pooled, 5) == 0.01298
    assert f"{np.mean(mases):.4g}" == "1.74"


def test_metrics_take_a_fit_forecast_and_its_draws():
    from toy_models import ToyLocalLevel

    from bayes_ssm.inference import fitting as infer

    rng = np.random.default_rng(5)
    y = pd.Series(np.cumsum(rng.normal(size=70)), index=pd.date_range("2024-01-01", periods=70))
    train, test = y.iloc[:-6], y.iloc[-6:]
    fit = infer.fit_svi(ToyLocalLevel(), train, key=0, steps=500, progress=False)
    fc = fit.forecast(6, prob=(0.2, 0.4, 0.6, 0.8), key=1)
    draws = fit.forecast_samples(6, key=1)
    # the bands DataFrame and the draws it summarises give the same scores
    assert metrics.wql(test, fc) == pytest.approx(metrics.wql(test.to_numpy(), draws), rel=1e-6)
    assert metrics.interval_coverage(test, fc, level=0.8) == metrics.interval_coverage(
        test.to_numpy(), draws, level=0.8
    )
    assert metrics.mase(test, fc, y_train=train) == pytest.approx(
        metrics.mase(test.to_numpy(), draws, y_train=train)
    )
    with pytest.raises(ValueError, match="horizon is longer"):
        metrics.crps(test.iloc[:4], pd.DataFrame(draws.T, index=fc.index))
