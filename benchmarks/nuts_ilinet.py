"""NUTS on the full bundled ILINet (1,436 weeks, on the scale the default picks: raw, as the early
seasons hold zero weeks): wall seconds (compile included and
a second, compiled run) and the worst split R-hat / smallest bulk ESS of the fit, for one
default candidate structure (``--candidate``, default the random-walk level + yearly
season), 2 chains of ``--warmup`` + ``--draws`` (the default forecaster's NUTS settings).

Usage::

    PYTHONPATH=. python benchmarks/nuts_ilinet.py [--candidate level_seasonal_noise] \
        [--warmup 500] [--draws 500] [--mass auto|diag|dense] [--runs 2] [--devices 2]

``--candidate`` names one of ``bs.auto.default_candidates``' structures for the weekly season
(``level_seasonal_noise``, ``level_ar1``, ``level_student_t``, ``mean_ar1``; session 7 also had
``damped_trend_seasonal_noise``, gone since session 8)
or ``level`` (the constant-noise random-walk level + season of sessions 5-6). Besides the wall
seconds the table gives the mean leapfrog steps per kept draw (both chains): with the number of
iterations, the cost in gradient evaluations, which the machine's load does not change.
"""

from __future__ import annotations

import argparse
import os
import time


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidate", default="level_seasonal_noise")
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--init", default="prior")
    parser.add_argument(
        "--mass", default="auto", choices=("auto", "diag", "dense"), help="fit_nuts dense_mass"
    )
    parser.add_argument("--runs", type=int, default=2, help="1: only the compiling run")
    parser.add_argument(
        "--devices",
        type=int,
        default=1,
        help="CPU devices (set before JAX starts): 2 runs the 2 chains in parallel, one per "
        "device, as the CLI does (bayes-ssm forecast --method nuts); 1: vectorized chains",
    )
    args = parser.parse_args(argv)
    if args.devices > 1:
        import numpyro

        numpyro.set_host_device_count(args.devices)
    import jax

    jax.config.update("jax_enable_x64", True)
    import bayes_ssm as bs
    from bayes_ssm.data import datasets
    from bayes_ssm.inference import auto
    from bayes_ssm.inference.diagnostics import summary

    y = datasets.load("ili")
    tf = auto.resolve_transform("auto", y.to_numpy())  # "none": the early seasons hold zeros
    z = y.copy()
    z[:] = tf.forward(y.to_numpy())
    seasons = auto.seasonal_periods("W-SAT", z.to_numpy())
    if args.candidate == "level":
        model = bs.StructuralTS(
            trend=None, seasonal=[bs.Seasonal(p, harmonics=h) for p, h in seasons]
        )
    else:
        model = auto.default_candidates(seasons)[args.candidate]
    kw = dict(
        num_chains=2,
        num_warmup=args.warmup,
        num_samples=args.draws,
        dense_mass={"auto": "auto", "diag": False, "dense": True}[args.mass],
        progress=False,
    )
    for run in ("first (compiles)", "second (compiled)")[: args.runs]:
        load = os.getloadavg()[0]
        start = time.perf_counter()
        fit = bs.fit_nuts(model, z, key=0, init=args.init, **kw)
        wall = time.perf_counter() - start
        summ = summary(fit)
        rhat = float(summ["r_hat"].max())
        ess = float(summ["ess_bulk"].min())
        steps = float(fit.sample_stats["n_steps"].mean())
        print(
            f"| {args.candidate} | {args.warmup}+{args.draws} {args.mass} | {run} | {wall:.1f} | "
            f"{rhat:.3f} | {ess:.0f} | {steps:.1f} | {load:.1f} | {fit.info.get('chain_method')} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
