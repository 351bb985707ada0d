"""``bayes-ssm forecast``: the default forecaster (or one structural model) on one series; writes
its forecast CSV and plot."""

from __future__ import annotations

import time
from pathlib import Path

from bayes_ssm.cli import _common
from bayes_ssm.cli._io import check_outputs

NAME = "forecast"

_LABELS = {"ili": ("US influenza-like illness (CDC ILINet)", "% weighted ILI")}


def add_parser(sub):
    fc = sub.add_parser(
        "forecast",
        help="fit a model to one series and forecast it",
        description="Forecast one series with the default forecaster (structural candidates "
        "chosen from the data and combined by Bayesian stacking; --model structural for one "
        "model of your choice) and write the forecast (mean, median, credible intervals) as "
        "CSV, optionally as a fan chart.",
    )
    src = fc.add_argument_group("data (one of --dataset or --csv)")
    one = src.add_mutually_exclusive_group(required=True)
    _common.add_series_args(src, one)
    _common.add_model_args(fc.add_argument_group("model"), auto=True)
    inf = fc.add_argument_group("inference")
    _common.add_inference_args(inf)
    fc.set_defaults(method=None)  # svi for --model auto, nuts for --model structural
    _common.add_cache_args(inf)
    out = fc.add_argument_group("output")
    out.add_argument("--horizon", type=int, required=True, help="steps to forecast")
    out.add_argument(
        "--prob",
        type=float,
        nargs="+",
        default=[0.8, 0.95],
        help="interval levels in (0, 1)",
    )
    out.add_argument("--out", type=Path, help="forecast CSV to write")
    out.add_argument("--plot", type=Path, help="fan chart PNG to write")
    out.add_argument("--title", help="title of the fan chart (default: from the series)")
    out.add_argument("--ylabel", help="y-axis label of the fan chart (default: the series' name)")
    out.add_argument("--save-fit", type=Path, help="also save the fit (netCDF) here")
    out.add_argument("--quiet", action="store_true", help="no progress bar")
    return fc


def run(args, parser) -> int:
    _common.check_positive(args, parser)
    _common.check_model_options(args)
    if args.method is None:
        args.method = "svi" if args.model == "auto" else "nuts"
    _common.set_chain_devices(args.chains)
    cache = _common.compile_cache_dir(args)
    if cache is not None:
        _common.enable_compile_cache(cache)
    if args.model == "auto":
        return _forecast_auto(args)
    return _forecast(args, parser)


def _forecast_auto(args) -> int:
    import pandas as pd

    from bayes_ssm.data.validation import as_series_data
    from bayes_ssm.inference.auto import auto_fit
    from bayes_ssm.inference.fit import check_forecast_size
    from bayes_ssm.inference.forecast import validate_horizon, validate_prob
    from bayes_ssm.models import StructuralTS

    horizon = validate_horizon(args.horizon)
    prob = validate_prob(args.prob)
    if args.save_fit is not None:
        raise ValueError("--save-fit needs --model structural (a stacked fit is not saved)")
    check_outputs(out=args.out, plot=args.plot, save_fit=None)
    y = _common.load_series(args)
    full = as_series_data(y, freq=args.freq)
    y = pd.Series(full.y, index=full.index, name=full.name)
    if args.fit_last is not None and args.fit_last < 10:
        raise ValueError(f"--fit-last must be >= 10; got {args.fit_last}")
    # before the fit, not after it: the forecast's size (a one-state lower bound of every
    # candidate's) and its timestamps
    check_forecast_size(StructuralTS(), full, 1000, horizon)
    if args.method == "nuts":
        kw = {"num_chains": args.chains, "num_warmup": args.warmup, "num_samples": args.samples}
    else:
        kw = {"steps": args.svi_steps}
    start = time.perf_counter()
    stacked = auto_fit(
        y,
        key=args.seed,
        transform=args.transform,
        method=args.method,
        fit_last=args.fit_last,
        freq=full.freq,
        fit_kwargs=kw,
        progress=not args.quiet,
        recalibrate=_common.recalibrate_option(args),
        workers=_common.workers_option(args),
    )
    fc = stacked.forecast(horizon, prob=prob, key=args.seed + 1)
    elapsed = time.perf_counter() - start
    fc.index.name = "date"
    first, last = (t.date() if isinstance(t, pd.Timestamp) else t for t in y.index[[0, -1]])
    print(
        f"series {full.name!r}: {len(y)} steps from {first} to {last}; fitted the last "
        f"{stacked.data.num_steps} ({stacked.transform} scale); default forecaster, "
        f"{len(stacked.fits)} candidates, weights from {stacked.weights_from}"
    )
    if stacked.transform.reason:
        print(f"transform: {stacked.transform.reason}")
    table = stacked.summary()
    print(table.drop(columns="first_problem").round(3).to_string())
    top = stacked.weights.idxmax()
    described = _common.describe_model(stacked.fits[top].model)
    print(f"\ncandidate {top!r} (the largest weight): {described}")
    _common.print_summary(stacked.fits[top], elapsed)
    flagged = [n for n, row in table.iterrows() if row.problems and row.weight > 0.05]
    if flagged:
        print(f"WARNINGS: bs.check flags candidate(s) with weight > 5%: {flagged}")
    _write_outputs(
        args, fc, y, full, horizon, stacked.seasonal_period,
        header=f"forecast, {horizon} steps ({fc.attrs['recalibration']})",
        what="default forecaster",
    )  # fmt: skip
    return 0


