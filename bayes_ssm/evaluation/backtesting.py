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
import inspect
import time
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bayes_ssm.data.types import SeriesLike
from bayes_ssm.data.validation import as_series_data
from bayes_ssm.evaluation import baselines as _baselines
from bayes_ssm.evaluation._scoring_inputs import check_levels
from bayes_ssm.evaluation.backtest_scores import (
    backtest_calibration,
    failed_fold,
    score_fold,
    summarize_backtest,
)
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


def _is_model(runner) -> bool:
    return hasattr(runner, "model") and hasattr(runner, "data_scales")


def _runners(model, baselines, season: int) -> dict:
    """Name -> model or baseline, in order; names must be unique."""
    out: dict = {}
    items = list(model.items()) if isinstance(model, dict) else [(None, model)]
    for b in baselines or ():
        obj = _baselines.baseline_from_name(b, season=season) if isinstance(b, str) else b
        items.append((None, obj))
    for name, runner in items:
        if runner is None:
            continue
        if not (
            _is_model(runner)
            or hasattr(runner, "forecast_samples")
            or hasattr(runner, "draws_and_problems")
        ):
            raise ValueError(
                f"{runner!r} is neither a bayes_ssm model nor a baseline with forecast_samples"
            )
        name = name or getattr(runner, "name", None) or getattr(runner, "kind", None)
        name = str(name or type(runner).__name__)
        if name in out:
            raise ValueError(
                f"two runners are both named {name!r}: pass model={{'name': model, ...}}"
            )
        out[name] = runner
    if not out:
        raise ValueError("nothing to evaluate: pass a model and/or baselines")
    return out


def _seeds(key, count: int) -> np.ndarray:
    if isinstance(key, bool) or not isinstance(key, int | np.integer | np.random.Generator):
        raise ValueError(f"key must be an int seed or numpy Generator; got {key!r}")
    rng = key if isinstance(key, np.random.Generator) else np.random.default_rng(int(key))
    return rng.integers(0, 2**31 - 1, size=(count, 2))


def _model_draws(
    runner,
    train,
    test,
    horizon,
    *,
    method,
    fit_kwargs,
    cov,
    fold,
    seeds,
    cache,
    refit,
    num_samples,
    pad_to=None,
):
    """Fit (or update) a bayes_ssm model on the fold's training data; forecast draws."""
    from bayes_ssm.inference import diagnostics
    from bayes_ssm.inference import fitting as infer

    train_cov = None if cov is None else cov.loc[train.index]
    test_cov = None if cov is None else cov.loc[test.index]
    first = cache.get("fit")
    if refit or first is None:
        fitter = {"svi": infer.fit_svi, "nuts": infer.fit_nuts}[method]
        kwargs = {"progress": False, **(fit_kwargs or {})}
        if method == "svi" and pad_to is not None:
            kwargs.setdefault("pad_to", pad_to)
        if train_cov is not None:
            kwargs["covariates"] = train_cov
        fit = fitter(runner, train, key=int(seeds[0]), **kwargs)
        cache["fit"] = fit
        problems = diagnostics.check(fit, warn=False)
        cache["problems"] = problems
    else:  # parameters from the first fold; the state filtered through the newer data
        new = train.loc[train.index > first.data.index[-1]]
        new_cov = None if train_cov is None else train_cov.loc[new.index]
        fit = first.update(new, covariates=new_cov) if len(new) else first
        problems = cache["problems"]
    if fit.data.index[-1] >= test.index[0]:
        raise BacktestLeakError(f"fold {fold.number}: the fit saw the future")
    draws = fit.forecast_samples(
        horizon, covariates=test_cov, num_samples=num_samples, key=int(seeds[1])
    )
    return np.asarray(draws, dtype=float), problems


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


def _baseline_draws(runner, train, horizon, *, seed, num_samples, pad_to=None, fitted=None):
    if hasattr(runner, "draws_and_problems"):  # e.g. bs.AutoTS: fits on the indexed series
        extra = {}
        if "pad_to" in inspect.signature(runner.draws_and_problems).parameters:
            extra["pad_to"] = pad_to
        if fitted is not None:
            extra["fitted"] = fitted
        draws, problems = runner.draws_and_problems(
            train, horizon, num_samples=num_samples, key=int(seed), **extra
        )
        return np.asarray(draws, dtype=float), list(problems)
    extra = {}
    if isinstance(runner, _baselines.ProphetBaseline):
        extra = {"index": train.index, "freq": getattr(train.index, "freq", None)}
    draws = runner.forecast_samples(
        train.to_numpy(), horizon, num_samples=num_samples or 1000, key=int(seed), **extra
    )
    return np.asarray(draws, dtype=float), []


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
