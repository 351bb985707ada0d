"""The ILI 20-origin protocol with each NeuralSSM layer, HybridTS, the default model and
seasonal naive side by side (issue 15).

Origins 13 weeks apart, the last at n-26, 26-step forecasts (the protocol of issue 12,
``benchmarks/default_model.py``); ``--last K`` runs only the last ``K`` origins of the 20.
Every model is fitted at each origin on the same sliding window of the last ``--window``
weeks (417 by default, an ILI-sized problem) by SVI with the package defaults
(``fit_svi``: AutoNormal, Adam peaking at 0.01, up to 10 000 steps, relative tolerance 1e-4;
NeuralSSM's own learning-rate schedule since session 8, ``--constant-lr`` for the constant
rate of sessions 1-7) unless ``--steps`` / ``--tol`` say otherwise; the default model
(``bs.AutoTS``) fits as it does.
Prints CRPS 1-4 and 1-26, 80/95% coverage, seconds and the folds whose fit failed its checks
(``bs.check``: e.g. SVI that did not converge) per model, then the convergence per fold.

Usage::

    PYTHONPATH=. python benchmarks/layers_ili.py --last 4 --out ili_layers.csv
    PYTHONPATH=. python benchmarks/layers_ili.py --origins 17 16 --out ili_more.csv
    PYTHONPATH=. python benchmarks/layers_ili.py --report --out ili_layers.csv --merge ili_more.csv
"""

from __future__ import annotations

import argparse
import os
import time

import optax
import pandas as pd

import bayes_ssm as bs
from bayes_ssm.data import datasets
from bayes_ssm.data.atomic import atomic_path
from bayes_ssm.evaluation.backtesting import backtest
from bayes_ssm.models import HybridTS, NeuralSSM, StructuralTS

FOLDS, STEP, HORIZON, SEASON = 20, 13, 26, 52


def runners(selected):
    models = {
        "default": bs.AutoTS(),
        "HybridTS": HybridTS(
            structural=StructuralTS(trend="local_linear", seasonal=52),
            neural=NeuralSSM(width=4, num_layers=1),
        ),
        **{f"NeuralSSM {layer}": NeuralSSM(layer=layer) for layer in NeuralSSM_LAYERS},
    }
    return {k: v for k, v in models.items() if not selected or k in selected}


NeuralSSM_LAYERS = ("s4d", "selective", "ssd", "attention")


