"""The Kalman operations StructuralTS needs, over :mod:`bayes_ssm.kernels.kalman`.

One place where the model meets the kernels, so that the program reads as the maths.
"""

from __future__ import annotations

from bayes_ssm.kernels.kalman import (
    StateSpace,
    kalman_filter,
    kalman_filter_last,
    kalman_smoother,
)

__all__ = ["StateSpace", "kalman_filter", "filter_final", "smoothed_means"]


def filter_final(ss: StateSpace, y, method: str = "auto"):
    """``(log_lik_steps (time,), last filtered mean (state,), last filtered cov)``: the fast
    path (no covariance history)."""
    res = kalman_filter_last(ss, y, method=method)
    return res.log_lik_steps, res.last_mean, res.last_cov


def smoothed_means(ss: StateSpace, y, method: str = "auto"):
    """Smoothed state means ``E[alpha_t | y]``, shape ``(time, state)``."""
    return kalman_smoother(ss, y, method=method).smoothed_means
