"""Many series: ``bs.fit_svi_many(batch="vmap")`` (one vmapped program) vs a loop of ``bs.fit_svi``.

Simulated weekly series (random-walk level + yearly seasonal + noise, scales 1 to 1e3), the same
model for all (``StructuralTS(seasonal=Seasonal(52.18, harmonics=2))``). Both paths run the
same number of SVI steps (one window, so the stopping rule never stops early) and give the same
fits (``tests/test_many.py``). Times: seconds, median of ``--repeats`` after one warm-up call
(compilation excluded); the ``first`` columns include compilation.

    PYTHONPATH=. python benchmarks/many_series.py --series 1 10 50 --steps 1000
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
import pandas as pd

import bayes_ssm as bs
from bayes_ssm.data.long_format import split_long


def simulate(num_series: int, num_steps: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2015-01-04", periods=num_steps, freq="W")
    week = np.arange(num_steps)
    frames = []
    for i in range(num_series):
        scale = 10.0 ** rng.uniform(0, 3)
        level = np.cumsum(rng.normal(0, 0.2, num_steps))
        season = rng.normal() * np.sin(2 * np.pi * week / 52.18 + rng.uniform(0, 6))
        y = scale * (level + season + rng.normal(0, 0.5, num_steps))
        frames.append(pd.DataFrame({"unique_id": f"s{i:03d}", "ds": ds, "y": y}))
    return pd.concat(frames, ignore_index=True)


def timed(fn, repeats):
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return first, float(np.median(times))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, nargs="+", default=[1, 10, 50])
    ap.add_argument("--length", type=int, default=260)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-loop", action="store_true", help="skip the loop of fit_svi")
    args = ap.parse_args(argv)
    model = bs.StructuralTS(seasonal=bs.Seasonal(52.18, harmonics=2))
    svi = dict(steps=args.steps, check_every=args.steps, num_samples=100, progress=False)
    print(
        f"# fit_svi_many vs a loop of fit_svi; {jax.default_backend()} "
        f"({jax.devices()[0].device_kind}), jax {jax.__version__}; T = {args.length}, "
        f"{args.steps} SVI steps per series; seconds (median of {args.repeats})"
    )
    num_devices = len(jax.local_devices())
    extra = f" | many on {num_devices} devices | speed-up |" if num_devices > 1 else " |"
    print("| series | loop | many | loop/many | loop first | many first" + extra)
    print("|---|---|---|---|---|---" + ("|---|---|" if num_devices > 1 else "|"))
    for num_series in args.series:
        frame = simulate(num_series, args.length)
        series = split_long(frame)
        keys = jax.random.split(jax.random.PRNGKey(0), num_series)

        def loop(series=series, keys=keys):
            pairs = zip(keys, series.values(), strict=True)
            return [bs.fit_svi(model, y, key=k, **svi) for k, y in pairs]

        def many(frame=frame, devices=None):
            return bs.fit_svi_many(model, frame, key=0, batch="vmap", devices=devices, **svi)

        nan = float("nan")
        loop_first, loop_s = (nan, nan) if args.no_loop else timed(loop, args.repeats)
        many_first, many_s = timed(many, args.repeats)
        row = (
            f"| {num_series} | {loop_s:.2f} | {many_s:.2f} | {loop_s / many_s:.1f} | "
            f"{loop_first:.2f} | {many_first:.2f} |"
        )
        if num_devices > 1:
            _, sharded_s = timed(lambda: many(devices="auto"), args.repeats)
            row += f" {sharded_s:.2f} | {many_s / sharded_s:.2f} |"
        print(row, flush=True)


if __name__ == "__main__":
    main()
