"""The pooled scores of ``benchmarks/default_suite.py`` against hand computations."""

from __future__ import annotations

import pathlib
import sys

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))

import suite_scores  # noqa: E402


def _fair_crps(y, x):
    """Fair ensemble CRPS by its definition: mean |X - y| - sum_ij |X_i - X_j| / (2 m (m-1))."""
    m = x.size
    return np.mean(np.abs(x - y)) - np.abs(x[:, None] - x[None, :]).sum() / (2 * m * (m - 1))


def _toy(seed):
    rng = np.random.default_rng(seed)
    actual = np.array([1.0, -2.0, 0.5, np.nan])
    draws = rng.normal(size=(41, 4)) * np.array([1.0, 2.0, 0.1, 1.0])
    return actual, draws


def test_forecast_rows_equal_definitions():
    actual, draws = _toy(0)
    rows = suite_scores.forecast_rows(actual, draws, scale=2.0)
    assert list(rows["h"]) == [1, 2, 3, 4]
    for t in range(3):
        assert rows["crps"][t] == pytest.approx(_fair_crps(actual[t], draws[:, t]), rel=1e-10)
        # quantiles: linear interpolation between order statistics (41 draws: q * 40)
        ordered = np.sort(draws[:, t])
        assert rows["q0.1"][t] == pytest.approx(ordered[4])
        assert rows["q0.025"][t] == pytest.approx(ordered[1])
    assert np.isnan(rows["crps"][3])  # a missing actual scores NaN


def test_pooled_equals_hand_computation():
    frames = []
    for seed in (1, 2):
        actual, draws = _toy(seed)
        frames.append(suite_scores.forecast_rows(actual, draws, scale=float(seed)))
    rows = pd.concat(frames, ignore_index=True)
    got = suite_scores.pooled(rows)
    ok = rows[rows["y"].notna()]
    y = ok["y"].to_numpy()
    # WQL by hand: mean over q of 2 * sum pinball / sum |y|
    wql = []
    for q in np.arange(1, 10) / 10:
        f = ok[f"q{q:g}"].to_numpy()
        pin = np.where(y > f, q * (y - f), (1 - q) * (f - y))
        wql.append(2 * pin.sum() / np.abs(y).sum())
    assert got["WQL"] == pytest.approx(np.mean(wql), rel=1e-12)
    inside80 = [(lo <= v <= hi) for v, lo, hi in zip(y, ok["q0.1"], ok["q0.9"], strict=True)]
    inside95 = [(lo <= v <= hi) for v, lo, hi in zip(y, ok["q0.025"], ok["q0.975"], strict=True)]
    assert got["cov80"] == pytest.approx(np.mean(inside80))
    assert got["cov95"] == pytest.approx(np.mean(inside95))
    assert got["scaled CRPS"] == pytest.approx(np.mean(ok["crps"] / ok["scale"]))
    assert got["n"] == 6


def test_summary_rel_crps_rank_and_common_rows():
    base = pd.DataFrame(
        {
            "series": ["a", "a", "b", "b"],
            "origin": ["2020-01-01"] * 4,
            "h": [1, 2, 1, 2],
            "y": [1.0, 1.0, 2.0, 2.0],
            "scale": [1.0, 1.0, 2.0, 2.0],
            "seconds": [3.0, 3.0, 5.0, 5.0],
            **{suite_scores.qcol(q): [1.0, 1.0, 2.0, 2.0] for q in suite_scores.LEVELS},
        }
    )
    good = base.assign(model="good", crps=[0.1, 0.3, 0.2, 0.2])
    naive = base.assign(model="naive", crps=[0.4, 0.4, 0.8, 0.8])
    # "partial" failed on series b: it is scored on its rows; the others on all rows
    partial = base.iloc[:2].assign(model="partial", crps=[0.0, 0.0])
    out = suite_scores.summary(pd.concat([naive, good, partial]), baseline="naive")
    out = out.set_index("model")
    assert out.loc["good", "scaled CRPS"] == pytest.approx((0.1 + 0.3 + 0.1 + 0.1) / 4)
    assert out.loc["naive", "scaled CRPS"] == pytest.approx(0.4)
    assert out.loc["good", "rel. CRPS"] == pytest.approx(0.15 / 0.4)
    assert out.loc["partial", "n"] == 2 and out.loc["good", "n"] == 4
    assert list(out["rank"].sort_values().index) == ["partial", "good", "naive"]
    assert out.loc["good", "seconds"] == pytest.approx(8.0)  # one fit per series and origin
    assert out.loc["good", "cov80"] == 1.0  # the actual equals the quantiles: inside
    last = suite_scores.summary(pd.concat([naive, good]), baseline="naive", steps=[2])
    assert last.set_index("model").loc["good", "scaled CRPS"] == pytest.approx(0.2)
    alone = suite_scores.summary(good, baseline="naive")  # no baseline rows: no rel. CRPS
    assert np.isnan(alone["rel. CRPS"].iloc[0]) and alone["n"].iloc[0] == 4


def test_forecast_rows_refuse_bad_input():
    with pytest.raises(ValueError, match="draws must be"):
        suite_scores.forecast_rows(np.zeros(3), np.zeros((10, 2)), scale=1.0)
    with pytest.raises(ValueError, match="NaN or infinite"):
        suite_scores.forecast_rows(np.zeros(2), np.full((10, 2), np.inf), scale=1.0)
    with pytest.raises(ValueError, match="scale"):
        suite_scores.forecast_rows(np.zeros(2), np.zeros((10, 2)), scale=0.0)


@pytest.mark.parametrize("season", [1, 4])
def test_empirical_naive_errors_use_the_rule_lag(season):
    """On y_t = pattern(t mod season) + t the seasonal naive's h-step error is always its lag,
    so the empirical-quantile draws must equal the true continuation exactly."""
    import suite_runners

    pattern = {1: np.zeros(1), 4: np.array([0.0, 5.0, -3.0, 1.0])}[season]
    full = pattern[np.arange(72) % season] + np.arange(72.0)
    train = pd.Series(full[:60], index=pd.date_range("2020-01-05", periods=60, freq="W"))
    draws = suite_runners.EmpiricalNaive(season).forecast(train, 12, key=0)
    assert draws.shape == (suite_runners.NUM_SAMPLES, 12)
    np.testing.assert_allclose(draws, np.broadcast_to(full[60:], draws.shape))
