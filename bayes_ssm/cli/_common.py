"""Pieces the commands share: model options, seasons, reading series, compile cache, devices."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from bayes_ssm.cli._io import add_date_args

SEASON_BY_FREQ = {
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


def add_model_args(mod, *, auto: bool = False) -> None:
    """Model options. ``auto``: the command offers the default forecaster (``--model auto``,
    its default; ``--transform auto``); the structural options then need ``--model
    structural``."""
    if auto:
        mod.add_argument(
            "--model",
            choices=["auto", "structural"],
            default="auto",
            help="auto (default): the default forecaster, bs.auto_fit (transform, seasonals "
            "and four structural candidates chosen from the data, combined by stacking); "
            "structural: one StructuralTS from the options below",
        )
    else:
        mod.add_argument(
            "--model",
            choices=["structural"],
            default="structural",
            help="structural: one StructuralTS per series from the options below",
        )
    mod.add_argument(
        "--trend",
        choices=["local_linear", "damped", "none"],
        default=None,
        help="--model structural: slope on the level (default none: a random-walk level)",
    )
    mod.add_argument(
        "--seasonal-period",
        type=float,
        default=None,
        help="--model structural: season length in steps (default from the frequency: 52.18 "
        "weekly, 7 daily, 12 monthly); 0 for none",
    )
    mod.add_argument(
        "--harmonics", type=int, default=None, help="--model structural: harmonics (default 3)"
    )
    mod.add_argument(
        "--likelihood",
        choices=["gaussian", "student_t"],
        default=None,
        help="--model structural: observation noise, gaussian (default) or student_t (heavy "
        "tails: outliers, bursts)",
    )
    if auto:
        mod.add_argument(
            "--transform",
            type=transform_arg,
            default="auto",
            metavar="{auto,log,none,LAMBDA}",
            help="auto (default): log when every value is positive (the square root when the "
            "log scale's multi-step forecasts would explode, said in the output), else none; "
            "a number: the Box-Cox lambda (0.5: square root); forecast draws are "
            "back-transformed",
        )
        add_recalibrate_arg(mod)
        add_workers_arg(mod)
    else:
        mod.add_argument(
            "--transform",
            choices=["log", "none"],
            default="log",
            help="fit log(y) and back-transform the forecast draws (default; needs y > 0)",
        )


def transform_arg(text: str) -> str | float:
    """``--transform`` of the default forecaster: a name, or a Box-Cox lambda."""
    if text in ("auto", "log", "none"):
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--transform must be auto, log, none or a Box-Cox lambda (a number); got {text!r}"
        ) from None


STRUCTURAL_OPTIONS = ("trend", "seasonal_period", "harmonics", "likelihood")


def add_recalibrate_arg(group) -> None:
    """``--recalibrate [MAP] / --no-recalibrate`` of the default forecaster (default: the
    library's, ``bayes_ssm.inference.auto.RECALIBRATE``)."""
    group.add_argument(
        "--recalibrate",
        nargs="?",
        const=True,
        default=None,
        metavar="MAP",
        help="default forecaster: recalibrate the forecast quantiles per horizon step from "
        "in-sample h-step PIT values (docs/default.md); MAP: adaptive (adaptive conformal "
        "levels in time order, widen only: the default map, also without MAP), widen (the "
        "static widen-only map), quantile or adaptive_quantile; default: the library's "
        "default (bs.auto_fit's recalibrate=)",
    )
    group.add_argument(
        "--no-recalibrate",
        dest="recalibrate",
        action="store_const",
        const=False,
        help="default forecaster: no recalibration",
    )


def add_workers_arg(group) -> None:
    """``--workers N``: threads for the default forecaster's candidates (``auto_fit(workers=)``)."""
    group.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="default forecaster: fit its candidates in N threads (default 1: one after the "
        "other; same results either way)",
    )


def workers_option(args) -> int:
    """``--workers`` checked (1 when not given: the candidates one after the other)."""
    value = getattr(args, "workers", None)
    if value is None:
        return 1
    if value < 1:
        raise ValueError(f"--workers must be >= 1; got {value}")
    return value


