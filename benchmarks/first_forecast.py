"""Time to a first forecast, process start included: ours (default SVI, structural NUTS) beside
Prophet and statsmodels UnobservedComponents, each in a fresh Python process, side by side.

The series: the last ``--n`` weeks of the bundled ILI series (default 400), a 26-week forecast.
Each command runs ``--repeats`` times, alternating, in fresh processes. Our CLI runs with its
compilation cache in a fresh temporary directory: the first run is the **cold** row (everything
compiled), later runs the **warm** rows (a new process, with another ``PYTHONHASHSEED``, that
finds the programs in the cache). Prints wall seconds per run and the load average at the
start of each.

``--against DIR`` also runs the default command from another checkout (``PYTHONPATH=DIR``, its
own cache directory), alternating with this one, for a before/after ratio in one run;
``--ours-only`` leaves out the NUTS row and the peers. ``--workers N [N ...]`` runs the default
command once per thread count (``--workers``: the candidates fitted in that many threads; each
its own cache directory), alternating, for a side-by-side comparison; the table then also gives
each run's process CPU seconds (user + system of the child).

Usage::

    PYTHONPATH=. python benchmarks/first_forecast.py --repeats 2
    PYTHONPATH=. python benchmarks/first_forecast.py --repeats 2 --ours-only --against /work/main
    PYTHONPATH=. python benchmarks/first_forecast.py --repeats 2 --ours-only --workers 1 2
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

PEER = {
    "prophet": """
import pandas as pd, logging
logging.getLogger("cmdstanpy").setLevel(logging.WARNING)
from prophet import Prophet
from bayes_ssm.data import datasets
y = datasets.load("ili").iloc[-{n}:]
m = Prophet().fit(pd.DataFrame({{"ds": y.index, "y": y.to_numpy()}}))
fc = m.predict(m.make_future_dataframe(26, freq="W-SAT"))
print(fc[["yhat_lower", "yhat_upper"]].tail(1))
""",
    "statsmodels UC": """
import numpy as np
from statsmodels.tsa.statespace.structural import UnobservedComponents
from bayes_ssm.data import datasets
y = np.log(datasets.load("ili").iloc[-{n}:].to_numpy())
res = UnobservedComponents(y, level="local level",
    freq_seasonal=[{{"period": 52.18, "harmonics": 3}}]).fit(disp=False)
print(np.exp(res.get_forecast(26).conf_int()[-1]))
""",
}


def ours(kind: str, n: int, cache: str, jax_dir: str = "jax", workers=None) -> list[str]:
    from pathlib import Path

    csv = Path(cache) / "ili.csv"
    if not csv.exists():
        from bayes_ssm.data import datasets

        datasets.load("ili").iloc[-n:].rename("ili").to_csv(csv, index_label="week")
    argv = [sys.executable, "-m", "bayes_ssm.cli", "forecast", "--csv", str(csv)]
    argv += ["--date-col", "week", "--value-col", "ili", "--horizon", "26", "--quiet"]
    argv += ["--compile-cache", str(Path(cache) / jax_dir)]
    if kind == "nuts":
        argv += ["--model", "structural", "--method", "nuts"]
    if workers is not None:
        argv += ["--workers", str(workers)]
    return argv


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--against", help="another checkout whose default also runs (before/after)")
    parser.add_argument("--ours-only", action="store_true", help="no NUTS row, no peers")
    parser.add_argument(
        "--workers", type=int, nargs="+", help="run the default once per thread count"
    )
    args = parser.parse_args(argv)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [".", os.environ.get("PYTHONPATH")])),
    }
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        commands = {"bayes-ssm forecast (default, SVI)": ours("svi", args.n, cache)}
        for w in args.workers or ():
            commands[f"bayes-ssm forecast (default, SVI) --workers {w}"] = ours(
                "svi", args.n, cache, jax_dir=f"jax-w{w}", workers=w
            )
        if args.workers:
            del commands["bayes-ssm forecast (default, SVI)"]
        paths = {}
        if args.against:
            name = f"bayes-ssm forecast (default, SVI) from {args.against}"
            commands[name] = ours("svi", args.n, cache, jax_dir="jax-against")
            paths[name] = args.against
        if not args.ours_only:
            commands["bayes-ssm forecast --model structural --method nuts"] = ours(
                "nuts", args.n, cache
            )
            for name, code in PEER.items():
                commands[name] = [sys.executable, "-c", code.format(n=args.n)]
        for rep in range(args.repeats):
            for name, cmd in commands.items():
                load = os.getloadavg()[0]
                start, before = time.perf_counter(), os.times()
                run_env = {**env, "PYTHONHASHSEED": str(rep + 1)}
                if name in paths:
                    run_env["PYTHONPATH"] = paths[name]
                # ``python -m`` puts the working directory first on sys.path: the other
                # checkout's runs start in it, or they would import this checkout's package
                done = subprocess.run(
                    cmd,
                    env=run_env,
                    capture_output=True,
                    text=True,
                    timeout=1800,
                    cwd=paths.get(name),
                )
                seconds = time.perf_counter() - start
                after = os.times()
                cpu = (after.children_user - before.children_user) + (
                    after.children_system - before.children_system
                )
                if done.returncode:
                    print(done.stderr[-2000:])
                cache_state = ("cold" if rep == 0 else "warm") if "bayes-ssm" in name else "-"
                rows.append((rep + 1, name, cache_state, seconds, cpu, load, done.returncode))
                print(f"run {rep + 1}: {name}: {seconds:.1f} s (load {load:.1f})", flush=True)
    print("\n| run | command | compile cache | wall s | CPU s | load average at start | rc |")
    print("|---|---|---|---:|---:|---:|---:|")
    for rep, name, cache_state, seconds, cpu, load, rc in rows:
        print(f"| {rep} | {name} | {cache_state} | {seconds:.1f} | {cpu:.1f} | {load:.1f} | {rc} |")


if __name__ == "__main__":
    main()
