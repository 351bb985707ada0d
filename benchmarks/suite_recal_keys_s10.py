"""The recalibration maps of the default per key, side by side (session 10, issue 12).

Reads one set of suite CSVs per key (``benchmarks/suite_recal_s10.py``; the CSVs carry no
key, so each key has its own), keeps per panel the (series, origin) fits that *every* key has
for every listed model and the seasonal naive, and prints per key and panel each model's
relative CRPS (against that key's seasonal naive on the same rows) with 80% / 95% coverage
(and WQL on ``fx_levels``), the geometric mean over the panels, and the noise: the key-to-key
spread of the same model (``|r_a - r_b| / mean``), against which a difference between models
is judged.

Usage::

    PYTHONPATH=. python benchmarks/suite_recal_keys_s10.py --models widen_s9,adaptive \\
        --key 0=benchmarks/results/suite_s9_adaptive.csv,benchmarks/results/default_suite.csv \\
        --key 500=benchmarks/results/suite_s10_key500.csv
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import suite_panels  # noqa: E402
import suite_runners  # noqa: E402
import suite_scores  # noqa: E402

ROW = ["panel", "model", "series", "origin", "h"]


def read_key(paths: list[str]) -> pd.DataFrame:
    """The rows of one key's CSVs (the first copy of a row wins)."""
    frames = [pd.read_csv(p, dtype={"origin": str}) for p in paths]
    return pd.concat(frames, ignore_index=True).drop_duplicates(ROW, keep="first")


def common_fits(by_key: dict, panel: str, models: list[str]) -> set:
    """The (series, origin) fits that every key has for every model in ``models``."""
    out = None
    for scores in by_key.values():
        part = scores[(scores["panel"] == panel) & scores["model"].isin(models)]
        fits = part.drop_duplicates(["model", "series", "origin"])
        counts = fits.groupby(["series", "origin"])["model"].nunique()
        done = set(counts[counts == len(models)].index)
        out = done if out is None else out & done
    return out or set()


def table(by_key: dict, models: list[str], panels: list[str]) -> pd.DataFrame:
    """Long table: one row per key, panel and model with rel. CRPS, WQL, cov80, cov95 and
    the number of fits scored."""
    rows = []
    for name in panels:
        base = suite_runners.EmpiricalNaive(suite_panels.PANELS[name]().season).name
        fits = common_fits(by_key, name, [*models, base])
        if not fits:
            continue
        for key, scores in by_key.items():
            part = scores[(scores["panel"] == name) & scores["model"].isin([*models, base])]
            keep = pd.Series(list(zip(part["series"], part["origin"], strict=True))).isin(fits)
            summary = suite_scores.summary(part[keep.to_numpy()], baseline=base)
            for row in summary.to_dict("records"):
                if row["model"] in models:
                    rows.append(
                        {
                            "key": key,
                            "panel": name,
                            "model": row["model"],
                            "rel": row["rel. CRPS"],
                            "WQL": row["WQL"],
                            "cov80": row["cov80"],
                            "cov95": row["cov95"],
                            "fits": len(fits),
                            "origins": len({o for _, o in fits}),
                        }
                    )
    return pd.DataFrame(rows)


def paired(by_key: dict, models: list[str], panels: list[str]) -> pd.DataFrame:
    """Each model against the first, fit by fit: the change of the pooled scaled CRPS and its
    standard error across fits (``d_f``: the model's mean scaled CRPS minus the first
    model's at fit ``f``, averaged over the keys; change ``mean(d) / mean(base)``, standard
    error ``sd(d) / sqrt(n) / mean(base)``). The noise of a *paired* difference, beside the
    key-to-key spread of one model."""
    rows = []
    for name in panels:
        base = suite_runners.EmpiricalNaive(suite_panels.PANELS[name]().season).name
        fits = common_fits(by_key, name, [*models, base])
        if not fits:
            continue
        per_key = []
        for scores in by_key.values():
            part = scores[(scores["panel"] == name) & scores["model"].isin(models)]
            part = part[part["y"].notna()]
            keep = pd.Series(list(zip(part["series"], part["origin"], strict=True))).isin(fits)
            part = part[keep.to_numpy()]
            scaled = part["crps"] / part["scale"]
            by_fit = scaled.groupby([part["model"], part["series"], part["origin"]]).mean()
            per_key.append(by_fit.unstack("model"))
        fit_mean = sum(per_key) / len(per_key)  # (series, origin) x model, averaged over keys
        first = fit_mean[models[0]]
        for m in models[1:]:
            d = fit_mean[m] - first
            rows.append(
                {
                    "panel": name,
                    "model": m,
                    "change": d.mean() / first.mean(),
                    "se": d.std(ddof=1) / np.sqrt(len(d)) / first.mean(),
                    "fits": len(d),
                }
            )
    return pd.DataFrame(rows)


