"""Why the default loses on the exchange rates: each candidate alone, and the stacked mixture.

The Chronos Benchmark II protocol of ``benchmarks/exchange_rate.py`` (8 series, the last 30
business days held out, WQL pooled). For every series, one ``bs.auto_fit`` on the default's
own window and transform with the default candidates plus a local linear trend (a candidate
the default leaves out), then the WQL of: each candidate alone (weight 1), the stacked
mixture of the default candidates (as shipped, not recalibrated and widen), and the stacked
mixture with the local linear trend among the candidates. Also the default candidates'
stacking weights per series. One compile per candidate (every series has the same window).

Usage::

    PYTHONPATH=. python benchmarks/exchange_rate_candidates.py [--series 8] [--transform auto]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import numpy as np
import pandas as pd
from exchange_rate import HORIZON, from_samples, score, split  # noqa: I001

from bayes_ssm.inference.auto import auto_fit, default_candidates
from bayes_ssm.inference.recalibration import multistep_weights
from bayes_ssm.inference.stacking import stacking_weights
from bayes_ssm.models import StructuralTS


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=8)
    parser.add_argument("--transform", default="auto")
    parser.add_argument("--key", type=int, default=0)
    parser.add_argument(
        "--hstep", action="store_true", help="also stacking weights on in-sample h-step scores"
    )
    args = parser.parse_args(argv)
    series, _ = split(None)
    series = series[: args.series]
    candidates = dict(default_candidates([]))
    candidates["local_linear_trend"] = StructuralTS(trend="local_linear")
    default_names = [n for n in candidates if n != "local_linear_trend"]
    frames: dict[str, list] = {}
    weights_rows = []
    load0, start = os.getloadavg(), time.perf_counter()
    for i, (name, train, test) in enumerate(series):
        stacked = auto_fit(
            train,
            key=args.key + i,
            candidates=candidates,
            transform=args.transform,
            recalibrate=False,
        )
        lpd = stacked.table["elpd_loo"]
        weights_rows.append({"series": name, **stacked.weights.round(3).to_dict()})

        def draws_of(weights, recalibrate=False, stacked=stacked, i=i):
            version = dataclasses.replace(stacked, weights=weights, recalibrate=recalibrate)
            return version.forecast_samples(HORIZON, num_samples=1000, key=args.key + i)

        for cand in candidates:
            w = pd.Series(0.0, index=stacked.weights.index, name="weight")
            w[cand] = 1.0
            frames.setdefault(cand, []).append(from_samples(draws_of(w), test.index))
        # the default's own stacking: LOO stacking over the default candidates only
        sub = stacked.fits
        w_default = _restack(stacked, default_names)
        for label, rec in (("stacked default", False), ("stacked default + widen", "widen")):
            frames.setdefault(label, []).append(from_samples(draws_of(w_default, rec), test.index))
        frames.setdefault("stacked with local linear trend", []).append(
            from_samples(draws_of(stacked.weights), test.index)
        )
        if args.hstep:  # stacking on in-sample 1..30-step log scores instead of one-step LOO
            for label, names in (
                ("h-step weights, default candidates", default_names),
                ("h-step weights with local linear trend", list(candidates)),
            ):
                w = multistep_weights(stacked.in_sample_scores(HORIZON, names))
                w = pd.Series(w, index=names).reindex(stacked.weights.index, fill_value=0.0)
                weights_rows.append({"series": f"{name} ({label})", **w.round(3).to_dict()})
                frames.setdefault(label, []).append(from_samples(draws_of(w), test.index))
        print(
            f"  [{name}] {stacked.transform}; elpd_loo {lpd.round(1).to_dict()}; "
            f"default weights {w_default.round(3).to_dict()}; n={len(sub)}",
            flush=True,
        )
    seconds = time.perf_counter() - start
    load1 = os.getloadavg()
    rows = [score(label, series, fr, seconds) for label, fr in frames.items()]
    print(
        f"{len(series)} series, {seconds:.0f} s; load {load0[0]:.1f} -> {load1[0]:.1f} "
        "(2 shared cores)"
    )
    print(pd.DataFrame(rows).drop(columns="seconds").to_string(index=False))
    print(pd.DataFrame(weights_rows).to_string(index=False))


def _restack(stacked, names):
    """LOO stacking weights over ``names`` only (the same fits)."""
    from bayes_ssm.inference.auto import _loo

    lpds, ks, good = [], [], []
    for n in names:
        elpd_i, k, g = _loo(stacked.fits[n])
        lpds.append(elpd_i)
        ks.append(k)
        good.append(g)
    lpd = np.column_stack(lpds)
    ok = np.all(np.column_stack(ks) <= np.asarray(good), axis=1) & np.all(np.isfinite(lpd), 1)
    w = stacking_weights(lpd[ok]) if ok.mean() >= 0.9 else np.full(len(names), 1 / len(names))
    out = pd.Series(0.0, index=stacked.weights.index, name="weight")
    out[names] = w
    return out


if __name__ == "__main__":
    main()
