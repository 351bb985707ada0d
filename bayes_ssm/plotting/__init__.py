"""Plots (matplotlib; each function returns its Axes). Plots never see JAX."""

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

__all__ = [
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
