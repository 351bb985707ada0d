"""Evaluation plots: PIT, calibration, backtest scores by horizon, anomalies on the band.

Matplotlib only; every function takes pandas objects (or an ArviZ ``DataTree``) and returns
the Axes it drew on (an array of Axes for multi-panel figures), so it can be restyled or
saved. Plots never see JAX. The component / attention plots (``components.py``) and the
ArviZ MCMC plots (``mcmc.py``) are re-exported here, so this module is the one entry point.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import matplotlib
import matplotlib.colors
import matplotlib.ticker
import numpy as np
import pandas as pd
from scipy import stats

from bayes_ssm.plotting._common import BLUE, model_colors, new_axes, plural
from bayes_ssm.plotting.components import plot_attention_map, plot_components
from bayes_ssm.plotting.mcmc import plot_ppc, plot_rank, plot_trace

if TYPE_CHECKING:
    from collections.abc import Mapping

    from matplotlib.axes import Axes

__all__ = [
    "plot_pit",
    "plot_calibration",
    "plot_backtest_scores",
    "plot_components",
    "plot_attention_map",
    "plot_anomalies",
    "plot_trace",
    "plot_rank",
    "plot_ppc",
]


def plot_pit(pit, *, bins: int = 10, ax=None, title: str | None = None):
    """Histogram of PIT values with the uniform reference and its 95% binomial band.

    Parameters
    ----------
    pit : Series or array, shape ``(time,)``
        PIT values in [0, 1] (e.g. :func:`bayes_ssm.evaluation.metrics.pit`); NaN are dropped.
    bins : int
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes

    Notes
    -----
    A calibrated forecast gives a flat histogram; a U shape means intervals too narrow
    (over-confident), a hump means too wide, a slope means bias.
    """
    values = np.asarray(pit, dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        raise ValueError("pit has no finite values to plot")
    if values.min() < 0 or values.max() > 1:
        raise ValueError(f"PIT values must lie in [0, 1]; got [{values.min()}, {values.max()}]")
    if not isinstance(bins, int | np.integer) or bins < 2:
        raise ValueError(f"bins must be an integer >= 2; got {bins!r}")
    ax = new_axes(ax)
    n = values.size
    lo, hi = stats.binom.ppf([0.025, 0.975], n, 1 / bins) * bins / n
    heights, _, _ = ax.hist(
        values,
        bins=bins,
        range=(0, 1),
        density=True,
        color=BLUE,
        alpha=0.75,
        edgecolor="white",
        label="PIT",
    )
    ax.axhspan(lo, hi, color="0.5", alpha=0.25, zorder=3, label="95% band if uniform")
    ax.axhline(1.0, color="k", linestyle="--", linewidth=1, zorder=4, label="uniform")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.3 * max(hi, float(np.max(heights))))
    ax.set_xlabel("PIT value  F(y)")
    ax.set_ylabel("density")
    ax.set_title(title or f"PIT histogram ({n} forecasts)")
    ax.legend(loc="upper center", fontsize="small", ncol=3)
    return ax


def plot_calibration(
    tables: pd.DataFrame | Mapping[str, pd.DataFrame],
    *,
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Calibration curve: empirical vs nominal coverage of central intervals.

    Parameters
    ----------
    tables : DataFrame or dict of str to DataFrame
        :func:`bayes_ssm.evaluation.metrics.coverage_table` output (columns ``level``, ``coverage``
        and
        optionally ``num_observed``); a dict, or a ``model`` column (as in
        :func:`bayes_ssm.evaluation.backtesting.backtest_calibration`), overlays several models.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    if isinstance(tables, pd.DataFrame):
        if "model" in tables.columns:  # e.g. bayes_ssm.evaluation.backtesting.backtest_calibration
            tables = {str(k): g for k, g in tables.groupby("model", sort=False)}
        else:
            tables = {"forecast": tables}
    if not tables:
        raise ValueError("tables is empty")
    ax = new_axes(ax, figsize=(5, 5))
    grid = np.linspace(0, 1, 101)
    first = next(iter(tables.values()))
    observed = first["num_observed"].max() if "num_observed" in first else 0
    if observed > 0:  # no band without observed outcomes
        n = int(observed)
        half = 1.96 * np.sqrt(grid * (1 - grid) / n)  # normal approximation to the binomial
        lo, hi = grid - half, grid + half
        ax.fill_between(grid, lo, hi, color="0.88", label=f"95% band (n={n})")
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="ideal")
    colors = model_colors(tables)
    for name, table in tables.items():
        missing = {"level", "coverage"} - set(table.columns)
        if missing:
            raise ValueError(f"table {name!r} lacks columns {sorted(missing)}")
        ax.plot(table["level"], table["coverage"], marker="o", color=colors[str(name)], label=name)
    ax.set_xlim(-0.02, 1.02)  # points at 0 or 1 coverage stay whole
    ax.set_ylim(-0.02, 1.02)
    ax.set_aspect("equal")
    ax.set_xlabel("nominal coverage of the central interval")
    ax.set_ylabel("empirical coverage")
    ax.set_title(title or "Calibration")
    ax.legend(loc="upper left", fontsize="small")
    return ax


def _metric_label(metric: str) -> tuple[str, float | None]:
    match = re.match(r"^(covered|coverage|width)_(\d+(?:\.\d+)?)$", metric)
    if match:
        kind, lv = match.groups()
        if kind == "width":
            return f"mean width of the {lv}% interval", None
        return f"coverage of the {lv}% interval", float(lv) / 100
    names = {
        "crps": "CRPS",
        "abs_error": "absolute error",
        "scaled_error": "scaled absolute error (MASE)",
        "wql": "weighted quantile loss",
    }
    return names.get(metric, metric), None


def plot_backtest_scores(
    scores: pd.DataFrame, metric: str = "crps", *, ax: Axes | None = None, title: str | None = None
) -> Axes:
    """Mean score by forecast horizon across backtest folds, one line per model.

    Parameters
    ----------
    scores : DataFrame
        The tidy output of :func:`bayes_ssm.evaluation.backtesting` (columns ``model``, ``fold``,
        ``horizon`` and the metric). Folds flagged ``converged == False`` are drawn apart
        (hollow markers) rather than averaged in silently.
    metric : str
        A metric column: ``"crps"``, ``"abs_error"``, ``"scaled_error"``, ``"covered_80"``,
        ``"width_80"`` ...
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    need = {"horizon", metric}
    missing = need - set(scores.columns)
    if missing:
        raise ValueError(
            f"scores lacks columns {sorted(missing)}; columns are {list(scores.columns)}"
        )
    frame = scores.copy()
    if "model" not in frame:
        frame["model"] = "model"
    ok = frame["converged"].astype(bool) if "converged" in frame else pd.Series(True, frame.index)
    ax = new_axes(ax)
    label, nominal = _metric_label(metric)
    groups = list(frame[ok].groupby("model", sort=False))
    colors = model_colors(frame["model"].unique())  # the same colours as plot_calibration
    offsets = 0.06 * (np.arange(len(groups)) - (len(groups) - 1) / 2)  # dodge the error bars
    for i, (name, part) in enumerate(groups):
        grouped = part.groupby("horizon")[metric]
        mean, sem = grouped.mean(), grouped.sem().fillna(0.0)
        folds = part["fold"].nunique() if "fold" in part else "?"
        ax.errorbar(
            mean.index + offsets[i],
            mean,
            yerr=1.96 * sem,
            marker="o",
            capsize=2,
            color=colors[str(name)],
            ecolor=matplotlib.colors.to_rgba(colors[str(name)], 0.45),
            label=f"{name} ({folds} folds)",
        )
    bad = frame[~ok]
    if len(bad):
        ax.scatter(
            bad["horizon"],
            bad[metric],
            facecolors="none",
            edgecolors="r",
            label=f"not converged ({bad['fold'].nunique()} folds, excluded)",
        )
    if nominal is not None:
        ax.axhline(nominal, color="k", linestyle="--", linewidth=1, label=f"nominal {nominal:g}")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("horizon (steps ahead)")
    ax.set_ylabel(f"{label} (mean over folds, 95% CI)")
    ax.set_title(title or f"Backtest: {label} by horizon")
    ax.legend(fontsize="small")
    return ax


