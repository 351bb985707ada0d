"""Time the README's main job (``bayes-ssm forecast --dataset ili ...``) end to end.

Runs the CLI in fresh processes (cold start: imports, compilation, sampling, plot), so the
numbers are what ``make demo`` costs after installation. Prints one row per configuration:
wall-clock and CPU seconds, and the ratio to the default configuration.

    PYTHONPATH=. python benchmarks/infer_demo.py [--repeats 1] [--chains 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

CONFIGS = {
    "default (2 chains, parallel)": [],
    "vectorized chains": ["--env", "XLA_FLAGS=--xla_force_host_platform_device_count=1"],
    "svi": ["--method", "svi"],
}


def run(extra: list[str], out_dir: str) -> tuple[float, float]:
    env = dict(os.environ)
    args = list(extra)
    if args[:1] == ["--env"]:
        key, value = args[1].split("=", 1)
        env[key] = value
        args = args[2:]
    cmd = [
        sys.executable,
        "-m",
        "bayes_ssm.cli",
        "forecast",
        "--dataset",
        "ili",
        "--horizon",
        "26",
        "--method",
        "nuts",
        "--out",
        f"{out_dir}/fc.csv",
        "--plot",
        f"{out_dir}/fc.png",
        "--quiet",
        *args,
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in CONFIGS.items():
            walls, cpus = zip(*(run(extra, tmp) for _ in range(args.repeats)), strict=True)
            rows.append((name, min(walls), min(cpus)))
    base = rows[0][1]
    print(f"| configuration | wall s (min of {args.repeats}) | CPU s | wall / default |")
    print("|---|---:|---:|---:|")
    for name, wall, cpu in rows:
        print(f"| {name} | {wall:.1f} | {cpu:.1f} | {wall / base:.2f} |")
    print(f"\n{os.cpu_count()} CPU cores; load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
