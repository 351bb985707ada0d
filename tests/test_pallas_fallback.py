"""Every Pallas kernel family falls back to its pure-JAX form, with one warning, when it cannot run.

Issue 16 asks that the next JAX release (which may drop Pallas' Triton lowering) not silently
leave us on the slow path, nor break us. For each family (the linear recurrence, the fused
selective scan, the fused SSD) and each way it can fail, ``auto`` on a GPU must choose the
pure-JAX form, warn once per process, and give that form's numbers:

(a) the kernel cannot be tried: the private Triton scan hook is missing (recurrence, selective)
    or Pallas' Triton backend is missing (SSD; :mod:`bayes_ssm.kernels.pallas_gpu`);
(b) the kernel fails to build: on this CPU the backend is made to say "gpu", so the run-time
    check really compiles the kernel without Pallas' interpreter, which the CPU refuses;
(c) the kernel gives wrong numbers (replaced by a wrong one).

The GPU test breaks ``pallas_call``'s Triton lowering itself and checks the three families.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bayes_ssm.kernels.ssd_dispatch as ssd_dispatch
import bayes_ssm.kernels.ssd_fused as ssd_fused
from bayes_ssm.kernels import fast_path, linear_recurrence, pallas_gpu, selective, tile_scan
from bayes_ssm.kernels.recurrence import choose_method
from bayes_ssm.kernels.reference import selective_scan_ref
from bayes_ssm.kernels.selective import selective_scan
from bayes_ssm.kernels.ssd import ssd


@pytest.fixture(autouse=True)
def _fresh_verdicts():
    fast_path.reset_fast_path_checks()
    yield
    fast_path.reset_fast_path_checks()


def _fake_gpu(monkeypatch):
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")


def _ssd_inputs():
    k = jax.random.split(jax.random.key(2), 4)
    x = jax.random.normal(k[0], (1, 24, 2, 16))
    dt = jax.random.uniform(k[1], (1, 24, 2), minval=0.05, maxval=0.5)
    B, C = (jax.random.normal(kk, (1, 24, 1, 16)) for kk in k[2:])
    return x, dt, -jnp.ones(2), B, C


def _recurrence_inputs():
    rng = np.random.default_rng(3)
    a = rng.uniform(0.9, 1.0, (2**14, 1)).astype(np.float32)  # long enough for the kernel
    return a, rng.normal(size=a.shape).astype(np.float32)


def _selective_inputs():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(1, 40, 8)).astype(np.float32)
    dt = rng.uniform(0.05, 0.5, x.shape).astype(np.float32)
    A = -rng.uniform(0.5, 2.0, (8, 4)).astype(np.float32)
    B, C = (rng.normal(size=(1, 40, 4)).astype(np.float32) for _ in range(2))
    return x, dt, A, B, C


def _break(monkeypatch, family, case):
    """Make ``family``'s kernel fail in way ``case`` (a, b or c) on the faked GPU."""
    if case == "a":
        if family == "ssd":
            monkeypatch.setattr(pallas_gpu, "_AVAILABLE", False)
        else:
            monkeypatch.setattr(tile_scan, "_TRITON_SCAN", False)
    elif case == "b":  # the CPU refuses to compile a pallas_call outside the interpreter
        monkeypatch.setattr(tile_scan, "_TRITON_SCAN", True)
    elif family == "ssd":
        from bayes_ssm.kernels.ssd_algorithms import chunked_form

        def wrong(x, log_a, B, C, h0, chunk, *args, **kwargs):  # right shape, wrong sign
            y, final = chunked_form(x, log_a, B, C, h0, chunk, "sequential", None)
            return -y, final

        monkeypatch.setattr(ssd_fused, "chunked_form_fused", wrong)
    elif family == "recurrence":
        monkeypatch.setattr(tile_scan, "_TRITON_SCAN", True)
        monkeypatch.setattr(
            "bayes_ssm.kernels.recurrence_pallas.linear_recurrence_pallas", lambda a, b: b
        )
    else:
        monkeypatch.setattr(tile_scan, "_TRITON_SCAN", True)
        monkeypatch.setattr(selective, "selective_scan_fused", lambda x, *a, **k: (x, None))


