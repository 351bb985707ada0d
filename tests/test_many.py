"""Many series in one program: ``fit_svi_many`` == a loop of ``fit_svi`` with the split keys."""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd
import pytest

import bayes_ssm as bs
from bayes_ssm.data.long_format import split_long

MODEL = bs.StructuralTS()  # local level, Gaussian: three latent scales per series


def long_frame(lengths=(80, 80, 60), seed=0, shuffle=True):
    """Random-walk-plus-noise series of different scales in long format (rows shuffled)."""
    rng = np.random.default_rng(seed)
    frames = []
    for i, num_steps in enumerate(lengths):
        ds = pd.date_range("2021-01-03", periods=num_steps, freq="W")
        y = 10.0**i * (np.cumsum(rng.normal(0, 0.3, num_steps)) + rng.normal(0, 1.0, num_steps))
        if i == 1:
            y[[5, 17]] = np.nan  # missing values inside a series are data
        frames.append(pd.DataFrame({"unique_id": f"s{i}", "ds": ds, "y": y}))
    frame = pd.concat(frames, ignore_index=True)
    return frame.sample(frac=1.0, random_state=seed) if shuffle else frame


SVI = dict(steps=1500, check_every=250, num_samples=40, progress=False)


@pytest.fixture(scope="module")
def frame_and_fits():
    frame = long_frame()
    return frame, bs.fit_svi_many(MODEL, frame, key=3, batch="vmap", pooling="none", **SVI)


def test_many_equals_loop_of_single_fits(frame_and_fits):
    """Each series' batched fit (``pooling="none"``, the independent fits) is the fit
    ``fit_svi`` gives with its split key: same steps, same convergence, same guide parameters
    and draws (up to float32 rounding of the batched arithmetic), although the series stop at
    different steps and differ in scale by 100x."""
    frame, many = frame_and_fits
    keys = jax.random.split(jax.random.PRNGKey(3), 3)
    series = split_long(frame)
    assert list(many) == ["s0", "s1", "s2"] == list(series)
    assert many.info["groups"] == [["s0", "s1"], ["s2"]]  # one program per length
    for i, ident in enumerate(series):
        single = bs.fit_svi(MODEL, series[ident], key=keys[i], **SVI)
        batched = many[ident]
        assert batched.info["steps"] == single.info["steps"]
        assert batched.info["converged"] == single.info["converged"]
        assert batched.scales == single.scales
        np.testing.assert_allclose(batched.svi_loss, single.svi_loss, rtol=1e-4)
        for name, value in single.guide_params.items():
            np.testing.assert_allclose(
                batched.guide_params[name], value, rtol=1e-4, atol=1e-5, err_msg=name
            )
        for name, value in single.draws.items():
            np.testing.assert_allclose(
                batched.draws[name], value, rtol=1e-3, atol=1e-4, err_msg=name
            )
        assert batched.data.index.equals(single.data.index)


def test_series_keep_their_own_stopping_rule(frame_and_fits):
    _, many = frame_and_fits
    steps = {ident: fit.info["steps"] for ident, fit in many.items()}
    # s0 and s1 share one program, yet s1 stops earlier (converged) while s0 runs on
    assert steps["s1"] < steps["s0"] == 1500
    assert many["s1"].info["converged"] and not many["s0"].info["converged"]
    summary = many.summary()
    assert list(summary.index) == list(many)
    assert summary["svi_steps"].tolist() == list(steps.values())
    assert summary.loc["s0", "problems"] >= 1  # not converged: bs.check says so


def test_forecast_long_frame_and_same_key_same_result(frame_and_fits):
    _, many = frame_and_fits
    fc = many.forecast(5, prob=(0.9,), key=1)
    assert list(fc.columns) == ["unique_id", "ds", "mean", "median", "lower_90", "upper_90"]
    assert fc["unique_id"].tolist() == [ident for ident in many for _ in range(5)]
    for ident, fit in many.items():
        rows = fc[fc["unique_id"] == ident]
        assert rows["ds"].iloc[0] == fit.data.index[-1] + fit.data.freq
        assert np.all(rows["lower_90"] < rows["upper_90"])
    pd.testing.assert_frame_equal(fc, many.forecast(5, prob=(0.9,), key=1))


