"""MCMC diagnostics plots through ArviZ (trace, rank, posterior predictive check).

Each takes an ArviZ ``DataTree`` (or a fit with ``to_arviz()``) and returns its Axes.
"""

from __future__ import annotations

import numpy as np

from bayes_ssm.plotting._common import BLUE

__all__ = ["plot_trace", "plot_rank", "plot_ppc"]


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
        Line2D([], [], color=BLUE, alpha=0.5, label=f"posterior predictive ({num_samples} draws)"),
        Line2D([], [], color="k", label="observed"),
    ]
    axes[0].legend(handles=handles, fontsize="small", loc="upper left")
    return axes
