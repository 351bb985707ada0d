"""``bayes-ssm backtest``: rolling-origin evaluation of the default forecaster (and baselines).

Prints CRPS, 80/95% coverage and width per model, then the default's coverage and PIT by
horizon step (calibration you can see), and writes the tidy scores as CSV.
"""

from __future__ import annotations

import time
from pathlib import Path

from bayes_ssm.cli import _common
from bayes_ssm.cli._io import add_date_args

NAME = "backtest"

_BASELINES = ("naive", "seasonal_naive", "ets", "uc", "prophet")


def add_parser(sub):
    bt = sub.add_parser(
        "backtest",
        help="rolling-origin backtest of the default forecaster: CRPS, coverage, PIT",
        description="Refit the default forecaster at rolling origins (each on all data before "
        "the origin), forecast --horizon steps and score against what came next: CRPS, "
        "coverage and width of the 80/95%% intervals, PIT by horizon. Baselines run on the "
        "same folds.",
    )
    src = bt.add_argument_group("data (one of --dataset or --csv)")
    one = src.add_mutually_exclusive_group(required=True)
    one.add_argument("--dataset", help="bundled dataset name (e.g. ili)")
    one.add_argument("--csv", type=Path, help="CSV file with a date column and a value column")
    src.add_argument("--date-col", help="date column of --csv")
    src.add_argument("--value-col", help="value column of --csv (or of a multi-column dataset)")
    src.add_argument("--freq", help="frequency when it cannot be inferred (e.g. W-SAT, D)")
    add_date_args(src)
    plan = bt.add_argument_group("folds")
    plan.add_argument("--horizon", type=int, required=True, help="steps forecast per origin")
    plan.add_argument("--folds", type=int, default=10, help="number of origins (default 10)")
    plan.add_argument("--step", type=int, default=None, help="steps between origins (horizon)")
    mod = bt.add_argument_group("model")
    mod.add_argument(
        "--transform", choices=["auto", "log", "none"], default="auto", help="as in forecast"
    )
    _common.add_recalibrate_arg(mod)
    _common.add_workers_arg(mod)
    mod.add_argument(
        "--method",
        choices=["svi", "nuts"],
        default="svi",
        help="svi: variational fits (default, fast); nuts: sample each fold's posterior",
    )
    mod.add_argument(
        "--baselines",
        nargs="*",
        default=["seasonal_naive"],
        choices=_BASELINES,
        help="baselines on the same folds (default seasonal_naive)",
    )
    mod.add_argument("--seed", type=int, default=0, help="random seed: same seed, same result")
    out = bt.add_argument_group("output")
    out.add_argument("--out", type=Path, help="tidy scores CSV to write")
    out.add_argument("--quiet", action="store_true", help="no progress bar")
    _common.add_cache_args(out)
    return bt


def run(args, parser) -> int:
    for name in ("horizon", "folds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be positive")
    if args.step is not None and args.step < 1:
        parser.error("--step must be positive")
    cache = _common.compile_cache_dir(args)
    if cache is not None:
        _common.enable_compile_cache(cache)
    return _backtest(args)


def _backtest(args) -> int:
    import pandas as pd

    from bayes_ssm.data.validation import as_series_data
    from bayes_ssm.evaluation.backtesting import backtest, summarize_backtest
    from bayes_ssm.inference.auto import AutoTS

    y = _common.load_series(args)
    full = as_series_data(y, freq=args.freq)
    y = pd.Series(full.y, index=full.index, name=full.name)
    args.seasonal_period = None
    period = _common.season(args, full.freq)
    season = max(1, int(round(period))) if period else 1
    runners = {
        "default": AutoTS(
            transform=args.transform,
            method=args.method,
            recalibrate=_common.recalibrate_option(args),
            workers=_common.workers_option(args),
        )
    }
    # two seasons of training before the first origin when the series has them; the default
    # forecaster keeps a season only when its window holds three cycles, so shorter is fine
    step = args.step or args.horizon
    first_origin = len(y) - (args.folds - 1) * step - args.horizon
    min_train = max(min(2 * season, first_origin), 30)
    start = time.perf_counter()
    scores = backtest(
        runners,
        y,
        horizon=args.horizon,
        folds=args.folds,
        step=args.step,
        baselines=args.baselines,
        season=season,
        min_train=min_train,
        key=args.seed,
        progress=not args.quiet,
    )
    elapsed = time.perf_counter() - start
    pd.set_option("display.width", 160)
    print(
        f"series {full.name!r}: {len(y)} steps; {args.folds} origins, {args.horizon} steps "
        f"each, {args.step or args.horizon} apart; {elapsed:.0f} s; default forecaster "
        f"recalibrate={runners['default'].recalibrate}"
    )
    table = summarize_backtest(scores)
    cols = [c for c in ("model", "crps", "coverage_80", "coverage_95", "width_80", "width_95",
                        "folds", "folds_excluded") if c in table.columns]  # fmt: skip
    print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print("\ndefault: coverage and PIT by horizon (all folds; uniform PIT: mean 0.5, sd 0.289)")
    print(calibration_by_horizon(scores, "default").to_string(float_format=lambda v: f"{v:.3f}"))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        scores.to_csv(args.out, index=False, float_format="%.6g")
        print(f"wrote {args.out}")
    return 0


def calibration_by_horizon(scores, model: str):
    """Per horizon step: CRPS, 80/95% coverage, PIT mean and sd, share of PIT in each tail
    (below 0.025 / above 0.975), over every fold of ``model``."""
    part = scores[scores["model"] == model]
    grouped = part.groupby("horizon")
    return grouped.agg(
        crps=("crps", "mean"),
        coverage_80=("covered_80", "mean"),
        coverage_95=("covered_95", "mean"),
        pit_mean=("pit", "mean"),
        pit_sd=("pit", "std"),
        pit_below_2_5=("pit", lambda p: float((p < 0.025).mean())),
        pit_above_97_5=("pit", lambda p: float((p > 0.975).mean())),
    )
