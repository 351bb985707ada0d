"""Refit with other keys and compare: does the SVI fit land in the same place? (issue 15)

``bs.check`` reads one run: it says whether the optimiser stopped by the rule, not whether a
second run would have stopped at the same optimum. The neural models' weight posteriors are
multimodal: on ILI, refits of one ``NeuralSSM`` with keys 1-3 reached final losses 157-208
and 26-week CRPS 0.47-1.18, every run "converged" (``benchmarks/README.md``, "Neural fits that
converge (session 8)"). :func:`check_keys` fits the model once per key and compares the runs
two ways, each against the noise that a single run carries:

* **final loss**: the mean of each run's last ``window`` SVI losses (the negative ELBO, in
  nats), with a batch-means standard error (batches of ``batch`` steps, so that the
  autocorrelation of consecutive steps is absorbed). Two runs disagree when their means differ
  by more than ``z`` standard errors of the difference *and* by more than ``min_nats``: one run
  stopped at a worse optimum (or is still far from the other's).
* **forecast medians**: each run's forecast ``horizon`` steps ahead (drawn with one common
  key, so that the predictive noise is shared). Two runs disagree when, at some step, one
  run's median lies outside the other run's central 50% interval: the two forecasts then
  disagree about the centre by more than either says its own quartiles allow. Two equal
  posteriors give medians a few hundredths of an interval apart (Monte-Carlo error).

Both are tests of *agreement*, not of correctness: two runs in the same wrong optimum pass.
It costs one extra fit per extra key; it is opt-in.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bayes_ssm.data.types import CovariatesLike, KeyLike, SeriesLike
from bayes_ssm.inference.fit import Fit
from bayes_ssm.models.base import TimeSeriesModel

__all__ = ["KeyCheck", "check_keys", "compare_key_fits", "final_loss"]


@dataclass(frozen=True)
class KeyCheck:
    """What :func:`check_keys` found.

    Attributes
    ----------
    fits : tuple of Fit
        One fit per key, in the order of ``keys``.
    keys : tuple
        The keys (as given).
    losses : pandas.DataFrame
        One row per key: ``final_loss`` (mean of the last ``window`` losses), ``se`` (its
        batch-means standard error), ``steps``, ``converged``.
    pairs : pandas.DataFrame
        One row per pair of keys: ``loss_gap`` (nats), ``loss_z`` (the gap in standard
        errors), ``median_gap`` (the largest gap between the medians over the horizon, in
        units of the mean 50%-interval width), ``loss_disagrees``, ``forecast_disagrees``.
    problems : list of str
        One sentence per disagreeing pair (empty when the runs agree).
    """

    fits: tuple
    keys: tuple
    losses: pd.DataFrame
    pairs: pd.DataFrame
    problems: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no pair of runs disagrees."""
        return not self.problems


