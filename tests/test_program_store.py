"""The store of compiled programs (``inference/program_store.py``): a stored executable gives
what ``jax.jit`` gives, bit for bit; a stale, corrupt or foreign entry is never used (and the
tests below show that such an entry, were it used, would give a different answer); static
arguments are described by value, the same in every process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from bayes_ssm.inference import program_store as ps
from bayes_ssm.inference.engine import ModelKey
from bayes_ssm.inference.threads import locked_jit
from bayes_ssm.models import StructuralTS


class Factor:
    """A static argument with a stable key (as ``ModelKey``)."""

    def __init__(self, k):
        self.k = k

    def __hash__(self):
        return hash(self.k)

    def __eq__(self, other):
        return isinstance(other, Factor) and other.k == self.k

    def stable_key(self):
        return ["factor", self.k]


class Opaque:
    """A static argument the store cannot describe (no ``stable_key``, not registered)."""

    def __hash__(self):
        return 7

    def __eq__(self, other):
        return isinstance(other, Opaque)


@locked_jit(static_argnames=("factor", "n"))
def scaled(factor, n, x, extra=None):
    out = x * factor.k + jnp.cumsum(jnp.sin(x)) * n
    return {"out": out, "sum": jnp.sum(out)}


@pytest.fixture
def store(tmp_path):
    ps.enable(tmp_path)
    scaled.stored.loaded.clear()
    yield tmp_path
    ps.disable()
    scaled.stored.loaded.clear()


def _x():
    return jnp.linspace(0.0, 1.0, 7)


def _plain(k=2.0, n=3):
    return scaled.jitted(Factor(k), n, _x())  # jax.jit, never the store


def _entries(path):
    return sorted(p for p in path.iterdir() if p.suffix == ".exe")


def _equal(a, b):
    for key in ("out", "sum"):
        np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]))


def test_store_off_by_default_and_on_equal_to_jit(store):
    ps.disable()
    assert scaled(Factor(2.0), 3, _x()) is not None and _entries(store) == []
    ps.enable(store)
    first = scaled(Factor(2.0), 3, _x())  # compiled, written
    assert len(_entries(store)) == 1
    scaled.stored.loaded.clear()  # as a new process: read from disk
    again = scaled(Factor(2.0), 3, _x())
    _equal(first, _plain())
    _equal(again, _plain())
    # another static value or shape is another entry
    scaled(Factor(5.0), 3, _x())
    scaled(Factor(2.0), 3, jnp.ones(4))
    assert len(_entries(store)) == 3


def _entry_for(store, k, n=3):
    """(path, description) of the entry ``scaled(Factor(k), n, _x())`` reads."""
    before = set(_entries(store))
    scaled(Factor(k), n, _x())
    (path,) = set(_entries(store)) - before
    blob = path.read_bytes()[len(ps.FORMAT) :]
    size = int.from_bytes(blob[:8], "little")
    return path, blob[8 : 8 + size]


def _description(path) -> bytes:
    blob = path.read_bytes()[len(ps.FORMAT) :]
    return blob[8 : 8 + int.from_bytes(blob[:8], "little")]


def _forge(path, text, payload_from):
    """Write at ``path`` an entry with description ``text`` and the (valid, checksummed)
    payload of the entry file ``payload_from``."""
    blob = payload_from.read_bytes()[len(ps.FORMAT) :]
    size = int.from_bytes(blob[:8], "little")
    digest, payload = blob[8 + size : 40 + size], blob[40 + size :]
    path.write_bytes(ps.FORMAT + len(text).to_bytes(8, "little") + text + digest + payload)


def test_a_foreign_executable_is_used_only_under_its_exact_description(store):
    """The control: an entry holding the executable of Factor(5) under the description of
    Factor(2) *is* used (so the checks below are what protects a call), and gives Factor(5)'s
    answer; the same executable under a stale description (another source hash) is not."""
    path2, text2 = _entry_for(store, 2.0)
    path5, _ = _entry_for(store, 5.0)
    _forge(path2, text2, path5)
    scaled.stored.loaded.clear()
    _equal(scaled(Factor(2.0), 3, _x()), _plain(5.0))  # used: the wrong answer

    stale = json.loads(text2)
    stale["environment"] = stale["environment"].replace(
        json.loads(stale["environment"])["source"], "0" * 64
    )
    _forge(path2, json.dumps(stale, sort_keys=True).encode(), path5)
    scaled.stored.loaded.clear()
    _equal(scaled(Factor(2.0), 3, _x()), _plain(2.0))  # not used: the right answer
    # and rebuilt in place: a valid entry again, read by the next process
    scaled.stored.loaded.clear()
    assert ps.read_entry(path2, text2, jax.tree_util.tree_structure(((_x(),), {}))) is not None
    _equal(scaled(Factor(2.0), 3, _x()), _plain(2.0))


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty"])
def test_a_corrupt_entry_is_ignored_and_rebuilt(store, damage):
    path2, _ = _entry_for(store, 2.0)
    blob = path2.read_bytes()
    if damage == "truncate":
        blob = blob[: len(blob) // 2]
    elif damage == "flip":
        blob = blob[:-100] + bytes([blob[-100] ^ 0xFF]) + blob[-99:]
    elif damage == "garbage":
        blob = os.urandom(len(blob))
    else:
        blob = b""
    path2.write_bytes(blob)
    scaled.stored.loaded.clear()
    _equal(scaled(Factor(2.0), 3, _x()), _plain(2.0))
    assert path2.read_bytes() != blob  # rewritten


def test_the_source_of_the_package_is_part_of_the_key(store, monkeypatch):
    path2, _ = _entry_for(store, 2.0)
    monkeypatch.setitem(ps._ENV, "static", {**ps._ENV["static"], "source": "edited"})
    scaled.stored.loaded.clear()
    _equal(scaled(Factor(2.0), 3, _x()), _plain(2.0))
    assert len(_entries(store)) == 2  # a new entry beside the stale one


def test_undescribable_static_arguments_go_through_jit(store):
    @locked_jit(static_argnames=("opaque",))
    def plus(opaque, x):
        return x + 1.0

    np.testing.assert_array_equal(plus(Opaque(), _x()), _x() + 1.0)
    assert _entries(store) == []
    with pytest.raises(ps._Unstorable):
        ps._describe(object())
    assert ps._describe((1, "a", None)) == [
        "tuple",
        [["int", "1"], ["str", "'a'"], ["NoneType", "None"]],
    ]


def test_model_key_is_the_same_in_every_process():
    """``ModelKey.stable_key`` does not depend on Python's string hashing."""
    code = (
        "import json; from bayes_ssm.inference.engine import ModelKey; "
        "from bayes_ssm.models import StructuralTS; "
        "print(json.dumps(ModelKey(StructuralTS(trend=None, ar_order=1)).stable_key()))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**env, "PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in (1, 2)
    }
    assert len(outs) == 1
    assert json.loads(outs.pop()) == ModelKey(StructuralTS(trend=None, ar_order=1)).stable_key()


