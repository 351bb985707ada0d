"""Scores of ``benchmarks/default_suite.py``: tidy rows per step, pooled summaries per panel.

One forecast (draws of shape ``(sample, horizon)`` at one origin of one series) becomes
``horizon`` rows: the actual value, the fair CRPS (``bayes_ssm.evaluation.metrics.crps``, i.e.
scoringrules), the quantiles at the levels in :data:`LEVELS`, and the series' scale (the mean
absolute value of the training data before the origin). Storing quantiles rather than draws
keeps the CSV small and lets every pooled score be recomputed from it:

* ``scaled CRPS``: mean over rows of ``crps / scale`` (series and origins weigh alike);
* ``rel. CRPS``: the model's mean scaled CRPS divided by the seasonal naive's on the same rows;
* ``WQL``: ``mean_q 2 * sum pinball_q / sum |y|`` pooled over every row (the Chronos / fev
  protocol; ``metrics.wql`` on the concatenated rows);
* ``cov80`` / ``cov95``: the share of rows inside the central 80% / 95% interval
  (quantiles 0.1-0.9 and 0.025-0.975).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayes_ssm.evaluation import metrics

WQL_LEVELS = tuple(float(q) for q in metrics.QUANTILES)  # 0.1 .. 0.9
LEVELS = (0.025, *WQL_LEVELS, 0.975)


def qcol(q: float) -> str:
    """The CSV column of quantile level ``q`` (``"q0.025"``, ``"q0.1"`` ...)."""
    return f"q{q:g}"


def forecast_rows(actual, draws, *, scale: float) -> pd.DataFrame:
    """Score one forecast per step.

    Parameters
    ----------
    actual : array, shape ``(horizon,)``
        Held-out values (NaN = missing: its CRPS is NaN, and pooled scores skip it).
    draws : array, shape ``(sample, horizon)``
    scale : float
        The series' scale at this origin (mean |y| of the training data), > 0.

    Returns
    -------
    DataFrame with ``horizon`` rows: ``h`` (1-based), ``y``, ``crps``, ``scale`` and one
    column per level in :data:`LEVELS`.
    """
    actual = np.asarray(actual, dtype=float)
    draws = np.asarray(draws, dtype=float)
    if draws.ndim != 2 or draws.shape[1] != actual.shape[0]:
        raise ValueError(f"draws must be (sample, {actual.shape[0]}); got {draws.shape}")
    if not np.all(np.isfinite(draws)):
        raise ValueError("draws contain NaN or infinite values")
    if not scale > 0:
        raise ValueError(f"scale must be positive; got {scale!r}")
    out = pd.DataFrame({"h": np.arange(1, actual.shape[0] + 1), "y": actual})
    out["crps"] = np.asarray(metrics.crps(actual, draws, pointwise=True), dtype=float)
    out["scale"] = float(scale)
    quantiles = np.quantile(draws, LEVELS, axis=0)  # (level, horizon)
    for q, row in zip(LEVELS, quantiles, strict=True):
        out[qcol(q)] = row
    return out


def pooled(rows: pd.DataFrame) -> dict:
    """Pooled scores of one model's rows (any set of series x origins x steps).

    Returns
    -------
    dict with ``scaled CRPS``, ``WQL``, ``cov80``, ``cov95`` and ``n`` (observed rows).
    """
    ok = rows[rows["y"].notna()]
    if ok.empty:
        raise ValueError("no observed rows to score")
    y = ok["y"].to_numpy(float)
    quantiles = pd.DataFrame(
        {q: ok[qcol(q)].to_numpy(float) for q in WQL_LEVELS}, index=pd.RangeIndex(len(ok))
    )
    inside = {
        level: (ok[qcol(lo)] <= ok["y"]) & (ok["y"] <= ok[qcol(hi)])
        for level, (lo, hi) in {80: (0.1, 0.9), 95: (0.025, 0.975)}.items()
    }
    return {
        "scaled CRPS": float((ok["crps"] / ok["scale"]).mean()),
        "WQL": metrics.wql(y, quantiles) if np.abs(y).sum() > 0 else np.nan,
        "cov80": float(inside[80].mean()),
        "cov95": float(inside[95].mean()),
        "n": len(ok),
    }


def summary(scores: pd.DataFrame, *, baseline: str, steps=None) -> pd.DataFrame:
    """One row per model of one panel: pooled scores, rel. CRPS, rank, seconds.

    Parameters
    ----------
    scores : DataFrame
        Rows of :func:`forecast_rows` with ``model``, ``series``, ``origin`` and ``seconds``
        (seconds of that model's fit at that series and origin, repeated on its rows).
    baseline : str
        The model whose mean scaled CRPS divides everyone's (``rel. CRPS``; NaN when it has
        no rows, e.g. a run without peers).
    steps : sequence of int, optional
        Only these horizon steps (default all).

    Returns
    -------
    DataFrame, one row per model, sorted by scaled CRPS; ``rank`` 1 = lowest scaled CRPS.
    Models are compared on the (series, origin, h) rows that every model has.
    """
    part = scores if steps is None else scores[scores["h"].isin(list(steps))]
    keys = ["series", "origin", "h"]
    models = list(dict.fromkeys(part["model"]))
    if not models:
        raise ValueError("no rows to summarise")
    # the rows every complete model has (a model that failed somewhere is scored on its rows
    # among these, and its ``n`` says so)
    sizes = part.groupby("model", sort=False).size()
    common = None
    for _, group in part[part["model"].isin(sizes.index[sizes == sizes.max()])].groupby("model"):
        index = pd.MultiIndex.from_frame(group[keys].astype(str))
        common = index if common is None else common.intersection(index)
    rows = []
    for model, group in part.groupby("model", sort=False):
        keep = pd.MultiIndex.from_frame(group[keys].astype(str)).isin(common)
        group = group[keep]
        fits = group.drop_duplicates(["series", "origin"])
        rows.append({"model": model, **pooled(group), "seconds": float(fits["seconds"].sum())})
    out = pd.DataFrame(rows)
    base = out.loc[out["model"] == baseline, "scaled CRPS"]  # NaN without the baseline
    out.insert(2, "rel. CRPS", out["scaled CRPS"] / (base.iloc[0] if len(base) else np.nan))
    out = out.sort_values("scaled CRPS", kind="stable").reset_index(drop=True)
    out.insert(1, "rank", np.arange(1, len(out) + 1))
    return out
