"""Bayesian stacking of predictive distributions (Yao, Vehtari, Simpson & Gelman 2018).

Plain NumPy: weights ``w`` on the simplex that maximise the log score of the mixture,
``sum_i log sum_k w_k exp(lpd[i, k])``, where ``lpd[i, k]`` is candidate ``k``'s held-out
(leave-one-out) log predictive density of point ``i``; and quantiles of a weighted mixture of
draws.
"""

from __future__ import annotations

import numpy as np

__all__ = ["stacking_weights", "stacking_objective", "mixture_quantiles", "mixture_counts"]


def stacking_objective(weights, lpd) -> float:
    """``sum_i log sum_k w_k exp(lpd[i, k])`` (the quantity stacking maximises)."""
    lpd = np.asarray(lpd, dtype=float)
    top = lpd.max(axis=1, keepdims=True)
    with np.errstate(divide="ignore"):
        return float(np.sum(np.log(np.exp(lpd - top) @ np.asarray(weights, float)) + top[:, 0]))


def stacking_weights(lpd, *, max_iter: int = 10_000, tol: float = 1e-10) -> np.ndarray:
    """Stacking weights of ``K`` candidates from their pointwise held-out log densities.

    The objective is concave in ``w``; it is maximised by the EM fixed point for mixture
    weights, ``w_k <- mean_i w_k p_ik / sum_j w_j p_ij`` (monotone ascent, from equal weights),
    which stays on the simplex by construction.

    Parameters
    ----------
    lpd : array-like, shape ``(point, candidate)``
        Finite log predictive densities.

    Returns
    -------
    numpy.ndarray, shape ``(candidate,)``
        Non-negative weights summing to 1.
    """
    lpd = np.asarray(lpd, dtype=float)
    if lpd.ndim != 2 or lpd.shape[0] < 1 or lpd.shape[1] < 1:
        raise ValueError(f"lpd must have shape (point, candidate); got {lpd.shape}")
    if not np.all(np.isfinite(lpd)):
        raise ValueError("lpd must be finite")
    dens = np.exp(lpd - lpd.max(axis=1, keepdims=True))  # per-row scale cancels in the update
    w = np.full(lpd.shape[1], 1.0 / lpd.shape[1])
    for _ in range(max_iter):
        resp = dens * w
        resp /= resp.sum(axis=1, keepdims=True)
        new = resp.mean(axis=0)
        if np.max(np.abs(new - w)) < tol:
            w = new
            break
        w = new
    return w / w.sum()


def mixture_quantiles(draws, weights, probs) -> np.ndarray:
    """Quantiles of the mixture ``sum_k w_k F_k`` of the candidates' empirical laws.

    Parameters
    ----------
    draws : sequence of arrays, each shape ``(sample_k, time)``
        Draws of each candidate.
    weights : array-like, shape ``(candidate,)``
    probs : array-like, shape ``(q,)``
        Probabilities in (0, 1).

    Returns
    -------
    numpy.ndarray, shape ``(q, time)``
        The smallest ``x`` with mixture CDF ``>= p`` (the inverse of the weighted empirical CDF,
        each draw of candidate ``k`` carrying mass ``w_k / sample_k``).
    """
    weights = np.asarray(weights, dtype=float)
    values = np.concatenate([np.asarray(d, float) for d in draws], axis=0)
    mass = np.concatenate(
        [np.full(np.shape(d)[0], w / np.shape(d)[0]) for d, w in zip(draws, weights, strict=True)]
    )
    mass = mass / mass.sum()
    order = np.argsort(values, axis=0, kind="stable")
    sorted_values = np.take_along_axis(values, order, axis=0)
    cdf = np.cumsum(mass[order], axis=0)
    probs = np.atleast_1d(np.asarray(probs, dtype=float))
    out = np.empty((probs.size, values.shape[1]))
    for t in range(values.shape[1]):
        idx = np.searchsorted(cdf[:, t], probs - 1e-12, side="left")
        out[:, t] = sorted_values[np.minimum(idx, len(mass) - 1), t]
    return out


def mixture_counts(weights, total: int) -> np.ndarray:
    """Draws per candidate for ``total`` mixture draws: largest-remainder rounding of
    ``weights * total`` (deterministic; sums to ``total``)."""
    weights = np.asarray(weights, dtype=float)
    raw = weights / weights.sum() * total
    counts = np.floor(raw).astype(int)
    short = total - counts.sum()
    if short:
        counts[np.argsort(-(raw - counts), kind="stable")[:short]] += 1
    return counts
