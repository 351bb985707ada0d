"""``bayes-ssm forecast-many``: fit one model to many series (long-format table), forecast all."""

from __future__ import annotations

import time
from pathlib import Path

from bayes_ssm.cli import _common
from bayes_ssm.cli._io import add_date_args, check_outputs

NAME = "forecast-many"


def add_parser(sub):
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
    src.add_argument(
        "--covariates",
        nargs="+",
        metavar="COL",
        help="covariate columns of --csv: each series regresses on its own rows of them, with "
        "coefficients of its own (needs --future-covariates)",
    )
    src.add_argument(
        "--future-covariates",
        type=Path,
        metavar="CSV",
        help="long-format CSV of the covariates over the horizon: the id and date columns of "
        "--csv and the --covariates columns, a row for each series' forecast dates",
    )
    src.add_argument("--freq", help="frequency when it cannot be inferred (e.g. W-SAT, D)")
    add_date_args(src)
    src.add_argument("--fit-last", type=int, default=None, metavar="N", help="fit the last N steps")
    _common.add_model_args(many.add_argument_group("model"))
    inf = many.add_argument_group("inference")
    inf.add_argument(
        "--method",
        choices=["svi", "nuts"],
        default="svi",
        help="svi: equal-length series in one program (default); nuts: one sampler per series",
    )
    inf.add_argument("--seed", type=int, default=0, help="random seed: same seed, same result")
    inf.add_argument("--svi-steps", type=int, default=5000, help="most SVI steps per series")
    inf.add_argument(
        "--batch",
        choices=["auto", "vmap", "loop"],
        default="auto",
        help=(
            "vmap: series in one program; loop: one fit per series; auto: the one measured "
            "faster (on a CPU: vmap for 2-16 series, the loop beyond)"
        ),
    )
    inf.add_argument(
        "--pooling",
        choices=["none", "partial"],
        default="none",
        help=(
            "partial: hierarchical noise scales (and coefficients of --covariates) shared by "
            "all series (Gaussian structural)"
        ),
    )
    inf.add_argument(
        "--backend",
        choices=["local", "dask"],
        default="local",
        help="dask: fit groups of series on a dask.distributed cluster (needs bayes_ssm[dask])",
    )
    inf.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="with --backend dask: scheduler address (tcp://host:8786); default a LocalCluster",
    )
    inf.add_argument("--chains", type=int, default=2, help="nuts only: chains per series")
    inf.add_argument("--warmup", type=int, default=500, help="nuts only: warm-up draws per chain")
    inf.add_argument("--samples", type=int, default=500, help="nuts only: draws kept per chain")
    out = many.add_argument_group("output")
    out.add_argument("--horizon", type=int, required=True, help="steps to forecast")
    out.add_argument(
        "--prob", type=float, nargs="+", default=[0.8, 0.95], help="interval levels in (0, 1)"
    )
    out.add_argument(
        "--out", type=Path, help="long forecast CSV to write (unique_id, ds, mean, median, bounds)"
    )
    out.add_argument("--quiet", action="store_true", help="no progress bar")
    return many


def run(args, parser) -> int:
    _common.check_positive(args, parser)
    if args.covariates and args.csv is None:
        parser.error("--covariates are columns of --csv (not of --dataset)")
    if bool(args.covariates) != (args.future_covariates is not None):
        parser.error("--covariates and --future-covariates go together")
    if args.method == "nuts":
        _common.set_chain_devices(args.chains)
    if args.fit_last is not None and args.fit_last < 2:
        parser.error("--fit-last must be >= 2")
    return _forecast_many(args)


def _forecast_many(args) -> int:
    import jax
    import numpy as np
    import pandas as pd

    from bayes_ssm.data.validation import as_series_data, check_future_covariates, future_index
    from bayes_ssm.inference.diagnostics import check
    from bayes_ssm.inference.fit import check_forecast_size
    from bayes_ssm.inference.forecast import summarize_draws, validate_horizon, validate_prob
    from bayes_ssm.inference.many import fit_nuts_many, fit_svi_many

    horizon = validate_horizon(args.horizon)
    prob = validate_prob(args.prob)
    check_outputs(out=args.out)
    series = {}
    for ident, y in _common.load_many(args).items():
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
    covs = future = None
    if args.covariates:
        from bayes_ssm.cli._io import read_long_covariates

        dates = dict(date_format=args.date_format, dayfirst=args.dayfirst)
        covs = read_long_covariates(args.csv, args.id_col, args.date_col, args.covariates, **dates)
        future = read_long_covariates(
            args.future_covariates, args.id_col, args.date_col, args.covariates,
            flag="--future-covariates", **dates,
        )  # fmt: skip
        covs = {ident: covs[ident] for ident in series}
    freq = as_series_data(next(iter(series.values())), freq=args.freq).freq
    period = _common.season(args, freq)
    model = _common.build_model(args, period, min(len(y) for y in series.values()))
    draws = args.chains * args.samples if args.method == "nuts" else 1000
    for ident, y in series.items():  # before the fits, not after them
        if future is not None and ident not in future:
            raise ValueError(f"--future-covariates have no rows for series {ident!r}")
        try:
            data = as_series_data(y, freq=args.freq, covariates=covs and covs[ident])
            check_forecast_size(model, data, draws, horizon)
            if future is not None:
                check_future_covariates(data, future[ident], horizon)
        except ValueError as err:
            raise ValueError(f"series {ident!r}: {err}") from err
    print(f"{len(series)} series; model: {_common.describe_model(model)}")
    if args.scheduler and args.backend != "dask":
        raise ValueError("--scheduler needs --backend dask")
    many_options = dict(
        batch=args.batch, pooling=args.pooling, backend=args.backend, scheduler=args.scheduler,
        covariates=covs,
    )  # fmt: skip
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
            **many_options,
        )
    else:
        fits = fit_svi_many(
            model,
            series,
            key=args.seed,
            freq=args.freq,
            steps=args.svi_steps,
            progress=not args.quiet,
            **many_options,
        )
    if not fits:
        raise ValueError(f"every series failed to fit: {fits.failures}")
    keys = jax.random.split(jax.random.PRNGKey(args.seed + 1), len(fits))
    frames, flagged = [], []
    for k, (ident, fit) in zip(keys, fits.items(), strict=True):
        try:
            draws = fit.forecast_samples(
                horizon, key=k, covariates=None if future is None else future[ident]
            )
        except ValueError as err:
            raise ValueError(f"series {ident!r}: {err}") from err
        if args.transform == "log":
            draws = np.exp(draws)
        index = future_index(fit.data, horizon)
        fc = summarize_draws(draws, index, prob).rename_axis("ds").reset_index()
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
    head = _common.rounded(forecast.head(8)).to_string()
    print(f"\nforecast, {horizon} steps per series:\n{head}")
    if args.out is not None:
        _common.write_csv(forecast, args.out, index=False)
        print(f"wrote {args.out}")
    return 0
