"""Saved fits: every zone and resolution comes back; a crafted or damaged file is one clear
``ValueError`` (issue 13: tz-aware fits did not load, other zones came back as naive UTC, a
file with a recomputed checksum loaded with posterior sites missing, corruptions escaped as
AttributeError/ImportError/TypeError/KeyError/RecursionError, harmonics 1e6 tried to allocate
29 TiB)."""

from __future__ import annotations

import datetime as dt
import json
import os
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from robust_helpers import NUM_STEPS, relabel

import bayes_ssm as bs
from bayes_ssm.inference import _fit_file as io


def _weekly(tz=None, unit="ns"):
    index = pd.date_range("2020-01-04", periods=NUM_STEPS, freq="W-SAT", tz=tz)
    return index.as_unit(unit)


@pytest.mark.parametrize(
    "tz, unit",
    [
        (None, "us"),
        ("UTC", "ns"),
        ("Europe/Paris", "us"),
        ("America/St_Johns", "s"),
        ("Asia/Kathmandu", "ms"),
        (dt.timezone(dt.timedelta(hours=5, minutes=30)), "ns"),
        (dt.timezone(dt.timedelta(hours=-3)), "us"),
    ],
)
def test_zone_and_unit_survive_save_and_load(level_fit, tmp_path, tz, unit):
    fit = relabel(level_fit, _weekly(tz, unit))
    fit.save(tmp_path / "fit.nc")
    back = bs.load(tmp_path / "fit.nc")
    assert back.data.index.equals(fit.data.index)
    assert back.data.index.dtype == fit.data.index.dtype  # zone and resolution
    assert (back.data.index.hour == fit.data.index.hour).all()  # wall times, not shifted
    a, b = fit.forecast(3, key=1), back.forecast(3, key=1)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert a.index.dtype == fit.data.index.dtype


def test_integer_time_with_a_step_survives(level_fit, tmp_path):
    fit = relabel(level_fit, pd.RangeIndex(1000, 1000 + 7 * NUM_STEPS, 7, name="day"))
    fit.save(tmp_path / "fit.nc")
    back = bs.load(tmp_path / "fit.nc")
    assert back.data.index.equals(fit.data.index) and back.data.index.step == 7
    assert back.data.index.name == "day"


def _crafted(monkeypatch, tmp_path, fit, *, groups=None, spec=None, text=None):
    """Save ``fit`` with its arrays or spec altered; the checksum is computed over the altered
    contents, so it is valid."""
    if groups is not None:
        original = io._array_groups
        monkeypatch.setattr(io, "_array_groups", lambda f: groups(original(f)))
    if spec is not None:
        original_spec = io._spec
        monkeypatch.setattr(io, "_spec", lambda f: spec(original_spec(f)))
    if text is not None:  # the spec as JSON text (what json.dumps cannot write)
        dumps = json.dumps
        monkeypatch.setattr(
            io,
            "json",
            SimpleNamespace(
                dumps=lambda obj, **kw: text(dumps(obj, **kw)),
                loads=json.loads,
                JSONDecodeError=json.JSONDecodeError,
            ),
        )
    path = tmp_path / "crafted.nc"
    fit.save(path)
    monkeypatch.undo()
    return path


def _drop(site):
    def edit(groups):
        groups["posterior"] = {k: v for k, v in groups["posterior"].items() if k != site}
        return groups

    return edit


def _reshape(site):
    def edit(groups):
        groups["posterior"] = dict(groups["posterior"])
        groups["posterior"][site] = np.repeat(groups["posterior"][site][..., None], 3, axis=-1)
        return groups

    return edit


def _set(path, value):
    def edit(spec):
        node = spec
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        return spec

    return edit


def _nested(depth):
    def edit(text):
        return text[:-1] + ', "deep": ' + "[" * depth + "]" * depth + "}"

    return edit


