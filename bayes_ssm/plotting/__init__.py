"""Plots of pandas results (matplotlib only; each returns its Axes; plots never see JAX)."""

from bayes_ssm.plotting.evaluation import (
    plot_anomalies,
    plot_attention_map,
    plot_backtest_scores,
    plot_calibration,
    plot_components,
    plot_pit,
    plot_ppc,
    plot_rank,
    plot_trace,
)
from bayes_ssm.plotting.forecast import plot_forecast

__all__ = [
    "plot_forecast",
    "plot_anomalies",
    "plot_attention_map",
    "plot_backtest_scores",
    "plot_calibration",
    "plot_components",
    "plot_pit",
    "plot_ppc",
    "plot_rank",
    "plot_trace",
]
