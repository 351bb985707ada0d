"""Is the log scale safe for this series? The default's guard against exploding back-transforms.

``transform="auto"`` fits positive data on the log scale: right for the long seasonal series
(ILI, national_illness, weekly cases), where the square root lost 4-13% CRPS (session 9,
``benchmarks/README.md`` "The transform on the suite"). It fails where the level moves by
factors within a few steps, e.g. counts that pass through small values (monthly COVID deaths,
Japan 414 -> 32 -> 4,855 in three months): a random walk on the log scale at that pace puts a
12-month 90% quantile at hundreds of times the data, and the back-transformed predictive's
mean, which the CRPS follows, explodes with it (monthly deaths 4.19x the naive's CRPS on the
log scale, 0.82x on the square root).

The check, cheap and model-free: at every in-sample origin of the window (from its first
quarter on), forecast ``1 .. H`` steps with a Gaussian random walk on each scale (log and
square root; step sd from the window's differences on that scale), back-transform the
predictive quantiles, and score them against the later data on the DATA scale (the CRPS as the
mean quantile score over 39 levels). If the log scale's mean score is at least
:data:`LOG_GUARD_RATIO` times the square root's, the default fits on the square root
(Box-Cox 0.5) instead, and says so.

A random walk is a crude forecaster for a seasonal series, but it is equally crude on both
scales: on the long weekly panels the two scores differ by 0-3% (the ratio 0.96-1.03), far from
the threshold; on monthly deaths the ratio is 1.2-6.7. The threshold 1.5 asks for a large
margin: the check only moves a series off the log scale when the log scale is clearly the
wrong one for multi-step forecasts, never on a near tie.
"""

from __future__ import annotations

import numpy as np
import scoringrules as sr
from scipy import stats

__all__ = [
    "LOG_GUARD_RATIO",
    "GUARD_HORIZON",
    "GUARD_MIN_LENGTH",
    "guard_reason",
    "log_scale_ratio",
]

LOG_GUARD_RATIO = 1.5
GUARD_HORIZON = 13  # steps scored at each origin (at most half the window)
GUARD_MIN_LENGTH = 12  # shorter windows keep the log scale (too few origins to judge)
_LEVELS = (np.arange(1, 40) - 0.5) / 39
_NORMAL = stats.norm.ppf(_LEVELS)


def _box_cox(y: np.ndarray, lam: float) -> np.ndarray:
    return np.log(y) if lam == 0 else (y**lam - 1.0) / lam


def _inverse(z: np.ndarray, lam: float) -> np.ndarray:
    return np.exp(z) if lam == 0 else np.maximum(lam * z + 1.0, 0.0) ** (1.0 / lam)


def _random_walk_crps(y: np.ndarray, lam: float, horizon: int) -> float:
    """Mean data-scale CRPS of ``1..horizon``-step random-walk forecasts on the Box-Cox(lam)
    scale from every origin after the window's first quarter (NaN: skipped).

    The CRPS of each forecast is scoringrules' quantile form (the mean pinball loss over
    39 levels); the step sd is the sd of the window's differences on that scale."""
    z = _box_cox(y, lam)
    sd = np.nanstd(np.diff(z), ddof=1)
    if not np.isfinite(sd) or sd == 0:
        return float("nan")
    n = len(z)
    origins = np.arange(max(2, n // 4), n - 1)
    origin, step = np.meshgrid(origins, np.arange(1, horizon + 1), indexing="ij")
    keep = origin + step <= n - 1
    origin, step = origin[keep], step[keep]
    obs, start = y[origin + step], z[origin]
    keep = np.isfinite(obs) & np.isfinite(start)
    if not keep.any():
        return float("nan")
    obs, start, step = obs[keep], start[keep], step[keep]
    quantiles = _inverse(start[:, None] + np.sqrt(step)[:, None] * sd * _NORMAL, lam)
    return float(np.mean(sr.crps_quantile(obs, quantiles, _LEVELS, backend="numpy")))


def log_scale_ratio(y) -> float:
    """The log scale's mean multi-step data-scale CRPS over the square root's (random walks).

    Parameters
    ----------
    y : array-like, shape ``(n,)``
        The fitted window, positive where finite (NaN: missing).

    Returns
    -------
    float
        Above :data:`LOG_GUARD_RATIO`: the log scale is the wrong one for this series. NaN when
        the window is too short (fewer than :data:`GUARD_MIN_LENGTH` finite values) or flat.
    """
    y = np.asarray(y, dtype=float)
    if np.isfinite(y).sum() < GUARD_MIN_LENGTH:
        return float("nan")
    horizon = int(min(GUARD_HORIZON, len(y) // 2))
    log, root = _random_walk_crps(y, 0.0, horizon), _random_walk_crps(y, 0.5, horizon)
    return float(log / root) if root > 0 else float("nan")


def guard_reason(ratio: float) -> str:
    """What ``transform="auto"`` says when the guard moves a series to the square root."""
    return (
        f"square root, not log: on the log scale, random-walk forecasts of the window's later "
        f"data scored {ratio:.2f}x worse (CRPS on the data scale) than on the square root "
        f"(threshold {LOG_GUARD_RATIO}); transform='log' forces the log scale"
    )