def test_mapping_input_and_scales_per_series():
    frame = long_frame(lengths=(50, 50), seed=4, shuffle=False)
    series = split_long(frame)
    settings = dict(key=0, steps=300, num_samples=10, progress=False)
    many = bs.fit_svi_many(MODEL, series, batch="vmap", **settings)
    # priors scale to each series: the 10x larger series gets other scales
    s0, s1 = (many[i].scales for i in ("s0", "s1"))
    assert s1 != s0
    assert many.info["groups"] == [["s0", "s1"]]
    assert many.info["batch"] == "vmap"
    looped = bs.fit_svi_many(MODEL, series, batch="loop", **settings)
    assert looped.info["batch"] == "loop"
    for ident in series:
        for name, value in looped[ident].guide_params.items():
            np.testing.assert_allclose(
                many[ident].guide_params[name], value, rtol=1e-4, atol=1e-5, err_msg=name
            )


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda f: f.drop(columns="ds"), "missing \\['ds'\\]"),
        (lambda f: pd.concat([f, f.iloc[:2]]), "repeat a \\(unique_id, ds\\) pair"),
        (lambda f: f.assign(unique_id=f["unique_id"].where(f.index != 3)), "missing ids"),
        (lambda f: f.assign(ds="not a date"), "timestamps or integers"),
        (lambda f: f.assign(y="x"), "series 's0'.*numeric"),
        (lambda f: f.iloc[:0], "no rows"),
    ],
)
def test_bad_long_data(mutate, match):
    frame = long_frame(lengths=(30, 30), shuffle=False)
    with pytest.raises(ValueError, match=match):
        bs.fit_svi_many(MODEL, mutate(frame), key=0, steps=10, progress=False)


def test_bad_container_and_batch():
    with pytest.raises(ValueError, match="long-format DataFrame or a mapping"):
        bs.fit_svi_many(MODEL, np.zeros((3, 10)), key=0)
    with pytest.raises(ValueError, match="batch must be one of"):
        bs.fit_svi_many(MODEL, long_frame(), key=0, batch="threads")
    for devices in ("gpu0", [], [0, 1]):
        with pytest.raises(ValueError, match="devices must be 'auto', None or a list"):
            bs.fit_svi_many(MODEL, long_frame(), key=0, batch="vmap", devices=devices)


_SHARDED_SCRIPT = """
import json, os, sys
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
import jax, numpy as np
sys.path.insert(0, "tests")
import bayes_ssm as bs
from test_many import MODEL, SVI, long_frame

frame = long_frame(lengths=(60, 60, 60), seed=2)  # 3 series on 2 devices: one padding row
two = bs.fit_svi_many(MODEL, frame, key=5, batch="vmap", devices="auto", **SVI)
one = bs.fit_svi_many(MODEL, frame, key=5, batch="vmap", devices=None, **SVI)
print(json.dumps({
    "local_devices": len(jax.local_devices()),
    "devices": [two.info["devices"], one.info["devices"]],
    "steps": [[two[i].info["steps"], one[i].info["steps"]] for i in one],
    "diff": max(
        float(np.max(np.abs(two[i].guide_params[k] - one[i].guide_params[k])))
        for i in one for k in one[i].guide_params
    ),
}))
"""


@pytest.mark.slow
def test_series_axis_split_over_two_devices_gives_the_same_fits():
    """With two (host) devices the series axis is split between them, three series padded to
    four rows; each series' fit equals the one-device fit."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", _SHARDED_SCRIPT],
        cwd=root,
        env={**__import__("os").environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["local_devices"] == 2
    assert out["devices"] == [2, 1]
    assert all(a == b for a, b in out["steps"])
    assert out["diff"] < 1e-4


def test_nuts_many_equals_fit_nuts_per_series():
    frame = long_frame(lengths=(30, 30), seed=6, shuffle=True)
    nuts = dict(num_chains=1, num_warmup=30, num_samples=20)
    many = bs.fit_nuts_many(MODEL, frame, key=2, batch="loop", **nuts)
    keys = jax.random.split(jax.random.PRNGKey(2), 2)
    for k, (ident, y) in zip(keys, split_long(frame).items(), strict=True):
        single = bs.fit_nuts(MODEL, y, key=k, progress=False, **nuts)
        for name, value in single.draws.items():
            np.testing.assert_array_equal(many[ident].draws[name], value, err_msg=name)
    summary = many.summary()
    assert list(summary.columns) == [
        "num_steps",
        "method",
        "divergences",
        "r_hat_max",
        "ess_min",
        "problems",
    ]
    assert (summary["num_steps"] == 30).all()
    assert many.info["groups"] == [["s0", "s1"]] and many.info["method"] == "nuts"
