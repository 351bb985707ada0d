"""``Fit.update``: condition a fit on newly arrived observations without refitting.

The new points are read like the fitted index (:mod:`bayes_ssm.data.time_labels`) and must
continue it; the parameters' draws stay as they are and the data grow, so every read-out then
filters through the new steps.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bayes_ssm.data.time_labels import as_time_index
from bayes_ssm.data.validation import (
    SeriesData,
    as_series_data,
    check_future_covariates,
    future_index,
)
from bayes_ssm.inference import engine as _engine

if TYPE_CHECKING:
    from bayes_ssm.data.types import CovariatesLike, SeriesLike
    from bayes_ssm.inference.fit import Fit

__all__ = ["updated_fit"]


def _continuation(data: SeriesData, y_new: pd.Series) -> pd.Series:
    """``y_new`` relabelled on the fitted kind of time axis, or a ``ValueError`` saying why not."""
    old = data.index
    new = as_time_index(y_new.index, what="the index of y_new")
    kind = {True: "dates", False: "integer time steps"}
    if isinstance(old, pd.DatetimeIndex) != isinstance(new, pd.DatetimeIndex):
        raise ValueError(
            f"y_new is labelled with {kind[isinstance(new, pd.DatetimeIndex)]} but the fit with "
            f"{kind[isinstance(old, pd.DatetimeIndex)]}; label the new points like the fitted data"
        )
    values = y_new.to_numpy()
    if isinstance(old, pd.DatetimeIndex):
        if (old.tz is None) != (new.tz is None):
            raise ValueError(
                f"y_new's timestamps are {'naive' if new.tz is None else f'in zone {new.tz}'} but "
                f"the fit's are {'naive' if old.tz is None else f'in zone {old.tz}'}"
            )
        if new.tz is not None:
            new = new.tz_convert(old.tz)
        return pd.Series(values, index=new.as_unit(old.unit))
    labels = np.asarray(y_new.index, dtype=np.float64)
    off = (labels - old.start) % old.step != 0
    if off.any():
        raise ValueError(
            f"y_new's labels {labels[off][:3].astype(np.int64).tolist()} are off the fitted "
            f"integer grid (step {old.step} from {old.start})"
        )
    return pd.Series(values, index=labels.astype(np.int64))


def updated_fit(fit: Fit, y_new: SeriesLike, covariates: CovariatesLike | None = None) -> Fit:
    """The fit conditioned on ``y_new`` as well (see :meth:`bayes_ssm.Fit.update`)."""
    if fit.data.times is not None:
        raise ValueError(
            "update() is not available for a continuous-time fit yet; refit on the longer "
            "series (same key, same prior scales only if the data are the same)"
        )
    old_index = fit.data.index
    if isinstance(y_new, pd.DataFrame):
        if y_new.shape[1] != 1:
            raise ValueError(f"y_new must have one column; got {y_new.shape[1]}")
        y_new = y_new.iloc[:, 0]
    if isinstance(y_new, pd.Series):
        y_new = _continuation(fit.data, y_new)
    else:
        values = np.asarray(y_new, dtype=float)
        if values.ndim != 1 or values.size == 0:
            raise ValueError(f"y_new must be a non-empty 1-D array; got shape {values.shape}")
        y_new = pd.Series(values, index=future_index(fit.data, values.size))
    if len(y_new) == 0:
        raise ValueError("y_new is empty")
    if y_new.index.min() <= old_index[-1]:
        overlap = int(np.sum(y_new.index <= old_index[-1]))
        raise ValueError(
            f"y_new must start after the last fitted timestamp {old_index[-1]}; it starts at "
            f"{y_new.index.min()} ({overlap} of its {len(y_new)} points overlap the fitted "
            "data: send only the new points)"
        )
    old = pd.Series(fit.data.y, index=old_index, name=fit.data.name)
    combined = pd.concat([old, y_new.astype(float)])
    cov = None
    if fit.data.covariates is not None:
        if covariates is None:
            raise ValueError(
                f"the model uses covariates {list(fit.data.covariate_names)}; pass "
                f"covariates= for the {len(y_new)} new steps"
            )
        new_cov = check_future_covariates(fit.data, covariates, len(y_new))
        new_index = future_index(fit.data, len(y_new))
        if not np.array_equal(np.asarray(y_new.index), np.asarray(new_index)):
            raise ValueError(
                "with covariates, y_new must continue the index without gaps (expected "
                f"{new_index[0]} to {new_index[-1]}, got {y_new.index[0]} to "
                f"{y_new.index[-1]})"
            )
        cov = pd.DataFrame(
            np.concatenate([fit.data.covariates, new_cov]),
            index=combined.index,
            columns=list(fit.data.covariate_names),
        )
    elif covariates is not None:
        raise ValueError("covariates were given but the fit used none")
    if isinstance(old_index, pd.DatetimeIndex):
        data = as_series_data(combined, covariates=cov, freq=fit.data.freq)
    else:
        data = dataclasses.replace(as_series_data(combined, covariates=cov), freq=fit.data.freq)
    data = dataclasses.replace(data, name=fit.data.name, index=data.index.rename(old_index.name))
    shapes = _engine.latent_shapes(fit.model, data.y, dict(fit.scales), data.covariates)
    grown = {
        k: (v.shape[2:], shapes.get(k))
        for k, v in fit.draws.items()
        if shapes.get(k) != v.shape[2:]
    }
    if grown:
        raise ValueError(
            f"cannot update without refitting: latent sites {sorted(grown)} change shape "
            f"with the series length ({grown}); this model samples per-step latents, so "
            "refit it on the longer series"
        )
    info = dict(fit.info)
    info["updated_steps"] = int(info.get("updated_steps", 0)) + (
        data.num_steps - fit.data.num_steps
    )
    return dataclasses.replace(fit, data=data, info=info)
