"""Evaluation plots: calibration, backtest scores, components, attention, anomalies, MCMC.

Matplotlib only; every function takes pandas objects (or an ArviZ ``DataTree``) and returns
the Axes it drew on (an array of Axes for multi-panel figures), so it can be restyled or
saved. Plots never see JAX.
"""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats

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

_BAND = re.compile(r"^lower_(\d+(?:\.\d+)?)$")
_BLUE = "C0"


def _band_levels(frame: pd.DataFrame) -> list[str]:
    """Interval labels with both ``lower_<L>`` and ``upper_<L>`` columns, widest first."""
    labels = []
    for col in frame.columns:
        match = _BAND.match(str(col))
        if match and f"upper_{match.group(1)}" in frame.columns:
            labels.append(match.group(1))
    return sorted(labels, key=float, reverse=True)


def _fill_bands(ax, x, frame: pd.DataFrame, color, label_prefix: str = "") -> None:
    labels = _band_levels(frame)
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


def _new_axes(ax, figsize=(7, 4)):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def plot_pit(pit, *, bins: int = 10, ax=None, title: str | None = None):
    """Histogram of PIT values with the uniform reference and its 95% binomial band.

    Parameters
    ----------
    pit : Series or array, shape ``(time,)``
        PIT values in [0, 1] (e.g. :func:`bayes_ssm.metrics.pit`); NaN are dropped.
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
    ax = _new_axes(ax)
    n = values.size
    lo, hi = stats.binom.ppf([0.025, 0.975], n, 1 / bins) * bins / n
    heights, _, _ = ax.hist(
        values,
        bins=bins,
        range=(0, 1),
        density=True,
        color=_BLUE,
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


def plot_calibration(tables, *, ax=None, title: str | None = None):
    """Calibration curve: empirical vs nominal coverage of central intervals.

    Parameters
    ----------
    tables : DataFrame or dict of str to DataFrame
        :func:`bayes_ssm.metrics.coverage_table` output (columns ``level``, ``coverage`` and
        optionally ``num_observed``); a dict, or a ``model`` column (as in
        :func:`bayes_ssm.backtest.backtest_calibration`), overlays several models.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    if isinstance(tables, pd.DataFrame):
        if "model" in tables.columns:  # e.g. bayes_ssm.backtest.backtest_calibration
            tables = {str(k): g for k, g in tables.groupby("model", sort=False)}
        else:
            tables = {"forecast": tables}
    if not tables:
        raise ValueError("tables is empty")
    ax = _new_axes(ax, figsize=(5, 5))
    grid = np.linspace(0, 1, 101)
    first = next(iter(tables.values()))
    if "num_observed" in first:
        n = int(first["num_observed"].max())
        lo = stats.binom.ppf(0.025, n, grid) / n
        hi = stats.binom.ppf(0.975, n, grid) / n
        ax.fill_between(grid, lo, hi, color="0.88", label=f"95% band (n={n})")
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="ideal")
    for i, (name, table) in enumerate(tables.items()):
        missing = {"level", "coverage"} - set(table.columns)
        if missing:
            raise ValueError(f"table {name!r} lacks columns {sorted(missing)}")
        ax.plot(table["level"], table["coverage"], marker="o", color=f"C{i}", label=name)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
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


