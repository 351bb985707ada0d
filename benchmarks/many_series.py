"""Thousands of series: series per second of ``fit_svi_many`` / ``fit_nuts_many`` (one vmapped
program per length, optionally sharded over devices) vs a loop of single fits and vs
statsmodels' ``UnobservedComponents`` in a loop; peak memory vs the number of series; the Dask
LocalCluster's speed-up over one process; and the check that sharded fits equal one-device fits.

Simulated weekly series (random-walk level + yearly seasonal + noise, scales 1 to 1e3), the same
model for all (``StructuralTS(seasonal=Seasonal(52.18, harmonics=2))``). SVI runs a fixed
number of steps (one window: the stopping rule never stops early); NUTS a fixed warm-up and
draws. The "many" columns time a second call (compiled), "compile" the first call's extra
seconds. Loops are timed on ``--loop-series`` series after one warm-up fit; their rate does
not depend on the number of series.

    # CPU, small sizes
    PYTHONPATH=. python benchmarks/many_series.py --series 10 100 --methods svi nuts
    # GPU(s): every local device; the sharded fits are checked against one device
    PYTHONPATH=. python benchmarks/many_series.py --series 10 100 1000 --devices all --no-sm
    # Dask LocalCluster speed-up over one process (CPU)
    PYTHONPATH=. python benchmarks/many_series.py --series 16 --methods svi --dask-workers 2
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import jax
import numpy as np
import pandas as pd

import bayes_ssm as bs
from bayes_ssm.data.atomic import atomic_path
from bayes_ssm.data.long_format import split_long

PERIOD = 52.18


def simulate(num_series: int, num_steps: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2015-01-04", periods=num_steps, freq="W")
    week = np.arange(num_steps)
    ids = np.repeat([f"s{i:05d}" for i in range(num_series)], num_steps)
    scale = 10.0 ** rng.uniform(0, 3, (num_series, 1))
    level = np.cumsum(rng.normal(0, 0.2, (num_series, num_steps)), axis=1)
    phase = rng.uniform(0, 6, (num_series, 1))
    season = rng.normal(size=(num_series, 1)) * np.sin(2 * np.pi * week / PERIOD + phase)
    y = scale * (level + season + rng.normal(0, 0.5, (num_series, num_steps)))
    return pd.DataFrame({"unique_id": ids, "ds": np.tile(ds, num_series), "y": y.ravel()})


def peak_memory_mb() -> float:
    """Peak device memory (GPU: XLA's allocator) or the process's peak RSS (CPU), in MB."""
    stats = jax.local_devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        return stats["peak_bytes_in_use"] / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


def current_rss_mb() -> float:
    """The process's resident memory now (Linux ``/proc``), in MB; NaN elsewhere."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
    except OSError:
        return float("nan")
    return pages * resource.getpagesize() / 2**20


def nuts_diagnostics(fits) -> dict:
    """Per-series NUTS diagnostics summarised over the series: the median and largest split
    r-hat (each series' worst site), the median and smallest bulk ESS (each series' worst
    site), and the share of series with at least one divergent transition."""
    from bayes_ssm.inference.fit_collection import _mcmc_diagnostics

    # fits.summary() also runs bs.check on every fit: minutes at 10,000 series
    table = pd.DataFrame(
        [
            _mcmc_diagnostics(fits[i].draws)
            | {"divergences": int(np.sum(fits[i].sample_stats.get("diverging", 0)))}
            for i in fits
        ]
    )
    r_hat, ess = table["r_hat_max"].to_numpy(float), table["ess_min"].to_numpy(float)
    return {
        "r_hat_median": float(np.nanmedian(r_hat)),
        "r_hat_max": float(np.nanmax(r_hat)),
        "share_r_hat_over_1_1": float(np.mean(r_hat > 1.1)),
        "ess_median": float(np.nanmedian(ess)),
        "ess_min": float(np.nanmin(ess)),
        "share_divergent": float(np.mean(table["divergences"].to_numpy() > 0)),
    }


def chunked(fit_many, devices, frame, chunk):
    """``fit_many(devices, frame)``, or (``chunk`` > 0) one call per ``chunk`` series (the
    same compiled program for every full chunk), the fits gathered in one collection."""
    if not chunk:
        return fit_many(devices, frame)
    groups = [g for _, g in frame.groupby("unique_id", sort=True)]
    fits = {}
    t0, c0 = time.perf_counter(), cpu_seconds()
    for start in range(0, len(groups), chunk):
        part = fit_many(devices, pd.concat(groups[start : start + chunk]))
        fits.update((i, part[i]) for i in part)
        if len(fits) % 1000 < chunk:  # progress: partial rates survive an interrupted run
            wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
            print(f"# {len(fits)} series fitted: {wall:.0f} s, {cpu:.0f} CPU s", flush=True)
    return bs.FitCollection(fits, {"chunk": chunk})


def cpu_seconds() -> float:
    """User + system CPU seconds of this process (all its threads)."""
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def timed(fn):
    t0, c0 = time.perf_counter(), cpu_seconds()
    out = fn()
    timed.cpu = cpu_seconds() - c0
    return out, time.perf_counter() - t0


def loop_rate(fit_one, series, keys, count):
    """Series per second of ``fit_one`` over ``count`` series after one warm-up fit."""
    items = list(series.items())[: count + 1]
    fit_one(items[0][1], keys[0])
    t0, c0 = time.perf_counter(), cpu_seconds()
    for k, (_, y) in zip(keys[1:], items[1:], strict=False):
        fit_one(y, k)
    loop_rate.cpu_per_series = (cpu_seconds() - c0) / (len(items) - 1)
    return (len(items) - 1) / (time.perf_counter() - t0)


def statsmodels_rate(series, count):
    from statsmodels.tsa.statespace.structural import UnobservedComponents

    def fit(y):
        uc = UnobservedComponents(
            y.to_numpy(), level="local linear trend",
            freq_seasonal=[{"period": PERIOD, "harmonics": 2}],
        )  # fmt: skip
        return uc.fit(disp=False)

    return loop_rate(lambda y, _k: fit(y), series, [None] * (count + 1), count)


def max_difference(a, b) -> float:
    """Largest absolute difference between matching fits' posterior means."""
    return max(
        float(np.max(np.abs(a[i].draws[s].mean(axis=(0, 1)) - b[i].draws[s].mean(axis=(0, 1)))))
        for i in a
        for s in a[i].draws
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--methods", nargs="+", default=["svi", "nuts"], choices=["svi", "nuts"])
    ap.add_argument("--length", type=int, default=104)
    ap.add_argument("--steps", type=int, default=500, help="SVI steps")
    ap.add_argument("--warmup", type=int, default=150, help="NUTS warm-up")
    ap.add_argument("--draws", type=int, default=150, help="NUTS draws")
    ap.add_argument("--tree-depth", type=int, default=8, help="NUTS max tree depth")
    ap.add_argument("--loop-series", type=int, default=3, help="series timed in the loops")
    ap.add_argument("--no-loop", action="store_true")
    ap.add_argument("--no-sm", action="store_true", help="skip statsmodels")
    ap.add_argument("--devices", default="1", help="'all' or a count of local devices")
    ap.add_argument("--dask-workers", type=int, default=0, help="also time a Dask LocalCluster")
    ap.add_argument("--dask-only", action="store_true", help="only the Dask comparison")
    ap.add_argument("--once", action="store_true", help="one call per size (compile included)")
    ap.add_argument(
        "--once-from", type=int, default=None, metavar="N",
        help="one call (compile included) for sizes >= N; smaller sizes are timed twice",
    )  # fmt: skip
    ap.add_argument(
        "--loop-once", action="store_true",
        help="time the loop at the first size only and reuse its rate (it does not depend on "
        "the number of series)",
    )  # fmt: skip
    ap.add_argument(
        "--chunk", type=int, default=0, metavar="K",
        help="vmap K series per call (one compiled program), calls in a Python loop",
    )  # fmt: skip
    ap.add_argument("--kalman", default="auto", choices=["auto", "sequential", "parallel"])
    ap.add_argument("--out", help="JSON file for the rows")
    args = ap.parse_args(argv)
    model = bs.StructuralTS(seasonal=bs.Seasonal(PERIOD, harmonics=2), method=args.kalman)
    local = jax.local_devices()
    count = len(local) if args.devices == "all" else int(args.devices)
    devices = local[:count]
    svi = dict(steps=args.steps, check_every=args.steps, num_samples=100, progress=False)
    nuts = dict(
        num_chains=1, num_warmup=args.warmup, num_samples=args.draws,
        max_tree_depth=args.tree_depth,
    )  # fmt: skip
    print(
        f"# {jax.default_backend()} ({local[0].device_kind}) x {count} of {len(local)}, "
        f"jax {jax.__version__}, {time.strftime('%Y-%m-%d')}; T = {args.length}; SVI "
        f"{args.steps} steps; NUTS 1 chain, {args.warmup} + {args.draws}, depth <= "
        f"{args.tree_depth}; Kalman {args.kalman}"
        + ("; ONE call per size, compile included" if args.once else ""),
        flush=True,
    )
    print("| method | series | many s | many series/s | compile s | loop series/s | "
          "loop s (extrapolated) | many / loop | statsmodels series/s | peak MB | "
          "peak - RSS before MB | sharded == 1 device |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    rows = []
    loop_rates = {}
    for method in [] if args.dask_only else args.methods:
        for n in args.series:
            frame = simulate(n, args.length)
            keys = jax.random.split(jax.random.PRNGKey(0), n)
            if method == "svi":

                def many_one(devs, frame):
                    return bs.fit_svi_many(model, frame, key=0, batch="vmap", devices=devs, **svi)

                def one(y, k):
                    return bs.fit_svi(model, y, key=k, **svi)
            else:

                def many_one(devs, frame):
                    return bs.fit_nuts_many(model, frame, key=0, batch="vmap", devices=devs, **nuts)

                def one(y, k):
                    return bs.fit_nuts(
                        model, y, key=k, chain_method="sequential", progress=False, **nuts
                    )

            rss_before = current_rss_mb()

            def many(devs, frame=frame, many_one=many_one):
                return chunked(many_one, devs, frame, args.chunk)

            fits, first = timed(lambda: many(devices))  # noqa: B023
            first_cpu = timed.cpu
            print(f"# {method}, {n} series: first call {first:.1f} s ({first_cpu:.1f} CPU s)")
            once = args.once or (args.once_from is not None and n >= args.once_from)
            if not once:
                fits, warm = timed(lambda: many(devices))  # noqa: B023
                warm_cpu = timed.cpu
            else:
                warm, warm_cpu = first, first_cpu  # compile included
            row = {
                "method": method, "series": n, "many_s": warm, "many_rate": n / warm,
                "compile_s": first - warm, "devices": count, "peak_mb": peak_memory_mb(),
                "once": once, "rss_before_mb": rss_before, "many_cpu_s": warm_cpu,
                "first_cpu_s": first_cpu, "chunk": args.chunk,
            }  # fmt: skip
            if method == "nuts":
                row.update(nuts_diagnostics(fits))
                print(f"# {method}, {n} series, diagnostics: {json.dumps(row)}", flush=True)
            need_loop = not args.no_loop and not (args.loop_once and method in loop_rates)
            need_sm = not args.no_sm and "sm" not in loop_rates
            series = split_long(frame) if need_loop or need_sm else None
            if need_loop:
                loop_rates[method] = loop_rate(one, series, keys, args.loop_series)
                loop_rates[method + "_cpu"] = loop_rate.cpu_per_series
            if method in loop_rates:
                row["loop_rate"] = loop_rates[method]
                row["loop_cpu_s_per_series"] = loop_rates[method + "_cpu"]
                print(
                    f"# CPU seconds: many {warm_cpu:.1f} ({warm_cpu / n:.3f} a series), loop "
                    f"{row['loop_cpu_s_per_series']:.3f} a series: many / loop by CPU time "
                    f"{row['loop_cpu_s_per_series'] * n / warm_cpu:.1f}x",
                    flush=True,
                )
            if need_sm:
                loop_rates["sm"] = statsmodels_rate(series, args.loop_series)
                loop_rates["sm_cpu"] = loop_rate.cpu_per_series
            if "sm" in loop_rates:
                row["sm_rate"] = loop_rates["sm"]
                row["sm_cpu_s_per_series"] = loop_rates["sm_cpu"]
            if count > 1:
                single = many(None)
                row["sharded_max_diff"] = max_difference(fits, single)
            rows.append(row)
            nan = float("nan")
            loop = row.get("loop_rate", nan)
            diff = row.get("sharded_max_diff")
            print(
                f"| {method} | {n} | {warm:.2f} | {n / warm:.1f} | "
                f"{'incl.' if once else f'{first - warm:.1f}'} | "
                f"{loop:.2f} | {n / loop:.0f} | {n / warm / loop:.1f} | "
                f"{row.get('sm_rate', nan):.2f} | "
                f"{row['peak_mb']:.0f} | {row['peak_mb'] - rss_before:.0f} | "
                f"{'-' if diff is None else f'{diff:.1e}'} |",
                flush=True,
            )
    if args.dask_workers:
        rows.append(dask_speedup(model, svi, args))
    if args.out:
        with atomic_path(args.out) as tmp, open(tmp, "w") as fh:
            json.dump(rows, fh, indent=1)


def dask_speedup(model, svi, args):
    """One process (the loop) vs a LocalCluster of ``--dask-workers`` processes, same fits,
    side by side: with XLA's default CPU threading in each worker, then with one XLA thread per
    worker; the task stream splits the cluster's wall time into fitting and overhead."""
    from distributed import Client, LocalCluster

    n = max(args.series)
    frame = simulate(n, args.length, seed=1)
    warm = simulate(2 * args.dask_workers, args.length, seed=2)
    bs.fit_svi_many(model, warm, key=0, batch="loop", **svi)
    local, local_s = timed(lambda: bs.fit_svi_many(model, frame, key=0, batch="loop", **svi))
    print(f"\n# one process, {n} series (SVI, loop, compiled): {local_s:.1f} s", flush=True)
    out = {"dask_workers": args.dask_workers, "series": n, "one_process_s": local_s}
    one_thread = {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false", "OMP_NUM_THREADS": "1"}
    for name, env in (("default threads", {}), ("1 XLA thread", one_thread)):
        with LocalCluster(
            n_workers=args.dask_workers, threads_per_worker=1, processes=True,
            dashboard_address=None, env=env,
        ) as cluster, Client(cluster) as client:  # fmt: skip
            opts = dict(batch="loop", backend="dask", scheduler=client, **svi)
            first, first_s = timed(lambda: bs.fit_svi_many(model, warm, key=0, **opts))  # noqa: B023
            with distributed_stream(client) as stream:
                remote, dask_s = timed(lambda: bs.fit_svi_many(model, frame, key=0, **opts))  # noqa: B023
        busy = sum(
            part["stop"] - part["start"]
            for task in stream.data
            for part in task.get("startstops", ())
            if part.get("action") == "compute"
        )
        diff = max(
            float(np.max(np.abs(local[i].guide_params[k] - remote[i].guide_params[k])))
            for i in local
            for k in local[i].guide_params
        )
        print(
            f"# Dask LocalCluster ({name}), {args.dask_workers} worker processes, {n} series: "
            f"cluster {dask_s:.1f} s (workers' first call, compiling: {first_s:.1f} s), "
            f"speed-up {local_s / dask_s:.2f}x; workers computing {busy:.1f} s of "
            f"{args.dask_workers * dask_s:.1f} worker-seconds; largest guide-parameter "
            f"difference from the local fits: {diff:.1e}",
            flush=True,
        )
        out[name] = {"dask_s": dask_s, "compute_s": busy, "max_diff": diff, "warm_s": first_s}
    return out


def distributed_stream(client):
    from distributed import get_task_stream

    return get_task_stream(client)


if __name__ == "__main__":
    main()
