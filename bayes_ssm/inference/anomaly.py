"""Anomalies: observations outside their one-step-ahead posterior predictive band.

For every observed step ``t`` the model's one-step-ahead predictive ``p(y_t | y_<t)``
(parameters integrated over the posterior) is represented by replicate draws, the model's
``"y_rep"`` site (one draw of ``y_t | y_<t, theta`` per posterior draw ``theta``; see
``bayes_ssm/models/base.py``). An observation is an anomaly when it falls outside the central
``level`` interval of those draws; its two-sided tail probability says how extreme it is.
This is the outbreak / market-shock detector of ``tfp.sts.detect_anomalies``, with parameter
uncertainty included and missing values allowed (they are never flagged).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bayes_ssm.data.types import KeyLike
from bayes_ssm.inference.forecast import check_levels

if TYPE_CHECKING:
    from bayes_ssm.inference.fit import Fit

__all__ = ["anomalies", "one_step_predictive"]


def one_step_predictive(fit, *, num_samples: int | None = None, key=0, replicates: int = 1):
    """Replicate draws of each step's one-step-ahead predictive, shape ``(sample, time)``.

    Parameters
    ----------
    fit : Fit
        A fit whose model emits the ``"y_rep"`` site (with ``components=True``).
    num_samples : int, optional
        Posterior draws used (evenly thinned); all by default.
    key : int or jax.random key
    replicates : int
        Replicate draws per posterior draw (more draws sharpen small tail probabilities).
    """
    if isinstance(replicates, bool) or not isinstance(replicates, int) or replicates < 1:
        raise ValueError(f"replicates must be a positive integer; got {replicates!r}")
    import jax

    from bayes_ssm.inference import engine as _engine

    keys = jax.random.split(_engine.as_key(key), replicates)
    out = []
    for k in keys:
        draws = fit._predict(k, ("y_rep",), components=True, num_samples=num_samples)
        if "y_rep" not in draws:
            raise ValueError(
                f"model {fit.model.kind!r} does not emit the one-step-ahead replicate site "
                "'y_rep' (y_t | y_<t, theta), which anomaly detection needs"
            )
        out.append(np.asarray(draws["y_rep"], dtype=float).reshape(-1, fit.data.num_steps))
    return np.concatenate(out, axis=0)


def anomalies(
    fit: Fit,
    *,
    level: float = 0.99,
    num_samples: int | None = None,
    replicates: int = 1,
    all_steps: bool = False,
    key: KeyLike = 0,
) -> pd.DataFrame:
    """Observations outside their one-step-ahead predictive band, with tail probabilities.

    Parameters
    ----------
    fit : Fit
        From ``fit_nuts`` / ``fit_svi``; the model must emit ``"y_rep"``.
    level : float in (0, 1)
        Central predictive interval; observations outside it are anomalies.
    num_samples, replicates, key
        As in :func:`one_step_predictive`.
    all_steps : bool
        Return every step (the band for :func:`bayes_ssm.plotting.plot_anomalies`), with an
        ``is_anomaly`` column, instead of the anomalies only.

    Returns
    -------
    pandas.DataFrame
        Indexed by the fitted timestamps; columns ``observed``, ``mean`` and ``median`` of the
        one-step predictive, ``lower`` / ``upper`` (the ``level`` band), ``z_score``
        (``(y - mean) / sd``), ``tail_prob`` (two-sided: ``2 min(F(y), 1 - F(y))`` under the
        predictive, at least ``1 / (draws + 1)``), ``direction`` (``"high"`` / ``"low"``) and,
        with ``all_steps``, ``is_anomaly``. ``attrs["level"]`` records ``level``. Missing
        observations are never anomalies.

    Notes
    -----
    The tail probabilities are Monte-Carlo estimates from ``S`` replicate draws: they cannot
    resolve probabilities below about ``1 / S``; raise ``replicates`` to see further into the
    tails.
    """
    level = float(check_levels(level)[0])
    draws = one_step_predictive(fit, num_samples=num_samples, key=key, replicates=replicates)
    y = np.asarray(fit.data.y, dtype=float)
    num = draws.shape[0]
    lower, median, upper = np.quantile(draws, [(1 - level) / 2, 0.5, (1 + level) / 2], axis=0)
    mean = draws.mean(axis=0)
    sd = draws.std(axis=0, ddof=1)
    below = np.sum(draws < y, axis=0)
    at_or_below = np.sum(draws <= y, axis=0)
    cdf = (below + at_or_below) / 2 / num
    tail = np.clip(2 * np.minimum(cdf, 1 - cdf), 1 / (num + 1), 1.0)
    observed = ~np.isnan(y)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(sd > 0, (y - mean) / sd, np.nan)
    frame = pd.DataFrame(
        {
            "observed": y,
            "mean": mean,
            "median": median,
            "lower": lower,
            "upper": upper,
            "z_score": z,
            "tail_prob": np.where(observed, tail, np.nan),
            "direction": np.where(y > median, "high", "low"),
        },
        index=fit.data.index,
    )
    outside = observed & ((y < lower) | (y > upper))
    frame.loc[~observed, "direction"] = None
    frame.attrs["level"] = level
    if all_steps:
        frame["is_anomaly"] = outside
        return frame
    out = frame[outside].copy()
    out.attrs["level"] = level
    return out
