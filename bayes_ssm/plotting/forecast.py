"""The fan chart: history, one credible band per level, the median forecast, and actuals."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import matplotlib.dates as mdates
import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["plot_forecast"]

_LEVEL = re.compile(r"^lower_(.+)$")


def _levels(fc: pd.DataFrame) -> list[str]:
    labels = []
    for col in fc.columns:
        m = _LEVEL.match(str(col))
        if m and f"upper_{m.group(1)}" in fc.columns:
            labels.append(m.group(1))
    return sorted(labels, key=float, reverse=True)  # widest band first


def _as_series(values, what: str) -> pd.Series:
    if isinstance(values, pd.DataFrame):
        if values.shape[1] != 1:
            raise ValueError(f"{what} must be a Series or a one-column DataFrame")
        values = values.iloc[:, 0]
    if not isinstance(values, pd.Series):
        raise ValueError(f"{what} must be a pandas Series; got {type(values).__name__}")
    return values


def plot_forecast(
    fc: pd.DataFrame,
    history: pd.Series | None = None,
    actual: pd.Series | None = None,
    ax: Axes | None = None,
    *,
    color: str = "C0",
    title: str | None = None,
    ylabel: str | None = None,
) -> Axes:
    """Fan chart of a forecast.

    Parameters
    ----------
    fc : pandas.DataFrame
        From :meth:`bayes_ssm.Fit.forecast`: ``median`` and ``lower_<p>``/``upper_<p>`` columns,
        indexed by the future timestamps.
    history : pandas.Series, optional
        Observed series before the forecast (drawn as a black line).
    actual : pandas.Series, optional
        Observed values over the horizon (drawn as points), to judge the forecast.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure by default.
    color : str
        Colour of the bands and the median.
    title, ylabel : str, optional
        Labels; ``ylabel`` defaults to ``fc.attrs["quantity"]`` (e.g. the volatility of
        :func:`bayes_ssm.volatility_forecast`), else the history's name.

    Returns
    -------
    matplotlib.axes.Axes

    Notes
    -----
    The legend sits outside the axes, to the right, so it never covers data; save with
    ``bbox_inches="tight"`` when you pass an ``ax`` of a figure without a constrained layout.
    """
    if not isinstance(fc, pd.DataFrame) or "median" not in fc.columns:
        raise ValueError("fc must be a forecast DataFrame with a 'median' column (fit.forecast)")
    levels = _levels(fc)
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(10, 4.5), layout="constrained")
    x = fc.index
    if history is not None:
        history = _as_series(history, "history")
        ax.plot(history.index, history.to_numpy(float), color="0.15", lw=1.2, label="observed")
    alphas = np.linspace(0.18, 0.38, max(len(levels), 1))
    for alpha, label in zip(alphas, levels, strict=False):
        ax.fill_between(
            x,
            fc[f"lower_{label}"].to_numpy(float),
            fc[f"upper_{label}"].to_numpy(float),
            color=color,
            alpha=float(alpha),
            lw=0,
            label=f"{label}% interval",
        )
    ax.plot(x, fc["median"].to_numpy(float), color=color, lw=2, label="forecast (median)")
    if actual is not None:
        actual = _as_series(actual, "actual")
        ax.plot(
            actual.index,
            actual.to_numpy(float),
            "o",
            ms=3.5,
            color="C3",
            label="actual",
            zorder=3,
        )
    if history is not None and len(history):
        ax.axvline(history.index[-1], color="0.5", lw=0.8, ls=":")
    if isinstance(x, pd.DatetimeIndex):
        locator = mdates.AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        ax.set_xlabel("date")
    else:
        ax.set_xlabel("time step")
    if ylabel is None:
        ylabel = fc.attrs.get("quantity")
    if ylabel is None and history is not None and history.name is not None:
        ylabel = str(history.name)
    ax.set_ylabel(ylabel or "value")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3, lw=0.5)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize="small")
    return ax
