"""``batch="auto"`` resolves by the measured rule (``bayes_ssm.inference.many.auto_batch``) and
the drivers run what it picks."""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd
import pytest

import bayes_ssm as bs
from bayes_ssm.inference import many
from bayes_ssm.inference.many import CPU_VMAP_MAX_SERIES, auto_batch


@pytest.mark.parametrize(
    "method, platform, n, expected",
    [
        ("svi", "cpu", 1, "loop"),
        ("svi", "cpu", 2, "vmap"),
        ("svi", "cpu", CPU_VMAP_MAX_SERIES, "vmap"),
        ("svi", "cpu", CPU_VMAP_MAX_SERIES + 1, "loop"),
        ("svi", "gpu", 1, "loop"),
        ("svi", "gpu", 10_000, "vmap"),
        ("nuts", "cpu", 5, "vmap"),
        ("nuts", "cpu", 40, "loop"),
        ("nuts", "gpu", 5, "vmap"),
        ("nuts", "tpu", 2, "vmap"),
    ],
)
def test_auto_rule(method, platform, n, expected):
    assert auto_batch(method, platform, n) == expected


@pytest.mark.parametrize("n", [1, 3, CPU_VMAP_MAX_SERIES + 1])
def test_drivers_run_what_auto_picks(n, monkeypatch):
    """The driver hands the resolved mode to the fitting code (captured, nothing fitted)."""
    seen = {}

    def fake(model, series, keys, *, batch, **kwargs):
        seen["batch"], seen["n"] = batch, len(series)
        return {}, {}, {"groups": [], "batch": batch}

    monkeypatch.setattr(many, "svi_series", fake)
    monkeypatch.setattr(many, "nuts_series", fake)
    ds = pd.date_range("2021-01-03", periods=12, freq="W")
    frame = pd.concat(
        pd.DataFrame({"unique_id": f"s{i:02d}", "ds": ds, "y": np.arange(12.0) + i})
        for i in range(n)
    )
    platform = jax.default_backend()
    bs.fit_svi_many(bs.StructuralTS(trend=None), frame, key=0, progress=False)
    assert seen == {"batch": auto_batch("svi", platform, n), "n": n}
    bs.fit_nuts_many(bs.StructuralTS(trend=None), frame, key=0)
    assert seen == {"batch": auto_batch("nuts", platform, n), "n": n}
