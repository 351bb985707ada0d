"""Where the time to a first forecast goes: import, tracing, lowering, XLA compilation and
running, per stage of the default forecaster (``auto_fit`` + ``StackedFit.forecast``), in one
fresh process.

JAX reports its tracing (``jaxpr_trace_duration``), lowering to MLIR
(``jaxpr_to_mlir_module_duration``) and XLA compile (``backend_compile_duration``) times
through ``jax.monitoring``; this script sums them per stage, and the rest of a stage's wall
time is running (and Python). Stages: import; per candidate the SVI fit, PSIS-LOO and
``bs.check``; the stacked forecast. Then every compiled program in order with its XLA compile
seconds (``jax_log_compiles``).

Usage::

    PYTHONPATH=. python benchmarks/profile_first_forecast.py [--n 400] [--method svi|nuts]
        [--compile-cache DIR]
"""

from __future__ import annotations

import argparse
import os
import time

T0 = time.perf_counter()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--method", default="svi", choices=["svi", "nuts"])
    parser.add_argument("--compile-cache", help="use JAX's persistent cache in this directory")
    args = parser.parse_args(argv)
    print(f"load average at start: {os.getloadavg()[0]:.1f}")

    import jax

    import bayes_ssm as bs  # noqa: F401  (the import cost)
    from bayes_ssm.data import datasets
    from bayes_ssm.inference import auto

    imported = time.perf_counter() - T0
    if args.compile_cache:
        os.makedirs(args.compile_cache, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", args.compile_cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    jax.config.update("jax_enable_x64", True)  # as the CLI
    totals: dict[str, float] = {}

    def listen(event, duration, **_):
        for name in ("jaxpr_trace", "jaxpr_to_mlir", "backend_compile"):
            if name in event:
                totals[name] = totals.get(name, 0.0) + duration

    jax.monitoring.register_event_duration_secs_listener(listen)
    compiles = _record_compiles(jax)
    rows = [("import (python, jax, numpyro, bayes_ssm)", imported, {})]

    def stage(label, fn, *args, **kwargs):
        before = dict(totals)
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        wall = time.perf_counter() - start
        rows.append((label, wall, {k: totals.get(k, 0) - before.get(k, 0) for k in totals}))
        return out

    y = datasets.load("ili").iloc[-args.n :]
    # auto_fit's stages, one by one, as auto_fit runs them
    import pandas as pd

    from bayes_ssm.inference.diagnostics import check
    from bayes_ssm.inference.fitting import fit_nuts, fit_svi

    tf = auto.resolve_transform("auto", y.to_numpy())
    z = pd.Series(tf.forward(y.to_numpy()), index=y.index)
    cands = auto.default_candidates(auto.seasonal_periods("W-SAT", z.to_numpy()))
    for i, (name, model) in enumerate(cands.items()):
        key = jax.random.fold_in(jax.random.PRNGKey(0), i)
        if args.method == "svi":
            fit = stage(f"{name}: SVI fit", fit_svi, model, z, key=key, progress=False)
            extra = f" ({fit.info['steps']} steps)"
        else:
            kw = dict(num_chains=2, num_warmup=500, num_samples=500, progress=False)
            fit = stage(f"{name}: NUTS fit", fit_nuts, model, z, key=key, **kw)
            extra = ""
        rows[-1] = (rows[-1][0] + extra, *rows[-1][1:])
        stage(f"{name}: PSIS-LOO", auto._loo, fit)
        stage(f"{name}: bs.check", check, fit, warn=False)
    stacked = stage("auto_fit again (all four; warm)", auto.auto_fit, y, key=0, method=args.method)
    stage("stacked forecast (26 weeks)", stacked.forecast, 26, key=1)
    stage("stacked forecast again (warm)", stacked.forecast, 26, key=1)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    print("\n| stage | wall s | tracing s | lowering s | XLA compile s | rest (running) s |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, wall, d in rows:
        tr, lo, co = (d.get(k, 0.0) for k in ("jaxpr_trace", "jaxpr_to_mlir", "backend_compile"))
        rest = wall - tr - lo - co if d else 0.0
        print(f"| {label} | {wall:.1f} | {tr:.1f} | {lo:.1f} | {co:.1f} | {rest:.1f} |")
    print("\n| compiled program (in order) | XLA compile s |")
    print("|---|---:|")
    for name, seconds in compiles:
        if seconds >= 0.05:
            print(f"| {name} | {seconds:.2f} |")
    print(
        f"\n{len(compiles)} programs compiled ({sum(s for _, s in compiles):.1f} s); those under "
        "0.05 s are not listed"
    )


def _record_compiles(jax) -> list[tuple[str, float]]:
    """Every XLA compilation as ``(program name, seconds)``, from ``jax_log_compiles``'s log
    lines (``Finished XLA compilation of jit(NAME) in S sec``), kept off the terminal."""
    import logging
    import re

    found: list[tuple[str, float]] = []
    pattern = re.compile(r"Finished XLA compilation of (.+) in ([0-9.eE+-]+) sec")

    class Collect(logging.Handler):
        def emit(self, record):
            match = pattern.search(record.getMessage())
            if match:
                found.append((match.group(1), float(match.group(2))))

    jax.config.update("jax_log_compiles", True)
    for name in ("jax._src.dispatch", "jax._src.interpreters.pxla"):
        logger = logging.getLogger(name)
        logger.addHandler(Collect())
        logger.propagate = False
    return found


if __name__ == "__main__":
    main()
