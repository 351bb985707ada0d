"""Heavy-tailed level shocks (``HeavyLevelTS``) as a candidate of the default: does it help?

For every series (or origin), one ``bs.auto_fit`` with the default's own candidates (same
window, transform, seasons, keys: candidate ``i`` gets ``fold_in(key, i)``, so the default's
four fits are the shipped default's) **plus** ``HeavyLevelTS`` (Student-t level shocks, with
the same seasonals) as a fifth candidate, then, from the same fits and without refitting:

- ``default``: LOO stacking over the four default candidates (as shipped, recalibration as
  shipped: ``widen`` where the window allows it);
- ``default + heavy``: LOO stacking over all five;
- ``heavy replaces student_t``: the Student-t observation candidate swapped for the new one;
- each candidate alone (weight 1, not recalibrated; pooled over the series where the
  candidate exists: with a season the level and damped trend are ``SeasonalNoiseTS``, column
  ``n``).

Datasets: ``deaths`` (the bundled COVID monthly deaths of ``benchmarks/monthly_deaths.py``:
8 countries, 23 months to fit, 12 held out; CRPS relative to the country's mean held-out
deaths), ``fx`` (the Chronos Benchmark II exchange rates of ``benchmarks/exchange_rate.py``:
8 series, 30 business days held out, WQL pooled), ``ili`` (weekly ILI, ``--folds`` origins of
the issue-12 protocol's 20, 13 weeks apart with the last at n-26, spread evenly; 26 steps).

Usage::

    PYTHONPATH=. python benchmarks/heavy_level.py --dataset deaths [--method nuts]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import numpy as np
import pandas as pd
from exchange_rate_candidates import _restack

from bayes_ssm.data import datasets
from bayes_ssm.data.validation import as_series_data
from bayes_ssm.evaluation import metrics
from bayes_ssm.inference.auto import (
    _SEASONS,
    MIN_WINDOW,
    _freq_code,
    auto_fit,
    default_candidates,
    seasonal_periods,
)
from bayes_ssm.inference.stacked_fit import resolve_transform
from bayes_ssm.models import HeavyLevelTS, Seasonal


def candidates_for(y: pd.Series, nu_level_rate: float = 0.1) -> dict:
    """The default's candidates for ``y`` (as ``auto_fit`` builds them) plus ``heavy_level``."""
    full = as_series_data(y)
    longest = max((p for p, _ in _SEASONS.get(_freq_code(full.freq), [])), default=0)
    window = y.iloc[-max(int(round(6 * longest)), MIN_WINDOW) :]
    z = resolve_transform("auto", window.to_numpy()).forward(window.to_numpy())
    seasons = seasonal_periods(full.freq, z)
    out = dict(default_candidates(seasons))
    seasonal = [Seasonal(p, harmonics=h) for p, h in seasons] or None
    out["heavy_level"] = HeavyLevelTS(seasonal=seasonal, nu_level_rate=nu_level_rate)
    return out


def tasks(dataset: str, folds: int):
    """``(label, train, test)`` per series / origin."""
    if dataset == "deaths":
        from monthly_deaths import HOLDOUT, monthly_deaths

        data = monthly_deaths()
        return [(c, data[c].iloc[:-HOLDOUT], data[c].iloc[-HOLDOUT:]) for c in data]
    if dataset == "fx":
        from exchange_rate import split

        return split(None)[0]
    y = datasets.load("ili")
    horizon, step, total = 26, 13, 20
    last = len(y) - horizon
    picks = np.unique(np.round(np.linspace(0, total - 1, folds)).astype(int))
    out = []
    for k in picks:
        origin = last - step * (total - 1 - k)
        out.append((str(y.index[origin - 1].date()), y.iloc[:origin], y.iloc[origin:][:horizon]))
    return out


def scores(test: np.ndarray, draws: np.ndarray, relative: bool) -> dict:
    crps = metrics.crps(test, draws, pointwise=True)
    if relative:
        crps = crps / test.mean()
    lo80, hi80, lo95, hi95 = np.quantile(draws, [0.1, 0.9, 0.025, 0.975], axis=0)
    q = pd.DataFrame(np.quantile(draws, metrics.QUANTILES, axis=0).T, columns=metrics.QUANTILES)
    return {
        "crps": crps,
        "cov80": (test >= lo80) & (test <= hi80),
        "cov95": (test >= lo95) & (test <= hi95),
        "width95": (hi95 - lo95) / np.abs(test).mean(),
        "q": q,
        "test": test,
    }


