"""Adaptive conformal recalibration: quantile levels that follow the recent in-sample misses.

The static maps of :mod:`bayes_ssm.inference.recalibration` read the model's quantile at the
empirical quantile of *all* in-sample PIT values, so a break the window has not seen before
(ILI in 2020-21: the winter rise that did not come) cannot move them. Adaptive conformal
inference (ACI; Gibbs & Candès 2021, "Adaptive conformal inference under distribution
shift"; the quantile-tracking form of Angelopoulos, Candès & Tibshirani 2023, "Conformal PID
control") updates, for each nominal level ``p`` and horizon step ``h``, the level ``l`` at
which the model's quantile is read, after every observed ``h``-step outcome in time order::

    l <- l + gamma * (p - 1{u < l})        (u: the outcome's PIT value under the model)

so an outcome below the level-``l`` quantile lowers ``l`` by ``gamma (1 - p)`` and one above it
raises ``l`` by ``gamma p``. For any sequence of PIT values whatsoever the long-run frequency of
``u < l`` is within ``(max(l_1, 1 - l_1) + gamma) / (gamma T)`` of ``p`` after ``T`` outcomes
(Gibbs & Candès, Proposition 4.1), with no assumption about the data: a run of misses
widens the next interval, a calibrated stretch leaves it where it is.

Here the run starts at ``l_1 = p`` and goes over every in-sample origin of the fit window
(:attr:`~bayes_ssm.inference.recalibration.Recalibration.sequence`: an ``h``-step outcome is
known ``h`` steps after its origin, so the last origin of step ``h`` is ``time - 1 - h``); the
levels after the last outcome are those of the forecast. Levels are tracked on a grid of
:data:`GRID` nominal levels, sorted (so quantiles do not cross) and interpolated; a level
outside ``[0, 1]`` reads the smallest or largest draw.

The step size is fixed, :data:`GAMMA` = 0.005, the value of Gibbs & Candès' experiments (not
tuned to a series): each miss of the 2.5% tail lowers its level by ``0.975 gamma`` (about 5
misses beyond the expected ones take it to 0, the extreme draw), while on a calibrated stretch
a level wanders by about ``sqrt(gamma p (1 - p) / 2)``. ``gamma="auto"``
(:func:`adaptive_levels`) picks per step the one of :data:`GAMMAS` with the smallest in-sample
online pinball loss. docs/default.md ("Session 9") has the measurements: off by default.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "GAMMA",
    "GAMMAS",
    "GRID",
    "aci_path",
    "aci_run",
    "adaptive_levels",
    "check_gamma",
    "select_gamma",
]

GAMMA = 0.005
GAMMAS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)  # the choices of gamma="auto"
GRID = (np.arange(200) + 0.5) / 200  # nominal levels tracked (every 0.5%)


def check_gamma(gamma) -> float:
    """``gamma`` as a float in ``(0, 1)``, or a clear error."""
    try:
        value = float(gamma)
    except (TypeError, ValueError):
        raise ValueError(f"the adaptive step size gamma must be a number; got {gamma!r}") from None
    if not 0.0 < value < 1.0 or not np.isfinite(value):
        raise ValueError(f"the adaptive step size gamma must lie in (0, 1); got {gamma!r}")
    return value


def aci_path(pit, probs, gamma: float | None = None) -> np.ndarray:
    """The ACI levels before each outcome, and after the last one.

    Parameters
    ----------
    pit : array-like, shape ``(time, horizon)``
        PIT values in time order of the outcomes, per step ``h`` (NaN: not observed, no
        update).
    probs : array-like, shape ``(q,)``
        Nominal levels ``p``; the run starts at ``l_1 = p``.
    gamma : float, optional
        Step size (default :data:`GAMMA`).

    Returns
    -------
    numpy.ndarray, shape ``(time + 1, q, horizon)``
        Row ``t`` holds the levels in force for outcome ``t``; the last row, those after
        every outcome (unclipped: a level may leave ``[0, 1]`` by at most ``gamma``).
    """
    pit = np.asarray(pit, float)
    if pit.ndim == 1:
        pit = pit[:, None]
    gamma = check_gamma(GAMMA if gamma is None else gamma)
    probs = np.asarray(probs, float).reshape(-1, 1)
    level = np.broadcast_to(probs, (probs.shape[0], pit.shape[1])).copy()
    out = np.empty((pit.shape[0] + 1, *level.shape))
    for t, u in enumerate(pit):
        out[t] = level
        seen = np.isfinite(u)
        below = (u[None, :] < level) & seen[None, :]
        level = level + gamma * np.where(seen[None, :], probs - below, 0.0)
    out[-1] = level
    return out


def aci_run(pit, probs, gamma: float | None = None):
    """The ACI levels after the last outcome, and the mean pinball loss of the levels that
    were in force for each outcome.

    Column ``h`` (0-based) holds ``(h + 1)``-step PIT values by origin: the outcome of origin
    ``s`` is known only at ``s + h + 1``, so the level in force at origin ``s`` is the one after
    the outcomes of origins ``<= s - h - 1`` (ACI with delayed feedback; for ``h = 0`` the
    plain recursion).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray), each shape ``(q, horizon)``
        Final levels; mean of ``rho_p(u_s - l_s)`` over the observed ``u_s`` with ``l_s``
        clipped to ``[0, 1]`` (the online pinball loss on the PIT scale: averaged over a uniform
        grid of ``p``, half the CRPS of the recalibrated PIT forecast).
    """
    pit = np.asarray(pit, float)
    if pit.ndim == 1:
        pit = pit[:, None]
    path = aci_path(pit, probs, gamma)  # (time + 1, q, horizon)
    probs = np.asarray(probs, float).reshape(-1, 1)
    rows = np.arange(pit.shape[0])
    loss = np.zeros(path.shape[1:])
    for h in range(pit.shape[1]):
        seen = np.isfinite(pit[:, h])
        in_force = path[np.maximum(rows[seen] - h, 0), :, h]  # (observed, q)
        resid = pit[seen, h][:, None] - np.clip(in_force, 0.0, 1.0)
        loss[:, h] = (resid * (probs[:, 0] - (resid < 0))).mean(axis=0) if seen.any() else 0.0
    return path[-1], loss


def select_gamma(sequence, gammas=GAMMAS) -> np.ndarray:
    """Per horizon step, the step size of ``gammas`` whose ACI levels on :data:`GRID` had the
    smallest online pinball loss over the in-sample ``sequence`` (averaged over the grid:
    the in-sample CRPS of the recalibrated forecasts, up to a factor 2), shape ``(horizon,)``.
    """
    sequence = np.asarray(sequence, float)
    losses = np.stack([aci_run(sequence, GRID, g)[1].mean(axis=0) for g in gammas])
    return np.asarray(gammas, float)[np.argmin(losses, axis=0)]


def adaptive_levels(
    sequence, probs, *, gamma: float | str | None = None, widen: bool = True
) -> np.ndarray:
    """The levels at which to read the model's quantiles for nominal ``probs``, per step.

    ACI (:func:`aci_path`) over the in-sample PIT ``sequence`` on the grid :data:`GRID`; the
    final levels sorted along the grid (a monotone map), the shift ``l(p) - p`` interpolated
    at ``probs`` (constant beyond the grid) and clipped to ``[0, 1]``. ``widen``: a quantile
    only ever moves outwards (``min(p, l)`` below the median, ``max(p, l)`` above it), as the
    ``"widen"`` static map.

    Parameters
    ----------
    sequence : array-like, shape ``(origin, horizon)``
        In-sample PIT values, origins in time order (NaN: not observed).
    probs : array-like, shape ``(q,)`` or ``(q, horizon)``
    gamma : float or "auto", optional
        Step size (default :data:`GAMMA`); ``"auto"``: per step, the one of :data:`GAMMAS`
        with the smallest in-sample online pinball loss (:func:`select_gamma`).
    widen : bool

    Returns
    -------
    numpy.ndarray, shape ``(q, horizon)``
    """
    sequence = np.asarray(sequence, float)
    horizon = sequence.shape[1]
    probs = np.asarray(probs, float)
    if probs.ndim < 2:
        probs = np.broadcast_to(np.atleast_1d(probs)[:, None], (probs.size, horizon))
    gamma = GAMMA if gamma is None else gamma
    if isinstance(gamma, str) and gamma == "auto":  # per step, the best of GAMMAS in-sample
        runs = [aci_run(sequence, GRID, g) for g in GAMMAS]
        best = np.argmin([loss.mean(axis=0) for _, loss in runs], axis=0)  # (horizon,)
        final = np.column_stack([runs[best[h]][0][:, h] for h in range(horizon)])
    else:
        final = aci_run(sequence, GRID, gamma)[0]
    final = np.sort(final, axis=0)  # (grid, horizon): a monotone map
    shift = final - GRID[:, None]
    out = np.empty(probs.shape)
    for h in range(horizon):
        out[:, h] = probs[:, h] + np.interp(probs[:, h], GRID, shift[:, h])
    out = np.clip(out, 0.0, 1.0)
    if widen:
        out = np.where(probs < 0.5, np.minimum(out, probs), np.maximum(out, probs))
    return out
