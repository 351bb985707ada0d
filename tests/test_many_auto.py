"""``batch="auto"`` resolves by the measured rule (``bayes_ssm.inference.many.auto_batch``) and
the drivers run what it picks."""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd
import pytest

import bayes_ssm as bs
from bayes_ssm.inference import many
from bayes_ssm.inference.batch_choice import CPU_NUTS_VMAP_MAX_WORK
from bayes_ssm.inference.many import CPU_VMAP_MAX_SERIES, auto_batch


@pytest.mark.parametrize(
    "method, platform, n, work, expected",
    [
        ("svi", "cpu", 1, {}, "loop"),
        ("svi", "cpu", 2, {}, "vmap"),
        ("svi", "cpu", CPU_VMAP_MAX_SERIES, {}, "vmap"),
        ("svi", "cpu", CPU_VMAP_MAX_SERIES + 1, {}, "loop"),
        ("svi", "gpu", 1, {}, "loop"),
        ("svi", "gpu", 10_000, {"steps": 10_000, "length": 1_000}, "vmap"),
        ("nuts", "gpu", 5, {}, "vmap"),
        ("nuts", "tpu", 2, {}, "vmap"),
    ],
)
def test_auto_rule(method, platform, n, work, expected):
    assert auto_batch(method, platform, n, **work) == expected


# Measured on the CPU (benchmarks/README.md, "Many series, session 7 (CPU)"; T = 104 unless
# said): (method, series, work, the faster mode, vmap / loop by CPU seconds; * wall clock)
NUTS_SHORT = {"iterations": 20, "max_tree_depth": 4}
MEASURED = [
    ("svi", 2, {"steps": 300}, "vmap", 1.91),
    ("svi", 10, {"steps": 300}, "vmap", 2.53),
    ("svi", 30, {"steps": 300}, "loop", 0.66),
    ("svi", 100, {"steps": 300}, "loop", 0.71),
    ("svi", 2, {"steps": 2000}, "vmap", 1.10),
    ("svi", 10, {"steps": 2000}, "vmap", 1.22),
    ("svi", 30, {"steps": 2000}, "loop", 0.24),
    ("svi", 2, {"steps": 8000}, "vmap", 1.14),
    ("svi", 10, {"steps": 8000}, "vmap", 1.21),
    ("svi", 10, {"steps": 1000, "length": 260}, "vmap", 1.38),
    ("nuts", 2, NUTS_SHORT, "vmap", 106.0),
    ("nuts", 10, NUTS_SHORT, "vmap", 142.0),
    ("nuts", 30, NUTS_SHORT, "vmap", 37.0),
    ("nuts", 1000, NUTS_SHORT, "vmap", 22.3),  # *
    ("nuts", 100, {"iterations": 100, "max_tree_depth": 6}, "vmap", 2.4),  # * session 6
    ("nuts", 6, {"iterations": 600, "max_tree_depth": 8}, "vmap", 2.7),  # * session 6
]


@pytest.mark.parametrize("method, n, work, faster, ratio", MEASURED)
def test_auto_rule_picks_what_was_measured_faster(method, n, work, faster, ratio):
    """The rule reproduces every CPU measurement of the crossover benchmark."""
    assert (ratio > 1) == (faster == "vmap")  # the table is consistent with itself
    work = dict(work)
    assert auto_batch(method, "cpu", n, length=work.pop("length", 104), **work) == faster


def test_auto_rule_on_the_cpu_depends_on_series_and_nuts_work():
    """SVI: the series count decides (steps and length measured not to move the crossover).
    NUTS beyond 16 series: the work per series (iterations, tree depth, length) decides. More
    series never turn a loop back into vmap."""
    many_series = CPU_VMAP_MAX_SERIES + 1
    for steps, length in ((300, 104), (10_000, 104), (1_000, 5_000)):
        assert auto_batch("svi", "cpu", 10, steps=steps, length=length) == "vmap"
        assert auto_batch("svi", "cpu", many_series, steps=steps, length=length) == "loop"
    short = dict(iterations=100, max_tree_depth=6, length=104)  # 655,200 units
    assert auto_batch("nuts", "cpu", many_series, **short) == "vmap"
    for longer in ({"iterations": 2_000}, {"max_tree_depth": 10}, {"length": 1_000}):
        assert auto_batch("nuts", "cpu", many_series, **(short | longer)) == "loop"
        assert auto_batch("nuts", "cpu", 10, **(short | longer)) == "vmap"
    edge = CPU_NUTS_VMAP_MAX_WORK
    assert auto_batch("nuts", "cpu", 40, iterations=edge, max_tree_depth=1, length=1) == "vmap"
    more = dict(iterations=edge + 1, max_tree_depth=1, length=1)
    assert auto_batch("nuts", "cpu", 40, **more) == "loop"
    assert auto_batch("nuts", "cpu", 40) == "loop"  # unknown work
    for method, work in (("svi", {"steps": 500}), ("nuts", short), ("nuts", {"iterations": 9})):
        picks = [auto_batch(method, "cpu", n, **work) for n in range(2, 400)]
        assert picks == sorted(picks, key=lambda p: p == "loop")  # vmap..., then loop...


def test_auto_rule_refuses_an_unknown_method():
    with pytest.raises(ValueError, match="method"):
        auto_batch("mcmc", "cpu", 3)


@pytest.mark.parametrize(
    "n, steps",
    [(1, 1_000), (3, 1_000), (CPU_VMAP_MAX_SERIES + 1, 1_000), (CPU_VMAP_MAX_SERIES + 1, 40_000)],
)
def test_drivers_run_what_auto_picks(n, steps, monkeypatch):
    """The driver hands the resolved mode to the fitting code, decided with its own steps (or
    NUTS iterations and depth) and the series' length (captured, nothing fitted)."""
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
    bs.fit_svi_many(bs.StructuralTS(trend=None), frame, key=0, steps=steps, progress=False)
    expected = auto_batch("svi", platform, n, steps=steps, length=12)
    assert seen == {"batch": expected, "n": n}
    nuts = dict(num_warmup=steps // 100, num_samples=steps // 100, max_tree_depth=8)
    bs.fit_nuts_many(bs.StructuralTS(trend=None), frame, key=0, **nuts)
    work = dict(iterations=steps // 50, max_tree_depth=8, length=12)
    assert seen == {"batch": auto_batch("nuts", platform, n, **work), "n": n}
    if platform == "cpu" and n > CPU_VMAP_MAX_SERIES:
        # 20 x 255 x 12 units is little work (vmap); 800 x 255 x 12 is more than the limit
        assert seen["batch"] == ("vmap" if steps == 1_000 else "loop")
