"""Priors on memory, stated in the units a user thinks in.

A decaying state-space layer (SSD, S4D, selective) forgets its past geometrically: the implied
attention that a forecast made at step ``t`` pays to step ``t - l`` shrinks like ``a**l`` for a
per-step decay ``0 < a < 1``. The *half-life* ``h`` of that memory, the lag after which the
weight has halved, is what an analyst can have an opinion about ("flu activity is driven by the
last two months"), so the prior is put on it:

.. math::

    \\log h \\sim \\mathcal{N}(\\log h_0, \\sigma^2), \\qquad a = 2^{-1/h} = e^{-\\log 2 / h},

and for a continuous-time layer with state rate ``A < 0`` (``a = e^{\\Delta A}``) the step that
realises the half-life is ``\\Delta = \\log 2 / (h \\cdot (-A))``.

``HalfLife(weeks=8)`` is that prior with median ``h_0`` of eight weeks. Calendar units are turned
into steps by the series' sampling interval (``step=datetime.timedelta(weeks=1)`` for weekly
data); ``HalfLife(steps=8)`` needs no interval.

Everything here is a frozen dataclass of validated numbers; :meth:`HalfLife.distribution` gives
the NumPyro distribution of the half-life in steps and :meth:`HalfLife.sample` samples it at a
named site (so layers use it under their ``numpyro.handlers.scope``).
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.scipy.special import ndtri

__all__ = [
    "HalfLife",
    "half_life_to_decay",
    "decay_to_half_life",
    "half_life_to_dt",
]

_LOG2 = math.log(2.0)
_UNITS = {
    "hours": _dt.timedelta(hours=1),
    "days": _dt.timedelta(days=1),
    "weeks": _dt.timedelta(weeks=1),
}


def _check_positive_number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} must be a positive number; got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value <= 0.0:
        raise ValueError(f"{what} must be a positive, finite number; got {value!r}")
    return value


@dataclass(frozen=True, kw_only=True)
class HalfLife:
    """Log-normal prior on the half-life of a layer's memory (its implied attention mask).

    Give the median in exactly one unit: ``steps``, ``hours``, ``days`` or ``weeks``.

    Parameters
    ----------
    steps, hours, days, weeks : float, optional
        Prior median of the half-life. Calendar units need the series' sampling interval
        (``step=``) when the prior is used.
    spread : float, default 0.5
        Standard deviation of ``log(half_life)``: the central 90% prior interval is the median
        times / divided by ``exp(1.645 * spread)`` (2.3 for the default).

    Raises
    ------
    ValueError
        When no unit or more than one unit is given, or a half-life or ``spread`` is not a
        positive, finite number.

    Examples
    --------
    >>> import datetime
    >>> prior = HalfLife(weeks=8)
    >>> prior.median_steps(step=datetime.timedelta(weeks=1))
    8.0
    >>> round(float(half_life_to_decay(8.0)), 4)
    0.917
    """

    steps: float | None = None
    hours: float | None = None
    days: float | None = None
    weeks: float | None = None
    spread: float = 0.5

    def __post_init__(self):
        given = {u: v for u, v in self._values().items() if v is not None}
        if len(given) != 1:
            raise ValueError(
                "HalfLife needs exactly one of steps=, hours=, days=, weeks=; "
                f"got {sorted(given) or 'none'}"
            )
        ((unit, value),) = given.items()
        object.__setattr__(self, unit, _check_positive_number(value, f"HalfLife {unit}"))
        object.__setattr__(self, "spread", _check_positive_number(self.spread, "HalfLife spread"))

    def _values(self) -> dict[str, float | None]:
        return {"steps": self.steps, "hours": self.hours, "days": self.days, "weeks": self.weeks}

    @property
    def unit(self) -> str:
        """The unit the median was given in (``"steps"``, ``"hours"``, ``"days"``, ``"weeks"``)."""
        return next(u for u, v in self._values().items() if v is not None)

    @property
    def value(self) -> float:
        """The median in :attr:`unit`."""
        return float(self._values()[self.unit])

    def median_steps(self, step: _dt.timedelta | None = None) -> float:
        """The prior median of the half-life, in steps of the series.

        Parameters
        ----------
        step : datetime.timedelta, optional
            The sampling interval of the series (a ``pandas.Timedelta`` works too). Required
            when the half-life is given in calendar units; ignored for ``steps=``.
        """
        if self.unit == "steps":
            return self.value
        if step is None:
            raise ValueError(
                f"HalfLife({self.unit}={self.value:g}) is in calendar units; pass step= (the "
                "series' sampling interval, e.g. datetime.timedelta(weeks=1) for weekly data) "
                "or state the prior as HalfLife(steps=...)"
            )
        if not isinstance(step, _dt.timedelta) or step.total_seconds() <= 0:
            raise ValueError(f"step must be a positive datetime.timedelta; got {step!r}")
        return self.value * (_UNITS[self.unit] / step)

    def distribution(self, step: _dt.timedelta | None = None) -> dist.LogNormal:
        """The prior of the half-life in steps: ``LogNormal(log(median_steps), spread)``."""
        return dist.LogNormal(math.log(self.median_steps(step)), self.spread)

    def sample(self, name: str, *, shape: tuple[int, ...] = (), step=None):
        """Sample the half-life (in steps) at site ``name``; ``shape`` is an event shape.

        Returns
        -------
        Array, shape ``shape``
            Half-life in steps (positive).
        """
        d = self.distribution(step)
        if shape:
            d = d.expand(tuple(shape)).to_event(len(shape))
        return numpyro.sample(name, d)

    def interval(self, prob: float = 0.9, *, step=None) -> tuple[float, float]:
        """Central ``prob`` prior interval of the half-life, in steps."""
        if not 0.0 < prob < 1.0:
            raise ValueError(f"prob must be in (0, 1); got {prob!r}")
        z = float(ndtri(0.5 + prob / 2.0))
        m = self.median_steps(step)
        return m * math.exp(-z * self.spread), m * math.exp(z * self.spread)


def half_life_to_decay(half_life):
    """Per-step decay ``a = 2**(-1/half_life)`` of a memory with the given half-life (steps).

    Parameters
    ----------
    half_life : float or Array, any shape
        Positive half-life in steps.

    Returns
    -------
    Array, same shape
        Decay in ``(0, 1)``.
    """
    _check_concrete_positive(half_life, "half_life")
    return jnp.exp(-_LOG2 / jnp.asarray(half_life))


def decay_to_half_life(decay):
    """The half-life in steps, ``-log 2 / log a``, of a per-step decay ``0 < a < 1``."""
    if _is_concrete(decay):
        arr = np.asarray(decay)
        if np.any(~((arr > 0) & (arr < 1))):
            raise ValueError(f"decay must lie in (0, 1); got values in [{arr.min()}, {arr.max()}]")
    return -_LOG2 / jnp.log(jnp.asarray(decay))


def half_life_to_dt(half_life, rate):
    """The step ``Delta`` that gives a state with rate ``A < 0`` the half-life ``half_life``.

    ``exp(Delta * A) = 2**(-1/half_life)``, so ``Delta = log 2 / (half_life * (-A))``.

    Parameters
    ----------
    half_life : float or Array
        Positive half-life in steps.
    rate : float or Array, broadcastable
        The continuous-time state rate ``A`` (negative real part for a decaying state; for a
        complex ``A`` its real part is used, which sets the envelope's half-life).

    Returns
    -------
    Array
        Positive step sizes, broadcast shape.
    """
    _check_concrete_positive(half_life, "half_life")
    re = jnp.real(jnp.asarray(rate))
    if _is_concrete(rate):
        if np.any(np.asarray(re) >= 0):
            raise ValueError(f"rate A must have a negative real part; got {rate!r}")
    return _LOG2 / (jnp.asarray(half_life) * (-re))


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _check_concrete_positive(x, what: str) -> None:
    if _is_concrete(x):
        arr = np.asarray(x)
        if arr.size and not np.all(np.isfinite(arr) & (arr > 0)):
            raise ValueError(f"{what} must be positive and finite; got {x!r}")
