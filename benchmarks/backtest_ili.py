"""Rolling-origin backtest on US influenza-like illness (CDC ILINet): StructuralTS vs baselines.

Weekly % weighted ILI; ``--folds`` origins ``--step`` weeks apart at the end of the series, each
forecasting ``--horizon`` weeks from a sliding window of ``--window`` weeks (the fits reuse one
compiled program). Prints the per-model summary (CRPS, MASE with season 52, pooled WQL,
coverage and width of the 50/80/95% intervals, folds excluded for failed diagnostics) and the
CRPS by horizon; ``--out DIR`` also writes the tidy scores and two plots.

Usage::

    PYTHONPATH=. python benchmarks/backtest_ili.py --folds 12
    PYTHONPATH=. python benchmarks/backtest_ili.py --method nuts --folds 8 --out out/ili
"""

from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path

import pandas as pd

from bayes_ssm.data import datasets
from bayes_ssm.evaluation import baselines

bt = importlib.import_module(
    "bayes_ssm.evaluation.backtesting"
)  # the module (bs.backtest is the function)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizon", type=int, default=4)
    parser.add_argument("--folds", type=int, default=12)
    parser.add_argument("--step", type=int, default=4)
    parser.add_argument("--window", type=int, default=260, help="training weeks (sliding)")
    parser.add_argument("--method", default="svi", choices=["svi", "nuts"])
    parser.add_argument("--likelihood", default="student_t")
    parser.add_argument("--key", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    from bayes_ssm.models.structural import StructuralTS

    y = datasets.load("ili")
    model = StructuralTS(trend="local_linear", seasonal=52, likelihood=args.likelihood)
    fit_kwargs = {"num_chains": 2, "num_warmup": 500, "num_samples": 500}
    start = time.perf_counter()
    scores = bt.backtest(
        model,
        y,
        horizon=args.horizon,
        folds=args.folds,
        step=args.step,
        window="sliding",
        min_train=args.window,
        method=args.method,
        season=52,
        baselines=[
            "seasonal_naive",
            "naive",
            baselines.StatsmodelsETS(),
            baselines.StatsmodelsUC(level="local linear trend"),
        ],
        fit_kwargs=fit_kwargs if args.method == "nuts" else None,
        key=args.key,
    )
    seconds = time.perf_counter() - start
    pd.set_option("display.width", 160)
    print(
        f"ILI backtest: {args.folds} folds x horizon {args.horizon}, step {args.step}, "
        f"sliding window {args.window} weeks, StructuralTS {args.likelihood} ({args.method}); "
        f"{seconds:.0f} s in all"
    )
    summary = bt.summarize_backtest(scores)
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    by_h = bt.summarize_backtest(scores, by=["model", "horizon"])
    print("\nCRPS by horizon")
    print(by_h.pivot(index="horizon", columns="model", values="crps").round(4).to_string())
    folds = scores.attrs["folds"]
    print("\nseconds per fold (mean):")
    print(folds.groupby("model")["seconds"].mean().round(2).to_string())
    if args.out:
        import matplotlib

        matplotlib.use("Agg")
        from bayes_ssm.plotting import plot_backtest_scores, plot_calibration

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        scores.to_csv(out / "ili_backtest_scores.csv", index=False)
        ax = plot_backtest_scores(scores, "crps")
        ax.figure.savefig(out / "ili_backtest_crps.png", dpi=100)
        ax = plot_calibration(bt.backtest_calibration(scores))
        ax.figure.savefig(out / "ili_backtest_calibration.png", dpi=100)


if __name__ == "__main__":
    main()
