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
  never narrower.

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
from bayes_ssm.inference.recalibration import recalibrate_draws

PRESETS = {"ili": None, "covid": "us_cum_deaths", "etth1": "OT", "simulated": None}


def mixture_pit(npz) -> np.ndarray | None:
    w = npz["loo_weights"]
    if "pit_0" not in npz:
        return None
    parts = [w[i] * npz[f"pit_{i}"] for i in range(w.size) if w[i] > 0]
    return np.clip(sum(parts) / w[w > 0].sum(), 0.0, 1.0)


def recalibrated(draws, pit, mode, rng):
    """The library's recalibrated draws (whole origins), or the draws as they are."""
    if mode == "none" or pit is None:
        return draws
    return recalibrate_draws(draws, pit, rng, mode)


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
        for mode in ("none", "quantile", "widen"):
            part = score(recalibrated(draws, pit, mode, rng), actual)
            rows.append(part.assign(map=mode, origin=str(cutoff.date())))
    scores = pd.concat(rows, ignore_index=True)
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
        out.append(row)
    pd.set_option("display.width", 250)
    print(f"{args.dataset}: {len(files)} origins, {horizon} steps (maps on the same draws)")
    print(pd.DataFrame(out).to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