def _band_view(band: pd.DataFrame, y) -> tuple[float, float]:
    """y-limits that hold the observations and the settled band, not the filter's start-up.

    The first steps of a one-step band are the filter starting from a diffuse state: their band
    can be many times wider than the rest and would flatten the data into a line. Steps whose
    band is wider than 3 times the median width are left out of the limits (drawn, but cut).
    """
    lower, upper = band["lower"].to_numpy(float), band["upper"].to_numpy(float)
    width = upper - lower
    settled = width <= 3 * np.nanmedian(width)
    values = [lower[settled], upper[settled]]
    if y is not None:
        values.append(np.asarray(y, dtype=float))
    values = np.concatenate(values)
    lo, hi = np.nanmin(values), np.nanmax(values)
    pad = 0.05 * (hi - lo) if hi > lo else 1.0
    return float(lo - pad), float(hi + pad)


def plot_anomalies(
    anomalies: pd.DataFrame,
    *,
    band: pd.DataFrame | None = None,
    y: pd.Series | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Flagged observations on the fan chart (or on their one-step predictive band).

    Parameters
    ----------
    anomalies : DataFrame
        :func:`bayes_ssm.inference.anomaly` output, indexed by time, with columns ``observed``,
        ``tail_prob`` and ``direction`` (``"high"`` / ``"low"``).
    band : DataFrame, optional
        The one-step-ahead predictive of every step (``anomalies(..., all_steps=True)``):
        ``mean`` / ``lower`` / ``upper`` (and ``observed``), drawn as a band with the series.
    y : Series, optional
        The observations (drawn when ``band`` has no ``observed`` column).
    ax : matplotlib Axes, optional
        E.g. the Axes of ``plot_forecast``: the anomalies are drawn over the fan chart.

    Returns
    -------
    matplotlib Axes
    """
    missing = {"observed", "direction"} - set(anomalies.columns)
    if missing:
        raise ValueError(f"anomalies lacks columns {sorted(missing)}: {list(anomalies.columns)}")
    fresh = ax is None
    ax = new_axes(ax, figsize=(9, 4))
    if band is not None:
        label = band.attrs.get("level")
        name = f"{100 * label:g}% one-step band" if label else "one-step band"
        ax.fill_between(
            band.index,
            band["lower"].to_numpy(float),
            band["upper"].to_numpy(float),
            color=BLUE,
            alpha=0.25,
            linewidth=0,
            label=name,
        )
        ax.plot(
            band.index,
            band["mean"].to_numpy(float),
            color=BLUE,
            linewidth=1,
            label="one-step predictive mean",
        )
        if y is None and "observed" in band:
            y = band["observed"]
        ax.set_ylim(*_band_view(band, y))
    if y is not None:
        ax.plot(y.index, np.asarray(y, dtype=float), color="k", linewidth=0.8, label="observed")
    for direction, marker in (("high", "^"), ("low", "v")):
        part = anomalies[anomalies["direction"] == direction]
        if len(part):
            ax.scatter(
                part.index,
                part["observed"],
                marker=marker,
                s=55,
                color="C1",
                edgecolors="k",
                linewidths=0.8,
                zorder=5,
                label=f"anomaly ({direction}, {len(part)})",
            )
    if fresh:
        ax.set_xlabel(str(anomalies.index.name or "time"))
        ax.set_ylabel("value")
    level = anomalies.attrs.get("level")
    summary = f"{plural(len(anomalies), 'observation')} outside their " + (
        f"{100 * level:g}% one-step band" if level else "one-step band"
    )
    if title:
        ax.set_title(title)
    elif fresh or not ax.get_title():
        ax.set_title(f"Anomalies: {summary}")
    else:  # drawn over another chart (e.g. plot_forecast): keep its title, add the count
        ax.set_title(f"{ax.get_title()}; {summary}")
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=5)
    return ax
