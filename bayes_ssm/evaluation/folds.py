"""The folds of a rolling-origin backtest: positions, the one place a fold's training data is
cut, and the check that it ends before the fold's first forecast step."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

__all__ = ["BacktestLeakError", "Fold", "rolling_origins", "training_data", "check_no_leak"]


class BacktestLeakError(RuntimeError):
    """A fold's training data reached its forecast origin (a harness bug, never user error)."""


@dataclasses.dataclass(frozen=True)
class Fold:
    """One forecast origin: positions ``train`` (slice) fit, positions ``test`` are scored."""

    number: int
    train: slice
    test: slice


def rolling_origins(
    num_steps: int,
    horizon: int,
    folds: int,
    *,
    step: int | None = None,
    window: str = "expanding",
    min_train: int,
) -> list[Fold]:
    """The folds of a rolling-origin evaluation (positions, oldest origin first).

    The last fold's test window ends at the last step; earlier origins move back by ``step``
    (default ``horizon``: non-overlapping test windows). ``window="expanding"`` trains on
    everything before the origin, ``"sliding"`` on the last ``min_train`` steps before it.
    """
    for name, value in (("horizon", horizon), ("folds", folds), ("min_train", min_train)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}")
    step = horizon if step is None else step
    if isinstance(step, bool) or not isinstance(step, int | np.integer) or step < 1:
        raise ValueError(f"step must be a positive integer; got {step!r}")
    if window not in ("expanding", "sliding"):
        raise ValueError(f"window must be 'expanding' or 'sliding'; got {window!r}")
    last_origin = num_steps - horizon
    first_origin = last_origin - step * (folds - 1)
    if first_origin < min_train:
        raise ValueError(
            f"the series has {num_steps} steps: {folds} folds with horizon {horizon} and step "
            f"{step} put the first origin at step {first_origin}, before min_train={min_train}. "
            "Use fewer folds, a smaller step or horizon, or a smaller min_train"
        )
    out = []
    for k in range(folds):
        origin = first_origin + k * step
        start = 0 if window == "expanding" else origin - min_train
        out.append(Fold(k, slice(start, origin), slice(origin, origin + horizon)))
    return out


def training_data(y: pd.Series, fold: Fold) -> pd.Series:
    """The only place a fold's training data is cut from the series."""
    return y.iloc[fold.train].copy()


def check_no_leak(train: pd.Series, test_index: pd.Index, fold: Fold) -> None:
    if len(train) == 0 or train.index[-1] >= test_index[0]:
        raise BacktestLeakError(
            f"fold {fold.number}: training data end at {train.index[-1] if len(train) else '-'}"
            f" but the first forecast step is {test_index[0]}: the model would see the future"
        )
