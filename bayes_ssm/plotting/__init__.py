"""Plots of pandas results (matplotlib only; plots never see JAX)."""

from bayes_ssm.plotting.forecast import plot_forecast

__all__ = ["plot_forecast"]
