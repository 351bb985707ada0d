"""Parallel Kalman filter with (near-)degenerate noise: accuracy against the sequential filter,
and the cost of the fix on the normal path (issue 13).

Part 1, accuracy: the 4-state model of ``tests/test_kalman_degenerate.py`` (local linear trend
+ one trigonometric harmonic) on a series of ``--accuracy-T`` steps, with the observation, level
and seasonal variances all set to ``v`` (slope variance 0.05). Columns: ``|dll|``, the absolute
difference of the log-likelihoods, parallel minus sequential; ``grad(var)`` and ``grad(sd)``,
the largest gradient difference relative to the largest sequential gradient, w.r.t. the
variances and w.r.t. the sds (``var = sd ** 2``, what the models sample). ``--no-floor`` runs the
filter as it was before the fix (``_degenerate_floor`` off).

Part 2, speed: value+gradient of the parallel log-likelihood of the 8-state model of
``benchmarks/kalman.py`` at ``--sizes``, with and without the floor, side by side (median ms).

Usage::

    PYTHONPATH=. python benchmarks/kalman_degenerate.py
    PYTHONPATH=. python benchmarks/kalman_degenerate.py --no-floor --sizes
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import kalman as bench  # noqa: E402
from test_kalman_degenerate import _series, _ss  # noqa: E402

from bayes_ssm.kernels import kalman_log_likelihood  # noqa: E402
from bayes_ssm.kernels import kalman_parallel as kp  # noqa: E402


@contextlib.contextmanager
def floor(on: bool):
    """Trace with or without the floor; compiled programs keep what they were traced with
    (jit caches are cleared so that no inner program traced the other way is reused)."""
    original = kp._degenerate_floor
    if not on:
        kp._degenerate_floor = lambda ss, S, Az: S
    jax.clear_caches()
    try:
        yield
    finally:
        kp._degenerate_floor = original


def accuracy(num_steps, use_floor):
    y = jnp.asarray(_series(num_steps))

    def by_sd(sd, method):
        return kalman_log_likelihood(_ss(sd), y, method=method)

    def by_var(var, method):
        ss = _ss(jnp.ones(4))
        q = jnp.stack([var[1], var[2], var[3], var[3]])
        ss = ss._replace(state_cov=jnp.diag(q), obs_var=var[0])
        return kalman_log_likelihood(ss, y, method=method)

    with floor(use_floor):
        f = {
            (m, how): jax.jit(jax.value_and_grad(lambda p, m=m, fn=fn: fn(p, m)))
            for m in ("sequential", "parallel")
            for how, fn in (("var", by_var), ("sd", by_sd))
        }
        print(f"\nT = {num_steps}, floor {'on' if use_floor else 'off'}")
        print(f"{'v':>8} {'|dll|':>10} {'grad(var)':>10} {'grad(sd)':>10}")
        for v in [0.0, 1e-14, 1e-12, 1e-10, 1e-8, 1e-6, 1e-4, 1e-2]:
            row = []
            for how in ("var", "sd"):
                p = jnp.asarray([v, v, 0.05, v])
                if how == "sd":
                    p = jnp.sqrt(p)
                (a, ga), (b, gb) = f[("sequential", how)](p), f[("parallel", how)](p)
                rel = float(jnp.max(jnp.abs(gb - ga)) / jnp.max(jnp.abs(ga)))
                row.append((abs(float(b - a)), rel))
            print(f"{v:8.0e} {row[1][0]:10.1e} {row[0][1]:10.1e} {row[1][1]:10.1e}")


def speed(sizes, repeats):
    print("\nparallel value+grad, 8-state model, float64 (ms, median; on/off interleaved)")
    print(f"{'T':>8} {'floor':>9} {'no floor':>9} {'ratio':>6}")
    for num_steps in sizes:
        y = jnp.asarray(bench.simulate(num_steps))
        p = jnp.asarray(bench.PARAMS)

        def loglik(p, y):
            ss = bench.our_state_space(p, jnp.float64)
            return kp.parallel_filter(ss, y, history=False)[0]

        fns = []
        for on in (True, False):
            with floor(on):
                fn = jax.jit(jax.value_and_grad(loglik))
                bench.block(fn(p, y))  # traced and compiled now, with the floor on / off
            fns.append(fn)
        times = [[], []]
        for _ in range(repeats):
            for i, fn in enumerate(fns):
                times[i].append(bench.timeit(lambda fn=fn, p=p, y=y: bench.block(fn(p, y)), 1))
        on, off = (float(np.median(t)) for t in times)
        print(f"{num_steps:8d} {on:9.2f} {off:9.2f} {on / off:6.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--accuracy-T", type=int, default=40)
    ap.add_argument("--no-floor", action="store_true", help="also the accuracy table without it")
    ap.add_argument("--sizes", type=int, nargs="*", default=[1000, 10000, 100000])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    jax.config.update("jax_enable_x64", True)
    accuracy(args.accuracy_T, True)
    if args.no_floor:
        accuracy(args.accuracy_T, False)
    if args.sizes:
        speed(args.sizes, args.repeats)


if __name__ == "__main__":
    main()