@pytest.mark.slow
def test_a_fit_from_the_store_equals_the_fit_without_it(tmp_path, x64):
    """fit_svi and the forecast draws: store off, store on (compiled and written), store on
    again with the in-process memory cleared (every program read from disk): bit for bit."""
    import bayes_ssm as bs
    from bayes_ssm.inference import engine, svi

    rng = np.random.default_rng(0)
    y = pd.Series(
        np.cumsum(rng.normal(0, 0.1, 60)),
        index=pd.date_range("2020-01-05", periods=60, freq="W-SUN"),
    )
    model = StructuralTS(trend=None, ar_order=1)
    programs = (svi._svi_init, svi._svi_steps, svi._svi_finish, engine._predict)

    def run():
        for program in programs:
            program.stored.loaded.clear()
        fit = bs.fit_svi(model, y, key=1, steps=300, check_every=100, num_samples=50)
        return fit, fit.forecast_samples(4, key=2)

    try:
        base, base_fc = run()
        ps.enable(tmp_path)
        written, written_fc = run()
        stored = [
            json.loads(_description(p))["program"].rsplit(".", 1)[1] for p in _entries(tmp_path)
        ]
        assert sorted(stored) == ["_predict", "_svi_finish", "_svi_init", "_svi_steps"]
        loaded, loaded_fc = run()
    finally:
        ps.disable()
    for other, fc in ((written, written_fc), (loaded, loaded_fc)):
        assert other.info["steps"] == base.info["steps"]
        for site, draws in base.draws.items():
            np.testing.assert_array_equal(draws, other.draws[site])
        np.testing.assert_array_equal(base_fc, fc)