CRAFTED = {
    "a posterior site missing": ({"groups": _drop("sigma_level")}, "missing \\['sigma_level'\\]"),
    "a posterior site misshapen": ({"groups": _reshape("sigma_obs")}, "wrong shape"),
    "no posterior at all": ({"groups": lambda g: {**g, "posterior": {}}}, "missing"),
    "the method is a number": ({"spec": _set(["method"], 3)}, "should be a str"),
    "scales are text": ({"spec": _set(["scales", "y_scale"], "big")}, "must hold numbers"),
    "an unknown model kind": ({"spec": _set(["model", "kind"], "nope")}, "unknown model kind"),
    "the model params are a list": ({"spec": _set(["model", "params"], [1, 2])}, "valid"),
    "an unknown model parameter": (
        {"spec": _set(["model", "params", "colour"], "red")},
        "not a valid saved fit",
    ),
    "a million harmonics": (
        {
            "spec": _set(
                ["model", "params", "seasonal"],
                [{"period": 2e6, "harmonics": 10**6, "kind": "trig", "name": "s"}],
            )
        },
        "seasonal states, above the limit",
    ),
    "nesting 40 deep": ({"text": _nested(40)}, "nests deeper"),
    "nesting 100000 deep": ({"text": _nested(100_000)}, "does not parse"),
    "a spec that is a list": ({"text": lambda t: "[1, 2]"}, "not a JSON object"),
    "a spec that is not JSON": ({"text": lambda t: t[:-3]}, "does not parse"),
    "an unknown index kind": ({"spec": _set(["data", "index_kind"], "period")}, "index kind"),
    "an unknown zone": ({"spec": _set(["data", "tz"], "Mars/Olympus")}, "unknown time zone"),
    "covariate names of a number": ({"spec": _set(["data", "covariate_names"], 7)}, "wrong type"),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_files_with_a_valid_checksum_are_one_clear_error(
    level_fit, tmp_path, monkeypatch, case
):
    edits, message = CRAFTED[case]
    path = _crafted(monkeypatch, tmp_path, level_fit, **edits)
    with pytest.raises(ValueError, match=message):
        bs.load(path)


def test_single_bit_flips_are_refused_or_harmless(level_fit, tmp_path):
    path = tmp_path / "fit.nc"
    level_fit.save(path)
    clean = path.read_bytes()
    rng = np.random.default_rng(13)
    outcomes = {"refused": 0, "identical": 0}
    for position in rng.choice(len(clean) * 8, size=24, replace=False):
        damaged = bytearray(clean)
        damaged[position // 8] ^= 1 << (position % 8)
        path.write_bytes(bytes(damaged))
        try:
            back = bs.load(path)
        except ValueError:
            outcomes["refused"] += 1
            continue
        # a flip in unused bytes: then what loads is exactly the saved fit
        for name, draws in level_fit.draws.items():
            np.testing.assert_array_equal(back.draws[name], draws)
        np.testing.assert_array_equal(back.data.y, level_fit.data.y)
        assert back.data.index.equals(level_fit.data.index) and back.model == level_fit.model
        outcomes["identical"] += 1
    assert outcomes["refused"] > 0


def test_spec_size_is_bounded(level_fit, tmp_path, monkeypatch):
    monkeypatch.setattr(io, "MAX_SPEC_CHARS", 100)
    level_fit.save(tmp_path / "fit.nc")
    with pytest.raises(ValueError, match="characters"):
        bs.load(tmp_path / "fit.nc")


def test_array_size_is_bounded(level_fit, tmp_path, monkeypatch):
    monkeypatch.setattr(io, "MAX_LOAD_BYTES", 64)
    level_fit.save(tmp_path / "fit.nc")
    with pytest.raises(ValueError, match="MAX_LOAD_BYTES"):
        bs.load(tmp_path / "fit.nc")


def test_a_killed_save_leaves_no_temporary_after_the_next_one(level_fit, tmp_path):
    path = tmp_path / "fit.nc"
    stale = tmp_path / f".fit.nc.{2**22 + 12345}.{'0' * 32}.tmp"  # a writer that died
    stale.write_bytes(b"half a file")
    level_fit.save(path)
    assert sorted(os.listdir(tmp_path)) == ["fit.nc"]


def test_unnamed_zone_is_refused_at_save_not_lost(level_fit, tmp_path):
    class Odd(dt.tzinfo):  # a zone with no name and a varying offset
        def utcoffset(self, when):
            return dt.timedelta(hours=1 if when is not None and when.month > 6 else 0)

        def dst(self, when):
            return dt.timedelta(0)

        def tzname(self, when):
            return None

    try:
        index = pd.date_range("2020-01-04", periods=NUM_STEPS, freq="W-SAT", tz=Odd())
    except Exception:  # noqa: BLE001  pandas may refuse such a zone itself
        pytest.skip("pandas refuses a custom tzinfo here")
    fit = relabel(level_fit, index)
    with pytest.raises(ValueError, match="no name that rebuilds it"):
        fit.save(tmp_path / "fit.nc")
    assert not os.listdir(tmp_path)


def test_spec_json_is_what_load_reads(level_fit, tmp_path):
    level_fit.save(tmp_path / "fit.nc")
    spec = json.loads(io._read_tree(tmp_path / "fit.nc")["/"].attrs["spec"])
    assert spec["data"]["unit"] == level_fit.data.index.unit and spec["data"]["tz"] is None


def test_dates_past_2262_are_refused_at_save_not_crashed(level_fit, tmp_path):
    far = pd.date_range("3000-01-04", periods=NUM_STEPS, freq="W-SAT", unit="us")
    with pytest.raises(ValueError, match="cannot save dates outside"):
        relabel(level_fit, far).save(tmp_path / "fit.nc")
    assert not os.listdir(tmp_path)
