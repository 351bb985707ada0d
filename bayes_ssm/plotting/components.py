"""Smoothed component decomposition and implied attention maps, with credible bands.

Matplotlib only; each function takes pandas objects and returns its Axes (``plot_components``:
an array of them, one per panel). Plots never see JAX.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bayes_ssm.plotting._common import BLUE, fill_bands, new_axes

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from matplotlib.axes import Axes

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


def plot_components(
    components: pd.DataFrame | Mapping[str, pd.DataFrame],
    *,
    y: pd.Series | None = None,
    axes: Sequence[Axes] | None = None,
    title: str | None = None,
) -> np.ndarray:
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
    ndarray of matplotlib Axes, shape ``(panels,)``
        One per component, plus the top panel of ``y`` when given.

    Notes
    -----
    Components of a negative-binomial model (``components.attrs["scale"] == "log"``, set by
    ``fit.components()``) add up to the log of the rate: each panel's y-label and the title
    say "log scale".
    """
    log = getattr(components, "attrs", {}).get("scale") == "log"
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
        ax.set_ylabel(f"{name}\n(log scale)" if log else name)
    axes[-1].set_xlabel(str(next(iter(frames.values())).index.name or "time"))
    axes[i].legend(fontsize="small", loc="upper left")
    default = "Component decomposition (smoothed, with credible bands)"
    if log:
        default = "Components of the log rate (smoothed, with credible bands; exp = factor)"
    axes[0].set_title(title or default)
    return axes


def plot_attention_map(
    attention: pd.DataFrame, *, ax: Axes | None = None, title: str | None = None
) -> Axes:
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
