"""Recalibration maps of the default forecaster, scored offline on saved rolling origins.

``default_model.py --dump DIR`` saves, per origin, the stacked mixture's forecast draws (not
recalibrated) and the candidates' in-sample h-step PIT values. This script applies each
recalibration map to the same draws and scores them against the realised values, so maps are
compared on identical forecasts (no refits, no Monte-Carlo difference between rows):

- ``none``: the draws as they are (the default with ``recalibrate=False``);
- ``quantile``: Kuleshov et al. (2018), the model's quantile at the empirical PIT quantile,
  whole origins sampled (``recalibrate=True``);
- ``widen``: the same map, but a quantile is only ever moved outwards (below the median
  ``min(p, R^{-1}(p))``, above it ``max``): in-sample PIT values can make intervals wider,
  never narrower;
- ``adaptive`` / ``adaptive_quantile``: adaptive conformal levels (Gibbs & Candès 2021) run
  over every observed in-sample PIT value in time order (needs a dump with ``recent_*``,
  written since session 9), widen-only / two-sided; ``--gammas`` adds rows at other step
  sizes (a sensitivity check, not a choice).

``--groups START:END`` also prints the table for the origins whose cutoff falls in the range
and for the others (ILI: ``2020-03-01:2021-12-31``, the 7 pandemic origins).

Usage::

    PYTHONPATH=. python benchmarks/default_model.py --dataset ili --dump /tmp/ili_dump ...
    PYTHONPATH=. python benchmarks/recalibration_offline.py --dataset ili --dump /tmp/ili_dump
"""

from __future__ import annotations

import argparse
import glob

import numpy as np
import pandas as pd
import scoringrules as sr

from bayes_ssm.data import datasets
from bayes_ssm.inference import adaptive_recalibration
from bayes_ssm.inference.recalibration import recalibrate_draws

PRESETS = {"ili": None, "covid": "us_cum_deaths", "etth1": "OT", "simulated": None}


def mixture_pit(npz, key="pit") -> np.ndarray | None:
    w = npz["loo_weights"]
    if f"{key}_0" not in npz:
        return None
    parts = [w[i] * npz[f"{key}_{i}"] for i in range(w.size) if w[i] > 0]
    return np.clip(sum(parts) / w[w > 0].sum(), 0.0, 1.0)


def recalibrated(draws, pit, mode, rng, sequence=None, gamma=None):
    """The library's recalibrated draws (whole origins), or the draws as they are."""
    if mode == "none" or pit is None:
        return draws
    if mode.startswith("adaptive") and sequence is None:
        return None  # an old dump: no recent rows
    adaptive_recalibration.GAMMA = gamma or GAMMA
    try:
        return recalibrate_draws(draws, pit, rng, mode.split("@")[0], sequence)
    finally:
        adaptive_recalibration.GAMMA = GAMMA


GAMMA = adaptive_recalibration.GAMMA


def score(draws, actual):
    """Per step: CRPS, PIT, 80% and 95% central-interval coverage."""
    q = np.quantile(draws, [0.025, 0.1, 0.9, 0.975], axis=0)
    return pd.DataFrame(
        {
            "horizon": np.arange(1, actual.size + 1),
            "crps": sr.crps_ensemble(actual, draws.T),
            "pit": (draws <= actual).mean(axis=0),
            "covered_80": (actual >= q[1]) & (actual <= q[2]),
            "covered_95": (actual >= q[0]) & (actual <= q[3]),
        }
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ili", choices=sorted(PRESETS))
    parser.add_argument("--column", default=None)
    parser.add_argument("--diff", action="store_true")
    parser.add_argument("--dump", required=True)
    parser.add_argument("--gammas", nargs="*", default=[], help="numbers, or auto")
    parser.add_argument("--groups", default=None, help="START:END cutoff dates of one group")
    parser.add_argument("--key", type=int, default=0)
    args = parser.parse_args(argv)
    if args.dataset == "simulated":
        from default_model import simulated_level

        y = simulated_level()
    else:
        y = datasets.load(args.dataset)
    if isinstance(y, pd.DataFrame):
        y = y[args.column or PRESETS[args.dataset]]
    if args.diff:
        y = y.diff().iloc[1:]
    rng = np.random.default_rng(args.key)
    rows = []
    files = sorted(glob.glob(f"{args.dump}/origin_*.npz"))
    for path in files:
        npz = np.load(path)
        draws = npz["draws"]
        cutoff = pd.Timestamp(str(npz["cutoff"]))
        actual = y.loc[y.index > cutoff].iloc[: draws.shape[1]].to_numpy(float)
        pit = mixture_pit(npz)
        recent = mixture_pit(npz, "recent")
        sequence = None if recent is None else np.vstack([pit, recent])
        modes = [(m, None) for m in ("none", "quantile", "widen", "adaptive", "adaptive_quantile")]
        modes += [(f"adaptive@{g}", g if g == "auto" else float(g)) for g in args.gammas]
        if "auto" in args.gammas:
            modes.append(("adaptive_quantile@auto", "auto"))
        for mode, gamma in modes:
            out = recalibrated(draws, pit, mode, rng, sequence, gamma)
            if out is None:
                continue
            part = score(out, actual)
            rows.append(part.assign(map=mode, origin=str(cutoff.date())))
    scores = pd.concat(rows, ignore_index=True)
    pd.set_option("display.width", 250)
    print(f"{args.dataset}: {len(files)} origins (maps on the same draws)")
    print(summary(scores).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.groups:
        lo, hi = args.groups.split(":")
        inside = scores["origin"].between(lo, hi)
        for name, part in (("inside", scores[inside]), ("outside", scores[~inside])):
            n = part["origin"].nunique()
            print(f"\norigins {name} {args.groups} ({n}):")
            print(summary(part).to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def summary(scores: pd.DataFrame) -> pd.DataFrame:
    """Per map: CRPS and coverage over steps 1-4 and 1-H, coverage at 4 and H, PIT tails."""
    horizon = int(scores["horizon"].max())
    out = []
    for mode, part in scores.groupby("map", sort=False):
        row = {"map": mode}
        for lo, hi in sorted({(1, min(4, horizon)), (1, horizon)}):
            sel = part[(part["horizon"] >= lo) & (part["horizon"] <= hi)]
            row[f"CRPS {lo}-{hi}"] = sel["crps"].mean()
            row[f"cov80 {lo}-{hi}"] = sel["covered_80"].mean()
            row[f"cov95 {lo}-{hi}"] = sel["covered_95"].mean()
        for h in sorted({min(4, horizon), horizon}):
            sel = part[part["horizon"] == h]
            row[f"cov80 @{h}"] = sel["covered_80"].mean()
            row[f"cov95 @{h}"] = sel["covered_95"].mean()
        sel = part[part["horizon"] <= min(4, horizon)]
        row["PIT<.025 1-4"] = (sel["pit"] < 0.025).mean()
        row["PIT>.975 1-4"] = (sel["pit"] > 0.975).mean()
        out.append(row)
    return pd.DataFrame(out)


if __name__ == "__main__":
    main()
