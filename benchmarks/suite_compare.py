"""Variants of the default side by side over the panels of ``benchmarks/default_suite.py``.

Reads the per-step scores of one or more suite CSVs (the first copy of a row wins) and prints,
per model, each panel's relative CRPS (against the panel's seasonal naive) with its 80% / 95%
coverage, and the geometric mean of the relative CRPS over the panels the model has complete
(the rule by which session 8 picks a variant: one number across health and finance panels,
coverage beside it). Only rows every listed model has are scored, so a variant still running
is compared on its finished series and origins.

Usage::

    PYTHONPATH=. python benchmarks/suite_compare.py \\
        --csv benchmarks/results/default_suite.csv benchmarks/results/suite_s8_no_damped.csv \\
        --models default,default_norecal,no_damped,no_damped_norecal
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

KEYS = ["panel", "model", "series", "origin", "h"]


def compare(scores: pd.DataFrame, models: list[str], panels: list[str]) -> pd.DataFrame:
    """One row per model: ``<panel>`` relative CRPS, ``<panel> cov`` (80/95), ``geomean``."""
    out = {m: {} for m in models}
    for name in panels:
        panel = suite_panels.PANELS[name]()
        base = suite_runners.EmpiricalNaive(panel.season).name
        part = scores[(scores["panel"] == name) & scores["model"].isin([*models, base])]
        have = set(part["model"])
        if base not in have or not have & set(models):
            continue
        # the (series, origin) fits every listed model present has finished
        fits = part.drop_duplicates(["model", "series", "origin"])
        counts = fits.groupby(["series", "origin"])["model"].nunique()
        done = counts[counts == len(have)].index
        keep = pd.MultiIndex.from_frame(part[["series", "origin"]]).isin(done)
        table = suite_scores.summary(part[keep], baseline=base).set_index("model")
        n_fits = len(done)
        for m in models:
            if m in table.index:
                row = table.loc[m]
                out[m][name] = row["rel. CRPS"]
                out[m][f"{name} cov"] = f"{row['cov80']:.2f}/{row['cov95']:.2f}"
                out[m][f"{name} fits"] = n_fits
    frame = pd.DataFrame.from_dict(out, orient="index")
    rel = frame[[p for p in panels if p in frame]]
    frame["geomean"] = np.exp(np.log(rel.astype(float)).mean(axis=1, skipna=False))
    return frame


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", nargs="+", required=True)
    parser.add_argument("--models", required=True, help="comma-separated model names")
    parser.add_argument("--panels", default=",".join(suite_panels.PANELS))
    args = parser.parse_args(argv)
    frames = [pd.read_csv(p, dtype={"origin": str}) for p in args.csv if os.path.exists(p)]
    scores = pd.concat(frames, ignore_index=True).drop_duplicates(KEYS, keep="first")
    frame = compare(scores, args.models.split(","), args.panels.split(","))
    panels = [p for p in args.panels.split(",") if p in frame]
    print("relative CRPS (cov80/cov95) [fits scored]; geomean over the panels\n")
    head = "| model | " + " | ".join(panels) + " | geomean |"
    print(head)
    print("|---|" + "---:|" * (len(panels) + 1))
    for model, row in frame.iterrows():
        cells = []
        for p in panels:
            if pd.isna(row.get(p)):
                cells.append("")
            else:
                cells.append(f"{row[p]:.3f} ({row[f'{p} cov']}) [{int(row[f'{p} fits'])}]")
        print(f"| {model} | " + " | ".join(cells) + f" | {row['geomean']:.3f} |")


if __name__ == "__main__":
    main()
