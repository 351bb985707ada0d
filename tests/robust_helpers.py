"""Helpers of the robustness tests (tests/robustness/): a small series and `relabel`, which puts one
fit's data on another index kind, so one compiled program serves every case. The shared fit is
the `level_fit` fixture in tests/conftest.py (a second conftest.py under tests/robustness would
shadow tests/conftest.py as the module `conftest`)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from bayes_ssm.data.validation import as_series_data

NUM_STEPS = 48


def series(index=None, seed=0) -> pd.Series:
    rng = np.random.default_rng(seed)
    values = 10 + np.cumsum(rng.normal(0, 0.5, NUM_STEPS)) + rng.normal(0, 0.3, NUM_STEPS)
    if index is None:
        index = pd.date_range("2020-01-04", periods=NUM_STEPS, freq="W-SAT")
    return pd.Series(values, index=index, name="cases")


def relabel(fit, index, freq=None):
    """The same fit with its data on another index (same values, same length)."""
    data = as_series_data(pd.Series(fit.data.y, index=index, name=fit.data.name), freq=freq)
    return dataclasses.replace(fit, data=data)