def plot_backtest_scores(scores: pd.DataFrame, metric: str = "crps", *, ax=None, title=None):
    """Mean score by forecast horizon across backtest folds, one line per model.

    Parameters
    ----------
    scores : DataFrame
        The tidy output of :func:`bayes_ssm.backtest` (columns ``model``, ``fold``,
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
    ax = _new_axes(ax)
    label, nominal = _metric_label(metric)
    for i, (name, part) in enumerate(frame[ok].groupby("model", sort=False)):
        grouped = part.groupby("horizon")[metric]
        mean, sem = grouped.mean(), grouped.sem().fillna(0.0)
        ax.errorbar(
            mean.index,
            mean,
            yerr=1.96 * sem,
            marker="o",
            capsize=3,
            color=f"C{i}",
            label=f"{name} ({part['fold'].nunique() if 'fold' in part else '?'} folds)",
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
    ax.set_xlabel("horizon (steps ahead)")
    ax.set_ylabel(f"{label} (mean over folds, 95% CI)")
    ax.set_title(title or f"Backtest: {label} by horizon")
    ax.legend(fontsize="small")
    return ax


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
        _fill_bands(ax, frame.index, frame, _BLUE)
        ax.plot(frame.index, frame["mean"].to_numpy(float), color=_BLUE, label="posterior mean")
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
    ax = _new_axes(ax)
    groups = attention.groupby("head", sort=True) if "head" in attention else [(None, attention)]
    for i, (head, part) in enumerate(groups):
        part = part.sort_values("lag")
        prefix = f"head {head}: " if head is not None else ""
        _fill_bands(ax, part["lag"].to_numpy(), part, f"C{i}", prefix)
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
    ax.set_ylim(bottom=0)
    ax.legend(fontsize="small")
    return ax


def plot_anomalies(
    anomalies: pd.DataFrame, *, band: pd.DataFrame | None = None, y=None, ax=None, title=None
):
    """Flagged observations on the fan chart (or on their one-step predictive band).

    Parameters
    ----------
    anomalies : DataFrame
        :func:`bayes_ssm.anomalies` output, indexed by time, with columns ``observed``,
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
    ax = _new_axes(ax, figsize=(9, 4))
    if band is not None:
        label = band.attrs.get("level")
        name = f"{100 * label:g}% one-step band" if label else "one-step band"
        ax.fill_between(
            band.index,
            band["lower"].to_numpy(float),
            band["upper"].to_numpy(float),
            color=_BLUE,
            alpha=0.25,
            linewidth=0,
            label=name,
        )
        ax.plot(
            band.index,
            band["mean"].to_numpy(float),
            color=_BLUE,
            linewidth=1,
            label="one-step predictive mean",
        )
        if y is None and "observed" in band:
            y = band["observed"]
        # keep the view on the data: a diffuse first step (filter start-up) would flatten it
        width = (band["upper"] - band["lower"]).to_numpy(float)
        calm = width <= 5 * np.nanmedian(width)
        values = [band["lower"].to_numpy(float)[calm], band["upper"].to_numpy(float)[calm]]
        if y is not None:
            values.append(np.asarray(y, dtype=float))
        lo, hi = np.nanmin(np.concatenate(values)), np.nanmax(np.concatenate(values))
        pad = 0.05 * (hi - lo)
        ax.set_ylim(lo - pad, hi + pad)
    if y is not None:
        ax.plot(y.index, np.asarray(y, dtype=float), color="k", linewidth=0.8, label="observed")
    for direction, marker in (("high", "^"), ("low", "v")):
        part = anomalies[anomalies["direction"] == direction]
        if len(part):
            ax.scatter(
                part.index,
                part["observed"],
                marker=marker,
                s=40,
                color="C3",
                zorder=5,
                label=f"anomaly ({direction}, {len(part)})",
            )
    if fresh:
        ax.set_xlabel(str(anomalies.index.name or "time"))
        ax.set_ylabel("value")
    ax.set_title(title or f"Anomalies: {len(anomalies)} observations outside the band")
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=5)
    return ax


def _as_datatree(data):
    return data.to_arviz() if hasattr(data, "to_arviz") else data


def _axes_of(plot_collection, title: str, xlabel: str | None = None, ylabel: str | None = None):
    figure = plot_collection.viz["figure"].item()
    figure.suptitle(title)
    figure.set_layout_engine("constrained")
    axes = [ax for ax in figure.axes if ax.get_visible()]
    for ax in axes:
        if xlabel and not ax.get_xlabel():
            ax.set_xlabel(xlabel if "{}" not in xlabel else xlabel.format(ax.get_title()))
        if ylabel and not ax.get_ylabel():
            ax.set_ylabel(ylabel)
    return np.asarray(axes)


def plot_trace(data, *, var_names=None, **kwargs):
    """Trace and marginal plots of posterior draws (``arviz.plot_trace_dist``).

    Parameters
    ----------
    data : ArviZ DataTree, or a fit with ``to_arviz()``
    var_names : list of str, optional
    **kwargs : passed to ArviZ

    Returns
    -------
    ndarray of matplotlib Axes
    """
    import arviz as az

    pc = az.plot_trace_dist(_as_datatree(data), var_names=var_names, backend="matplotlib", **kwargs)
    axes = _axes_of(pc, "Posterior draws: marginal (left) and trace (right) per chain")
    for ax in axes:
        if not ax.get_ylabel():
            ax.set_ylabel("density")
    return axes


def plot_rank(data, *, var_names=None, **kwargs):
    """Rank (fractional ECDF) plots per chain, the mixing check (``arviz.plot_rank``).

    Returns
    -------
    ndarray of matplotlib Axes
    """
    import arviz as az

    pc = az.plot_rank(_as_datatree(data), var_names=var_names, backend="matplotlib", **kwargs)
    return _axes_of(
        pc,
        "Rank plots: per-chain rank ECDF minus uniform (flat and overlapping = mixing)",
        xlabel="fractional rank of {}",
        ylabel="ECDF difference",
    )


def plot_ppc(data, *, var_names=None, num_samples: int = 50, **kwargs):
    """Posterior predictive check: predictive vs observed distribution (``arviz.plot_ppc_dist``).

    Needs the ``posterior_predictive`` and ``observed_data`` groups.

    Returns
    -------
    ndarray of matplotlib Axes
    """
    import arviz as az
    from matplotlib.lines import Line2D

    pc = az.plot_ppc_dist(
        _as_datatree(data),
        var_names=var_names,
        num_samples=num_samples,
        backend="matplotlib",
        **kwargs,
    )
    axes = _axes_of(pc, "Posterior predictive check", xlabel="{}", ylabel="distribution")
    handles = [
        Line2D([], [], color=_BLUE, alpha=0.5, label=f"posterior predictive ({num_samples} draws)"),
        Line2D([], [], color="k", label="observed"),
    ]
    axes[0].legend(handles=handles, fontsize="small", loc="upper left")
    return axes
