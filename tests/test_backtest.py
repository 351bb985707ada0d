"""Rolling-origin backtests: fold geometry, no look-ahead, flagged folds, scores, bad input."""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from toy_models import ToyLocalLevel

from bayes_ssm.evaluation import metrics
from bayes_ssm.evaluation.baselines import SeasonalNaive

bt = importlib.import_module(
    "bayes_ssm.evaluation.backtesting"
)  # the module (bs.backtest is the function)


def random_walk(n=80, seed=0):
    rng = np.random.default_rng(seed)
    return pd.Series(
        np.cumsum(rng.normal(size=n)) + 50,
        index=pd.date_range("2021-01-04", periods=n, freq="B"),
        name="rw",
    )


class Recorder:
    """A baseline that remembers the training data it was given (and forecasts the last one)."""

    name = "recorder"

    def __init__(self):
        self.seen = []

    def forecast_samples(self, y_train, horizon, *, num_samples, key=None):
        self.seen.append(np.array(y_train))
        return np.full((num_samples, horizon), y_train[-1])


def test_rolling_origins_hand_computed():
    folds = bt.rolling_origins(20, 3, 3, step=2, min_train=5)
    assert [(f.train.start, f.train.stop, f.test.start, f.test.stop) for f in folds] == [
        (0, 13, 13, 16),
        (0, 15, 15, 18),
        (0, 17, 17, 20),
    ]
    sliding = bt.rolling_origins(20, 3, 3, step=2, window="sliding", min_train=5)
    assert [(f.train.start, f.train.stop) for f in sliding] == [(8, 13), (10, 15), (12, 17)]
    default_step = bt.rolling_origins(20, 4, 2, min_train=5)
    assert [f.test.start for f in default_step] == [12, 16]


def test_training_slice_ends_at_the_origin():
    y = random_walk()
    rec = Recorder()
    scores = bt.backtest(
        None, y, horizon=4, folds=5, step=3, baselines=[rec], key=0, progress=False, num_samples=3
    )
    plan = bt.rolling_origins(len(y), 4, 5, step=3, min_train=10)
    assert len(rec.seen) == 5
    for fold, seen in zip(plan, rec.seen, strict=True):
        origin = fold.test.start
        np.testing.assert_array_equal(seen, y.to_numpy()[:origin])  # exactly the past
    table = scores.attrs["folds"]
    assert (table["cutoff"] < table["first_forecast"]).all()
    # independent check: the one-step error of "repeat the last value" on a random walk is the
    # increment at the origin - it would be 0 if the training data reached the origin.
    one_step = scores[scores.horizon == 1].sort_values("fold")
    origins = [f.test.start for f in plan]
    expected = np.abs(y.to_numpy()[origins] - y.to_numpy()[np.array(origins) - 1])
    np.testing.assert_allclose(one_step["abs_error"], expected)
    assert (expected > 0).all()


def test_planted_leak_is_caught(monkeypatch):
    y = random_walk()

    def leaky(series, fold):  # an off-by-one bug: the training data include the origin
        return series.iloc[fold.train.start : fold.train.stop + 1].copy()

    monkeypatch.setattr(bt, "_training_data", leaky)
    with pytest.raises(bt.BacktestLeakError, match="see the future"):
        bt.backtest(None, y, horizon=3, folds=2, baselines=["naive"], key=0, progress=False)


def test_scores_agree_with_the_metrics_module():
    y = random_walk(60, seed=3)
    y.iloc[55] = np.nan  # a missing actual inside a test window
    naive = SeasonalNaive(1)
    scores = bt.backtest(
        None,
        y,
        horizon=5,
        folds=3,
        baselines=[naive],
        season=1,
        key=1,
        progress=False,
        num_samples=2,
    )
    plan = bt.rolling_origins(len(y), 5, 3, min_train=10)
    actual, forecast = [], []
    for fold in plan:
        train = y.iloc[fold.train]
        test = y.iloc[fold.test]
        point = naive.point_forecast(train.to_numpy(), 5)
        rows = scores[scores.fold == fold.number]
        np.testing.assert_allclose(rows["crps"], np.abs(test - point))  # point mass: |error|
        mase = metrics.mase(test, pd.Series(point, index=test.index), y_train=train)
        assert rows["scaled_error"].mean() == pytest.approx(mase)
        actual.append(test.to_numpy())
        forecast.append(np.tile(point, (2, 1)))
    summary = bt.summarize_backtest(scores).iloc[0]
    pooled = metrics.wql(np.concatenate(actual), np.concatenate(forecast, axis=1))
    assert summary["wql"] == pytest.approx(pooled)
    assert np.isnan(scores.loc[scores.timestamp == y.index[55], "crps"]).all()
    assert np.isfinite(summary["crps"])
    calib = bt.backtest_calibration(scores)
    assert calib["level"].tolist() == [0.5, 0.8, 0.95]
    # a point forecast has no interval to score: coverage and width are NaN, not 0 (issue 13)
    assert calib["num_observed"].tolist() == [0, 0, 0]
    assert calib["coverage"].isna().all()
    assert np.isnan(summary["coverage_95"]) and np.isnan(summary["width_95"])


