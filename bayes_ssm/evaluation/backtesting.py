"""Rolling-origin backtests: refit at each origin, forecast, score against what came next.

``backtest`` cuts the series into ``folds`` forecast origins (the last one leaves exactly
``horizon`` steps after it), fits the model on the data before each origin only (an expanding
window from the start, or a sliding window of ``min_train`` steps), draws the predictive of the
next ``horizon`` steps and scores it. Baselines run in the same harness on the same folds.

No fold sees the future: the training data of a fold is produced in one place
(:func:`bayes_ssm.evaluation.folds.training_data`, imported here as ``_training_data``) and
checked against the fold's first forecast timestamp before any model sees it; the forecasts
must come back on exactly the test timestamps. The folds live in
:mod:`bayes_ssm.evaluation.folds`, the per-fold draws of models and baselines in
:mod:`bayes_ssm.evaluation.backtest_runners`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bayes_ssm.data.types import SeriesLike
from bayes_ssm.evaluation._scoring_inputs import check_levels
from bayes_ssm.evaluation.backtest_runners import as_series as _as_series
from bayes_ssm.evaluation.backtest_runners import baseline_draws as _baseline_draws
from bayes_ssm.evaluation.backtest_runners import fold_seeds as _seeds
from bayes_ssm.evaluation.backtest_runners import is_model as _is_model
from bayes_ssm.evaluation.backtest_runners import model_draws as _model_draws
from bayes_ssm.evaluation.backtest_runners import named_runners as _runners
from bayes_ssm.evaluation.backtest_scores import (
    backtest_calibration,
    failed_fold,
    score_fold,
    summarize_backtest,
)
from bayes_ssm.evaluation.folds import BacktestLeakError, Fold, rolling_origins
from bayes_ssm.evaluation.folds import check_no_leak as _check_no_leak
from bayes_ssm.evaluation.folds import training_data as _training_data
from bayes_ssm.inference.progress import progress_bar

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from bayes_ssm.models.base import TimeSeriesModel

__all__ = [
    "Fold",
    "rolling_origins",
    "backtest",
    "summarize_backtest",
    "backtest_calibration",
    "BacktestLeakError",
]


def _batched_fits(runners, series, plan, seeds, pad_to) -> dict:
    """``{name: {fold number: fit or error, "share": seconds per fold}}`` for the runners that
    fit all folds at once (``runner.fit_folds``, e.g. ``bs.AutoTS(fold_batch="vmap")``; each
    fold's training data cut and checked as in the fold loop)."""
    out = {}
    for name, runner in runners.items():
        if _is_model(runner) or not hasattr(runner, "fit_folds"):
            continue
        trains = []
        for fold in plan:
            train = _training_data(series, fold)
            _check_no_leak(train, series.iloc[fold.test].index, fold)
            trains.append(train)
        start = time.perf_counter()
        fits = runner.fit_folds(trains, [int(s[1]) for s in seeds], pad_to=pad_to)
        if fits is not None:
            out[name] = dict(zip((f.number for f in plan), fits, strict=True))
            out[name]["share"] = (time.perf_counter() - start) / len(plan)
    return out


def backtest(
    model: TimeSeriesModel | object | Mapping[str, object] | None,
    y: SeriesLike,
    *,
    horizon: int,
    folds: int,
    step: int | None = None,
    window: str = "expanding",
    min_train: int | None = None,
    method: str = "svi",
    refit: bool = True,
    baselines: Sequence[str | object] = (),
    season: int = 1,
    levels: Sequence[float] = (0.5, 0.8, 0.95),
    num_samples: int | None = None,
    fit_kwargs: dict | None = None,
    covariates: pd.DataFrame | None = None,
    key: int | np.random.Generator,
    progress: bool = True,
) -> pd.DataFrame:
    """Rolling-origin evaluation of a model (and baselines) on one series.

    Parameters
    ----------
    model : TimeSeriesModel, baseline object, dict of str to either, or None
        A bayes_ssm model is fitted with ``fit_svi`` / ``fit_nuts`` at each origin; an object
        with ``forecast_samples(y_train, horizon, *, num_samples, key)`` (see
        :mod:`bayes_ssm.evaluation.baselines`) is run as is; a dict compares several under its
        names.
        None: baselines only.
    y : pandas.Series or array-like, shape ``(time,)``
        NaN marks missing values (they are skipped by the scores).
    horizon : int
        Steps forecast from each origin.
    folds : int
        Number of origins; the last one leaves exactly ``horizon`` steps.
    step : int, optional
        Steps between consecutive origins (default ``horizon``).
    window : {"expanding", "sliding"}
        Train on everything before the origin, or on the last ``min_train`` steps (a fixed
        length, so every fold reuses one compiled program: much faster).
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
        :mod:`bayes_ssm.evaluation.baselines`; run on the same folds.
    season : int
        Season length of the seasonal naive baseline and of the MASE scale.
    levels : sequence of float
        Central interval levels scored for coverage and width, each in (0, 1).
    num_samples : int, optional
        Predictive draws per fold (models: posterior draws used; baselines: default 1000).
    fit_kwargs : dict, optional
        Passed to ``fit_svi`` / ``fit_nuts`` (e.g. ``{"steps": 2000}``, ``{"num_chains": 2}``).
    covariates : pandas.DataFrame, optional
        On the index of ``y``; split with it into training and future covariates.
    key : int or numpy.random.Generator
        Keyword-only; fixes every fold's seeds.
    progress : bool
        tqdm progress bar over folds and models; drawn only where someone can see it (stderr is
        a terminal, or a Jupyter kernel), so piped or redirected output stays clean.

    Returns
    -------
    pandas.DataFrame
        Tidy scores, one row per model, fold and horizon step: ``model, fold, cutoff,
        timestamp, horizon, actual, mean, median, crps, pit, abs_error, scaled_error,
        quantile_loss, abs_actual, covered_<L>, width_<L>, converged, problems``.
        ``converged`` is False for a fold whose fit failed its diagnostics
        (:func:`bayes_ssm.inference.diagnostics.check`) or raised a numerical error (its scores are
        NaN); ``problems`` says why. :func:`summarize_backtest` leaves such folds out and
        counts them. ``attrs["folds"]`` holds one row per fold and model (training span,
        seconds, diagnostics).

    Examples
    --------
    >>> scores = bs.backtest(model, y, horizon=4, folds=20, baselines=["seasonal_naive"],
    ...                      season=52, key=0)  # doctest: +SKIP
    >>> bs.summarize_backtest(scores)  # doctest: +SKIP
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
    runners = _runners(model, baselines, season)
    cov = None if covariates is None else pd.DataFrame(covariates).reindex(series.index)
    seeds = _seeds(key, len(plan))
    # SVI fits run padded to the longest training window: one compiled program for all folds
    pad_to = max(f.train.stop - f.train.start for f in plan)
    caches = {name: {} for name in runners}
    batched = _batched_fits(runners, series, plan, seeds, pad_to)
    frames, fold_rows = [], []
    bar = progress_bar(total=len(plan) * len(runners), desc="backtest", progress=progress)
    for fold, fold_seeds in zip(plan, seeds, strict=True):
        train = _training_data(series, fold)
        test = series.iloc[fold.test]
        _check_no_leak(train, test.index, fold)
        for name, runner in runners.items():
            start = time.perf_counter()
            try:
                if _is_model(runner):
                    draws, problems = _model_draws(
                        runner,
                        train,
                        test,
                        horizon,
                        method=method,
                        fit_kwargs=fit_kwargs,
                        cov=cov,
                        fold=fold,
                        seeds=fold_seeds,
                        cache=caches[name],
                        refit=refit,
                        num_samples=num_samples,
                        pad_to=pad_to,
                    )
                else:
                    draws, problems = _baseline_draws(
                        runner,
                        train,
                        horizon,
                        seed=fold_seeds[1],
                        num_samples=num_samples,
                        pad_to=pad_to,
                        fitted=batched.get(name, {}).get(fold.number),
                    )
            except (FloatingPointError, np.linalg.LinAlgError) as err:
                problem = f"the fit failed: {type(err).__name__}: {err}"
                frames.append(failed_fold(name, fold, train, test, levels=levels, problem=problem))
                problems, draws = [problem], None
            if draws is not None:
                if draws.ndim != 2 or draws.shape[1] != horizon:
                    raise ValueError(
                        f"{name} returned draws of shape {draws.shape}; expected "
                        f"(sample, {horizon})"
                    )
                if not np.isfinite(draws).all():
                    bad = int(np.sum(~np.isfinite(draws)))
                    problem = f"the forecast has {bad} non-finite draws (NaN or inf)"
                    frames.append(
                        failed_fold(name, fold, train, test, levels=levels, problem=problem)
                    )
                    problems, draws = [*problems, problem], None
            if draws is not None:
                frames.append(
                    score_fold(
                        name,
                        fold,
                        draws,
                        train,
                        test,
                        levels=levels,
                        season=season,
                        converged=not problems,
                        problems=problems,
                        seed=fold_seeds[1],
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
                    "seconds": time.perf_counter() - start + batched.get(name, {}).get("share", 0),
                    "converged": not problems,
                    "problems": "; ".join(problems),
                }
            )
            bar.update(1)
    bar.close()
    scores = pd.concat(frames, ignore_index=True)
    scores.attrs["folds"] = pd.DataFrame(fold_rows)
    scores.attrs["levels"] = levels
    return scores