def recalibrate_option(args) -> bool | str:
    """The ``recalibrate=`` to pass to ``auto_fit`` / ``AutoTS`` (a bad ``MAP``: a clear
    error naming the maps)."""
    from bayes_ssm.inference.auto import RECALIBRATE
    from bayes_ssm.inference.recalibration import MODES

    value = getattr(args, "recalibrate", None)
    if value is None:
        return RECALIBRATE
    if isinstance(value, bool):
        return value
    if value not in MODES:
        raise ValueError(f"--recalibrate takes one of {', '.join(MODES)}; got {value!r}")
    return value


def check_model_options(args) -> None:
    """With ``--model auto`` the structural options have no effect, with ``--model
    structural`` ``--recalibrate``: refuse them."""
    if getattr(args, "model", "structural") != "auto":
        if getattr(args, "recalibrate", None) is not None:
            raise ValueError("--recalibrate / --no-recalibrate apply to --model auto only")
        if isinstance(getattr(args, "transform", None), float):
            raise ValueError(
                "a Box-Cox --transform applies to --model auto only; --model structural takes "
                "--transform log or none"
            )
        return
    recalibrate_option(args)  # a bad --recalibrate MAP: an error before any fit
    given = [n for n in STRUCTURAL_OPTIONS if getattr(args, n, None) is not None]
    if given:
        names = ", ".join("--" + n.replace("_", "-") for n in given)
        raise ValueError(f"{names} apply to --model structural (the default model is auto)")


def compile_cache_dir(args) -> Path | None:
    """The persistent compilation cache of a CLI run: ``--compile-cache DIR``; else the
    environment variable ``BAYES_SSM_COMPILE_CACHE`` (a directory, or ``off``); else
    ``$XDG_CACHE_HOME/bayes_ssm/jax`` (``~/.cache/bayes_ssm/jax``). ``--no-compile-cache``:
    none."""
    if getattr(args, "no_compile_cache", False):
        return None
    if getattr(args, "compile_cache", None) is not None:
        return Path(args.compile_cache)
    env = os.environ.get("BAYES_SSM_COMPILE_CACHE")
    if env:
        return None if env.lower() == "off" else Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bayes_ssm" / "jax"


def add_cache_args(group) -> None:
    group.add_argument(
        "--compile-cache",
        type=Path,
        help="directory for JAX's persistent compilation cache (default: "
        "$BAYES_SSM_COMPILE_CACHE, else ~/.cache/bayes_ssm/jax): a re-run with the same "
        "models and series length skips most compilation",
    )
    group.add_argument(
        "--no-compile-cache", action="store_true", help="do not use the compilation cache"
    )


def load_series(args):
    import pandas as pd

    from bayes_ssm.data import datasets

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
    if not args.csv.is_file():
        raise FileNotFoundError(f"--csv {args.csv} does not exist")
    from bayes_ssm.cli._io import read_series_csv

    header = pd.read_csv(args.csv, nrows=0)
    date_col, value_col = pick_columns(header.columns, args.date_col, args.value_col, args.csv)
    return read_series_csv(
        args.csv, date_col, value_col, date_format=args.date_format, dayfirst=args.dayfirst
    )


def pick_columns(columns, date_col: str | None, value_col: str | None, source) -> tuple[str, str]:
    """The date and value columns of a one-series CSV.

    Named columns win; else ``ds`` and ``y`` when the file has them (the long-format names
    ``forecast-many`` uses); else a two-column file is read as date, value.
    """
    columns = [str(c) for c in columns]
    if date_col is None and value_col is None:
        if "ds" in columns and "y" in columns:
            return "ds", "y"
        if len(columns) == 2:
            return columns[0], columns[1]
    elif date_col is None and "ds" in columns:
        date_col = "ds"
    elif value_col is None and "y" in columns:
        value_col = "y"
    if date_col is None or value_col is None:
        raise ValueError(
            f"{source} has columns {columns}: name the date and value columns with --date-col "
            "and --value-col (a file with columns ds and y, or with two columns, needs neither)"
        )
    for col in (date_col, value_col):
        if col not in columns:
            raise ValueError(f"column {col!r} not in {source} (columns: {columns})")
    return date_col, value_col


def season(args, freq) -> float | None:
    if args.seasonal_period is not None:
        return args.seasonal_period or None
    if freq is None:
        return None
    code = freq.rule_code if hasattr(freq, "rule_code") else str(freq)
    return SEASON_BY_FREQ.get(code.split("-")[0])