_WHY = {"a": "Triton backend|hook", "b": "Error", "c": "differs"}
_KERNEL = {"ssd": "ssd_fused", "recurrence": "linear_recurrence_pallas",
           "selective": "selective_scan_fused"}  # fmt: skip


def _auto_and_slow(family):
    """``auto``'s output and the pure-JAX form's (computed the same way, on the faked GPU)."""
    if family == "ssd":
        args = _ssd_inputs()
        run = lambda fused: jax.jit(lambda *a: ssd(*a, chunk_size=16, fused=fused))(*args)  # noqa: E731
        return run("auto"), run(False)
    if family == "recurrence":
        args = _recurrence_inputs()
        run = lambda m: jax.jit(lambda *a: linear_recurrence(*a, method=m))(*args)  # noqa: E731
        return run("auto"), run("associative")
    args = _selective_inputs()
    auto = jax.jit(lambda *a: selective_scan(*a, method="auto"))(*args)
    return auto, selective_scan_ref(*args)


def _dispatch(family):
    """Ask ``family``'s ``auto`` dispatcher again (whether it would run the kernel)."""
    if family == "ssd":
        return ssd_dispatch.use_fused("auto", jnp.float32, 16, 16, 16)
    if family == "recurrence":
        return choose_method(2**15, dtype=np.float32) == "pallas"
    return selective._use_fused("auto", jnp.float32, False, None)


# The recurrence's (b) and (c) are also fast tests of tests/test_selective_fused.py: slow here.
_SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    ("family", "case"),
    [("ssd", "a"), ("ssd", "b"), ("ssd", "c"), ("recurrence", "a"),
     pytest.param("recurrence", "b", marks=_SLOW), pytest.param("recurrence", "c", marks=_SLOW),
     ("selective", "a"), ("selective", "b"), ("selective", "c")],
)  # fmt: skip
def test_auto_falls_back_with_one_warning(monkeypatch, family, case):
    _fake_gpu(monkeypatch)
    _break(monkeypatch, family, case)
    match = f"{_KERNEL[family]}.*({_WHY[case]})"
    with pytest.warns(RuntimeWarning, match=match) as caught:
        assert not _dispatch(family)
    assert len([w for w in caught if issubclass(w.category, RuntimeWarning)]) == 1
    with warnings.catch_warnings():  # the verdict is kept: no second warning, no kernel
        warnings.simplefilter("error")
        assert not _dispatch(family)


@pytest.mark.parametrize("family", ["ssd", "recurrence", "selective"])
def test_the_fallback_gives_the_pure_jax_numbers(monkeypatch, family):
    # Once the dispatcher says no (for whichever reason above), auto runs the pure-JAX form.
    _fake_gpu(monkeypatch)
    _break(monkeypatch, family, "a")
    with pytest.warns(RuntimeWarning, match=_KERNEL[family]):
        got, want = _auto_and_slow(family)
    if family == "selective":  # auto ran the associative scan; the reference is a loop
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)
    else:  # the same pure-JAX computation: bit for bit
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_cpu_auto_never_tries_a_kernel():
    # On the CPU nothing is checked or warned: the sequential / XLA forms, as before.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert choose_method(2**20, dtype=np.float32) == "sequential"
        assert not selective._use_fused("auto", jnp.float32, False, None)
        assert not ssd_dispatch.use_fused("auto", jnp.float32, 64, 64, 64)


def test_only_the_shim_imports_the_triton_backend():
    # A JAX without jax.experimental.pallas.triton must not break `import bayes_ssm`: every
    # kernel imports `plgpu` from bayes_ssm.kernels.pallas_gpu.
    root = pathlib.Path(pallas_gpu.__file__).parents[1]
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if path.name != "pallas_gpu.py"
        and ("pallas import triton" in (text := path.read_text()) or "pallas.triton" in text)
        and "jax._src.pallas.triton" not in text  # the private scan hook, guarded in tile_scan
    ]
    assert offenders == []