def geomeans(long: pd.DataFrame) -> pd.DataFrame:
    """Geometric mean of the relative CRPS over the panels, per key and model."""
    wide = long.pivot_table(index=["key", "model"], columns="panel", values="rel")
    return np.exp(np.log(wide).mean(axis=1)).rename("geomean").reset_index()


def print_tables(long: pd.DataFrame, models: list[str]) -> None:
    panels = list(dict.fromkeys(long["panel"]))
    keys = list(dict.fromkeys(long["key"]))
    geo = geomeans(long).set_index(["key", "model"])["geomean"]
    cell = long.set_index(["key", "panel", "model"])
    print("relative CRPS (cov80 / cov95) per key; fits = series x origins scored on every key\n")
    print("| panel [fits, origins] | key | " + " | ".join(models) + " |")
    print("|---|---:|" + "---:|" * len(models))
    for p in panels:
        for k in keys:
            cells = []
            for m in models:
                r = cell.loc[(k, p, m)]
                extra = f", WQL {r['WQL']:.4f}" if p == "fx_levels" else ""
                cells.append(f"{r['rel']:.3f} ({r['cov80']:.2f} / {r['cov95']:.2f}{extra})")
            r0 = cell.loc[(k, p, models[0])]
            label = f"{p} [{int(r0['fits'])}, {int(r0['origins'])}]"
            print(f"| {label} | {k} | " + " | ".join(cells) + " |")
    for k in keys:
        cells = " | ".join(f"{geo[(k, m)]:.3f}" for m in models)
        print(f"| **geometric mean** | {k} | {cells} |")
    if len(keys) < 2:
        return
    print(
        "\nper panel: change of each model against the first "
        f"({models[0]}) per key, and the key-to-key spread |r_a - r_b| / mean of each model\n"
    )
    heads = [f"{m} vs {models[0]}, key {k}" for m in models[1:] for k in keys]
    heads += [f"spread {m}" for m in models]
    print("| panel | " + " | ".join(heads) + " |")
    print("|---|" + "---:|" * ((len(models) - 1) * len(keys) + len(models)))
    for p in panels:
        changes = [
            cell.loc[(k, p, m), "rel"] / cell.loc[(k, p, models[0]), "rel"] - 1
            for m in models[1:]
            for k in keys
        ]
        spreads = []
        for m in models:
            vals = np.array([cell.loc[(k, p, m), "rel"] for k in keys])
            spreads.append((vals.max() - vals.min()) / vals.mean())
        print(f"| {p} | " + " | ".join(f"{c:+.1%}" for c in changes) + " | "
              + " | ".join(f"{s:.1%}" for s in spreads) + " |")  # fmt: skip


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--key", action="append", required=True, help="KEY=CSV[,CSV...] (repeat per key)"
    )
    parser.add_argument("--models", default="widen_s9,adaptive,adaptive_quantile")
    parser.add_argument("--panels", default=",".join(suite_panels.PANELS))
    parser.add_argument("--csv", help="also write the long table here")
    args = parser.parse_args(argv)
    by_key = {}
    for spec in args.key:
        key, _, paths = spec.partition("=")
        by_key[key] = read_key([p for p in paths.split(",") if os.path.exists(p)])
    models = args.models.split(",")
    long = table(by_key, models, args.panels.split(","))
    if long.empty:
        raise SystemExit("no panel has fits on every key for every model")
    print_tables(long, models)
    pairs = paired(by_key, models, args.panels.split(","))
    print(f"\npaired, fit by fit against {models[0]} (keys averaged): change +- standard error\n")
    print("| panel [fits] | " + " | ".join(models[1:]) + " |")
    print("|---|" + "---:|" * (len(models) - 1))
    for p, group in pairs.groupby("panel", sort=False):
        cells = [f"{r.change:+.1%} +- {r.se:.1%}" for r in group.itertuples()]
        print(f"| {p} [{int(group['fits'].iloc[0])}] | " + " | ".join(cells) + " |")
    if args.csv:
        long.to_csv(args.csv + ".tmp", index=False)
        os.replace(args.csv + ".tmp", args.csv)


if __name__ == "__main__":
    main()
