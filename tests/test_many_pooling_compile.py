"""The pooled SVI program compiles once: a second ``fit_svi_many(pooling="partial")`` on
same-shape data compiles nothing (its chunk of steps is a module-level ``jax.jit``, not a
closure made anew on every call)."""

from __future__ import annotations

import logging

import jax
import numpy as np
import pandas as pd

import bayes_ssm as bs

SETTINGS = dict(pooling="partial", steps=20, check_every=10, num_samples=5, progress=False)


class _Compiles(logging.Handler):
    """Counts JAX's "Compiling ..." log records (emitted under ``jax.log_compiles()``)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.names: list[str] = []

    def emit(self, record):
        text = record.getMessage()
        if text.startswith("Compiling "):
            self.names.append(text.split(" with ")[0])


def _panel(seed):
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2021-01-03", periods=12, freq="W")
    return pd.concat(
        pd.DataFrame({"unique_id": f"s{i}", "ds": ds, "y": np.cumsum(rng.normal(size=12)) + i})
        for i in range(3)
    )


def test_second_pooled_svi_fit_compiles_nothing():
    model = bs.StructuralTS(trend=None)
    first = bs.fit_svi_many(model, _panel(0), key=1, **SETTINGS)
    handler, logger = _Compiles(), logging.getLogger("jax")
    logger.addHandler(handler)
    try:
        with jax.log_compiles(True):
            again = bs.fit_svi_many(model, _panel(0), key=1, **SETTINGS)
            other = bs.fit_svi_many(model, _panel(1), key=2, **SETTINGS)
    finally:
        logger.removeHandler(handler)
    assert handler.names == []
    # the cached program gives the same fit for the same data and key, another for others
    for ident in first:
        for site, draws in first[ident].draws.items():
            np.testing.assert_array_equal(again[ident].draws[site], draws)
        assert not np.array_equal(other[ident].svi_loss, first[ident].svi_loss)