def build_model(args, period, num_steps):
    from bayes_ssm.models import Seasonal, StructuralTS

    seasonal = None
    if period is not None and period * 1.5 <= num_steps:
        harmonics = max(1, min(args.harmonics or 3, int(period // 2)))
        seasonal = Seasonal(period, harmonics=harmonics)
    trend = None if args.trend in (None, "none") else args.trend
    return StructuralTS(trend=trend, seasonal=seasonal, likelihood=args.likelihood or "gaussian")


def load_many(args) -> dict:
    import pandas as pd

    from bayes_ssm.data import datasets

    if args.dataset is not None:
        data = datasets.load(args.dataset)
        if not isinstance(data, pd.DataFrame) or not args.value_cols:
            cols = list(data.columns) if isinstance(data, pd.DataFrame) else [data.name]
            raise ValueError(f"pick the series of {args.dataset!r} with --value-cols (of {cols})")
        missing = [c for c in args.value_cols if c not in data.columns]
        if missing:
            raise ValueError(f"--value-cols {missing} not in {list(data.columns)}")
        return {c: data[c] for c in args.value_cols}
    from bayes_ssm.cli._io import read_long_csv

    return read_long_csv(
        args.csv,
        args.id_col,
        args.date_col,
        args.value_col,
        date_format=args.date_format,
        dayfirst=args.dayfirst,
    )


def check_positive(args, parser, names=("chains", "warmup", "samples", "svi_steps")) -> None:
    """``parser.error`` unless every named count is positive (``warmup`` may be 0)."""
    for name in names:
        if getattr(args, name) < (0 if name == "warmup" else 1):
            parser.error(f"--{name.replace('_', '-')} must be positive")


def set_chain_devices(chains: int) -> None:
    """One CPU device per chain, set before JAX starts (a program may; the library may not)."""
    if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        import numpyro

        numpyro.set_host_device_count(max(1, min(chains, os.cpu_count() or 1)))


def enable_compile_cache(directory: Path) -> None:
    """Persist every compiled program under ``directory`` (a program may set this; the library
    may not): JAX's compilation cache, and the executables of the library's own programs in
    ``directory / "programs"`` (:mod:`bayes_ssm.inference.program_store`: a warm run skips
    their tracing)."""
    import jax

    from bayes_ssm.inference import program_store

    directory.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    program_store.enable(directory / "programs")


def add_series_args(src, one) -> None:
    """``--dataset``/``--csv`` (into the exclusive group ``one``) and the other options of one
    series (``--date-col``, ``--value-col``, ``--freq``, ``--fit-last``) into ``src``."""
    one.add_argument("--dataset", help="bundled dataset name (e.g. ili, covid)")
    one.add_argument(
        "--csv",
        type=Path,
        help="CSV file of one series: columns ds and y, or any two columns (date, value), or "
        "name them with --date-col and --value-col",
    )
    src.add_argument("--date-col", help="date column of --csv (default: ds, or the first of two)")
    src.add_argument(
        "--value-col",
        help="value column of --csv (default: y, or the second of two) or of a multi-column "
        "dataset",
    )
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


def add_inference_args(inf) -> None:
    """``--method``, ``--seed``, ``--chains``, ``--warmup``, ``--samples``, ``--svi-steps``."""
    inf.add_argument(
        "--method",
        choices=["nuts", "svi"],
        default="nuts",
        help="nuts: sample the posterior (the reference, default); svi: variational fit (faster, "
        "may be overconfident)",
    )
    inf.add_argument("--seed", type=int, default=0, help="random seed: same seed, same result")
    inf.add_argument("--chains", type=int, default=2, help="NUTS chains (default 2)")
    inf.add_argument("--warmup", type=int, default=500, help="NUTS warm-up draws per chain")
    inf.add_argument("--samples", type=int, default=500, help="NUTS draws kept per chain")
    inf.add_argument("--svi-steps", type=int, default=5000, help="most SVI optimisation steps")


def describe_model(model) -> str:
    """The model in words, for the ``model:`` line (not its internal fields)."""
    if getattr(model, "kind", None) != "structural":
        fields = getattr(model, "__dataclass_fields__", {})
        changed = [
            f"{name}={getattr(model, name)!r}"
            for name, f in fields.items()
            if f.default is not dataclasses.MISSING and getattr(model, name) != f.default
        ]
        return f"{type(model).__name__}({', '.join(changed)})"
    parts = []
    if model.level:
        trends = {None: "random-walk level", "local_linear": "local linear trend"}
        parts.append(trends.get(model.trend, f"{model.trend} trend"))
    for s in model.seasonal:
        kind = f"{s.harmonics} harmonics" if s.kind == "trig" else "one dummy per season"
        parts.append(f"seasonal of period {s.period:g} ({kind})")
    if model.ar_order:
        parts.append(f"AR({model.ar_order})")
    if model.regression:
        parts.append("regression on covariates")
    noise = {"gaussian": "Gaussian", "student_t": "Student-t"}
    parts.append(f"{noise.get(model.likelihood, model.likelihood.replace('_', '-'))} noise")
    return "structural time series: " + ", ".join(parts)


def print_summary(fit, elapsed, out=None):
    """Print the posterior summary and ``bs.check``'s problems; return the summary table."""
    import numpy as np

    from bayes_ssm.inference.diagnostics import check, summary

    out = sys.stdout if out is None else out
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
    elif fit.method == "nuts":
        print("checks: r_hat, ESS, divergences, tree depth, BFMI all fine", file=out)
    else:
        print("checks: SVI converged", file=out)
    return table


def fit_series(args):
    """Load the series of ``args``, fit the model by ``args.method``; ``(fit, log)`` where
    ``log`` says the model was fitted to ``log(y)``."""
    import time

    import numpy as np
    import pandas as pd

    from bayes_ssm.data.validation import as_series_data
    from bayes_ssm.inference.fitting import fit_nuts, fit_svi

    full = as_series_data(load_series(args), freq=args.freq)
    y = pd.Series(full.y, index=full.index, name=full.name)
    period = season(args, full.freq)
    fit_last = args.fit_last
    if fit_last is None:
        fit_last = min(len(y), max(int(round(8 * period)), 400)) if period else len(y)
    if fit_last < 2:
        raise ValueError(f"--fit-last must be >= 2; got {fit_last}")
    y = y.iloc[-fit_last:]
    log = args.transform == "log"
    if log:
        if (y <= 0).any():
            raise ValueError("--transform log needs positive values; use --transform none")
        y = np.log(y)
    model = build_model(args, period, len(y))
    print(f"series {full.name!r}: fitting the last {len(y)} steps" + (" (log scale)" * log))
    print(f"model: {describe_model(model)}")
    set_chain_devices(args.chains)
    start = time.perf_counter()
    if args.method == "nuts":
        fit = fit_nuts(
            model,
            y,
            key=args.seed,
            freq=full.freq,
            num_chains=args.chains,
            num_warmup=args.warmup,
            num_samples=args.samples,
            progress=not args.quiet,
        )
    else:
        fit = fit_svi(
            model, y, key=args.seed, freq=full.freq, steps=args.svi_steps, progress=not args.quiet
        )
    print_summary(fit, time.perf_counter() - start)
    return fit, log


def _atomic(path: Path, write) -> None:
    """``write(tmp)`` to a temporary file beside ``path``, then rename it onto ``path``
    (:func:`bayes_ssm.data.atomic.atomic_path`: fsync, SIGINT/SIGTERM clean-up, stale
    temporaries of killed writers removed)."""
    from bayes_ssm.data.atomic import atomic_path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        write(tmp)


def rounded(frame, decimals: int = 3):
    """``frame`` with its numeric columns rounded (``DataFrame.round`` on timestamp columns
    warns under pandas 3)."""
    return frame.round(dict.fromkeys(frame.select_dtypes("number").columns, decimals))


def write_csv(frame, path: Path, **kwargs) -> None:
    """``frame.to_csv`` written atomically (a reader never sees half a file)."""
    _atomic(path, lambda tmp: frame.to_csv(tmp, float_format="%.6g", **kwargs))


def save_figure(figure, path: Path) -> None:
    """``figure.savefig`` written atomically, format from the suffix of ``path``."""
    fmt = Path(path).suffix.lstrip(".") or "png"
    _atomic(path, lambda tmp: figure.savefig(tmp, dpi=120, format=fmt, bbox_inches="tight"))
