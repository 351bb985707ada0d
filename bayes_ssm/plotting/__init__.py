"""Plots of pandas results (matplotlib only; plots never see JAX).

Each returns its Axes: one ``Axes`` for a one-panel plot, a NumPy array of ``Axes`` (one per
panel) for the multi-panel ``plot_components``, ``plot_trace`` and ``plot_rank``.
"""

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
