"""The MAP start of SVI (``fit_svi(init="map")``) against the cold start, in one process.

``bs.auto_fit`` on the last ``--n`` weeks of the bundled ILI series (or other ends of it with
``--ends``), once per start per end after a warm-up fit per start (so that compiling is left
out): SVI steps per candidate, final loss, stacking weights, and the process CPU seconds of
each warm ``auto_fit`` (CPU time, not wall: the machine is shared). Prints a table.

Usage::

    PYTHONPATH=. python benchmarks/map_start.py --n 400 --ends 0 13 26
"""

from __future__ import annotations

import argparse
import os
import time

import bayes_ssm as bs
from bayes_ssm.data import datasets


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--ends", type=int, nargs="+", default=[0], help="weeks cut off the end")
    parser.add_argument("--key", type=int, default=0)
    args = parser.parse_args(argv)
    y = datasets.load("ili")
    inits = ("prior", "map")
    for init in inits:  # warm-up: compile both
        bs.auto_fit(y.iloc[-args.n :], key=args.key, fit_kwargs={"init": init}, progress=False)
    rows = []
    for end in args.ends:
        window = y.iloc[len(y) - end - args.n : len(y) - end]
        for init in inits:
            load = os.getloadavg()[0]
            cpu, wall = time.process_time(), time.perf_counter()
            fit = bs.auto_fit(window, key=args.key, fit_kwargs={"init": init}, progress=False)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            steps = {k: f.info["steps"] for k, f in fit.fits.items()}
            loss = {k: f.info["final_loss"] for k, f in fit.fits.items()}
            rows.append((end, init, steps, loss, fit.weights.round(2).to_dict(), cpu, wall, load))
    print("\n| end | start | steps per candidate | sum | final losses | weights | CPU s | wall s "
          "| load |")  # fmt: skip
    print("|---:|---|---|---:|---|---|---:|---:|---:|")
    for end, init, steps, loss, w, cpu, wall, load in rows:
        s = " / ".join(str(v) for v in steps.values())
        ls = " / ".join(f"{v:.1f}" for v in loss.values())
        ws = " / ".join(f"{v:.2f}" for v in w.values())
        print(f"| {end} | {init} | {s} | {sum(steps.values())} | {ls} | {ws} | {cpu:.1f} "
              f"| {wall:.1f} | {load:.1f} |")  # fmt: skip
    print("candidates:", ", ".join(steps))


if __name__ == "__main__":
    main()
