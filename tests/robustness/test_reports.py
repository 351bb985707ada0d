"""What the read-outs report (issue 13: ``summary`` omitted ``beta`` when covariates were given
without ``regression=True``; ``plot_attention_map`` clipped negative weights; ``compare``'s
docstring named columns it does not return and its values were rounded; the ``"ets"`` baseline
ignored the season; point baselines reported coverage 0 and width 0)."""

from __future__ import annotations

import dataclasses
import re

import arviz_stats
import matplotlib
import numpy as np
import pandas as pd
import pytest
from robust_helpers import series

import bayes_ssm as bs
from bayes_ssm.evaluation.baselines import StatsmodelsETS, baseline_from_name
from bayes_ssm.inference.diagnostics import compare, summary

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def beta_fit(level_fit):
    """``level_fit`` as if fitted with one covariate and ``regression=None`` (the default): the
    model then samples ``beta`` although ``parameter_sites`` does not list it."""
    rng = np.random.default_rng(5)
    promo = (np.arange(level_fit.data.num_steps) % 5 == 0).astype(float)[:, None]
    data = dataclasses.replace(level_fit.data, covariates=promo, covariate_names=("promo",))
    beta = rng.normal(2.0, 0.1, (1, level_fit.num_draws, 1))
    return dataclasses.replace(level_fit, data=data, draws={**level_fit.draws, "beta": beta})


def test_summary_shows_beta_when_covariates_were_used(beta_fit, level_fit):
    assert beta_fit.model.regression is None
    assert "beta" not in beta_fit.model.parameter_sites
    table = summary(beta_fit)
    rows = [name for name in table.index if name.startswith("beta")]
    assert len(rows) == 1
    assert table.loc[rows[0], "mean"] == pytest.approx(float(beta_fit.draws["beta"].mean()))
    assert not any(name.startswith("beta") for name in summary(level_fit).index)


def test_compare_returns_its_documented_columns_unrounded(level_fit):
    # the same model with its level noise shrunk tenfold: a worse fit of the same data
    draws = dict(level_fit.draws)
    draws["sigma_level"] = draws["sigma_level"] * 0.1
    stiff = dataclasses.replace(level_fit, draws=draws)
    table = compare({"fitted": level_fit, "stiff": stiff})
    documented = re.findall(r"``(\w+)``", compare.__doc__.split("Returns")[1].split("Notes")[0])
    assert set(table.columns) <= set(documented) and {"elpd", "se", "weight"} <= set(table.columns)
    assert list(table.index) == ["fitted", "stiff"]
    loo = arviz_stats.loo(level_fit.to_arviz())  # an independent computation of the same elpd
    assert table.loc["fitted", "elpd"] == pytest.approx(float(loo["elpd"]), rel=1e-12)
    assert table.loc["fitted", "elpd"] != round(table.loc["fitted", "elpd"], 1)


def test_attention_map_keeps_negative_weights():
    from bayes_ssm.plotting import plot_attention_map

    frame = pd.DataFrame(
        {
            "lag": [1, 2, 3],
            "mean": [0.6, -0.3, 0.1],
            "lower_95": [0.4, -0.5, -0.1],
            "upper_95": [0.8, -0.1, 0.3],
        }
    )
    ax = plot_attention_map(frame)
    assert ax.get_ylim()[0] <= -0.5


def test_ets_baseline_by_name_honours_the_season():
    ets = baseline_from_name("ets", season=4)
    assert ets == StatsmodelsETS(seasonal="add", season=4)
    assert baseline_from_name("ets") == StatsmodelsETS()
    t = np.arange(48)
    y = 10 + 3 * np.sin(2 * np.pi * t / 4) + np.random.default_rng(0).normal(0, 0.1, 48)
    seasonal = ets.forecast_samples(y, 4, num_samples=200, key=0).mean(axis=0)
    truth = 10 + 3 * np.sin(2 * np.pi * np.arange(48, 52) / 4)
    assert np.abs(seasonal - truth).max() < 1.0  # a non-seasonal ETS misses by ~3


def test_point_baselines_report_no_interval_scores():
    y = series().reset_index(drop=True)
    scores = bs.backtest(
        None, y, horizon=3, folds=2, baselines=["naive"], season=1, key=0, progress=False
    )
    assert scores["covered_95"].isna().all() and scores["width_95"].isna().all()
    assert scores["crps"].notna().all()
    summary_table = bs.summarize_backtest(scores)
    assert summary_table["coverage_95"].isna().all()
