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
        mod.add_argument("--model", choices=["structural"], default="structural")
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
        help="--model structural: observation law (default gaussian)",
    )
    if auto:
        mod.add_argument(
            "--transform",
            choices=["auto", "log", "none"],
            default="auto",
            help="auto (default): log when every value is positive, else none; forecast draws "
            "are back-transformed",
        )
    else:
        mod.add_argument(
            "--transform",
            choices=["log", "none"],
            default="log",
            help="fit log(y) and back-transform the forecast draws (default; needs y > 0)",
        )


STRUCTURAL_OPTIONS = ("trend", "seasonal_period", "harmonics", "likelihood")


def check_model_options(args) -> None:
    """With ``--model auto`` the structural options have no effect: refuse them."""
    if getattr(args, "model", "structural") != "auto":
        return
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
    if args.date_col is None or args.value_col is None:
        raise ValueError("--csv needs --date-col and --value-col")
    if not args.csv.is_file():
        raise ValueError(f"--csv {args.csv} does not exist")
    frame = pd.read_csv(args.csv)
    for col in (args.date_col, args.value_col):
        if col not in frame.columns:
            raise ValueError(f"column {col!r} not in {args.csv} (columns: {list(frame.columns)})")
    index = pd.DatetimeIndex(pd.to_datetime(frame[args.date_col]), name=args.date_col)
    return pd.Series(frame[args.value_col].to_numpy(float), index=index, name=args.value_col)


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
        harmonics = max(1, min(args.harmonics or 3, int(period // 2)))
        seasonal = Seasonal(period, harmonics=harmonics)
    trend = None if args.trend in (None, "none") else args.trend
    return StructuralTS(trend=trend, seasonal=seasonal, likelihood=args.likelihood or "gaussian")


def load_many(args) -> dict:
    import pandas as pd

    from bayes_ssm.data import datasets
    from bayes_ssm.inference.many import split_long

    if args.dataset is not None:
        data = datasets.load(args.dataset)
        if not isinstance(data, pd.DataFrame) or not args.value_cols:
            cols = list(data.columns) if isinstance(data, pd.DataFrame) else [data.name]
            raise ValueError(f"pick the series of {args.dataset!r} with --value-cols (of {cols})")
        missing = [c for c in args.value_cols if c not in data.columns]
        if missing:
            raise ValueError(f"--value-cols {missing} not in {list(data.columns)}")
        return {c: data[c] for c in args.value_cols}
    if not args.csv.is_file():
        raise ValueError(f"--csv {args.csv} does not exist")
    frame = pd.read_csv(args.csv)
    return split_long(frame, id_col=args.id_col, time_col=args.date_col, value_col=args.value_col)


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