def _stack_all(stacked, names):
    """Stacking weights over ``names`` on every point's PSIS-LOO density, Pareto ``k`` or not
    (the default falls back to equal weights when more than 10% of the points have a bad k)."""
    from bayes_ssm.inference.auto import _loo
    from bayes_ssm.inference.stacking import stacking_weights

    lpd = np.column_stack([_loo(stacked.fits[n])[0] for n in names])
    out = pd.Series(0.0, index=stacked.weights.index, name="weight")
    out[names] = stacking_weights(lpd[np.all(np.isfinite(lpd), axis=1)])
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="deaths", choices=["deaths", "fx", "ili"])
    parser.add_argument("--method", default="svi", choices=["svi", "nuts"])
    parser.add_argument("--folds", type=int, default=4, help="ili: origins of the 20")
    parser.add_argument("--series", type=int, default=None, help="only the first N")
    parser.add_argument("--key", type=int, default=0)
    parser.add_argument("--nu-level-rate", type=float, default=0.1, help="nu_level prior rate")
    args = parser.parse_args(argv)
    work = tasks(args.dataset, args.folds)[: args.series]
    relative = args.dataset == "deaths"
    results: dict[str, list] = {}
    load0, start = os.getloadavg(), time.perf_counter()
    for i, (label, train, test) in enumerate(work):
        t0 = time.perf_counter()
        cands = candidates_for(train, args.nu_level_rate)
        names = list(cands)
        default_names = names[:-1]
        stacked = auto_fit(train, key=args.key + i, candidates=cands, method=args.method)
        variants = {
            "default": (_restack(stacked, default_names), stacked.recalibrate),
            "default + heavy": (stacked.weights, stacked.recalibrate),
            "heavy replaces student_t": (
                _restack(stacked, [n for n in names if n != "level_student_t"]),
                stacked.recalibrate,
            ),
        }
        for which, subset in (("default", default_names), ("default + heavy", names)):
            variants[f"{which}, stacking on all points"] = (
                _stack_all(stacked, subset),
                stacked.recalibrate,
            )
        for name in names:
            w = pd.Series(0.0, index=stacked.weights.index, name="weight")
            w[name] = 1.0
            variants[f"{name} alone"] = (w, False)
        y_test = test.to_numpy(float)
        for v, (w, rec) in variants.items():
            version = dataclasses.replace(stacked, weights=w, recalibrate=rec)
            draws = version.forecast_samples(len(y_test), num_samples=1000, key=args.key + i)
            results.setdefault(v, []).append(scores(y_test, np.asarray(draws, float), relative))
        heavy = stacked.fits["heavy_level"]
        nu = np.asarray(heavy.draws["nu_level"]).ravel()
        print(
            f"  [{label}] {time.perf_counter() - t0:.0f} s; weights "
            f"{stacked.weights.round(2).to_dict()}; default weights "
            f"{variants['default'][0].round(2).to_dict()}; from {stacked.weights_from}; "
            f"elpd_loo {stacked.table['elpd_loo'].round(1).to_dict()}; nu_level median "
            f"{np.median(nu):.1f} (min {nu.min():.2f})",
            flush=True,
        )
    seconds = time.perf_counter() - start
    load1 = os.getloadavg()
    rows = []
    h = len(work[0][2])
    for v, parts in results.items():
        crps = np.concatenate([p["crps"] for p in parts])
        quants = pd.concat([p["q"] for p in parts], ignore_index=True)
        actual = np.concatenate([p["test"] for p in parts])
        rows.append(
            {
                "forecast": v,
                "n": len(parts),  # series/origins scored (a seasonal candidate: where it exists)
                f"CRPS 1-{h}": float(crps.mean()),
                "CRPS 1-3": float(np.mean([p["crps"][:3] for p in parts])),
                "cov80": float(np.mean([p["cov80"] for p in parts])),
                "cov95": float(np.mean([p["cov95"] for p in parts])),
                f"width95 @{h}": float(np.median([p["width95"][-1] for p in parts])),
                "WQL": metrics.wql(actual, quants),
            }
        )
    print(
        f"{args.dataset}, {len(work)} series/origins, {args.method}, {seconds:.0f} s; load "
        f"{load0[0]:.1f} -> {load1[0]:.1f} (2 shared cores)"
    )
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda x: f"{x:.4g}"))


if __name__ == "__main__":
    main()
