"""The 20-origin ILI backtest of the default forecaster, its folds fitted one by one
(``bs.AutoTS(fold_batch="loop")``) or each candidate on all folds at once
(``fold_batch="vmap"``), side by side, each mode in a fresh process (each compiles its own
programs).

The protocol of ``benchmarks/default_model.py --dataset ili``: 20 origins 13 weeks apart, the
last at n-26, training on every week before each origin (the default keeps its last 400),
26-step forecasts, one ``bs.backtest`` call. Prints, per mode, wall and process CPU seconds
(the CPU seconds do not depend much on how busy the shared machine is), the load average,
CRPS and coverage, and the largest difference between the two modes' scores.

Usage::

    PYTHONPATH=. nice -n 10 python benchmarks/backtest_batch.py [--folds 20] [--modes vmap loop]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

CHILD = """
import json, os, sys, time
t0, c0 = time.perf_counter(), time.process_time()
import jax
jax.config.update("jax_enable_x64", True)
import bayes_ssm as bs
from bayes_ssm.data import datasets
folds, mode, workers, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
workers = None if workers == "auto" else int(workers)
y = datasets.load("ili")
load0 = os.getloadavg()[0]
scores = bs.backtest(
    bs.AutoTS(fold_batch=mode, workers=workers), y, horizon=26, folds=folds, step=13,
    season=52, min_train=104, key=0, progress=False,
)
scores.attrs = {}
scores.to_csv(out, index=False)
print(json.dumps({"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0,
                  "load0": load0, "load1": os.getloadavg()[0]}))
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=20)
    parser.add_argument("--modes", nargs="+", default=["vmap", "loop"])
    parser.add_argument("--workers", default="auto", help="auto_fit workers (auto: default)")
    args = parser.parse_args(argv)
    import pandas as pd

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [".", os.environ.get("PYTHONPATH")])),
    }
    rows, frames = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes:
            out = os.path.join(tmp, f"{mode}.csv")
            start = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-c", CHILD, str(args.folds), mode, args.workers, out],
                env=env, capture_output=True, text=True,
            )  # fmt: skip
            if done.returncode:
                print(done.stderr[-3000:])
                raise SystemExit(f"{mode} failed")
            info = json.loads(done.stdout.strip().splitlines()[-1])
            scores = pd.read_csv(out)
            frames[mode] = scores
            first4 = scores[scores["horizon"] <= 4]
            rows.append(
                {
                    "fold_batch": mode,
                    "wall s": info["wall"],
                    "process CPU s": info["cpu"],
                    "load start/end": f"{info['load0']:.1f}/{info['load1']:.1f}",
                    "CRPS 1-4": first4["crps"].mean(),
                    "95% cov 1-4": first4["covered_95"].mean(),
                    "CRPS 1-26": scores["crps"].mean(),
                    "95% cov 1-26": scores["covered_95"].mean(),
                    "flagged folds": int(
                        (~scores["converged"]).groupby(scores["fold"]).any().sum()
                    ),
                    "outer wall s": time.perf_counter() - start,
                }
            )
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    print(
        f"ILI, {args.folds} origins 13 weeks apart, the last at n-26, 26 steps; default "
        f"forecaster (bs.AutoTS, workers={args.workers}); 2 shared cores"
    )
    print("| " + " | ".join(table.columns) + " |")
    print("|" + "---|" * len(table.columns))
    for row in table.itertuples(index=False):
        cells = (f"{v:.3f}" if isinstance(v, float) else str(v) for v in row)
        print("| " + " | ".join(cells) + " |")
    if len(frames) == 2:
        a, b = frames.values()
        for col in ("crps", "mean", "pit"):
            diff = (a[col] - b[col]).abs()
            print(f"largest |{col} difference| between the modes: {diff.max():.3g}")


if __name__ == "__main__":
    main()