def test_a_program_xla_cannot_serialise_goes_to_jit_in_the_next_process(store, monkeypatch):
    """XLA cannot serialise some CPU executables (a sort's comparator): the entry then says
    so, and the next process runs the program through ``jax.jit`` (and JAX's own cache)
    without compiling it afresh first."""
    import jax.experimental.serialize_executable as se

    def refuse(compiled):
        raise RuntimeError("UNIMPLEMENTED: `LessThan` is not serializable.")

    monkeypatch.setattr(se, "serialize", refuse)
    _equal(scaled(Factor(2.0), 3, _x()), _plain(2.0))
    (path,) = _entries(store)
    assert path.read_bytes().endswith(ps.UNSTORABLE)
    scaled.stored.loaded.clear()
    compiles = []
    monkeypatch.setattr(ps, "fresh_compile", lambda lowered: compiles.append(1))
    _equal(scaled(Factor(2.0), 3, _x()), _plain(2.0))
    assert compiles == []


def test_a_failure_inside_the_store_falls_back_to_jit(store, monkeypatch):
    """The store reads JAX internals (per-thread configuration, the compiler's cache key):
    should a JAX release move them, the call still runs, through ``jax.jit``, with jit's
    answer, and writes no entry."""

    def moved():
        raise AttributeError("module 'jax._src.config' has no attribute 'enable_x64'")

    monkeypatch.setattr(ps, "_effective_flags", moved)
    _equal(scaled(Factor(3.0), 3, _x()), _plain(3.0))
    assert _entries(store) == []


def test_prune_keeps_the_store_under_its_size_least_recently_used_first(tmp_path):
    """Entries of old package versions or series lengths are never read again: ``prune``
    removes the least recently used ``*.exe`` files until the store fits ``max_bytes``, and
    leaves every other file alone."""
    for age, name in enumerate(["new", "mid", "old", "oldest"]):
        entry = tmp_path / f"{name}.exe"
        entry.write_bytes(b"x" * 100)
        os.utime(entry, (1_000_000 - 1000 * age, 1_000_000 - 1000 * age))
    (tmp_path / "other.txt").write_bytes(b"y" * 1000)  # not the store's: never removed
    removed = ps.prune(tmp_path, max_bytes=250)
    assert sorted(p.name for p in removed) == ["old.exe", "oldest.exe"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mid.exe", "new.exe", "other.txt"]
    assert ps.prune(tmp_path, max_bytes=250) == []  # already under the limit


def test_a_read_marks_an_entry_used_and_writes_prune(store, monkeypatch):
    """A store hit refreshes the entry's time (so the entries in use survive ``prune``), and a
    write prunes the directory to ``MAX_BYTES``."""
    scaled(Factor(2.0), 3, _x())
    (entry,) = _entries(store)
    os.utime(entry, (1_000_000, 1_000_000))
    scaled.stored.loaded.clear()  # as a new process: read from disk
    _equal(scaled(Factor(2.0), 3, _x()), _plain())
    assert entry.stat().st_mtime > 1_000_000
    monkeypatch.setattr(ps, "MAX_BYTES", 0)  # a new entry: everything older goes
    old = entry.stat().st_size
    scaled(Factor(7.0), 3, _x())
    assert old > 0 and _entries(store) == []
