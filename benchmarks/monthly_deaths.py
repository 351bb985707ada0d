"""Monthly deaths with a structural break: the default beside its peers, 12-month holdout.

Built from the bundled COVID data (``datasets/covid19_jhu_daily_selected_2020_2023.csv``):
each country's daily new deaths summed per calendar month, April 2020 to February 2023 (35
complete months; every country has deaths by April 2020), negative daily revisions kept as
reported in the month sums (a month below 1 is floored at 1). The last 12 months are held out;
every model sees the 23 before. The waves and the end of the pandemic are the structural break:
the last year looks like nothing before it. Scores over the 8 countries (the world total left
out) x 12 months: CRPS divided by the country's mean held-out deaths (so countries weigh
alike), 80% and 95% coverage, WQL pooled (as the exchange-rate protocol).

Usage::

    PYTHONPATH=. python benchmarks/monthly_deaths.py [--no-peers] [--key 0]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd
from default_model import StatsforecastPeer

import bayes_ssm as bs
from bayes_ssm.data import datasets
from bayes_ssm.evaluation import baselines, metrics

HOLDOUT = 12


def monthly_deaths() -> pd.DataFrame:
    frame = datasets.load("covid")
    daily = frame[[c for c in frame if c.endswith("_new_deaths") and not c.startswith("world")]]
    monthly = daily.resample("MS").sum().loc["2020-04-01":"2023-02-01"]
    monthly.columns = [c.removesuffix("_new_deaths") for c in monthly]
    return monthly.clip(lower=1.0)


class Default:
    name = "default (bs.auto_fit)"

    def __init__(self, recalibrate):
        self.recalibrate = recalibrate
        if recalibrate is False:
            self.name = "default, recalibrate=False"

    def forecast_samples(self, train, horizon, *, num_samples=1000, key=0):
        stacked = bs.auto_fit(train, key=key, recalibrate=self.recalibrate)
        draws = stacked.forecast_samples(horizon, num_samples=num_samples, key=key)
        return draws, stacked.weights.round(2).to_dict()


def peers():
    from statsforecast.models import AutoETS, AutoTheta

    return [
        StatsforecastPeer("AutoETS", lambda: AutoETS(season_length=1)),
        StatsforecastPeer("AutoTheta", lambda: AutoTheta(season_length=1)),
        baselines.StatsmodelsUC(),
        baselines.ProphetBaseline(),
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--key", type=int, default=0)
    args = parser.parse_args(argv)
    data = monthly_deaths()
    runners = [Default(True), Default(False)] + ([] if args.no_peers else peers())
    load0 = os.getloadavg()
    rows, start = [], time.perf_counter()
    for runner in runners:
        t0 = time.perf_counter()
        crps, cov80, cov95, actual, quants, notes = [], [], [], [], [], []
        for i, country in enumerate(data):
            y = data[country]
            train, test = y.iloc[:-HOLDOUT], y.iloc[-HOLDOUT:].to_numpy()
            if isinstance(runner, Default):
                draws, w = runner.forecast_samples(train, HOLDOUT, key=args.key + i)
                notes.append(f"{country}: {w}")
            else:
                draws = runner.forecast_samples(
                    train.to_numpy(), HOLDOUT, num_samples=1000, key=args.key + i
                )
            draws = np.asarray(draws, float)
            crps.append(metrics.crps(test, draws, pointwise=True) / test.mean())
            lo80, hi80, lo95, hi95 = np.quantile(draws, [0.1, 0.9, 0.025, 0.975], axis=0)
            cov80.append((test >= lo80) & (test <= hi80))
            cov95.append((test >= lo95) & (test <= hi95))
            actual.append(test)
            quants.append(
                pd.DataFrame(
                    np.quantile(draws, metrics.QUANTILES, axis=0).T, columns=list(metrics.QUANTILES)
                )
            )
        rows.append(
            {
                "model": runner.name,
                "rel. CRPS 1-12": float(np.mean(crps)),
                "rel. CRPS 1-3": float(np.mean([c[:3] for c in crps])),
                "cov80": float(np.mean(cov80)),
                "cov95": float(np.mean(cov95)),
                "WQL": metrics.wql(np.concatenate(actual), pd.concat(quants, ignore_index=True)),
                "seconds": time.perf_counter() - t0,
            }
        )
        for note in notes:
            print(f"  [{runner.name}] {note}", flush=True)
    load1 = os.getloadavg()
    print(
        f"monthly deaths, {data.shape[1]} countries, {len(data)} months, last {HOLDOUT} held "
        f"out; {time.perf_counter() - start:.0f} s; load {load0[0]:.1f} -> {load1[0]:.1f} "
        "(2 shared cores)"
    )
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