def _forecast(args, parser):
    import numpy as np
    import pandas as pd

    from bayes_ssm.data.validation import as_series_data, future_index
    from bayes_ssm.inference.fit import check_forecast_size
    from bayes_ssm.inference.fitting import fit_nuts, fit_svi
    from bayes_ssm.inference.forecast import summarize_draws, validate_horizon, validate_prob

    horizon = validate_horizon(args.horizon)
    prob = validate_prob(args.prob)
    check_outputs(out=args.out, plot=args.plot, save_fit=args.save_fit)
    y = _common.load_series(args)
    full = as_series_data(y, freq=args.freq)
    y = pd.Series(full.y, index=full.index, name=full.name)
    period = _common.season(args, full.freq)
    fit_last = args.fit_last
    if fit_last is None:
        fit_last = min(len(y), max(int(round(8 * period)), 400)) if period else len(y)
    if fit_last < 2:
        raise ValueError(f"--fit-last must be >= 2; got {fit_last}")
    y_fit = y.iloc[-fit_last:]
    if args.transform == "log":
        if (y_fit <= 0).any():
            raise ValueError("--transform log needs positive values; use --transform none")
        y_model = np.log(y_fit)
    else:
        y_model = y_fit
    model = _common.build_model(args, period, len(y_fit))
    draws = args.chains * args.samples if args.method == "nuts" else 1000
    check_forecast_size(model, full, draws, horizon)  # before the fit, not after it
    first, last = (t.date() if isinstance(t, pd.Timestamp) else t for t in y.index[[0, -1]])
    scale = "log scale" if args.transform == "log" else "original scale"
    print(
        f"series {full.name!r}: {len(y)} steps from {first} to {last}; "
        f"fitting the last {len(y_fit)} ({scale})"
    )
    print(f"model: {_common.describe_model(model)}")
    start = time.perf_counter()
    progress = not args.quiet
    if args.method == "nuts":
        fit = fit_nuts(
            model,
            y_model,
            key=args.seed,
            freq=full.freq,
            num_chains=args.chains,
            num_warmup=args.warmup,
            num_samples=args.samples,
            progress=progress,
        )
    else:
        fit = fit_svi(
            model, y_model, key=args.seed, freq=full.freq, steps=args.svi_steps, progress=progress
        )
    draws = fit.forecast_samples(horizon, key=args.seed + 1)
    elapsed = time.perf_counter() - start
    if args.transform == "log":
        draws = np.exp(draws)
    index = future_index(fit.data, horizon)
    index.name = "date"
    fc = summarize_draws(draws, index, prob)
    _common.print_summary(fit, elapsed)
    _write_outputs(
        args, fc, y, full, horizon, period,
        header=f"forecast, {horizon} steps",
        what=f"{'log-scale ' if args.transform == 'log' else ''}structural model",
    )  # fmt: skip
    if args.save_fit is not None:
        fit.save(args.save_fit)
        print(f"wrote {args.save_fit}")
    return 0


def _write_outputs(args, fc, y, full, horizon, period, *, header, what):
    """Print the first rows of ``fc``; write ``--out`` (CSV) and ``--plot`` (a fan chart over
    the last ``max(3 * horizon, 3 * period, 100)`` steps of ``y``), the same for every model."""
    print(f"\n{header}:\n{_common.rounded(fc.head(min(horizon, 8))).to_string()}")
    if horizon > 8:
        print("  ...")
    if args.out is not None:
        _common.write_csv(fc, args.out, index_label="date")
        print(f"wrote {args.out}")
    if args.plot is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from bayes_ssm.plotting import plot_forecast

        shown = y.iloc[-min(len(y), max(3 * horizon, int(3 * (period or 0)), 100)) :]
        name, ylabel = _LABELS.get(args.dataset, (str(full.name), None))
        ax = plot_forecast(
            fc,
            history=shown,
            ylabel=args.ylabel or ylabel,
            title=args.title or f"{name}: {horizon}-step forecast ({args.method.upper()}, {what})",
        )
        _common.save_figure(ax.figure, args.plot)
        plt.close(ax.figure)
        print(f"wrote {args.plot}")
