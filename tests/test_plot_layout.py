"""Plots checked as rendered PNGs: legends off the data, y-limits on the data, one colour per
model across plots, labels that say what is drawn."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.image as mimage  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import bayes_ssm as bs  # noqa: E402
from bayes_ssm.evaluation.backtest_scores import backtest_calibration  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _render(ax, path) -> None:
    """Save as PNG (what a user gets) and read it back: a real, non-blank image."""
    ax.figure.savefig(path, dpi=60)
    pixels = mimage.imread(path)
    assert pixels.ndim == 3 and pixels.std() > 0.01


def _forecast(index, centre, spread):
    n = len(index)
    mid = np.full(n, centre, float)
    return pd.DataFrame(
        {
            "mean": mid,
            "median": mid,
            "lower_80": mid - spread,
            "upper_80": mid + spread,
            "lower_95": mid - 2 * spread,
            "upper_95": mid + 2 * spread,
        },
        index=index,
    )


@pytest.mark.parametrize("shape", ["rising", "falling", "flat"])
def test_fan_chart_legend_covers_no_data(tmp_path, shape):
    # the legend used to sit upper left, on the history of a falling series
    history_index = pd.date_range("2020-01-04", periods=80, freq="W-SAT")
    trend = {"rising": np.linspace(0, 10, 80), "falling": np.linspace(10, 0, 80)}
    values = trend.get(shape, np.full(80, 5.0)) + np.sin(np.arange(80))
    history = pd.Series(values, index=history_index, name="cases")
    future = pd.date_range(history_index[-1], periods=13, freq="W-SAT")[1:]
    fc = _forecast(future, values[-1], 1.0)
    ax = bs.plot_forecast(fc, history=history)
    _render(ax, tmp_path / "fan.png")
    renderer = ax.figure.canvas.get_renderer()
    legend = ax.get_legend().get_window_extent(renderer)
    data_area = ax.get_window_extent(renderer)
    assert not legend.overlaps(data_area), (legend, data_area)
    assert ax.get_ylabel() == "cases"


def test_fan_chart_ylabel_names_the_quantity_not_a_column():
    index = pd.date_range("2024-01-01", periods=30, freq="B")
    vol = pd.Series(np.linspace(0.5, 0.7, 30), index=index, name="median")
    fc = _forecast(pd.date_range(index[-1], periods=6, freq="B")[1:], 0.7, 0.05)
    fc.attrs["quantity"] = "volatility (sd of returns)"
    ax = bs.plot_forecast(fc, history=vol)
    assert ax.get_ylabel() == "volatility (sd of returns)"


def test_anomaly_plot_ylim_holds_the_data_not_the_first_step_band(tmp_path):
    index = pd.date_range("2024-01-01", periods=60, freq="D")
    y = pd.Series(np.sin(np.arange(60) / 5.0), index=index)
    band = pd.DataFrame(
        {"mean": y.to_numpy(), "lower": y.to_numpy() - 0.4, "upper": y.to_numpy() + 0.4},
        index=index,
    )
    band.iloc[0, 1:] = [-40.0, 40.0]  # the filter's diffuse start: a band 100 times wider
    band["observed"] = y
    found = pd.DataFrame(
        {"observed": [y.iloc[30]], "tail_prob": [0.001], "direction": ["high"]},
        index=index[[30]],
    )
    found.attrs["level"] = 0.99
    ax = bs.plot_anomalies(found, band=band)
    _render(ax, tmp_path / "anomalies.png")
    lo, hi = ax.get_ylim()
    assert lo <= y.min() - 0.4 and hi >= y.max() + 0.4  # the data and the settled band
    assert hi - lo < 4  # not stretched to the first step's +-40
    assert ax.get_title().startswith("Anomalies: 1 observation outside their 99% one-step band")


def test_backtest_plots_give_each_model_one_colour(tmp_path):
    y = pd.Series(
        np.sin(np.arange(120) * 2 * np.pi / 7) + np.arange(120) / 40,
        index=pd.date_range("2024-01-01", periods=120, freq="D"),
    )
    # scores list seasonal_naive first; the calibration table is sorted (naive first)
    scores = bs.backtest(
        None, y, horizon=3, folds=6, baselines=["seasonal_naive", "naive"], season=7, key=0
    )
    ax_scores = bs.plot_backtest_scores(scores)
    ax_cal = bs.plot_calibration(backtest_calibration(scores))
    _render(ax_scores, tmp_path / "scores.png")
    _render(ax_cal, tmp_path / "calibration.png")

    def colours(ax, suffix=""):
        handles, labels = ax.get_legend_handles_labels()
        out = {}
        for handle, label in zip(handles, labels, strict=True):
            line = handle[0] if isinstance(handle, tuple) else handle  # errorbar containers
            if hasattr(line, "get_color"):  # lines, not the reference band
                out[label.removesuffix(suffix)] = mcolors.to_hex(line.get_color())
        return out

    in_scores = colours(ax_scores, " (6 folds)")
    in_calibration = colours(ax_cal)
    for model in ("naive", "seasonal_naive"):
        assert in_scores[model] == in_calibration[model], model
    assert in_scores["naive"] != in_scores["seasonal_naive"]


def test_log_scale_components_say_so():
    index = pd.date_range("2024-01-01", periods=20, freq="D")
    stats = pd.DataFrame({"mean": np.zeros(20), "lower_80": -np.ones(20), "upper_80": np.ones(20)})
    stats.index = index
    components = pd.concat({"level": stats, "seasonal": stats}, axis=1)
    components.attrs["scale"] = "log"
    axes = bs.plot_components(components)
    assert [ax.get_ylabel() for ax in axes] == ["level\n(log scale)", "seasonal\n(log scale)"]
    assert "log rate" in axes[0].get_title()
    components.attrs["scale"] = "data"
    axes = bs.plot_components(components)
    assert [ax.get_ylabel() for ax in axes] == ["level", "seasonal"]
