"""The pointwise ``log_lik`` read-out an SVI fit computed anyway (private).

Drawing from the fitted guide passes every draw through the model's program (its deterministic
sites), so ``fit_svi`` gets the pointwise one-step log predictive densities of all its draws at no
extra cost. The default forecaster's PSIS-LOO reads them from here instead of running the
model's program (a Kalman filter over every draw) once more.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from bayes_ssm.inference.fit import Fit

__all__ = ["keep_pointwise_log_lik", "pointwise_log_lik"]

_ATTRIBUTE = "_pointwise_log_lik"


def keep_pointwise_log_lik(fit: Fit, draws) -> None:
    """Keep the ``log_lik`` read-out that drawing from the guide computed anyway.

    The guide's draws pass through the model's program (its deterministic sites), so the
    pointwise one-step log predictive densities of every draw come out of ``_svi_finish`` at
    no extra cost; the default forecaster's PSIS-LOO reads them from here instead of running
    the Kalman filter over all draws once more (:func:`pointwise_log_lik`). A transient
    attribute, not part of the Fit's state (not saved, not compared).
    """
    if "log_lik" in draws:
        value = np.asarray(draws["log_lik"])
        value.setflags(write=False)
        object.__setattr__(fit, _ATTRIBUTE, value)


def pointwise_log_lik(fit: Fit) -> np.ndarray | None:
    """``log_lik`` of every draw, shape ``(sample, time)`` (``time`` the padded length of a
    padded fit), when the fitting run kept it; else None."""
    return getattr(fit, _ATTRIBUTE, None)
