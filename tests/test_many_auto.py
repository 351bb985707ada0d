"""``batch="auto"`` resolves by the measured rule (``bayes_ssm.inference.batch_choice``) and the
drivers run what it picks: on a CPU, vmapped programs of at most ``CPU_VMAP_MAX_SERIES``
series, which give the fits one program gives."""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd
import pytest

import bayes_ssm as bs
from bayes_ssm.inference import many
from bayes_ssm.inference.batch_choice import CPU_VMAP_MAX_SERIES, auto_batch, auto_group_size


@pytest.mark.parametrize("method", ["svi", "nuts"])
@pytest.mark.parametrize(
    "platform, n, expected, group",
    [
        ("cpu", 1, "loop", CPU_VMAP_MAX_SERIES),
        ("cpu", 2, "vmap", CPU_VMAP_MAX_SERIES),
        ("cpu", 10_000, "vmap", CPU_VMAP_MAX_SERIES),
        ("gpu", 1, "loop", None),
        ("gpu", 10_000, "vmap", None),
        ("tpu", 2, "vmap", None),
    ],
)
def test_auto_rule(method, platform, n, expected, group):
    assert auto_batch(method, platform, n) == expected
    assert auto_group_size(platform) == group


# Measured on the CPU by CPU seconds (benchmarks/README.md, "Many series, session 7 (CPU)";
# T = 104 unless said): (method, series in ONE vmapped program, settings, vmap / loop).
MEASURED = [
    ("svi", 2, "300 steps", 1.91),
    ("svi", 10, "300 steps", 2.53),
    ("svi", 30, "300 steps", 0.66),
    ("svi", 100, "300 steps", 0.71),
    ("svi", 2, "2,000 steps", 1.10),
    ("svi", 10, "2,000 steps", 1.22),
    ("svi", 30, "2,000 steps", 0.24),
    ("svi", 2, "8,000 steps", 1.14),
    ("svi", 10, "8,000 steps", 1.21),
    ("svi", 10, "1,000 steps, T = 260", 1.38),
]


@pytest.mark.parametrize("method, n, settings, ratio", MEASURED)
def test_cpu_group_size_lies_where_one_program_beat_the_loop(method, n, settings, ratio):
    """Every measured program at most CPU_VMAP_MAX_SERIES wide beat the loop and every wider
    one lost, whatever the steps and length: the group size sits on the winning side."""
    assert (ratio > 1) == (n <= CPU_VMAP_MAX_SERIES)


def test_auto_rule_refuses_an_unknown_method():
    with pytest.raises(ValueError, match="method"):
        auto_batch("mcmc", "cpu", 3)


def _frame(n, length=12, seed=0):
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2021-01-03", periods=length, freq="W")
    return pd.concat(
        pd.DataFrame({"unique_id": f"s{i:02d}", "ds": ds, "y": rng.normal(size=length).cumsum()})
        for i in range(n)
    )


@pytest.mark.parametrize("n", [1, 3, CPU_VMAP_MAX_SERIES + 1])
def test_drivers_run_what_auto_picks(n, monkeypatch):
    """The driver hands the resolved mode and group size to the fitting code (captured,
    nothing fitted)."""
    seen = {}

    def fake(model, series, keys, *, batch, group_size=None, **kwargs):
        seen.update(batch=batch, n=len(series), group_size=group_size)
        return {}, {}, {"groups": [], "batch": batch}

    monkeypatch.setattr(many, "svi_series", fake)
    monkeypatch.setattr(many, "nuts_series", fake)
    platform = jax.default_backend()
    expected_group = auto_group_size(platform) if n > 1 else None
    for method, fit in (("svi", bs.fit_svi_many), ("nuts", bs.fit_nuts_many)):
        fit(bs.StructuralTS(trend=None), _frame(n), key=0)
        expected = {"batch": auto_batch(method, platform, n), "n": n}
        assert seen == expected | {"group_size": expected_group}
        fit(bs.StructuralTS(trend=None), _frame(n), key=0, batch="vmap")
        assert seen == {"batch": "vmap", "n": n, "group_size": None}  # asked: one program


def test_groups_of_vmapped_programs_equal_one_program(monkeypatch):
    """5 series in programs of 2 (the last filled with inert copies) give each series the fit
    one 5-series program gives it."""
    model = bs.StructuralTS(trend=None)
    frame = _frame(5, length=20, seed=1)
    opts = dict(key=3, steps=40, check_every=20, num_samples=10, progress=False)
    one = bs.fit_svi_many(model, frame, batch="vmap", **opts)
    monkeypatch.setattr(many, "auto_group_size", lambda platform: 2)
    grouped = bs.fit_svi_many(model, frame, batch="auto", **opts)
    assert grouped.info["groups"] == [["s00", "s01"], ["s02", "s03"], ["s04"]]
    assert one.info["groups"] == [["s00", "s01", "s02", "s03", "s04"]]
    for ident in one:
        a, b = one[ident], grouped[ident]
        np.testing.assert_allclose(b.svi_loss, a.svi_loss, rtol=1e-5)
        for site in a.draws:
            np.testing.assert_allclose(b.draws[site], a.draws[site], rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_groups_of_vmapped_nuts_programs_equal_one_program(monkeypatch):
    """NUTS: 3 series in programs of 2 (the last filled with an inert copy) draw what one
    3-series program draws for each series (each series' sampler is its own under vmap)."""
    model = bs.StructuralTS(trend=None)
    frame = _frame(3, length=20, seed=2)
    opts = dict(key=4, num_chains=1, num_warmup=20, num_samples=20, max_tree_depth=3)
    one = bs.fit_nuts_many(model, frame, batch="vmap", **opts)
    monkeypatch.setattr(many, "auto_group_size", lambda platform: 2)
    grouped = bs.fit_nuts_many(model, frame, batch="auto", **opts)
    assert grouped.info["groups"] == [["s00", "s01"], ["s02"]]
    for ident in one:
        for site, draws in one[ident].draws.items():
            np.testing.assert_allclose(grouped[ident].draws[site], draws, rtol=1e-4, atol=1e-6)