def test_import_and_fallback_in_a_jax_without_the_triton_backend():
    # A fresh process where `import jax.experimental.pallas.triton` fails: bayes_ssm imports,
    # the shim says so, and fused="auto" on a (faked) GPU warns once and runs the XLA form.
    code = """
import sys, warnings
sys.modules["jax.experimental.pallas.triton"] = None
import jax, jax.numpy as jnp, numpy as np
import bayes_ssm
from bayes_ssm.kernels import pallas_gpu, ssd_dispatch
assert not pallas_gpu.triton_pallas_available()
try:
    pallas_gpu.plgpu.CompilerParams(num_warps=4)
    raise SystemExit("the stand-in did not raise")
except ImportError:
    pass
jax.default_backend = lambda: "gpu"
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    assert not ssd_dispatch.use_fused("auto", jnp.float32, 64, 64, 64)
    assert not ssd_dispatch.use_fused("auto", jnp.float32, 64, 64, 64)
assert len(caught) == 1 and "Triton backend" in str(caught[0].message), caught
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


# ---------------------------------------------------------------------------------------------
# GPU: pallas_call's Triton lowering made to fail; every family falls back.
# ---------------------------------------------------------------------------------------------


def _break_triton_lowering(monkeypatch):
    from jax._src.pallas import core as pallas_core
    from jax._src.pallas.triton import core as triton_core
    from jax._src.pallas.triton import pallas_call_registration as registration

    def broken(*args, **kwargs):
        raise RuntimeError("the Pallas Triton lowering is unavailable (test)")

    rules = getattr(pallas_core, "_backend_lowering_rules", None)
    if rules is not None and triton_core.CompilerParams in rules:
        monkeypatch.setitem(rules, triton_core.CompilerParams, (broken, "gpu"))
    monkeypatch.setattr(registration, "pallas_call_lowering", broken)


@pytest.mark.gpu
def test_gpu_every_family_falls_back_when_the_triton_lowering_fails(monkeypatch):
    from bayes_ssm.kernels.recurrence_pallas import linear_recurrence_pallas

    jax.clear_caches()  # compiled kernels of earlier tests must not hide the broken lowering
    _break_triton_lowering(monkeypatch)
    with pytest.raises(Exception, match="unavailable"):  # the break took effect
        ones = jnp.ones((64, 8))
        jax.block_until_ready(jax.jit(linear_recurrence_pallas)(ones, ones))
    k = jax.random.split(jax.random.key(5), 6)
    x = jax.random.normal(k[0], (2, 512, 4, 64))
    dt = jax.random.uniform(k[1], (2, 512, 4), minval=0.05, maxval=0.5)
    B, C = (jax.random.normal(kk, (2, 512, 1, 64)) for kk in k[2:4])
    A = -jnp.ones(4)
    a = jax.random.uniform(k[4], (2**15, 64), minval=0.9, maxval=1.0)
    b = jax.random.normal(k[5], (2**15, 64))
    xs, dts, As, Bs, Cs = _selective_inputs()
    with pytest.warns(RuntimeWarning) as caught:
        y_ssd = ssd(x, dt, A, B, C, chunk_size=64)
        h = linear_recurrence(a, b, method="auto")
        y_sel = selective_scan(xs, dts, As, Bs, Cs, method="auto")
    names = sorted(n for n in _KERNEL.values() if any(n in str(w.message) for w in caught))
    assert names == sorted(_KERNEL.values()), [str(w.message) for w in caught]
    np.testing.assert_array_equal(
        np.asarray(y_ssd), np.asarray(ssd(x, dt, A, B, C, chunk_size=64, fused=False))
    )
    np.testing.assert_array_equal(
        np.asarray(h), np.asarray(linear_recurrence(a, b, method="associative"))
    )
    y_slow = selective_scan(xs, dts, As, Bs, Cs, method="associative")
    np.testing.assert_allclose(np.asarray(y_sel), np.asarray(y_slow), rtol=1e-6, atol=1e-6)
    jax.clear_caches()