def final_loss(losses, window: int = 500, batch: int = 25) -> tuple[float, float]:
    """Mean of the last ``window`` losses and its batch-means standard error.

    Parameters
    ----------
    losses : array-like, shape ``(steps,)``
        An SVI loss trace (``fit.svi_loss``).
    window : int
        Steps at the end (fewer when the trace is shorter than ``2 * window``: its second half).
    batch : int
        Steps per batch; the standard error is ``sd(batch means) / sqrt(number of batches)``.

    Returns
    -------
    (float, float)
        The mean and its standard error.
    """
    losses = np.asarray(losses, dtype=float)
    if losses.ndim != 1 or losses.size < 4:
        raise ValueError(f"need a 1-d loss trace of at least 4 steps; got shape {losses.shape}")
    if not np.all(np.isfinite(losses)):
        raise ValueError("the loss trace has non-finite values: the fit failed numerically")
    tail = losses[-min(int(window), losses.size // 2) :]
    size = max(1, min(int(batch), tail.size // 4))
    usable = tail[tail.size % size :]
    means = usable.reshape(-1, size).mean(axis=1)
    return float(tail.mean()), float(means.std(ddof=1) / np.sqrt(means.size))


def _validate(fits) -> None:
    if len(fits) < 2:
        raise ValueError(f"need at least two fits to compare; got {len(fits)}")
    for f in fits:
        if not isinstance(f, Fit) or f.method != "svi" or f.svi_loss is None:
            raise ValueError("compare_key_fits compares SVI fits (bs.fit_svi); got another kind")
    first = fits[0]
    for f in fits[1:]:
        if f.model != first.model:
            raise ValueError("the fits are of different models; refit the same model")
        same = f.data.y.shape == first.data.y.shape and np.array_equal(
            f.data.y, first.data.y, equal_nan=True
        )
        if not same:
            raise ValueError("the fits are of different data; refit the same series")


def compare_key_fits(
    fits: Sequence[Fit],
    *,
    horizon: int = 12,
    keys: Sequence[KeyLike] | None = None,
    window: int = 500,
    batch: int = 25,
    z: float = 4.0,
    min_nats: float = 1.0,
    forecast_covariates: CovariatesLike | None = None,
    num_samples: int | None = None,
    warn: bool = True,
) -> KeyCheck:
    """Compare SVI fits of one model to one series that differ only in their key.

    Parameters
    ----------
    fits : sequence of Fit
        At least two SVI fits of the same model and data.
    horizon : int
        Forecast steps compared.
    keys : sequence, optional
        Labels of the fits (default ``0, 1, ...``).
    window, batch : int
        As :func:`final_loss`.
    z : float
        Standard errors of the loss difference above which the runs disagree (default 4: a
        few pairs compared, each run's standard error itself estimated from ~20 batches).
    min_nats : float
        Loss gaps below this many nats never count as disagreement (default 1).
    forecast_covariates : pandas.DataFrame, optional
        Future covariates, for a model fitted with covariates.
    num_samples : int, optional
        Forecast draws per fit (default: all of the fit's draws).
    warn : bool
        Also emit each problem as a :class:`~bayes_ssm.inference.diagnostics.FitWarning`.

    Returns
    -------
    KeyCheck
    """
    fits = tuple(fits)
    _validate(fits)
    keys = tuple(range(len(fits))) if keys is None else tuple(keys)
    if len(keys) != len(fits):
        raise ValueError(f"{len(keys)} keys for {len(fits)} fits")
    if not (isinstance(z, float | int) and z > 0) or not (
        isinstance(min_nats, float | int) and min_nats >= 0
    ):
        raise ValueError(f"z must be > 0 and min_nats >= 0; got z={z!r}, min_nats={min_nats!r}")
    stats = [final_loss(f.svi_loss, window, batch) for f in fits]
    losses = pd.DataFrame(
        {
            "key": [str(k) for k in keys],
            "final_loss": [m for m, _ in stats],
            "se": [s for _, s in stats],
            "steps": [f.info.get("steps") for f in fits],
            "converged": [f.info.get("converged") for f in fits],
        }
    ).set_index("key")
    forecasts = [
        f.forecast(horizon, prob=(0.5,), covariates=forecast_covariates, num_samples=num_samples)
        for f in fits
    ]
    rows, problems = [], []
    for i, j in itertools.combinations(range(len(fits)), 2):
        (ma, sa), (mb, sb) = stats[i], stats[j]
        gap = abs(ma - mb)
        gap_z = gap / max(np.hypot(sa, sb), 1e-12)
        fa, fb = forecasts[i], forecasts[j]
        a_med, b_med = fa["median"].to_numpy(), fb["median"].to_numpy()
        outside = (b_med < fa["lower_50"].to_numpy()) | (b_med > fa["upper_50"].to_numpy())
        outside |= (a_med < fb["lower_50"].to_numpy()) | (a_med > fb["upper_50"].to_numpy())
        width = 0.5 * (
            (fa["upper_50"] - fa["lower_50"]).to_numpy()
            + (fb["upper_50"] - fb["lower_50"]).to_numpy()
        )
        median_gap = float(np.max(np.abs(a_med - b_med) / np.maximum(width, 1e-12)))
        loss_bad = bool(gap_z > z and gap > min_nats)
        fc_bad = bool(outside.any())
        rows.append(
            {
                "keys": f"{keys[i]} vs {keys[j]}",
                "loss_gap": gap,
                "loss_z": gap_z,
                "median_gap": median_gap,
                "loss_disagrees": loss_bad,
                "forecast_disagrees": fc_bad,
            }
        )
        if loss_bad or fc_bad:
            problems.append(_sentence(keys[i], keys[j], ma, mb, gap_z, outside, median_gap))
    if warn:
        from bayes_ssm.inference.diagnostics import FitWarning

        for p in problems:
            warnings.warn(p, FitWarning, stacklevel=2)
    pairs = pd.DataFrame(rows).set_index("keys")
    return KeyCheck(fits, keys, losses, pairs, problems)


def _sentence(ka, kb, ma, mb, gap_z, outside, median_gap) -> str:
    parts = [
        f"refits with keys {ka} and {kb} ended at losses {ma:.1f} and {mb:.1f} nats "
        f"({gap_z:.1f} standard errors apart)"
    ]
    if outside.any():
        steps = np.flatnonzero(outside) + 1
        parts.append(
            f"their forecast medians differ by up to {median_gap:.2f} 50%-interval widths "
            f"(one outside the other's 50% interval at {steps.size} of {outside.size} steps, "
            f"first at step {steps[0]})"
        )
    return (
        "; ".join(parts) + ": the optimiser lands in different optima, so one run's intervals "
        "leave out that uncertainty. Compare more keys (the lower loss is the better ELBO, "
        "not always the better forecast), use a simpler model, or bs.fit_nuts."
    )


def check_keys(
    model: TimeSeriesModel,
    y: SeriesLike,
    *,
    keys: Sequence[KeyLike] = (0, 1),
    horizon: int = 12,
    window: int = 500,
    batch: int = 25,
    z: float = 4.0,
    min_nats: float = 1.0,
    forecast_covariates: CovariatesLike | None = None,
    warn: bool = True,
    **fit_kwargs: Any,
) -> KeyCheck:
    """Fit ``model`` to ``y`` by SVI once per key and say whether the runs agree.

    Parameters
    ----------
    model : TimeSeriesModel
    y : pandas.Series or array-like ``(time,)``
        As :func:`bayes_ssm.fit_svi`.
    keys : sequence of int or jax.random key
        At least two; each run is ``bs.fit_svi(model, y, key=k, **fit_kwargs)``.
    horizon, window, batch, z, min_nats, forecast_covariates, warn
        As :func:`compare_key_fits`.
    **fit_kwargs
        Passed to :func:`bayes_ssm.fit_svi` (``steps``, ``covariates``, ``freq``, ...;
        ``progress`` defaults to False).

    Returns
    -------
    KeyCheck
        ``.ok`` is False and ``.problems`` says why when two runs ended at losses further apart
        than their noise allows or forecast different centres.

    Examples
    --------
    >>> import bayes_ssm as bs
    >>> y = bs.datasets.load("ili").iloc[-300:]
    >>> result = bs.check_keys(bs.NeuralSSM(width=4, num_layers=1), y)  # doctest: +SKIP
    >>> result.ok, result.losses  # doctest: +SKIP
    """
    from bayes_ssm.inference.fitting import fit_svi

    keys = tuple(keys)
    if len(keys) < 2:
        raise ValueError(f"keys must hold at least two keys; got {keys!r}")
    if "key" in fit_kwargs:
        raise ValueError("pass the keys as keys=(...), not key=")
    fit_kwargs.setdefault("progress", False)
    fits = [fit_svi(model, y, key=k, **fit_kwargs) for k in keys]
    return compare_key_fits(
        fits,
        horizon=horizon,
        keys=keys,
        window=window,
        batch=batch,
        z=z,
        min_nats=min_nats,
        forecast_covariates=forecast_covariates,
        warn=warn,
    )
