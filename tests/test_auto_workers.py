"""The default's candidates fitted in threads (``auto_fit(workers=...)``): the same numbers as
one after the other, bit for bit, and the lock that keeps NumPyro's handler stack to one
thread at a time."""

from __future__ import annotations

import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from bayes_ssm.inference import threads
from bayes_ssm.inference.auto import auto_fit
from bayes_ssm.models import StructuralTS

FAST = {"steps": 200, "check_every": 100, "num_samples": 100}


def _series(n=40, seed=3):
    rng = np.random.default_rng(seed)
    y = 5.0 + np.cumsum(rng.normal(0, 0.1, n)) + rng.normal(0, 0.2, n)
    y[[7, 30]] = np.nan  # missing values are data
    return pd.Series(y, index=pd.date_range("2021-01-03", periods=n, freq="W-SUN"), name="y")


def test_threads_give_the_sequential_fit_bit_for_bit(x64):
    """Two candidates in 1 thread and in 2: the same stacking table, weights and forecast
    draws, exactly (each candidate has its own key; the programs are the same)."""
    candidates = {"level": StructuralTS(trend=None), "ar1": StructuralTS(trend=None, ar_order=1)}
    kw = {"candidates": candidates, "fit_kwargs": FAST, "recalibrate": False}
    seq, par = (auto_fit(_series(), key=4, workers=w, **kw) for w in (1, 2))
    pd.testing.assert_frame_equal(seq.table, par.table, check_exact=True)
    for name in candidates:
        for site, draws in seq.fits[name].draws.items():
            np.testing.assert_array_equal(draws, par.fits[name].draws[site])
    np.testing.assert_array_equal(
        seq.forecast_samples(5, num_samples=300, key=1),
        par.forecast_samples(5, num_samples=300, key=1),
    )


def test_workers_is_checked():
    assert threads.resolve_workers(None, 4) == min(4, threads.default_workers(99))
    assert threads.resolve_workers(8, 3) == 3
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="workers must be a positive integer"):
            threads.resolve_workers(bad, 4)


def test_worker_threads_run_under_the_callers_x64():
    """``jax.enable_x64`` is a per-thread context: a worker runs under the caller's."""
    with jax.enable_x64(True):
        dtypes = threads.map_in_threads(lambda _: jnp.ones(1).dtype, range(3), 2)
    assert dtypes == [np.dtype("float64")] * 3
    with jax.enable_x64(False):
        dtypes = threads.map_in_threads(lambda _: jnp.ones(1).dtype, range(3), 2)
    assert dtypes == [np.dtype("float32")] * 3


def test_map_in_threads_keeps_order_and_raises_the_first_error():
    assert threads.map_in_threads(lambda x: x * x, range(6), 3) == [0, 1, 4, 9, 16, 25]

    def fail_on_odd(x):
        if x % 2:
            raise KeyError(x)
        return x

    with pytest.raises(KeyError, match="1"):
        threads.map_in_threads(fail_on_odd, range(4), 2)


def test_workers_hold_the_lock_except_inside_locked_programs():
    """Outside a ``locked_jit`` call at most one worker runs (it holds the lock); a locked
    program's trace takes the lock again (never two traces at once), and a nested trace does
    not give it away."""
    inside, most, seen = [0], [0], []
    guard = threading.Lock()

    def count(delta):
        with guard:
            inside[0] += delta
            most[0] = max(most[0], inside[0])

    @threads.locked_jit
    def program(x):
        count(1)  # runs while tracing only
        time.sleep(0.02)  # without the lock, another thread would get in here
        seen.append(threads.NUMPYRO_LOCK._depth())
        with threads.NUMPYRO_LOCK.released():  # nested: must not let go
            seen.append(threads.NUMPYRO_LOCK._depth())
        count(-1)
        return x * 2.0

    def task(i):
        count(1)
        time.sleep(0.02)
        count(-1)
        return float(program(jnp.full(i + 1, 1.0)).sum())  # a new shape: a new trace

    out = threads.map_in_threads(task, range(6), 3)
    assert out == [2.0 * (i + 1) for i in range(6)]
    assert most[0] == 1
    assert seen and all(d >= 1 for d in seen)


@pytest.mark.slow
def test_fold_batches_equal_the_per_fold_loop(x64, monkeypatch):
    """``bs.backtest`` of ``AutoTS(fold_batch="vmap")``: each candidate fitted on the three
    folds in one vmapped program (two batched runs of three rows); the scores equal those of
    the per-fold ``auto_fit`` loop up to rounding (same keys; 1e-9)."""
    import bayes_ssm as bs
    from bayes_ssm.inference import auto_folds

    batches = []

    def counted(model, y, *args, **kwargs):
        batches.append(y.shape[0])
        return run_svi_many(model, y, *args, **kwargs)

    run_svi_many = auto_folds.run_svi_many
    monkeypatch.setattr(auto_folds, "run_svi_many", counted)
    candidates = {"level": StructuralTS(trend=None), "ar1": StructuralTS(trend=None, ar_order=1)}
    options = dict(candidates=candidates, fit_kwargs=FAST, recalibrate=False, fit_last=40)
    scores = {
        mode: bs.backtest(
            bs.AutoTS(fold_batch=mode, **options), _series(n=52), horizon=4, folds=3, step=2,
            season=1, key=3, progress=False,
        )
        for mode in ("vmap", "loop")
    }  # fmt: skip
    assert batches == [3, 3]
    assert scores["vmap"]["crps"].notna().all()
    for col in ("crps", "mean", "pit", "covered_95", "width_80"):
        np.testing.assert_allclose(scores["vmap"][col], scores["loop"][col], atol=1e-9)
    np.testing.assert_array_equal(scores["vmap"]["converged"], scores["loop"]["converged"])


def test_fold_batch_is_checked():
    import bayes_ssm as bs

    with pytest.raises(ValueError, match="fold_batch must be"):
        bs.AutoTS(fold_batch="pmap")
    assert bs.AutoTS(method="nuts").fit_folds([_series()] * 2, [1, 2]) is None


def test_cli_workers_option():
    import argparse

    from bayes_ssm.cli import _common

    ns = argparse.Namespace
    assert _common.workers_option(ns()) == 1
    assert _common.workers_option(ns(workers=2)) == 2
    with pytest.raises(ValueError, match="--workers must be >= 1"):
        _common.workers_option(ns(workers=0))
