"""NUTS on the full bundled ILINet (1,436 weeks, on the scale the default picks: raw, as the early
seasons hold zero weeks): wall seconds (compile included and
a second, compiled run) and the worst split R-hat / smallest bulk ESS of the fit, for one
default candidate structure (``--candidate``, default the random-walk level + yearly
season), 2 chains of ``--warmup`` + ``--draws`` (the default forecaster's NUTS settings).

Usage::

    PYTHONPATH=. python benchmarks/nuts_ilinet.py [--candidate level] [--warmup 500] [--draws 500]
"""

from __future__ import annotations

import argparse
import os
import time


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidate", default="level")
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--init", default="prior")
    args = parser.parse_args(argv)
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
    model = auto.default_candidates(auto.seasonal_periods("W-SAT", z.to_numpy()))[args.candidate]
    kw = dict(num_chains=2, num_warmup=args.warmup, num_samples=args.draws, progress=False)
    for run in ("first (compiles)", "second (compiled)"):
        load = os.getloadavg()[0]
        start = time.perf_counter()
        fit = bs.fit_nuts(model, z, key=0, init=args.init, **kw)
        wall = time.perf_counter() - start
        summ = summary(fit)
        rhat = float(summ["r_hat"].max())
        ess = float(summ["ess_bulk"].min())
        print(
            f"| {args.candidate} | {len(z)} | {run} | {wall:.1f} | {rhat:.3f} | {ess:.0f} | "
            f"{load:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
