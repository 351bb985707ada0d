"""Rolling-origin backtest on weekly ILI: NeuralSSM, HybridTS and StructuralTS side by side.

Weekly % weighted ILI (CDC ILINet); ``--folds`` origins ``--step`` weeks apart at the end of the
series, each forecasting ``--horizon`` weeks from a sliding window of ``--window`` weeks (the
fits reuse one compiled program per model). All three models are fitted by SVI with the same
settings. Prints CRPS, MASE and interval coverage per model, and CRPS by horizon. Runs on
whatever backend JAX has (``jax.default_backend()``).

Usage::

    PYTHONPATH=. python benchmarks/neural.py --folds 6 --steps 5000 --tol 1e-3
"""

from __future__ import annotations

import argparse
import importlib
import time

import jax
import pandas as pd

from bayes_ssm.data import datasets
from bayes_ssm.models import HybridTS, NeuralSSM, StructuralTS
from bayes_ssm.priors import HalfLife

bt = importlib.import_module("bayes_ssm.evaluation.backtesting")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizon", type=int, default=4)
    parser.add_argument("--folds", type=int, default=6)
    parser.add_argument("--step", type=int, default=4)
    parser.add_argument("--window", type=int, default=260, help="training weeks (sliding)")
    parser.add_argument("--steps", type=int, default=5000, help="most SVI steps")
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--tol", type=float, default=1e-3, help="SVI convergence tolerance")
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--key", type=int, default=0)
    args = parser.parse_args(argv)

    y = datasets.load("ili")
    structural = StructuralTS(trend="local_linear", seasonal=52)
    memory = HalfLife(weeks=8, spread=1.0)
    models = {
        "StructuralTS": structural,
        "HybridTS": HybridTS(
            structural=structural,
            neural=NeuralSSM(width=4, num_layers=1, half_life=memory, step_days=7.0),
        ),
        "NeuralSSM": NeuralSSM(
            width=args.width, num_layers=2, half_life=memory, step_days=7.0, likelihood="student_t"
        ),
    }
    start = time.perf_counter()
    scores = bt.backtest(
        models,
        y,
        horizon=args.horizon,
        folds=args.folds,
        step=args.step,
        window="sliding",
        min_train=args.window,
        method="svi",
        season=52,
        baselines=["seasonal_naive", "naive"],
        fit_kwargs={"steps": args.steps, "learning_rate": args.learning_rate, "tol": args.tol},
        key=args.key,
        progress=False,
    )
    seconds = time.perf_counter() - start
    pd.set_option("display.width", 160)
    print(
        f"ILI backtest ({jax.default_backend()}): {args.folds} folds x horizon {args.horizon}, "
        f"step {args.step}, sliding window {args.window} weeks, SVI <= {args.steps} steps, "
        f"tol {args.tol}; {seconds:.0f} s in all"
    )
    summary = bt.summarize_backtest(scores)
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    # Folds whose SVI did not meet the tolerance are excluded above (and differ by model); the
    # same folds for every model, the non-converged ones scored as they are:
    every = scores.assign(converged=scores["crps"].notna())
    print("\nall folds (non-converged SVI fits included):")
    cols = ["model", "crps", "mase", "coverage_80", "coverage_95", "folds"]
    print(bt.summarize_backtest(every)[cols].to_string(index=False, float_format="{:.4f}".format))
    by_h = bt.summarize_backtest(scores, by=["model", "horizon"])
    print("\nCRPS by horizon")
    print(by_h.pivot(index="horizon", columns="model", values="crps").round(4).to_string())
    folds = scores.attrs["folds"]
    print("\nseconds per fold (mean):")
    print(folds.groupby("model")["seconds"].mean().round(2).to_string())
    problems = folds[folds["problems"].astype(bool)] if "problems" in folds else folds.iloc[:0]
    if len(problems):
        print("\nfolds excluded (diagnostics):")
        print(problems.to_string())


if __name__ == "__main__":
    main()
