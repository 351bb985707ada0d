"""What the backtest runs at each fold: runners (models and baselines) by name, seeds, and
one fold's forecast draws from a bayes_ssm model or a baseline."""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd

from bayes_ssm.data.validation import as_series_data
from bayes_ssm.evaluation import baselines as _baselines
from bayes_ssm.evaluation.folds import BacktestLeakError

__all__ = ["as_series", "is_model", "named_runners", "fold_seeds", "model_draws", "baseline_draws"]


def as_series(y) -> pd.Series:
    data = as_series_data(y)
    return pd.Series(data.y, index=data.index, name=data.name)


def is_model(runner) -> bool:
    return hasattr(runner, "model") and hasattr(runner, "data_scales")


def named_runners(model, baselines, season: int) -> dict:
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
            is_model(runner)
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


def fold_seeds(key, count: int) -> np.ndarray:
    if isinstance(key, bool) or not isinstance(key, int | np.integer | np.random.Generator):
        raise ValueError(f"key must be an int seed or numpy Generator; got {key!r}")
    rng = key if isinstance(key, np.random.Generator) else np.random.default_rng(int(key))
    return rng.integers(0, 2**31 - 1, size=(count, 2))


def model_draws(
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


def baseline_draws(runner, train, horizon, *, seed, num_samples, pad_to=None, fitted=None):
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
