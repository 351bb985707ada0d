"""Command line: ``bayes-ssm forecast`` fits a structural model and writes a forecast CSV and plot;
``bayes-ssm forecast-many`` does it for every series of a long-format table (SVI).

Examples (the first is the README's main job)::

    bayes-ssm forecast --dataset ili --horizon 26 --method nuts \\
        --out out/forecast.csv --plot out/forecast.png
    bayes-ssm forecast-many --dataset covid --value-cols italy_new_deaths germany_new_deaths \\
        --horizon 14 --transform none --out out/many.csv
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from bayes_ssm._cli_inputs import (
    add_date_args,
    check_outputs,
    read_long_csv,
    read_series_csv,
    save_figure,
    write_csv,
)

__all__ = ["main", "build_parser"]

_LABELS = {"ili": ("US influenza-like illness (CDC ILINet)", "% weighted ILI")}
_SEASON_BY_FREQ = {
    "W": 52.18,
    "D": 7,
    "B": 5,
    "M": 12,
    "MS": 12,
    "ME": 12,
    "Q": 4,
    "QS": 4,
    "QE": 4,
    "h": 24,
    "H": 24,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bayes-ssm",
        description="Uncertainty-aware forecasts with Bayesian state-space models.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    fc = sub.add_parser(
        "forecast",
        help="fit a model to one series and forecast it",
        description="Fit a Bayesian structural time-series model and write the forecast "
        "(mean, median, credible intervals) as CSV, optionally as a fan chart.",
    )
    src = fc.add_argument_group("data (one of --dataset or --csv)")
    one = src.add_mutually_exclusive_group(required=True)
    one.add_argument("--dataset", help="bundled dataset name (e.g. ili)")
    one.add_argument("--csv", type=Path, help="CSV file with a date column and a value column")
    src.add_argument("--date-col", help="date column of --csv")
    src.add_argument("--value-col", help="value column of --csv (or of a multi-column dataset)")
    src.add_argument("--freq", help="frequency when it cannot be inferred (e.g. W-SAT, D)")
    add_date_args(src)
    src.add_argument(
        "--fit-last",
        type=int,
        default=None,
        metavar="N",
        help="fit only the last N steps (default: the last 8 seasonal cycles but at least 400 "
        "steps; all if shorter)",
    )
    _add_model_args(fc.add_argument_group("model"))
    inf = fc.add_argument_group("inference")
    inf.add_argument("--method", choices=["nuts", "svi"], default="nuts")
    inf.add_argument("--seed", type=int, default=0)
    inf.add_argument("--chains", type=int, default=2)
    inf.add_argument("--warmup", type=int, default=500)
    inf.add_argument("--samples", type=int, default=500)
    inf.add_argument("--svi-steps", type=int, default=5000)
    inf.add_argument(
        "--compile-cache",
        type=Path,
        help="directory for JAX's persistent compilation cache: a re-run with the same model "
        "and series length skips compilation (seconds saved per run, most on a GPU)",
    )
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
    out.add_argument("--save-fit", type=Path, help="also save the fit (netCDF) here")
    out.add_argument("--quiet", action="store_true", help="no progress bar")
    many = sub.add_parser(
        "forecast-many",
        help="fit one model to many series (long-format CSV) and forecast them all",
        description="Fit a Bayesian structural model to every series of a long-format table "
        "(one row per series and date) by SVI, equal-length series in one compiled program, and "
        "write all forecasts as one long CSV.",
    )
    src = many.add_argument_group("data (one of --dataset or --csv)")
    one = src.add_mutually_exclusive_group(required=True)
    one.add_argument("--dataset", help="bundled wide dataset (e.g. covid); pick --value-cols")
    one.add_argument("--csv", type=Path, help="long-format CSV: id, date and value columns")
    src.add_argument("--id-col", default="unique_id", help="series id column of --csv")
    src.add_argument("--date-col", default="ds", help="date column of --csv")
    src.add_argument("--value-col", default="y", help="value column of --csv")
    src.add_argument("--value-cols", nargs="+", help="columns of --dataset, one series each")
    src.add_argument("--freq", help="frequency when it cannot be inferred (e.g. W-SAT, D)")
    add_date_args(src)
    src.add_argument("--fit-last", type=int, default=None, metavar="N", help="fit the last N steps")
    _add_model_args(many.add_argument_group("model"))
    inf = many.add_argument_group("inference")
    inf.add_argument(
        "--method",
        choices=["svi", "nuts"],
        default="svi",
        help="svi: equal-length series in one program (default); nuts: one sampler per series",
    )
    inf.add_argument("--seed", type=int, default=0)
    inf.add_argument("--svi-steps", type=int, default=5000)
    inf.add_argument("--batch", choices=["auto", "vmap", "loop"], default="auto", help="svi only")
    inf.add_argument("--chains", type=int, default=2, help="nuts only")
    inf.add_argument("--warmup", type=int, default=500, help="nuts only")
    inf.add_argument("--samples", type=int, default=500, help="nuts only")
    out = many.add_argument_group("output")
    out.add_argument("--horizon", type=int, required=True, help="steps to forecast")
    out.add_argument("--prob", type=float, nargs="+", default=[0.8, 0.95])
    out.add_argument("--out", type=Path, help="long forecast CSV to write")
    out.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _add_model_args(mod) -> None:
    mod.add_argument("--model", choices=["structural"], default="structural")
    mod.add_argument(
        "--trend",
        choices=["local_linear", "damped", "none"],
        default="none",
        help="slope on the level (default none: a random-walk level)",
    )
    mod.add_argument(
        "--seasonal-period",
        type=float,
        default=None,
        help="season length in steps (default from the frequency: 52.18 weekly, 7 daily, 12 "
        "monthly); 0 for none",
    )
    mod.add_argument("--harmonics", type=int, default=3, help="harmonics of the seasonal")
    mod.add_argument(
        "--likelihood",
        choices=["gaussian", "student_t"],
        default="gaussian",
    )
    mod.add_argument(
        "--transform",
        choices=["log", "none"],
        default="log",
        help="fit log(y) and back-transform the forecast draws (default; needs y > 0)",
    )


def _load_series(args):
    import pandas as pd

    from bayes_ssm import datasets

    if args.dataset is not None:
        data = datasets.load(args.dataset)
        if isinstance(data, pd.DataFrame):
            if args.value_col is None:
                raise ValueError(
                    f"dataset {args.dataset!r} has columns {list(data.columns)}; pick one with "
                    "--value-col"
                )
            if args.value_col not in data.columns:
                raise ValueError(f"--value-col {args.value_col!r} not in {list(data.columns)}")
            data = data[args.value_col]
        return data
    if args.date_col is None or args.value_col is None:
        raise ValueError("--csv needs --date-col and --value-col")
    return read_series_csv(
        args.csv,
        args.date_col,
        args.value_col,
        date_format=args.date_format,
        dayfirst=args.dayfirst,
    )


def _season(args, freq) -> float | None:
    if args.seasonal_period is not None:
        return args.seasonal_period or None
    if freq is None:
        return None
    code = freq.name if hasattr(freq, "name") else str(freq)
    return _SEASON_BY_FREQ.get(code.split("-")[0])


def _build_model(args, period, num_steps):
    from bayes_ssm.models import Seasonal, StructuralTS

    seasonal = None
    if period is not None and period * 1.5 <= num_steps:
        harmonics = max(1, min(args.harmonics, int(period // 2)))
        seasonal = Seasonal(period, harmonics=harmonics)
    trend = None if args.trend == "none" else args.trend
    return StructuralTS(trend=trend, seasonal=seasonal, likelihood=args.likelihood)


def _print_summary(fit, elapsed, out=None):
    import numpy as np

    out = sys.stdout if out is None else out
    from bayes_ssm.diagnostics import check, summary

    table = summary(fit)
    cols = [c for c in table.columns if c in ("mean", "sd", "r_hat", "ess_bulk", "ess_tail")]
    cols += [c for c in table.columns if c.startswith(("eti", "hdi"))]
    print(
        f"\nPosterior summary ({fit.method}, {fit.num_chains} chain(s) x {fit.num_draws} "
        f"draws, {elapsed:.1f} s):",
        file=out,
    )
    with np.printoptions(precision=3):
        print(table[cols].round(3).to_string(), file=out)
    if fit.method == "nuts":
        print(
            f"divergences: {table.attrs['divergences']} of {table.attrs['draws']}; BFMI per "
            f"chain: {', '.join(f'{b:.2f}' for b in table.attrs['bfmi'])}",
            file=out,
        )
    problems = check(fit, warn=False)
    if problems:
        print("\nWARNINGS:", file=out)
        for p in problems:
            print(f"  - {p}", file=out)
    else:
        print("checks: r_hat, ESS, divergences, tree depth, BFMI all fine", file=out)


def _forecast(args, parser):
    import numpy as np
    import pandas as pd

    from bayes_ssm.data import as_series_data, future_index
    from bayes_ssm.fit import check_forecast_size
    from bayes_ssm.forecast import summarize_draws, validate_horizon, validate_prob
    from bayes_ssm.infer import fit_nuts, fit_svi

    horizon = validate_horizon(args.horizon)
    prob = validate_prob(args.prob)
    check_outputs(out=args.out, plot=args.plot, save_fit=args.save_fit)
    y = _load_series(args)
    full = as_series_data(y, freq=args.freq)
    y = pd.Series(full.y, index=full.index, name=full.name)
    period = _season(args, full.freq)
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
    model = _build_model(args, period, len(y_fit))
    draws = args.chains * args.samples if args.method == "nuts" else 1000
    check_forecast_size(model, full, draws, horizon)  # before the fit, not after it
    first, last = (t.date() if isinstance(t, pd.Timestamp) else t for t in y.index[[0, -1]])
    scale = "log scale" if args.transform == "log" else "original scale"
    print(
        f"series {full.name!r}: {len(y)} steps from {first} to {last}; "
        f"fitting the last {len(y_fit)} ({scale})"
    )
    print(f"model: {model.spec()['params']}")
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
    _print_summary(fit, elapsed)
    print(f"\nforecast, {horizon} steps:\n{fc.round(3).head(min(horizon, 8)).to_string()}")
    if horizon > 8:
        print("  ...")
    if args.out is not None:
        write_csv(fc, args.out, index_label="date", float_format="%.6g")
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
            ylabel=ylabel,
            title=f"{name}: {horizon}-step forecast ({args.method.upper()}, "
            f"{'log-scale ' if args.transform == 'log' else ''}structural model)",
        )
        save_figure(ax.figure, args.plot, dpi=120)
        plt.close(ax.figure)
        print(f"wrote {args.plot}")
    if args.save_fit is not None:
        fit.save(args.save_fit)
        print(f"wrote {args.save_fit}")
    return 0


def _load_many(args) -> dict:
    import pandas as pd

    from bayes_ssm import datasets

    if args.dataset is not None:
        data = datasets.load(args.dataset)
        if not isinstance(data, pd.DataFrame) or not args.value_cols:
            cols = list(data.columns) if isinstance(data, pd.DataFrame) else [data.name]
            raise ValueError(f"pick the series of {args.dataset!r} with --value-cols (of {cols})")
        missing = [c for c in args.value_cols if c not in data.columns]
        if missing:
            raise ValueError(f"--value-cols {missing} not in {list(data.columns)}")
        return {c: data[c] for c in args.value_cols}
    return read_long_csv(
        args.csv,
        args.id_col,
        args.date_col,
        args.value_col,
        date_format=args.date_format,
        dayfirst=args.dayfirst,
    )


def _forecast_many(args) -> int:
    import jax
    import numpy as np
    import pandas as pd

    from bayes_ssm.data import as_series_data, future_index
    from bayes_ssm.diagnostics import check
    from bayes_ssm.fit import check_forecast_size
    from bayes_ssm.forecast import summarize_draws, validate_horizon, validate_prob
    from bayes_ssm.many import fit_nuts_many, fit_svi_many

    horizon = validate_horizon(args.horizon)
    prob = validate_prob(args.prob)
    check_outputs(out=args.out)
    series = {}
    for ident, y in _load_many(args).items():
        try:
            full = as_series_data(y, freq=args.freq)
        except ValueError as err:
            raise ValueError(f"series {ident!r}: {err}") from err
        y = pd.Series(full.y, index=full.index, name=ident).iloc[-(args.fit_last or len(full.y)) :]
        if args.transform == "log":
            if (y <= 0).any():
                raise ValueError(
                    f"series {ident!r}: --transform log needs positive values; use --transform none"
                )
            y = np.log(y)
        series[ident] = y
    freq = as_series_data(next(iter(series.values())), freq=args.freq).freq
    period = _season(args, freq)
    model = _build_model(args, period, min(len(y) for y in series.values()))
    draws = args.chains * args.samples if args.method == "nuts" else 1000
    for y in series.values():  # before the fits, not after them
        check_forecast_size(model, as_series_data(y, freq=args.freq), draws, horizon)
    print(f"{len(series)} series; model: {model.spec()['params']}")
    start = time.perf_counter()
    if args.method == "nuts":
        fits = fit_nuts_many(
            model,
            series,
            key=args.seed,
            freq=args.freq,
            num_chains=args.chains,
            num_warmup=args.warmup,
            num_samples=args.samples,
        )
    else:
        fits = fit_svi_many(
            model,
            series,
            key=args.seed,
            freq=args.freq,
            steps=args.svi_steps,
            batch=args.batch,
            progress=not args.quiet,
        )
    keys = jax.random.split(jax.random.PRNGKey(args.seed + 1), len(fits))
    frames, flagged = [], []
    for k, (ident, fit) in zip(keys, fits.items(), strict=True):
        draws = fit.forecast_samples(horizon, key=k)
        if args.transform == "log":
            draws = np.exp(draws)
        index = future_index(fit.data, horizon)
        fc = summarize_draws(draws, index, prob).rename_axis("date").reset_index()
        fc.insert(0, "unique_id", ident)
        frames.append(fc)
        if check(fit, warn=False):
            flagged.append(ident)
    forecast = pd.concat(frames, ignore_index=True)
    elapsed = time.perf_counter() - start
    print(f"fitted and forecast in {elapsed:.1f} s ({args.method}, {fits.info['batch']})")
    print(fits.summary().round(3).to_string())
    if flagged:
        print(f"WARNINGS: bs.check flags {len(flagged)} fit(s): {flagged}")
    print(f"\nforecast, {horizon} steps per series:\n{forecast.round(3).head(8).to_string()}")
    if args.out is not None:
        write_csv(forecast, args.out, index=False, float_format="%.6g")
        print(f"wrote {args.out}")
    return 0


def _enable_compile_cache(directory: Path) -> None:
    """Persist every compiled program under ``directory`` (a program may set this; the library
    may not)."""
    import jax

    directory.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def main(argv=None) -> int:
    """Entry point of ``bayes-ssm``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "forecast":
        for name in ("chains", "warmup", "samples", "svi_steps"):
            if getattr(args, name) < (0 if name == "warmup" else 1):
                parser.error(f"--{name.replace('_', '-')} must be positive")
        # One CPU device per chain, set before JAX starts (a program may; the library may not).
        if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
            import numpyro

            numpyro.set_host_device_count(max(1, min(args.chains, os.cpu_count() or 1)))
        if args.compile_cache is not None:
            _enable_compile_cache(args.compile_cache)
        try:
            return _forecast(args, parser)
        except (ValueError, FileNotFoundError) as err:
            parser.exit(2, f"bayes-ssm forecast: error: {err}\n")
    if args.command == "forecast-many":
        for name in ("chains", "warmup", "samples", "svi_steps"):
            if getattr(args, name) < (0 if name == "warmup" else 1):
                parser.error(f"--{name.replace('_', '-')} must be positive")
        if args.method == "nuts" and "xla_force_host_platform_device_count" not in os.environ.get(
            "XLA_FLAGS", ""
        ):
            import numpyro

            numpyro.set_host_device_count(max(1, min(args.chains, os.cpu_count() or 1)))
        if args.fit_last is not None and args.fit_last < 2:
            parser.error("--fit-last must be >= 2")
        try:
            return _forecast_many(args)
        except (ValueError, FileNotFoundError) as err:
            parser.exit(2, f"bayes-ssm forecast-many: error: {err}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
