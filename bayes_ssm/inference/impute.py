"""Imputation: the posterior predictive of a series at its own timestamps given ALL the data.

Filling gaps is a non-causal job: the value at a missing step depends on what came after it
as well as before. For :class:`~bayes_ssm.models.StructuralTS` the exact answer is the smoothing
distribution: each posterior draw of the parameters contributes one joint draw of the states
given the whole series (the simulation smoother the model runs under ``components=True``),
whose components sum to the signal, plus one draw of the observation noise. Forecasts never
use this path (they run the causal Kalman filter only). A
:class:`~bayes_ssm.models.NeuralSSM` with ``direction="bidirectional"`` imputes from its
conditional of each value given both sides (a model that, by construction, cannot forecast).
"""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd

from bayes_ssm.models.likelihoods import observation_distribution

__all__ = ["impute_samples", "impute", "at_times"]


def at_times(fit, times):
    """``(fit, rows)``: a continuous-time ``fit`` with NaN rows added at past ``times`` (between
    its first and last timestamps; same draws, same parameters) and their row positions."""
    import dataclasses

    from bayes_ssm.data.validation import as_series_data

    if fit.data.times is None:
        raise ValueError(
            "impute(times=...) needs a continuous-time fit; on a regular grid put NaN at the "
            "steps to fill and call impute()"
        )
    if fit.data.covariates is not None:
        raise ValueError("impute(times=...) is not available with covariates")
    index = fit.data.index
    stamps = pd.DatetimeIndex(times) if isinstance(index, pd.DatetimeIndex) else pd.Index(times)
    if len(stamps) == 0 or stamps.min() <= index[0] or stamps.max() >= index[-1]:
        raise ValueError(
            f"impute times must lie strictly between the first and last fitted timestamps "
            f"({index[0]} .. {index[-1]})"
        )
    new = stamps.difference(index)
    series = pd.concat([pd.Series(fit.data.y, index=index), pd.Series(np.nan, index=new)])
    series = series.sort_index()
    freq = fit.data.time_unit
    data = as_series_data(series.rename(fit.data.name), freq=freq, time="continuous")
    model = fit.model.with_times(data.times, fit.model.time_unit)
    rows = data.index.get_indexer(stamps)
    return dataclasses.replace(fit, model=model, data=data), rows


def impute_samples(fit, *, num_samples=None, key=0, times=None) -> np.ndarray:
    """Draws of ``y_t | y`` (all the data) at every fitted timestamp (or at ``times``).

    Parameters
    ----------
    fit : Fit
        A fit of a :class:`~bayes_ssm.models.StructuralTS` (discrete or continuous time), or
        of a :class:`~bayes_ssm.models.NeuralSSM` (``direction="bidirectional"`` reads both
        sides of each gap; see :func:`_neural_impute_samples`).
    times : sequence of timestamps (or floats), optional
        Continuous-time fits: impute at these past times instead (any, between the first and
        last fitted timestamps); the result then has shape ``(sample, len(times))``.
    num_samples : int, optional
        Use this many posterior draws (evenly thinned); all of them by default.
    key : int or jax.random key
        Same key, same draws.

    Returns
    -------
    numpy.ndarray, shape ``(sample, time)``
        Parameter, state and observation uncertainty; at observed steps these are replicates
        of the observed value (its smoothing predictive), at missing steps imputations.
    """
    from bayes_ssm.inference import engine as _engine

    rows = None
    if times is not None:
        fit, rows = at_times(fit, times)
    if fit.model.kind == "neural_ssm" and rows is None:
        return _neural_impute_samples(fit, num_samples=num_samples, key=key)
    if fit.model.kind != "structural":
        raise ValueError(
            "impute() needs a StructuralTS fit (exact smoothing) or a NeuralSSM fit (best with "
            f"direction='bidirectional'); got a {fit.model.kind!r} model"
        )
    sites = tuple(f"component/{name}" for name in fit.model.component_names)
    if fit.data.covariates is not None and fit.model.uses_regression(fit.data.covariates):
        sites += ("component/regression",)
    k_states, k_obs = jax.random.split(_engine.as_key(key))
    out = fit._predict(k_states, sites, components=True, num_samples=num_samples)
    signal = sum(np.asarray(out[s]) for s in sites)
    params = {
        k: np.asarray(v)[:, None]
        for k, v in fit._flat_draws(num_samples).items()
        if k in ("sigma_obs", "nu", "concentration")
    }
    law = observation_distribution(fit.model.likelihood, signal, params)
    draws = np.asarray(law.sample(k_obs))
    return draws if rows is None else draws[:, rows]


def _neural_impute_samples(fit, *, num_samples=None, key=0) -> np.ndarray:
    """A NeuralSSM's draws of ``y_t`` given the other values (its ``y_rep`` site).

    With ``direction="bidirectional"`` the law of ``y_t`` is the network's conditional given
    the values before *and* after ``t`` (missing ones carried forward into the forward stack
    and backward into the backward stack), one draw per posterior draw; with
    ``direction="causal"`` it is the one-step-ahead predictive (the past only). These are
    full conditionals, not a joint smoothing law: gaps of several steps are filled value by
    value, each from the observed neighbours.
    """
    from bayes_ssm.inference import engine as _engine

    out = fit._predict(_engine.as_key(key), ("y_rep",), components=True, num_samples=num_samples)
    return np.asarray(out["y_rep"])


def impute(fit, *, prob=(0.8, 0.95), num_samples=None, key=0, times=None) -> pd.DataFrame:
    """Imputations with credible bands at every fitted timestamp (see :func:`impute_samples`).

    Returns
    -------
    pandas.DataFrame, shape ``(time, 3 + 2 * len(prob))``
        ``observed`` (the data, NaN where missing), ``mean``, ``median``, ``lower_80``, ...
        on the fitted index (or on ``times``, where ``observed`` is NaN unless fitted).
    """
    from bayes_ssm.inference.forecast import summarize_draws, validate_prob

    levels = validate_prob(prob)
    draws = impute_samples(fit, num_samples=num_samples, key=key, times=times)
    if times is None:
        index, observed = fit.data.index, fit.data.y
    else:
        widened, rows = at_times(fit, times)
        index = widened.data.index[rows]
        observed = pd.Series(fit.data.y, index=fit.data.index).reindex(index).to_numpy()
    frame = summarize_draws(draws, index, levels)
    frame.insert(0, "observed", observed)
    return frame
