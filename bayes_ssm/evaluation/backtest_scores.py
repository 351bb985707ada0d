"""Scoring and summaries of rolling-origin backtests (the tidy table of :func:`backtest`).

``score_fold`` turns one fold's predictive draws into one row per horizon step (pointwise
scores plus the pieces of pooled ones); ``summarize_backtest`` and ``backtest_calibration``
aggregate the tidy table over folds, leaving out (and counting) folds whose fit failed its
diagnostics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bayes_ssm.evaluation import metrics

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["score_fold", "failed_fold", "summarize_backtest", "backtest_calibration"]


def score_fold(name, fold, draws, train, test, *, levels, season, converged, problems, seed):
    """One row per horizon step: pointwise scores and the pieces of pooled ones."""
    actual = test.to_numpy()
    rows = pd.DataFrame(
        {
            "model": name,
            "fold": fold.number,
            "cutoff": train.index[-1],
            "timestamp": test.index,
            "horizon": np.arange(1, len(test) + 1),
            "actual": actual,
            "mean": draws.mean(axis=0),
            "median": np.median(draws, axis=0),
        }
    )
    observed = ~np.isnan(actual)
    rows["crps"] = metrics.crps(actual, draws, pointwise=True)
    rows["pit"] = metrics.pit(actual, draws, key=int(seed))
    rows["abs_error"] = np.abs(actual - rows["median"].to_numpy())
    try:
        scale = metrics.seasonal_scale(train.to_numpy(), season)
    except ValueError:
        scale = np.nan  # a constant or too-short training window: MASE undefined for this fold
    rows["scaled_error"] = rows["abs_error"] / scale
    q = np.asarray(metrics.QUANTILES)
    quant = np.quantile(draws, q, axis=0).T  # (time, quantile)
    pin = metrics._pinball(actual, quant, q)  # (time, quantile), NaN at missing actuals
    rows["quantile_loss"] = 2 * pin.mean(axis=1)  # WQL = sum(quantile_loss) / sum(abs_actual)
    rows["abs_actual"] = np.abs(actual)
    point = bool(np.all(draws == draws[:1]))  # a point forecast has no interval to score
    for level in levels:
        lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
        tag = f"{100 * level:g}"
        covered = ((actual >= lo) & (actual <= hi)).astype(float)
        covered[~observed] = np.nan
        rows[f"covered_{tag}"] = np.nan if point else covered
        rows[f"width_{tag}"] = np.nan if point else hi - lo
    rows["converged"] = converged
    rows["problems"] = "; ".join(problems)
    return rows


def failed_fold(name, fold, train, test, *, levels, problem: str) -> pd.DataFrame:
    """Rows of a fold whose fit raised a numerical error: every score NaN, not converged."""
    rows = pd.DataFrame(
        {
            "model": name,
            "fold": fold.number,
            "cutoff": train.index[-1],
            "timestamp": test.index,
            "horizon": np.arange(1, len(test) + 1),
            "actual": test.to_numpy(),
        }
    )
    nan_cols = ["mean", "median", "crps", "pit", "abs_error", "scaled_error", "quantile_loss"]
    for col in nan_cols:
        rows[col] = np.nan
    rows["abs_actual"] = np.abs(test.to_numpy())
    for level in levels:
        rows[f"covered_{100 * level:g}"] = np.nan
        rows[f"width_{100 * level:g}"] = np.nan
    rows["converged"] = False
    rows["problems"] = problem
    return rows


def summarize_backtest(
    scores: pd.DataFrame, *, by: str | Sequence[str] = ("model",)
) -> pd.DataFrame:
    """Aggregate backtest scores (converged folds only), e.g. per model or per model and horizon.

    Returns
    -------
    pandas.DataFrame
        Per group: ``crps`` (mean), ``mase`` (mean scaled error), ``wql`` (pooled: sum of
        quantile losses / sum of |actuals|), ``coverage_<L>`` and ``width_<L>`` (means),
        ``mae``, ``folds`` (used) and ``folds_excluded`` (not converged).
    """
    by = [by] if isinstance(by, str) else list(by)
    missing = set(by) - set(scores.columns)
    if missing:
        raise ValueError(f"scores have no columns {sorted(missing)}")
    ok = scores[scores["converged"].astype(bool)]
    bad = scores[~scores["converged"].astype(bool)]
    grouped = ok.groupby(by, sort=False)
    out = pd.DataFrame(
        {
            "crps": grouped["crps"].mean(),
            "mase": grouped["scaled_error"].mean(),
            "wql": grouped["quantile_loss"].sum() / grouped["abs_actual"].sum(),
            "mae": grouped["abs_error"].mean(),
        }
    )
    for col in scores.columns:
        if col.startswith(("covered_", "width_")):
            label = col.replace("covered_", "coverage_")
            out[label] = grouped[col].mean()
    out["folds"] = grouped["fold"].nunique()
    excluded = bad.groupby(by, sort=False)["fold"].nunique() if len(bad) else None
    out["folds_excluded"] = 0 if excluded is None else excluded.reindex(out.index).fillna(0)
    if excluded is not None:
        only_bad = excluded.index.difference(out.index)
        for idx in only_bad:  # every fold of this group failed: keep the row, scores NaN
            out.loc[idx, ["folds", "folds_excluded"]] = [0, excluded[idx]]
    out["folds_excluded"] = out["folds_excluded"].astype(int)
    return out.reset_index()


def backtest_calibration(scores: pd.DataFrame) -> pd.DataFrame:
    """Nominal vs empirical coverage per model from backtest scores (converged folds only).

    Returns
    -------
    pandas.DataFrame
        Columns ``model``, ``level``, ``coverage``, ``num_observed``: the input of
        :func:`bayes_ssm.plotting.plot_calibration`.
    """
    cols = [c for c in scores.columns if c.startswith("covered_")]
    if not cols:
        raise ValueError("scores have no covered_<level> columns (run bs.backtest with levels=)")
    ok = scores[scores["converged"].astype(bool)]
    rows = []
    for model, part in ok.groupby("model", sort=False):
        for col in cols:
            values = part[col].dropna()
            rows.append(
                {
                    "model": model,
                    "level": float(col.removeprefix("covered_")) / 100,
                    "coverage": float(values.mean()) if len(values) else np.nan,
                    "num_observed": int(values.size),
                }
            )
    return pd.DataFrame(rows).sort_values(["model", "level"], kind="stable", ignore_index=True)