def test_bayesian_fold_that_did_not_converge_is_flagged_and_excluded():
    y = random_walk(70, seed=4)
    scores = bt.backtest(
        ToyLocalLevel(),
        y,
        horizon=3,
        folds=2,
        window="sliding",
        min_train=40,
        method="svi",
        baselines=["naive"],
        key=0,
        fit_kwargs={"steps": 5, "check_every": 10},
        num_samples=50,
        progress=False,
    )
    toy = scores[scores.model == "toy_local_level"]
    assert not toy["converged"].any()
    assert toy["problems"].str.contains("SVI did not converge").all()
    summary = bt.summarize_backtest(scores).set_index("model")
    assert summary.loc["toy_local_level", "folds"] == 0
    assert summary.loc["toy_local_level", "folds_excluded"] == 2
    assert np.isnan(summary.loc["toy_local_level", "crps"])
    assert summary.loc["naive", "folds"] == 2 and summary.loc["naive", "folds_excluded"] == 0


def test_bayesian_model_fitted_per_fold():
    y = random_walk(100, seed=5)  # increments N(0, 1)
    scores = bt.backtest(
        ToyLocalLevel(obs_sd=0.1),
        y,
        horizon=3,
        folds=2,
        window="sliding",
        min_train=80,
        key=0,
        num_samples=None,
        progress=False,
    )
    assert set(scores.model) == {"toy_local_level"}
    assert scores.shape[0] == 6 and scores["converged"].all()
    # a random walk seen through little noise: the predictive sd at step h is close to
    # sqrt(h * level_var + 0.01) with level_sd near 1, so the 95% width grows like sqrt(h)
    widths = scores.groupby("horizon")["width_95"].mean()
    assert widths.is_monotonic_increasing
    np.testing.assert_allclose(widths, 2 * 1.96 * np.sqrt(np.arange(1, 4) + 0.01), rtol=0.3)


class Exploding:
    """A baseline whose 'fit' breaks numerically on the second fold."""

    name = "exploding"

    def __init__(self):
        self.calls = 0

    def forecast_samples(self, y_train, horizon, *, num_samples, key=None):
        self.calls += 1
        if self.calls == 2:
            raise FloatingPointError("loss became nan")
        if self.calls == 4:
            return np.full((num_samples, horizon), np.nan)
        return np.full((num_samples, horizon), y_train[-1])


def test_numerical_failure_is_flagged_not_averaged():
    y = random_walk(60, seed=8)
    scores = bt.backtest(
        None,
        y,
        horizon=2,
        folds=4,
        baselines=[Exploding(), "naive"],
        key=0,
        progress=False,
        num_samples=2,
    )
    bad = scores[(scores.model == "exploding") & (scores.fold == 1)]
    assert len(bad) == 2 and not bad["converged"].any() and bad["crps"].isna().all()
    assert bad["problems"].str.contains("FloatingPointError").all()
    nan_fold = scores[(scores.model == "exploding") & (scores.fold == 3)]
    assert not nan_fold["converged"].any() and nan_fold["crps"].isna().all()
    assert nan_fold["problems"].str.contains("non-finite").all()
    summary = bt.summarize_backtest(scores).set_index("model")
    assert summary.loc["exploding", "folds"] == 2
    assert summary.loc["exploding", "folds_excluded"] == 2
    # the remaining folds of "exploding" are the naive forecast: same scores as "naive" there
    naive = scores[(scores.model == "naive") & scores.fold.isin([0, 2])]["crps"].mean()
    assert summary.loc["exploding", "crps"] == pytest.approx(naive)


