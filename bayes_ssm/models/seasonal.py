"""Seasonal component specifications of :class:`~bayes_ssm.models.structural.StructuralTS`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Seasonal", "as_seasonals", "DEFAULT_HARMONICS"]

DEFAULT_HARMONICS = 3


@dataclass(frozen=True)
class Seasonal:
    """One seasonal component.

    Parameters
    ----------
    period : float
        Season length in steps (52 weeks, 7 days, 365.25 days); an integer for ``kind="dummy"``.
    harmonics : int, optional
        Harmonics of the trigonometric form (``2 * harmonics`` states); default
        ``min(3, floor(period / 2))``: cheap, smooth seasonal shapes. Ignored for ``"dummy"``.
    kind : {"trig", "dummy"}
        Trigonometric (frequency domain) or dummy-variable (``period - 1`` states) form.
    name : str, optional
        Component name (sites ``sigma_<name>``, ``component/<name>``); default ``"seasonal"`` for
        a single seasonal, else ``"seasonal_<period>"`` (dots as underscores).
    """

    period: float
    harmonics: int | None = None
    kind: str = "trig"
    name: str | None = None

    def __post_init__(self):
        if isinstance(self.period, bool) or not isinstance(self.period, int | float | np.number):
            raise ValueError(f"seasonal period must be a number; got {self.period!r}")
        if not self.period >= 2:
            raise ValueError(f"seasonal period must be >= 2; got {self.period}")
        if self.kind not in ("trig", "dummy"):
            raise ValueError(f"seasonal kind must be 'trig' or 'dummy'; got {self.kind!r}")
        if self.kind == "dummy":
            if float(self.period) != int(self.period):
                raise ValueError(
                    f"a dummy seasonal needs an integer period; got {self.period} "
                    "(use kind='trig' for fractional periods such as 365.25)"
                )
            object.__setattr__(self, "period", int(self.period))
            object.__setattr__(self, "harmonics", None)
        else:
            max_h = int(np.floor(self.period / 2))
            h = min(DEFAULT_HARMONICS, max_h) if self.harmonics is None else self.harmonics
            if isinstance(h, bool) or int(h) != h or not 1 <= h <= max_h:
                raise ValueError(
                    f"harmonics must be an integer in [1, floor(period / 2) = {max_h}] for "
                    f"period {self.period}; got {self.harmonics!r}"
                )
            object.__setattr__(self, "harmonics", int(h))
            if float(self.period) == int(self.period):
                object.__setattr__(self, "period", int(self.period))

    @property
    def num_states(self) -> int:
        return self.period - 1 if self.kind == "dummy" else 2 * self.harmonics


def as_seasonals(seasonal) -> tuple[Seasonal, ...]:
    """Normalise ``seasonal`` (None, a period, a Seasonal, a dict, or a list of them) to a tuple
    of named :class:`Seasonal`."""
    if seasonal is None:
        return ()
    if isinstance(seasonal, Seasonal | dict | int | float | np.number) and not isinstance(
        seasonal, bool
    ):
        seasonal = [seasonal]
    if isinstance(seasonal, bool) or not isinstance(seasonal, list | tuple):
        raise ValueError(
            f"seasonal must be a period, a Seasonal, or a list of them; got {seasonal!r}"
        )
    out = []
    for s in seasonal:
        if isinstance(s, Seasonal):
            out.append(s)
        elif isinstance(s, dict):
            out.append(Seasonal(**s))
        else:
            out.append(Seasonal(period=s))
    names = []
    for s in out:
        if s.name is None:
            auto = "seasonal" if len(out) == 1 else f"seasonal_{s.period:g}".replace(".", "_")
            s = Seasonal(s.period, s.harmonics, s.kind, auto)
        names.append(s)
    labels = [s.name for s in names]
    if len(set(labels)) != len(labels):
        raise ValueError(f"seasonal components need distinct names; got {labels}")
    return tuple(names)
