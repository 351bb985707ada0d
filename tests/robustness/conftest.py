"""Shared small fits for the robustness tests: one local-level SVI fit (few steps) whose data are
relabelled with every index kind, so one compiled program serves every case."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

import bayes_ssm as bs
from bayes_ssm.data.validation import as_series_data
from bayes_ssm.models import StructuralTS

NUM_STEPS = 48


def series(index=None, seed=0) -> pd.Series:
    rng = np.random.default_rng(seed)
    values = 10 + np.cumsum(rng.normal(0, 0.5, NUM_STEPS)) + rng.normal(0, 0.3, NUM_STEPS)
    if index is None:
        index = pd.date_range("2020-01-04", periods=NUM_STEPS, freq="W-SAT")
    return pd.Series(values, index=index, name="cases")


@pytest.fixture(scope="session")
def level_fit():
    """A local-level fit on weekly data (SVI, 300 steps, 100 draws)."""
    return bs.fit_svi(StructuralTS(), series(), key=0, steps=300, num_samples=100, progress=False)


def relabel(fit, index, freq=None):
    """The same fit with its data on another index (same values, same length)."""
    data = as_series_data(pd.Series(fit.data.y, index=index, name=fit.data.name), freq=freq)
    return dataclasses.replace(fit, data=data)
