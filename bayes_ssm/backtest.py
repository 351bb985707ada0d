"""Rolling-origin backtests: refit at each origin, forecast, score against what came next.

``backtest`` cuts the series into ``folds`` forecast origins (the last one leaves exactly
``horizon`` steps after it), fits the model on the data before each origin only (an expanding
window from the start, or a sliding window of ``min_train`` steps), draws the predictive of the
next ``horizon`` steps and scores it. Baselines run in the same harness on the same folds.

No fold sees the future: the training data of a fold is produced in one place
(:func:`_training_data`) and checked against the fold's first forecast timestamp before any
model sees it; the forecasts must come back on exactly the test timestamps.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from bayes_ssm import baselines as _baselines
from bayes_ssm import metrics
from bayes_ssm._scoring_inputs import check_levels
from bayes_ssm.data import as_series_data

__all__ = [
    "Fold",
    "rolling_origins",
    "backtest",
    "summarize_backtest",
    "backtest_calibration",
    "BacktestLeakError",
]


class BacktestLeakError(RuntimeError):
    """A fold's training data reached its forecast origin (a harness bug, never user error)."""


@dataclasses.dataclass(frozen=True)
class Fold:
    """One forecast origin: positions ``train`` (slice) fit, positions ``test`` are scored."""

    number: int
    train: slice
    test: slice


def rolling_origins(
    num_steps: int,
    horizon: int,
    folds: int,
    *,
    step: int | None = None,
    window: str = "expanding",
    min_train: int,
) -> list[Fold]:
    """The folds of a rolling-origin evaluation (positions, oldest origin first).

    The last fold's test window ends at the last step; earlier origins move back by ``step``
    (default ``horizon``: non-overlapping test windows). ``window="expanding"`` trains on
    everything before the origin, ``"sliding"`` on the last ``min_train`` steps before it.
    """
    for name, value in (("horizon", horizon), ("folds", folds), ("min_train", min_train)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}")
    step = horizon if step is None else step
    if isinstance(step, bool) or not isinstance(step, int | np.integer) or step < 1:
        raise ValueError(f"step must be a positive integer; got {step!r}")
    if window not in ("expanding", "sliding"):
        raise ValueError(f"window must be 'expanding' or 'sliding'; got {window!r}")
    last_origin = num_steps - horizon
    first_origin = last_origin - step * (folds - 1)
    if first_origin < min_train:
        raise ValueError(
            f"the series has {num_steps} steps: {folds} folds with horizon {horizon} and step "
            f"{step} put the first origin at step {first_origin}, before min_train={min_train}. "
            "Use fewer folds, a smaller step or horizon, or a smaller min_train"
        )
    out = []
    for k in range(folds):
        origin = first_origin + k * step
        start = 0 if window == "expanding" else origin - min_train
        out.append(Fold(k, slice(start, origin), slice(origin, origin + horizon)))
    return out


def _training_data(y: pd.Series, fold: Fold) -> pd.Series:
    """The only place a fold's training data is cut from the series."""
    return y.iloc[fold.train].copy()


def _check_no_leak(train: pd.Series, test_index: pd.Index, fold: Fold) -> None:
    if len(train) == 0 or train.index[-1] >= test_index[0]:
        raise BacktestLeakError(
            f"fold {fold.number}: training data end at {train.index[-1] if len(train) else '-'}"
            f" but the first forecast step is {test_index[0]}: the model would see the future"
        )


def _as_series(y) -> pd.Series:
    data = as_series_data(y)
    return pd.Series(data.y, index=data.index, name=data.name)


def _baseline_list(baselines, season: int) -> list:
    out = []
    for b in baselines or ():
        out.append(_baselines.baseline_from_name(b, season=season) if isinstance(b, str) else b)
    return out


def _seeds(key, count: int) -> np.ndarray:
    if isinstance(key, bool) or not isinstance(key, int | np.integer | np.random.Generator):
        raise ValueError(f"key must be an int seed or numpy Generator; got {key!r}")
    rng = key if isinstance(key, np.random.Generator) else np.random.default_rng(int(key))
    return rng.integers(0, 2**31 - 1, size=(count, 2))


