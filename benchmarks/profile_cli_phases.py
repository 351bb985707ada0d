"""Where a CLI first forecast goes, phase by phase and program by program, in one process.

Runs ``bayes-ssm forecast`` (the default forecaster, SVI) in this process on the last ``--n``
ILI weeks, 26 weeks ahead, with its compilation cache in ``--compile-cache DIR`` (run it twice
with the same directory: the first run fills the cache, the second is the warm run a user sees
the next time). Reports

- per phase the wall and CPU seconds (``time.process_time``): import, each candidate's SVI fit,
  the stacking (PSIS-LOO, ``bs.check``), the forecast (draws, in-sample PIT,
  recalibration), the printing and CSV writing;
- per jitted program, from ``jax.monitoring``: its tracing, its lowering to MLIR, and its
  "compile" (on a warm run: computing the cache key and loading the executable from the
  cache), with the hits and misses of the persistent cache.

Usage::

    PYTHONPATH=. python benchmarks/profile_cli_phases.py --compile-cache /tmp/x/jax   # cold
    PYTHONPATH=. python benchmarks/profile_cli_phases.py --compile-cache /tmp/x/jax   # warm
"""

from __future__ import annotations

import time

T0, C0 = time.perf_counter(), time.process_time()

import argparse  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--compile-cache", required=True)
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="CLI options")
    args = parser.parse_args(argv)
    load0 = os.getloadavg()[0]

    import jax

    import bayes_ssm.cli as cli_main
    from bayes_ssm.data import datasets

    phases: list[tuple[str, float, float]] = [
        ("import (python, jax, bayes_ssm.cli)", time.perf_counter() - T0, time.process_time() - C0)
    ]
    programs: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    events: dict[str, float] = defaultdict(float)

    def on_duration(event, duration, **kw):
        name = kw.get("fun_name", "?")
        for short in ("jaxpr_trace", "jaxpr_to_mlir", "backend_compile"):
            if short in event:
                programs[name][short] += duration
                programs[name]["n_" + short] += 1
        events[event] += duration

    def on_event(event, **kw):
        events[event] += 1

    jax.monitoring.register_event_duration_secs_listener(on_duration)
    jax.monitoring.register_event_listener(on_event)

    def timed(owner, attr, label):
        fn = getattr(owner, attr)

        def wrapper(*a, **k):
            w, c = time.perf_counter(), time.process_time()
            try:
                return fn(*a, **k)
            finally:
                lab = label(a, k) if callable(label) else label
                phases.append((lab, time.perf_counter() - w, time.process_time() - c))

        setattr(owner, attr, wrapper)

    from bayes_ssm.inference import auto, fitting, stacked_fit

    count = iter(range(100))
    timed(
        fitting, "fit_svi", lambda a, k: f"SVI fit, candidate {next(count)} ({type(a[0]).__name__})"
    )
    timed(auto, "stack_candidates", "stacking: PSIS-LOO, bs.check, weights")
    timed(stacked_fit.StackedFit, "forecast", "forecast: draws, in-sample PIT, recalibration")

    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "ili.csv"
        datasets.load("ili").iloc[-args.n :].rename("ili").to_csv(csv, index_label="week")
        cli = ["forecast", "--csv", str(csv), "--date-col", "week", "--value-col", "ili"]
        cli += ["--horizon", "26", "--quiet", "--compile-cache", args.compile_cache]
        cli += ["--out", str(Path(tmp) / "fc.csv"), *args.extra]
        w, c = time.perf_counter(), time.process_time()
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):
            rc = cli_main.main(cli)
        total_cli = (time.perf_counter() - w, time.process_time() - c)
    inner = sum(p[1] for p in phases[1:]), sum(p[2] for p in phases[1:])
    phases.append(("rest of the CLI (argument checks, printing, CSV)", total_cli[0] - inner[0],
                   total_cli[1] - inner[1]))  # fmt: skip
    phases.append(("total in process", time.perf_counter() - T0, time.process_time() - C0))
    print(f"rc {rc}; load average at start {load0:.1f}, at end {os.getloadavg()[0]:.1f}")
    print("\n| phase | wall s | CPU s |\n|---|---:|---:|")
    for label, wall, cpu in phases:
        print(f"| {label} | {wall:.2f} | {cpu:.2f} |")
    print("\n| program | traced | tracing s | lowering s | compile or cache load s |")
    print("|---|---:|---:|---:|---:|")
    tot = defaultdict(float)

    def spent(item):
        return -sum(v for k, v in item[1].items() if not k.startswith("n_"))

    for name, d in sorted(programs.items(), key=spent):
        vals = [d.get(k, 0.0) for k in ("jaxpr_trace", "jaxpr_to_mlir", "backend_compile")]
        for k, v in zip(("trace", "lower", "compile"), vals, strict=True):
            tot[k] += v
        if sum(vals) >= 0.05:
            n = int(d.get("n_jaxpr_trace", 0))
            print(f"| {name} | {n} | {vals[0]:.2f} | {vals[1]:.2f} | {vals[2]:.2f} |")
    print(f"| all {len(programs)} programs | | {tot['trace']:.2f} | {tot['lower']:.2f} | "
          f"{tot['compile']:.2f} |")  # fmt: skip
    print("\njax events:")
    for event, v in sorted(events.items()):
        if "compilation_cache" in event:
            print(f"  {event}: {v:.2f}")


if __name__ == "__main__":
    main()
