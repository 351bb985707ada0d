"""Pieces the commands share: model options, seasons, reading series, compile cache, devices."""

from __future__ import annotations

import os
from pathlib import Path

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


def add_model_args(mod) -> None:
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
    if args.date_col is None or args.value_col is None:
        raise ValueError("--csv needs --date-col and --value-col")
    from bayes_ssm.cli._io import read_series_csv

    return read_series_csv(
        args.csv,
        args.date_col,
        args.value_col,
        date_format=args.date_format,
        dayfirst=args.dayfirst,
    )


def season(args, freq) -> float | None:
    if args.seasonal_period is not None:
        return args.seasonal_period or None
    if freq is None:
        return None
    code = freq.name if hasattr(freq, "name") else str(freq)
    return SEASON_BY_FREQ.get(code.split("-")[0])


def build_model(args, period, num_steps):
    from bayes_ssm.models import Seasonal, StructuralTS

    seasonal = None
    if period is not None and period * 1.5 <= num_steps:
        harmonics = max(1, min(args.harmonics, int(period // 2)))
        seasonal = Seasonal(period, harmonics=harmonics)
    trend = None if args.trend == "none" else args.trend
    return StructuralTS(trend=trend, seasonal=seasonal, likelihood=args.likelihood)


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
    may not)."""
    import jax

    directory.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
