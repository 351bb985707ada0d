"""Helpers shared by the plotting modules (bands of a forecast-style DataFrame, fresh Axes)."""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import pandas as pd

__all__ = ["BLUE", "band_levels", "fill_bands", "model_colors", "new_axes", "plural"]

_BAND = re.compile(r"^lower_(\d+(?:\.\d+)?)$")
BLUE = "C0"


def band_levels(frame: pd.DataFrame) -> list[str]:
    """Interval labels with both ``lower_<L>`` and ``upper_<L>`` columns, widest first."""
    labels = []
    for col in frame.columns:
        match = _BAND.match(str(col))
        if match and f"upper_{match.group(1)}" in frame.columns:
            labels.append(match.group(1))
    return sorted(labels, key=float, reverse=True)


def fill_bands(ax, x, frame: pd.DataFrame, color, label_prefix: str = "") -> None:
    labels = band_levels(frame)
    for i, lv in enumerate(labels):
        alpha = 0.15 + 0.25 * (i + 1) / max(len(labels), 1)
        ax.fill_between(
            x,
            frame[f"lower_{lv}"].to_numpy(float),
            frame[f"upper_{lv}"].to_numpy(float),
            color=color,
            alpha=alpha,
            linewidth=0,
            label=f"{label_prefix}{lv}% interval",
        )


def new_axes(ax, figsize=(7, 4)):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def model_colors(names) -> dict[str, str]:
    """One colour per model name, by sorted name: the same model has the same colour in every
    plot of the same set of models (backtest scores, calibration), whatever the row order."""
    return {name: f"C{i % 10}" for i, name in enumerate(sorted({str(n) for n in names}))}


def plural(count: int, noun: str) -> str:
    """``"1 observation"``, ``"2 observations"``."""
    return f"{count} {noun}" + ("" if count == 1 else "s")