def test_several_models_by_name_and_duplicate_names_refused():
    y = random_walk(60, seed=9)
    scores = bt.backtest(
        {"last value": SeasonalNaive(1), "weekly": SeasonalNaive(5)},
        y,
        horizon=2,
        folds=2,
        key=0,
        progress=False,
        num_samples=1,
    )
    assert list(scores["model"].unique()) == ["last value", "weekly"]
    with pytest.raises(ValueError, match="both named 'naive'"):
        bt.backtest(
            SeasonalNaive(1), y, horizon=2, folds=2, baselines=["naive"], key=0, progress=False
        )


def test_refit_false_updates_later_folds_without_refitting(monkeypatch):
    import bayes_ssm.inference.fitting as infer

    calls = []
    real_fit_svi = infer.fit_svi

    def counting_fit_svi(*args, **kwargs):
        calls.append(1)
        return real_fit_svi(*args, **kwargs)

    monkeypatch.setattr(infer, "fit_svi", counting_fit_svi)
    y = random_walk(100, seed=6)
    scores = bt.backtest(
        ToyLocalLevel(obs_sd=0.1),
        y,
        horizon=2,
        folds=3,
        refit=False,
        min_train=60,
        key=0,
        progress=False,
    )
    assert len(calls) == 1  # fitted once, at the first origin
    folds = scores.attrs["folds"]
    assert (folds["cutoff"] < folds["first_forecast"]).all()
    one_step = scores[scores.horizon == 1].sort_values("fold")
    last_seen = y.shift(1).loc[one_step["timestamp"]].to_numpy()
    # the state is filtered up to each origin: the one-step median sits near the last value
    np.testing.assert_allclose(one_step["median"], last_seen, atol=0.3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"horizon": 5, "folds": 20}, "min_train"),
        ({"horizon": 100, "folds": 1}, "min_train"),
        ({"horizon": 0, "folds": 2}, "horizon"),
        ({"horizon": 3, "folds": 2, "window": "rolling"}, "window"),
        ({"horizon": 3, "folds": 2, "levels": (0.8, 1.5)}, "strictly between 0 and 1"),
        ({"horizon": 3, "folds": 2, "method": "mcmc"}, "method"),
        ({"horizon": 3, "folds": 2, "baselines": ["arima"]}, "unknown baseline"),
    ],
)
def test_bad_input_is_refused(kwargs, match):
    y = random_walk(40)
    with pytest.raises(ValueError, match=match):
        bt.backtest(
            None, y, baselines=kwargs.pop("baselines", ["naive"]), key=0, progress=False, **kwargs
        )


def test_key_is_required_and_keyword_only():
    with pytest.raises(TypeError):
        bt.backtest(None, random_walk(), horizon=3, folds=2, baselines=["naive"])


@pytest.mark.slow
def test_pit_of_a_well_specified_model_is_uniform():
    """One-step-ahead PITs over many origins: uniform when the model is right, not when wrong."""
    rng = np.random.default_rng(11)
    n = 250
    y = pd.Series(
        np.cumsum(rng.normal(0, 1.0, n)) + rng.normal(0, 0.5, n),
        index=pd.date_range("2020-01-01", periods=n, freq="D"),
    )
    scores = bt.backtest(
        ToyLocalLevel(),
        y,
        horizon=1,
        folds=200,
        step=1,
        window="sliding",
        min_train=50,
        baselines=["naive"],
        key=0,
        num_samples=None,
        fit_kwargs={"steps": 3000},
        progress=False,
    )
    fitted = scores[scores.model == "toy_local_level"]
    assert fitted["converged"].mean() > 0.9
    good = fitted[fitted["converged"]]  # as summarize_backtest does: flagged folds left out
    assert stats.kstest(good["pit"], "uniform").pvalue > 0.01
    assert 0.72 < good["covered_80"].mean() < 0.88
    # the naive point forecast has no spread at all: its PITs pile up at 0 and 1
    naive = scores[scores.model == "naive"]
    assert stats.kstest(naive["pit"], "uniform").pvalue < 1e-6
