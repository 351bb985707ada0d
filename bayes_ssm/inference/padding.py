"""Trailing padding of a series with missing values, so that fits of different lengths share
one compiled program (backtests over expanding windows).

A missing value adds nothing to the likelihood, and the Kalman filter only predicts through
it, so a series followed by NaNs has the same posterior over the model's parameters as the
series itself: ``fit_svi(..., pad_to=L)`` runs its compiled programs (initialisation, steps,
draws) on the series padded to length ``L`` and returns the fit of the unpadded series. That
holds only for models that treat a missing value as missing in their likelihood and whose
latent sites do not grow with the length (a per-step latent, such as the Student-t's per-step
precisions or a count model's state path, would gain ``L - T`` prior-only coordinates):
:func:`padded_length` pads only the structural models (``kind == "structural"``: Kalman
filter) whose latent shapes do not change, and returns None for everything else (fitted
unpadded). Results agree with an unpadded fit up to floating-point rounding (the sums over time
run over a different length), not bit for bit.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bayes_ssm.inference import engine as _engine

__all__ = ["padded_length", "padded_data", "validate_pad_to"]

_ALSO_PADDED = ("structural_seasonal_noise",)  # SeasonalNoiseTS: the same Kalman likelihood


def validate_pad_to(pad_to) -> int | None:
    """None, or a positive integer (checked)."""
    if pad_to is None:
        return None
    if isinstance(pad_to, bool) or not isinstance(pad_to, int | np.integer) or pad_to < 1:
        raise ValueError(f"pad_to must be None or a positive integer; got {pad_to!r}")
    return int(pad_to)


def padded_length(model, data, scales, pad_to: int | None) -> int | None:
    """The length to fit at, or None for no padding.

    None when ``pad_to`` is None or not longer than the series, for a model other than a
    structural one (other programs were not checked with trailing NaNs), when the data have
    covariates or irregular times, or when the model's latent sites change shape with the
    length.
    """
    num_steps = data.y.shape[0]
    kind = getattr(model, "kind", None)
    if pad_to is None or pad_to <= num_steps or kind not in ("structural", *_ALSO_PADDED):
        return None
    if data.covariates is not None or data.times is not None:
        return None
    short = _engine.latent_shapes(model, data.y, scales)
    long = _engine.latent_shapes(model, _pad(data.y, pad_to), scales)
    return pad_to if short == long else None


def _pad(y: np.ndarray, length: int) -> np.ndarray:
    out = np.full(length, np.nan, dtype=np.asarray(y).dtype)
    out[: y.shape[0]] = y
    return out


def padded_data(data, length: int | None):
    """``data`` with ``y`` followed by NaNs up to ``length`` (``data`` itself when None).

    Only ``y`` is padded: the result is for the compiled programs, not for read-outs (its
    index keeps the original length).
    """
    if length is None:
        return data
    return dataclasses.replace(data, y=_pad(data.y, length))