def _fit_model(model, train, method, fit_kwargs, seed):
    import bayes_ssm.infer as infer
    from bayes_ssm import diagnostics

    fitter = {"svi": infer.fit_svi, "nuts": infer.fit_nuts}[method]
    kwargs = {"progress": False, **(fit_kwargs or {})}
    fit = fitter(model, train, key=int(seed), **kwargs)
    return fit, diagnostics.check(fit, warn=False)


def _score_fold(name, fold, draws, train, test, *, levels, season, converged, problems, seed):
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
    for level in levels:
        lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
        tag = f"{100 * level:g}"
        covered = ((actual >= lo) & (actual <= hi)).astype(float)
        covered[~observed] = np.nan
        rows[f"covered_{tag}"] = covered
        rows[f"width_{tag}"] = hi - lo
    rows["converged"] = converged
    rows["problems"] = "; ".join(problems)
    return rows


def backtest(
    model,
    y,
    *,
    horizon: int,
    folds: int,
    step: int | None = None,
    window: str = "expanding",
    min_train: int | None = None,
    method: str = "svi",
    refit: bool = True,
    baselines=(),
    season: int = 1,
    levels=(0.5, 0.8, 0.95),
    num_samples: int | None = None,
    fit_kwargs: dict | None = None,
    covariates=None,
    key,
    progress: bool = True,
) -> pd.DataFrame:
    """Rolling-origin evaluation of a model (and baselines) on one series.

    Parameters
    ----------
    model : TimeSeriesModel, a baseline object, or None
        A bayes_ssm model is fitted with ``fit_svi`` / ``fit_nuts`` at each origin. An object
        with ``forecast_samples(y_train, horizon, *, num_samples, key)`` (see
        :mod:`bayes_ssm.baselines`) is run as is. None: baselines only.
    y : pandas.Series or array-like, shape ``(time,)``
        NaN marks missing values (they are skipped by the scores).
    horizon : int
        Steps forecast from each origin.
    folds : int
        Number of origins; the last one leaves exactly ``horizon`` steps.
    step : int, optional
        Steps between consecutive origins (default ``horizon``).
    window : {"expanding", "sliding"}
        Train on everything before the origin, or on the last ``min_train`` steps.
    min_train : int, optional
        Fewest training steps of the first fold (the window length when sliding). Default:
        ``max(2 * season, 10)``.
    method : {"svi", "nuts"}
    refit : bool
        True: fit anew at every origin. False: fit once at the first origin and condition the
        later folds on the newly arrived data with ``Fit.update`` (parameters fixed, states
        filtered forward; much cheaper; expanding window only).
    baselines : sequence of str or baseline objects
        ``"naive"``, ``"seasonal_naive"``, ``"ets"``, ``"uc"``, ``"prophet"`` or objects of
        :mod:`bayes_ssm.baselines`; run on the same folds.
    season : int
        Season length of the seasonal naive baseline and of the MASE scale.
    levels : sequence of float
        Central interval levels scored for coverage and width.
    num_samples : int, optional
        Predictive draws per fold (models: posterior draws used; baselines: default 1000).
    fit_kwargs : dict, optional
        Passed to ``fit_svi`` / ``fit_nuts`` (e.g. ``{"steps": 2000}``, ``{"num_chains": 2}``).
    covariates : pandas.DataFrame, optional
        On the index of ``y``; split with it into training and future covariates.
    key : int or numpy.random.Generator
        Keyword-only; fixes every fold's seeds.
    progress : bool
        tqdm progress bar over folds.

    Returns
    -------
    pandas.DataFrame
        Tidy scores, one row per model, fold and horizon step: ``model, fold, cutoff,
        timestamp, horizon, actual, mean, median, crps, pit, abs_error, scaled_error,
        quantile_loss, abs_actual, covered_<L>, width_<L>, converged, problems``.
        ``converged`` is False for a fold whose fit failed its diagnostics
        (:func:`bayes_ssm.diagnostics.check`; ``problems`` says why):
        :func:`summarize_backtest` leaves such folds out and counts them.
        ``attrs["folds"]`` holds one row per fold and model (training span, seconds,
        diagnostics).
    """
    series = _as_series(y)
    levels = tuple(float(v) for v in check_levels(levels, "levels"))
    if method not in ("svi", "nuts"):
        raise ValueError(f"method must be 'svi' or 'nuts'; got {method!r}")
    if not isinstance(refit, bool):
        raise ValueError(f"refit must be True or False; got {refit!r}")
    if not refit and window != "expanding":
        raise ValueError("refit=False conditions on all data so far: use window='expanding'")
    min_train = max(2 * season, 10) if min_train is None else min_train
    plan = rolling_origins(
        len(series), horizon, folds, step=step, window=window, min_train=min_train
    )
    runners = []
    if model is not None:
        runners.append(model)
    runners += _baseline_list(baselines, season)
    if not runners:
        raise ValueError("nothing to evaluate: pass a model and/or baselines")
    cov = None
    if covariates is not None:
        cov = pd.DataFrame(covariates).reindex(series.index)
    seeds = _seeds(key, len(plan))
    frames, fold_rows = [], []
    bar = tqdm(total=len(plan) * len(runners), desc="backtest", disable=not progress)
    first_fit = None
    for fold, (fit_seed, draw_seed) in zip(plan, seeds, strict=True):
        train = _training_data(series, fold)
        test = series.iloc[fold.test]
        _check_no_leak(train, test.index, fold)
        for runner in runners:
            start = time.perf_counter()
            is_model = hasattr(runner, "model") and hasattr(runner, "data_scales")
            name = getattr(runner, "name", None) or getattr(runner, "kind", type(runner).__name__)
            problems: list[str] = []
            if is_model:
                train_cov = None if cov is None else cov.iloc[fold.train]
                test_cov = None if cov is None else cov.iloc[fold.test]
                kwargs = dict(fit_kwargs or {})
                if train_cov is not None:
                    kwargs["covariates"] = train_cov
                if refit or first_fit is None:
                    fit, problems = _fit_model(runner, train, method, kwargs, fit_seed)
                    first_fit = fit
                else:
                    new = train.loc[train.index > first_fit.data.index[-1]]
                    new_cov = None if cov is None else train_cov.loc[new.index]
                    fit = first_fit.update(new, covariates=new_cov)
                    from bayes_ssm import diagnostics

                    problems = diagnostics.check(first_fit, warn=False)
                if fit.data.index[-1] >= test.index[0]:
                    raise BacktestLeakError(f"fold {fold.number}: the fit saw the future")
                draws = np.asarray(
                    fit.forecast_samples(
                        horizon, covariates=test_cov, num_samples=num_samples, key=int(draw_seed)
                    ),
                    dtype=float,
                )
            else:
                extra = {}
                if isinstance(runner, _baselines.ProphetBaseline):
                    extra = {"index": train.index, "freq": getattr(train.index, "freq", None)}
                draws = np.asarray(
                    runner.forecast_samples(
                        train.to_numpy(),
                        horizon,
                        num_samples=num_samples or 1000,
                        key=int(draw_seed),
                        **extra,
                    ),
                    dtype=float,
                )
            if draws.shape[-1] != horizon or draws.ndim != 2:
                raise ValueError(
                    f"{name} returned draws of shape {draws.shape}; expected (sample, {horizon})"
                )
            converged = not problems
            seconds = time.perf_counter() - start
            frames.append(
                _score_fold(
                    name,
                    fold,
                    draws,
                    train,
                    test,
                    levels=levels,
                    season=season,
                    converged=converged,
                    problems=problems,
                    seed=draw_seed,
                )
            )
            fold_rows.append(
                {
                    "model": name,
                    "fold": fold.number,
                    "train_start": train.index[0],
                    "cutoff": train.index[-1],
                    "num_train": int(train.notna().sum()),
                    "first_forecast": test.index[0],
                    "seconds": seconds,
                    "converged": converged,
                    "problems": "; ".join(problems),
                }
            )
            bar.update(1)
    bar.close()
    scores = pd.concat(frames, ignore_index=True)
    scores.attrs["folds"] = pd.DataFrame(fold_rows)
    scores.attrs["levels"] = levels
    return scores


def summarize_backtest(scores: pd.DataFrame, *, by=("model",)) -> pd.DataFrame:
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
