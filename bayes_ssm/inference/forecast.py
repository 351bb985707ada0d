"""Forecast draws in, pandas out: credible intervals as a DataFrame on the future timestamps.

Everything here is plain NumPy/pandas; the draws come from the model's ``"y_forecast"`` site
(read out by :meth:`bayes_ssm.Fit.forecast_samples`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = [
    "summarize_draws",
    "validate_prob",
    "check_levels",
    "validate_horizon",
    "level_label",
    "warn_exploding_counts",
    "warn_exploding_forecast",
    "COUNT_FORECAST_FACTOR",
    "FORECAST_SPAN_FACTOR",
]

COUNT_FORECAST_FACTOR = 1000.0
FORECAST_SPAN_FACTOR = 1000.0


def validate_horizon(horizon) -> int:
    """Return ``horizon`` as an int, or raise ``ValueError`` unless it is a positive integer."""
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon <= 0:
        raise ValueError(f"horizon must be a positive integer; got {horizon!r}")
    return int(horizon)


def validate_prob(prob) -> tuple[float, ...]:
    """Validate credible-interval levels.

    Parameters
    ----------
    prob : float or sequence of float
        Central interval probabilities, each strictly between 0 and 1 (e.g. ``(0.8, 0.95)``).

    Returns
    -------
    tuple of float
        Unique levels in increasing order.
    """
    levels = (prob,) if np.isscalar(prob) else tuple(prob)
    if len(levels) == 0:
        raise ValueError("prob must name at least one interval level, e.g. prob=(0.8, 0.95)")
    out = []
    for p in levels:
        if isinstance(p, bool) or not isinstance(p, int | float | np.integer | np.floating):
            raise ValueError(f"prob must hold numbers strictly between 0 and 1; got {p!r}")
        if not 0.0 < float(p) < 1.0:
            raise ValueError(f"prob must be strictly between 0 and 1; got {p!r} in prob={prob!r}")
        out.append(float(p))
    return tuple(sorted(set(out)))


def check_levels(levels, what: str = "level") -> np.ndarray:
    """Interval levels as a 1-D float array, each strictly inside (0, 1)."""
    arr = np.atleast_1d(np.asarray(levels, dtype=float))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{what} must be a number or a 1-D sequence; got {levels!r}")
    bad = arr[~((arr > 0) & (arr < 1))]
    if bad.size:
        raise ValueError(
            f"{what} must lie strictly between 0 and 1 (e.g. 0.8 for an 80% interval); got "
            f"{bad.tolist()}"
        )
    return arr


def level_label(p: float) -> str:
    """Column suffix of a level: ``0.8 -> "80"``, ``0.975 -> "97.5"``."""
    return f"{100 * p:.10g}"


def summarize_draws(
    draws: np.ndarray, index: pd.Index, prob: Sequence[float] = (0.8, 0.95)
) -> pd.DataFrame:
    """Summarise predictive draws as mean, median and central credible intervals.

    Parameters
    ----------
    draws : array-like, shape ``(sample, time)``
        Draws of the predictive distribution at each timestamp.
    index : pandas.Index, length ``time``
        The timestamps (future ones for a forecast).
    prob : sequence of float
        Central interval levels; level ``p`` gives columns ``lower_<100p>`` (the
        ``(1 - p) / 2`` quantile) and ``upper_<100p>`` (the ``(1 + p) / 2`` quantile).

    Returns
    -------
    pandas.DataFrame, shape ``(time, 2 + 2 * len(prob))``
        Columns ``mean, median, lower_80, upper_80, lower_95, upper_95`` for the default levels.
    """
    levels = validate_prob(prob)
    draws = np.asarray(draws, dtype=np.float64)
    if draws.ndim != 2 or draws.shape[1] != len(index):
        raise ValueError(
            f"draws must have shape (sample, time) with time={len(index)}; got {draws.shape}"
        )
    if draws.shape[0] < 2:
        raise ValueError(f"need at least 2 draws to summarise; got {draws.shape[0]}")
    bad = ~np.isfinite(draws)
    if bad.any():
        cols = np.flatnonzero(bad.any(axis=0))
        raise ValueError(
            f"{int(bad.sum())} predictive draws are not finite (at steps {cols[:5].tolist()}); "
            "the posterior or the model is degenerate; check the fit with bs.check(fit)"
        )
    qs = [0.5]
    for p in levels:
        qs += [(1 - p) / 2, (1 + p) / 2]
    quant = np.quantile(draws, qs, axis=0)
    columns = {"mean": draws.mean(axis=0), "median": quant[0]}
    for i, p in enumerate(levels):
        columns[f"lower_{level_label(p)}"] = quant[1 + 2 * i]
        columns[f"upper_{level_label(p)}"] = quant[2 + 2 * i]
    return pd.DataFrame(columns, index=index)


def warn_exploding_counts(
    draws, observed, *, factor: float = COUNT_FORECAST_FACTOR, stacklevel: int = 2
) -> int:
    """Warn when count forecast draws exceed ``factor`` times the largest observed count.

    A count forecast that reaches a thousand times anything in the data (e.g. 1e9 deaths a day
    from a series that peaked at 1,000) does not describe the series: it comes from a fit that
    failed, typically a chain that did not mix and drives the trend away. The draws are still
    returned (they are what the posterior says); the warning says that it should not be
    trusted.

    Parameters
    ----------
    draws : array-like, shape ``(sample, horizon)``
        Forecast draws (counts).
    observed : array-like, shape ``(time,)``
        The fitted counts; NaN where missing.
    factor : float
        The bound is ``factor * max(largest observed count, 1)``.
    stacklevel : int
        Passed to :func:`warnings.warn` (2: the caller of this function).

    Returns
    -------
    int
        The number of draws above the bound (0: no warning).

    Warns
    -----
    UserWarning
        Naming the number and share of such draws, the largest draw and the bound.
    """
    draws = np.atleast_1d(np.asarray(draws, dtype=np.float64))
    obs = np.asarray(observed, dtype=np.float64)
    obs = obs[np.isfinite(obs)]
    largest_obs = float(obs.max()) if obs.size else 0.0
    bound = factor * max(largest_obs, 1.0)
    above = draws > bound  # NaN compares False; summarize_draws refuses those
    count = int(above.sum())
    if count:
        steps = np.flatnonzero(above.reshape(-1, draws.shape[-1]).any(axis=0))
        warnings.warn(
            f"{count} of {draws.size} count forecast draws ({100 * count / draws.size:.3g}%, at "
            f"horizon steps {list(map(int, steps[:5]))}) exceed {factor:g} x the largest observed "
            f"count ({largest_obs:g}); the largest draw is {float(np.nanmax(draws)):.3g}. Count "
            "forecasts this large usually mean a failed fit (a chain that did not mix, or a trend "
            "that diverged): check bs.check(fit) (r_hat, divergences) and refit before using them",
            UserWarning,
            stacklevel=stacklevel,
        )
    return count


def warn_exploding_forecast(
    draws, observed, *, factor: float = FORECAST_SPAN_FACTOR, stacklevel: int = 2
) -> int:
    """Warn when forecast draws of a real-valued series leave the data's range by ``factor``
    times its size.

    The companion of :func:`warn_exploding_counts` for real-valued models. A forecast draw that
    lies a thousand data ranges away from the data (or is not finite) does not describe the
    series: it comes from a posterior draw that is unstable under the forecast's own dynamics
    (a neural autoregression fed its own output, an explosive AR coefficient) or from a fit
    that failed. The draws are still returned; the warning says they should not be trusted.

    Parameters
    ----------
    draws : array-like, shape ``(sample, horizon)``
    observed : array-like, shape ``(time,)``
        The fitted series; NaN where missing.
    factor : float
        A draw is flagged when ``|draw - midrange| > factor * size``, with ``size`` the larger
        of the data's range and its largest absolute value (so a nearly constant series is not
        flagged for ordinary noise).
    stacklevel : int

    Returns
    -------
    int
        The number of flagged draws (0: no warning).

    Warns
    -----
    UserWarning
    """
    draws = np.atleast_1d(np.asarray(draws, dtype=np.float64))
    obs = np.asarray(observed, dtype=np.float64)
    obs = obs[np.isfinite(obs)]
    lo, hi = (float(obs.min()), float(obs.max())) if obs.size else (0.0, 0.0)
    size = max(hi - lo, abs(lo), abs(hi), 1e-12)
    with np.errstate(invalid="ignore"):
        flagged = ~(np.abs(draws - 0.5 * (lo + hi)) <= factor * size)  # NaN and inf included
    count = int(flagged.sum())
    if count:
        steps = np.flatnonzero(flagged.reshape(-1, draws.shape[-1]).any(axis=0))
        finite = draws[np.isfinite(draws)]
        largest = float(np.abs(finite).max()) if finite.size else float("inf")
        warnings.warn(
            f"{count} of {draws.size} forecast draws ({100 * count / draws.size:.3g}%, at horizon "
            f"steps {list(map(int, steps[:5]))}) lie more than {factor:g} x the data's size "
            f"({size:.3g}) from its range [{lo:.3g}, {hi:.3g}] or are not finite; the largest "
            f"finite |draw| is {largest:.3g}. Such draws come from posterior draws that are "
            "unstable under the forecast's own dynamics or from a failed fit: check "
            "bs.check(fit) and the forecast paths before using them",
            UserWarning,
            stacklevel=stacklevel,
        )
    return count
