"""Evaluation plots render headlessly to PNG, with labelled axes, and refuse bad input."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from bayes_ssm.evaluation import metrics  # noqa: E402
from bayes_ssm.plotting import evaluation as ev  # noqa: E402

# Set BAYES_SSM_PLOT_DIR to keep the PNGs for a look.
KEEP = os.environ.get("BAYES_SSM_PLOT_DIR")


def _save(ax, name, tmp_path):
    axes = np.atleast_1d(ax)
    fig = axes[0].figure
    path = (Path(KEEP) if KEEP else tmp_path) / f"{name}.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    assert path.stat().st_size > 5_000
    return axes


def _labelled(ax):
    assert ax.get_xlabel() and ax.get_ylabel(), (ax.get_xlabel(), ax.get_ylabel())


@pytest.fixture
def calibrated():
    rng = np.random.default_rng(0)
    n = 400
    mu = rng.normal(size=n)
    y = mu + rng.standard_normal(n)
    return y, mu + rng.standard_normal((300, n)), mu + 0.6 * rng.standard_normal((300, n))


def test_pit_histogram(calibrated, tmp_path):
    y, good, _ = calibrated
    ax = ev.plot_pit(metrics.pit(y, good, key=0))
    _labelled(ax)
    _save(ax, "pit", tmp_path)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ev.plot_pit(np.array([0.2, 1.5]))


def test_calibration_curve(calibrated, tmp_path):
    y, good, narrow = calibrated
    levels = np.round(np.arange(0.1, 1.0, 0.1), 2)
    tables = {
        "well specified": metrics.coverage_table(y, good, levels=levels),
        "over-confident": metrics.coverage_table(y, narrow, levels=levels),
    }
    ax = ev.plot_calibration(tables)
    _labelled(ax)
    assert len(ax.get_lines()) == 3  # ideal + two models
    _save(ax, "calibration", tmp_path)


def _scores():
    rng = np.random.default_rng(1)
    rows = []
    for model, scale in (("StructuralTS", 1.0), ("seasonal_naive", 1.4)):
        for fold in range(8):
            for h in range(1, 7):
                rows.append(
                    {
                        "model": model,
                        "fold": fold,
                        "horizon": h,
                        "crps": scale * np.sqrt(h) * (0.5 + 0.1 * rng.random()),
                        "covered_80": float(rng.random() < 0.8),
                        "converged": not (model == "StructuralTS" and fold == 3),
                    }
                )
    return pd.DataFrame(rows)


def test_backtest_scores_by_horizon(tmp_path):
    scores = _scores()
    ax = ev.plot_backtest_scores(scores, "crps")
    _labelled(ax)
    assert any("not converged" in t.get_text() for t in ax.get_legend().get_texts())
    _save(ax, "backtest_crps", tmp_path)
    ax = ev.plot_backtest_scores(scores, "covered_80")
    assert "80%" in ax.get_ylabel()
    _save(ax, "backtest_coverage", tmp_path)
    with pytest.raises(ValueError, match="lacks columns"):
        ev.plot_backtest_scores(scores, "msis")


def _band_frame(index, center, scale):
    frame = pd.DataFrame({"mean": center}, index=index)
    for level, z in ((50, 0.674), (80, 1.2816), (95, 1.96)):
        frame[f"lower_{level}"] = center - z * scale
        frame[f"upper_{level}"] = center + z * scale
    return frame


def test_component_decomposition(tmp_path):
    index = pd.date_range("2020-01-04", periods=156, freq="W-SAT", name="week_ending")
    t = np.arange(156)
    level = 2 + 0.01 * t
    seasonal = np.sin(2 * np.pi * t / 52)
    components = {
        "level": _band_frame(index, level, 0.05 + 0.002 * t),
        "seasonal": _band_frame(index, seasonal, 0.1),
    }
    y = pd.Series(level + seasonal + 0.1 * np.random.default_rng(2).normal(size=156), index=index)
    axes = ev.plot_components(components, y=y)
    assert len(axes) == 3
    assert [ax.get_ylabel() for ax in axes] == ["observed", "level", "seasonal"]
    assert axes[-1].get_xlabel() == "week_ending"
    _save(axes, "components", tmp_path)
    long = pd.concat([f.assign(component=k) for k, f in components.items()])
    assert len(ev.plot_components(long)) == 2
    wide = pd.concat(components, axis=1, names=["component", "statistic"])  # Fit.components()
    assert [ax.get_ylabel() for ax in ev.plot_components(wide)] == ["level", "seasonal"]
    plt.close("all")
    with pytest.raises(ValueError, match="'mean'"):
        ev.plot_components({"level": components["level"].drop(columns="mean")})


def test_attention_map(tmp_path):
    lags = np.arange(1, 27)
    weights = np.exp(-lags / 6.0)
    weights /= weights.sum()
    frame = pd.DataFrame({"lag": lags, "mean": weights})
    for level, f in ((50, 0.2), (95, 0.5)):
        frame[f"lower_{level}"] = weights * (1 - f)
        frame[f"upper_{level}"] = weights * (1 + f)
    ax = ev.plot_attention_map(frame)
    _labelled(ax)
    _save(ax, "attention", tmp_path)
    with pytest.raises(ValueError, match="lag"):
        ev.plot_attention_map(frame.drop(columns="lag"))


def test_anomalies_on_band(tmp_path):
    index = pd.date_range("2024-01-01", periods=120, freq="D", name="date")
    rng = np.random.default_rng(4)
    mean = np.cumsum(rng.normal(0, 0.3, 120))
    observed = mean + rng.normal(0, 1, 120)
    observed[[30, 75]] += [6, -6]
    band = pd.DataFrame(
        {"observed": observed, "mean": mean, "lower": mean - 2.58, "upper": mean + 2.58},
        index=index,
    )
    band.attrs["level"] = 0.99
    flagged = band[(band.observed < band.lower) | (band.observed > band.upper)].copy()
    flagged["direction"] = np.where(flagged.observed > flagged.upper, "high", "low")
    flagged["tail_prob"] = 0.001
    ax = ev.plot_anomalies(flagged, band=band)
    _labelled(ax)
    assert len(ax.collections) >= 3  # band + high + low markers
    _save(ax, "anomalies", tmp_path)


def test_arviz_wrappers(tmp_path):
    import arviz as az

    rng = np.random.default_rng(5)
    dt = az.from_dict(
        {
            "posterior": {
                "sigma": rng.gamma(5, 0.1, (2, 200)),
                "phi": rng.normal(0.5, 0.1, (2, 200)),
            },
            "posterior_predictive": {"y": rng.normal(size=(2, 200, 30))},
            "observed_data": {"y": rng.normal(size=30)},
        }
    )
    axes = ev.plot_trace(dt)
    assert len(axes) == 4
    _save(axes, "trace", tmp_path)
    for ax in ev.plot_rank(dt):
        _labelled(ax)
    _save(ax, "rank", tmp_path)
    axes = ev.plot_ppc(dt, num_samples=20)
    _labelled(axes[0])
    _save(axes, "ppc", tmp_path)


def test_anomalies_drawn_over_the_fan_chart(tmp_path):
    from bayes_ssm.plotting import plot_forecast

    index = pd.date_range("2024-01-01", periods=60, freq="D", name="date")
    history = pd.Series(np.sin(np.arange(60) / 5.0), index=index)
    future = pd.date_range("2024-03-01", periods=10, freq="D", name="date")
    fc = _band_frame(future, np.zeros(10), np.linspace(0.2, 0.6, 10))
    fc["median"] = fc["mean"]
    flagged = pd.DataFrame(
        {"observed": history.iloc[[12, 40]].to_numpy(), "direction": ["high", "low"]},
        index=index[[12, 40]],
    )
    flagged.attrs["level"] = 0.99
    ax = plot_forecast(fc, history=history)
    lines_before = len(ax.get_lines())
    assert ev.plot_anomalies(flagged, ax=ax) is ax
    assert len(ax.get_lines()) == lines_before  # nothing redrawn, markers added
    assert "2 observations outside their 99% one-step band" in ax.get_title()
    _save(ax, "fan_anomalies", tmp_path)
