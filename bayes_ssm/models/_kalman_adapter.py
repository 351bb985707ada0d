"""The Kalman operations StructuralTS needs, over :mod:`bayes_ssm.kernels.kalman`.

One place where the model meets the kernels, so that the program reads as the maths. Each is
jitted (``method`` static) so that eager runs of the model (tracing, ``Predictive`` without
``jit``, tests) compile each kernel once per shape instead of on every call; inside an outer
``jit`` (NUTS) this changes nothing.
"""

from __future__ import annotations

from functools import partial

import jax

from bayes_ssm.kernels.kalman import (
    StateSpace,
    kalman_filter,
    kalman_filter_last,
    kalman_smoother,
)

__all__ = ["StateSpace", "filter_full", "filter_final", "smoothed_means"]

_jit = partial(jax.jit, static_argnames=("method",))


@_jit
def filter_full(ss: StateSpace, y, method: str = "auto"):
    """The full :func:`~bayes_ssm.kernels.kalman.kalman_filter` result (with history)."""
    return kalman_filter(ss, y, method=method)


@_jit
def filter_final(ss: StateSpace, y, method: str = "auto"):
    """``(log_lik_steps (time,), last filtered mean (state,), last filtered cov)``: the fast
    path (no covariance history)."""
    res = kalman_filter_last(ss, y, method=method)
    return res.log_lik_steps, res.last_mean, res.last_cov


@_jit
def smoothed_means(ss: StateSpace, y, method: str = "auto"):
    """Smoothed state means ``E[alpha_t | y]``, shape ``(time, state)``."""
    return kalman_smoother(ss, y, method=method).smoothed_means