def summary(scores: pd.DataFrame, seconds: pd.Series) -> pd.DataFrame:
    rows = []
    for model, part in scores.groupby("model", sort=False):
        conv = part.groupby("fold")["converged"].all()
        rows.append(
            {
                "model": model,
                "origins": conv.size,
                "converged": f"{int(conv.sum())}/{conv.size}",
                "CRPS 1-4": part.loc[part["horizon"] <= 4, "crps"].mean(),
                "CRPS 1-26": part["crps"].mean(),
                "cov80": part["covered_80"].mean(),
                "cov95": part["covered_95"].mean(),
                "s/origin": seconds.get(model, float("nan")) / conv.size,
            }
        )
    return pd.DataFrame(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--last", type=int, default=FOLDS, help="run the last K origins")
    parser.add_argument(
        "--origins", type=int, nargs="*", default=None, help="run these origins (1..20) instead"
    )
    parser.add_argument("--window", type=int, default=417, help="training weeks (sliding)")
    parser.add_argument("--steps", type=int, default=None, help="most SVI steps")
    parser.add_argument("--tol", type=float, default=None)
    parser.add_argument(
        "--constant-lr",
        action="store_true",
        help="fit with optax.adam(0.01) (sessions 1-7) instead of each model's default schedule",
    )
    parser.add_argument("--models", nargs="*", default=None)
    parser.add_argument("--key", type=int, default=0)
    parser.add_argument("--out", default=None, help="tidy scores (CSV), written per origin")
    parser.add_argument("--report", action="store_true", help="only print the tables of --out")
    parser.add_argument("--merge", nargs="*", default=(), help="more --out prefixes to report")
    parser.add_argument(
        "--before",
        nargs="*",
        default=(),
        help="--out prefixes of an earlier run: its rows for the same models and origins are "
        "printed beside these (before / after)",
    )
    args = parser.parse_args(argv)
    y = datasets.load("ili")
    fit_kwargs = {k: v for k, v in (("steps", args.steps), ("tol", args.tol)) if v is not None}
    if args.constant_lr:
        fit_kwargs["optimizer"] = optax.adam(0.01)
    models = runners(args.models)
    last_origin = len(y) - HORIZON
    frames, fold_rows = [], []
    if args.report:
        for prefix in (args.out, *args.merge):
            frames.append(pd.read_csv(prefix + ".scores.csv"))
            fold_rows.append(pd.read_csv(prefix + ".folds.csv"))
    todo = range(FOLDS - args.last, FOLDS)
    if args.origins:
        todo = [o - 1 for o in args.origins]
    load0, start = os.getloadavg(), time.perf_counter()
    for k in [] if args.report else todo:
        origin = last_origin - STEP * (FOLDS - 1 - k)
        part = backtest(
            models,
            y.iloc[origin - args.window : origin + HORIZON],
            horizon=HORIZON,
            folds=1,
            window="sliding",
            min_train=args.window,
            season=SEASON,
            baselines=["seasonal_naive"],
            fit_kwargs=fit_kwargs or None,
            key=args.key + k,
            progress=False,
        )
        fold_rows.append(part.attrs["folds"].assign(fold=k))
        part.attrs = {}
        frames.append(part.assign(fold=k))
        if args.out:  # written after every origin (atomically), so a long run can be read
            for suffix, rows in ((".scores.csv", frames), (".folds.csv", fold_rows)):
                with atomic_path(args.out + suffix) as tmp:
                    pd.concat(rows).to_csv(tmp, index=False)
        print(f"origin {k + 1}/{FOLDS} done, {time.perf_counter() - start:.0f} s", flush=True)
    scores, folds = pd.concat(frames, ignore_index=True), pd.concat(fold_rows, ignore_index=True)
    load1 = os.getloadavg()
    seconds = folds.groupby("model")["seconds"].sum()
    pd.set_option("display.width", 200)
    ran = sorted(int(f) + 1 for f in scores["fold"].unique())
    print(
        f"ILI: {len(y)} weeks; origins {ran} of the {FOLDS} "
        f"(13 weeks apart, the last at n-26), 26 steps each, sliding window {args.window} "
        f"weeks; load average {load0[0]:.1f} at start, {load1[0]:.1f} at end (2 shared cores)"
    )
    print(summary(scores, seconds).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print("\nconverged per origin (fit checks passed)")
    conv = folds.pivot_table(index="model", columns="fold", values="converged", aggfunc="all")
    print(conv.to_string())
    if args.before:
        compare(scores, folds, args.before)


def compare(scores: pd.DataFrame, folds: pd.DataFrame, prefixes) -> None:
    """Print the earlier run's summary on the same (model, origin) pairs, then per origin
    the fit check and CRPS 1-26 before -> after."""
    old_s = pd.concat([pd.read_csv(p + ".scores.csv") for p in prefixes], ignore_index=True)
    old_f = pd.concat([pd.read_csv(p + ".folds.csv") for p in prefixes], ignore_index=True)
    pairs = folds[["model", "fold"]].drop_duplicates()
    old_s, old_f = (df.merge(pairs, on=["model", "fold"]) for df in (old_s, old_f))
    seconds = old_f.groupby("model")["seconds"].sum()
    print("\nbefore (same models and origins):")
    print(summary(old_s, seconds).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    crps = {
        name: df.groupby(["model", "fold"])["crps"].mean()
        for name, df in (("before", old_s), ("after", scores))
    }
    ok = {
        name: df.groupby(["model", "fold"])["converged"].all()
        for name, df in (("before", old_f), ("after", folds))
    }
    table = pd.DataFrame(
        {
            "check before": ok["before"],
            "check after": ok["after"],
            "CRPS 1-26 before": crps["before"],
            "CRPS 1-26 after": crps["after"],
        }
    ).dropna()
    table.index = table.index.set_levels(table.index.levels[1] + 1, level=1)  # origin 1..20
    print("\nper origin, before -> after")
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
