"""Smoothed component decomposition and implied attention maps, with credible bands.

Matplotlib only; each function takes pandas objects and returns its Axes. Plots never see JAX.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bayes_ssm.plotting._common import BLUE, fill_bands, new_axes

__all__ = ["plot_components", "plot_attention_map"]


def _component_frames(components) -> dict[str, pd.DataFrame]:
    if isinstance(components, dict):
        return components
    if isinstance(components, pd.DataFrame):
        if isinstance(components.columns, pd.MultiIndex):  # Fit.components(): (component, stat)
            names = components.columns.get_level_values(0).unique()
            return {str(name): components[name] for name in names}
        if "component" in components.columns:
            return {
                str(k): g.drop(columns="component")
                for k, g in components.groupby("component", sort=False)
            }
        return {"component": components}
    raise ValueError(
        "components must be a DataFrame (columns mean, lower_*, upper_*, optionally "
        f"'component') or a dict of such DataFrames; got {type(components).__name__}"
    )


def plot_components(components, *, y=None, axes=None, title=None):
    """Smoothed component decomposition with credible bands, one panel per component.

    Parameters
    ----------
    components : DataFrame, or dict of str to DataFrame
        ``fit.components()`` (columns ``(component, statistic)``); or, per component, a
        DataFrame indexed by time with ``mean`` and ``lower_<L>`` / ``upper_<L>`` band
        columns; or one long DataFrame with a ``component`` column.
    y : Series, optional
        The observations, drawn on an extra top panel.
    axes : sequence of matplotlib Axes, optional

    Returns
    -------
    ndarray of matplotlib Axes
    """
    frames = _component_frames(components)
    if not frames:
        raise ValueError("components is empty")
    for name, frame in frames.items():
        if "mean" not in frame.columns:
            raise ValueError(f"component {name!r} lacks a 'mean' column: {list(frame.columns)}")
    panels = len(frames) + (y is not None)
    if axes is None:
        _, axes = plt.subplots(
            panels,
            1,
            figsize=(8, 2.2 * panels + 0.5),
            sharex=True,
            layout="constrained",
            squeeze=False,
        )
        axes = axes[:, 0]
    axes = np.asarray(axes).ravel()
    if axes.size != panels:
        raise ValueError(f"need {panels} axes (one per panel); got {axes.size}")
    i = 0
    if y is not None:
        axes[0].plot(y.index, y.to_numpy(float), color="k", linewidth=1)
        axes[0].set_ylabel("observed")
        i = 1
    for ax, (name, frame) in zip(axes[i:], frames.items(), strict=True):
        fill_bands(ax, frame.index, frame, BLUE)
        ax.plot(frame.index, frame["mean"].to_numpy(float), color=BLUE, label="posterior mean")
        ax.set_ylabel(name)
    axes[-1].set_xlabel(str(next(iter(frames.values())).index.name or "time"))
    axes[i].legend(fontsize="small", loc="upper left")
    axes[0].set_title(title or "Component decomposition (smoothed, with credible bands)")
    return axes


def plot_attention_map(attention: pd.DataFrame, *, ax=None, title=None):
    """Implied attention over past lags with credible bands: which past steps drive the forecast.

    Parameters
    ----------
    attention : DataFrame
        Columns ``lag`` (steps back, 1 = the latest), ``mean`` and ``lower_<L>`` /
        ``upper_<L>``; optionally ``head`` (one curve per head).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    missing = {"lag", "mean"} - set(attention.columns)
    if missing:
        raise ValueError(f"attention lacks columns {sorted(missing)}: {list(attention.columns)}")
    ax = new_axes(ax)
    groups = attention.groupby("head", sort=True) if "head" in attention else [(None, attention)]
    for i, (head, part) in enumerate(groups):
        part = part.sort_values("lag")
        prefix = f"head {head}: " if head is not None else ""
        fill_bands(ax, part["lag"].to_numpy(), part, f"C{i}", prefix)
        ax.plot(
            part["lag"],
            part["mean"],
            marker="o",
            markersize=3,
            color=f"C{i}",
            label=f"{prefix}posterior mean",
        )
    ax.set_xlabel("lag (steps before the forecast origin)")
    ax.set_ylabel("attention weight")
    ax.set_title(title or "Implied attention over past steps")
    ax.axhline(0.0, color="0.6", linewidth=0.8)  # negative weights are shown, not clipped
    ax.legend(fontsize="small")
    return ax
