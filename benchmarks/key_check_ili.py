"""``bs.check_keys`` on ILI protocol origins: do refits with other keys agree? (issue 15)

For each model and origin (the 20-origin protocol of ``benchmarks/layers_ili.py``: origins 13
weeks apart, the last at n-26, a sliding window of ``--window`` weeks), fits the model once
per key with the package's SVI defaults and prints each run's final loss (mean of the last 500
steps, batch-means standard error), steps and convergence, then per pair of keys the loss gap
(nats, standard errors), the largest gap between the forecast medians (in 50%-interval widths)
and whether the check flags it, and the CRPS (steps 1-4, 1-26) of each run against the
held-out weeks.

Usage::

    PYTHONPATH=. python benchmarks/key_check_ili.py --origins 10 --keys 1 2 3 \\
        --models "NeuralSSM s4d" HybridTS StructuralTS
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

from bayes_ssm.data import datasets
from bayes_ssm.evaluation import metrics
from bayes_ssm.inference.key_check import check_keys
from bayes_ssm.models import HybridTS, NeuralSSM, StructuralTS

FOLDS, STEP, HORIZON = 20, 13, 26


def models():
    return {
        "StructuralTS": StructuralTS(trend="local_linear", seasonal=52),
        "HybridTS": HybridTS(
            structural=StructuralTS(trend="local_linear", seasonal=52),
            neural=NeuralSSM(width=4, num_layers=1),
        ),
        **{f"NeuralSSM {layer}": NeuralSSM(layer=layer) for layer in ("s4d", "selective")},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--origins", type=int, nargs="+", default=[10], help="1..20")
    parser.add_argument("--keys", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--models", nargs="+", default=["NeuralSSM s4d", "HybridTS"])
    parser.add_argument("--window", type=int, default=417)
    parser.add_argument("--num-samples", type=int, default=500)
    parser.add_argument(
        "--schedule", default=None, help="fit_svi's schedule (default: each model's own)"
    )
    args = parser.parse_args(argv)
    y = datasets.load("ili")
    last = len(y) - HORIZON
    chosen = {k: v for k, v in models().items() if k in args.models}
    if not chosen:
        raise SystemExit(f"--models must name some of {sorted(models())}")
    for origin in args.origins:
        cut = last - STEP * (FOLDS - origin)
        train, test = y.iloc[cut - args.window : cut], y.iloc[cut : cut + HORIZON]
        for name, model in chosen.items():
            load0, start = os.getloadavg()[0], time.perf_counter()
            res = check_keys(
                model,
                train,
                keys=args.keys,
                horizon=HORIZON,
                warn=False,
                num_samples=args.num_samples,
                schedule=args.schedule,
            )
            wall = time.perf_counter() - start
            per_step = []
            for f in res.fits:
                draws = f.forecast_samples(HORIZON)
                per_step.append(np.asarray(metrics.crps(test.to_numpy(), draws, pointwise=True)))
            losses = res.losses.assign(
                crps_1_4=[c[:4].mean() for c in per_step], crps_1_26=[c.mean() for c in per_step]
            )
            print(
                f"\n== {name} ({res.fits[0].info['schedule']}), origin {origin} (train to "
                f"{train.index[-1].date()}), keys "
                f"{args.keys}: {'agree' if res.ok else 'FLAGGED'}; {wall:.0f} s for "
                f"{len(args.keys)} fits, load {load0:.1f} -> {os.getloadavg()[0]:.1f}"
            )
            with pd.option_context("display.width", 160, "display.precision", 3):
                print(losses.to_string())
                print(res.pairs.to_string())


if __name__ == "__main__":
    main()
