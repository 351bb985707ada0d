"""The default forecaster (``bs.AutoTS``: stacked StructuralTS candidates) beside its peers.

Rolling origins on one bundled series, every model fitted on all data before each origin (the
default then keeps its own window, ``bs.auto_fit``), one ``--horizon``-step forecast per
origin. Peers run in the same harness on the same folds: statsforecast AutoETS, AutoTheta and
MSTL (draws from the Gaussian their 80% interval implies), statsmodels UnobservedComponents
(local linear trend + trigonometric season, maximum likelihood) and Prophet. Prints CRPS and
80/95% coverage at steps 1, 4 and ``--horizon`` (and averaged over steps 1..h), PIT by
horizon, seconds, and the load average.

The ILI protocol of issue 12 (the default)::

    PYTHONPATH=. python benchmarks/default_model.py --dataset ili
    # 20 origins 13 weeks apart, the last at n-26, 26 steps each

Other series: ``--dataset covid --column us_cum_deaths --diff`` (daily new deaths), ...
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import numpy as np
import pandas as pd

import bayes_ssm as bs
from bayes_ssm.data import datasets
from bayes_ssm.evaluation import baselines
from bayes_ssm.evaluation.backtesting import backtest

PRESETS = {  # dataset -> (column, season, folds, step, horizon)
    "ili": (None, 52, 20, 13, 26),
    "simulated": (None, 1, 12, 13, 13),
    "covid": ("us_cum_deaths", 7, 10, 28, 28),
    "etth1": ("OT", 24, 10, 168, 48),
}


class StatsforecastPeer:
    """A statsforecast model as a backtest baseline: Gaussian draws matching its 80% interval."""

    def __init__(self, name, factory):
        self.name, self.factory = name, factory

    def forecast_samples(self, y_train, horizon, *, num_samples=1000, key=None):
        y = pd.Series(np.asarray(y_train, float)).interpolate(limit_direction="both").to_numpy()
        out = self.factory().forecast(y=y, h=horizon, level=[80])
        mean = np.asarray(out["mean"])
        sd = (np.asarray(out["hi-80"]) - np.asarray(out["lo-80"])) / (2 * 1.2815515655446004)
        rng = np.random.default_rng(key)
        return mean + np.maximum(sd, 1e-12) * rng.standard_normal((num_samples, horizon))


class TrigUC:
    """statsmodels UnobservedComponents: local linear trend + trigonometric season (MLE)."""

    name = "statsmodels UC"

    def __init__(self, period, harmonics=3):
        self.period, self.harmonics = period, harmonics

    def forecast_samples(self, y_train, horizon, *, num_samples=1000, key=None):
        import warnings

        from statsmodels.tsa.statespace.structural import UnobservedComponents

        seas = [{"period": self.period, "harmonics": self.harmonics}] if self.period > 1 else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = UnobservedComponents(
                np.asarray(y_train, float), level="local linear trend", freq_seasonal=seas
            ).fit(disp=False, maxiter=200)
        fc = res.get_forecast(horizon)
        mean, sd = np.asarray(fc.predicted_mean), np.sqrt(np.asarray(fc.var_pred_mean))
        rng = np.random.default_rng(key)
        return mean + sd * rng.standard_normal((num_samples, horizon))


class DefaultVariant:
    """One variant of the default from a shared ``bs.auto_fit`` per origin (the fit is cached,
    so the variants differ only in the weights and the recalibration, at no extra fit)."""

    wants_index = True
    _cache: dict = {}

    def __init__(self, name, *, method, recalibrate, weights="loo", dump=None):
        self.name, self.method = name, method
        self.recalibrate, self.weights = recalibrate, weights
        self.dump = dump  # a folder: save what benchmarks/recalibration_offline.py needs

    def _save(self, stacked, train, horizon, num_samples, key):
        """The mixture's draws (not recalibrated), the candidates' in-sample PIT values and
        log densities, and both sets of weights, one ``.npz`` per origin."""
        from bayes_ssm.inference.recalibration import multistep_weights

        scores = stacked.in_sample_scores(horizon)
        plain = dataclasses.replace(stacked, recalibrate=False)
        arrays = {
            "draws": plain.forecast_samples(horizon, num_samples=num_samples, key=key),
            "cutoff": np.array(str(train.index[-1])),
            "names": np.array(list(stacked.weights.index)),
            "loo_weights": stacked.weights.to_numpy(),
        }
        if scores is not None:
            w = multistep_weights(scores)
            arrays["hstep_weights"] = w if w is not None else stacked.weights.to_numpy()
            for i, name in enumerate(stacked.weights.index):
                arrays[f"pit_{i}"] = scores["pit"][name]
                arrays[f"recent_{i}"] = scores["recent"][name]  # the last horizon-1 origins
        os.makedirs(self.dump, exist_ok=True)
        path = os.path.join(self.dump, f"origin_{len(train)}.npz")
        np.savez(path + ".tmp.npz", **arrays)
        os.replace(path + ".tmp.npz", path)

    def draws_and_problems(self, train, horizon, *, num_samples, key):
        from bayes_ssm.inference.recalibration import multistep_weights

        tag = (len(train), train.index[-1], int(key), self.method)
        if tag not in self._cache:
            self._cache.clear()
            self._cache[tag] = bs.auto_fit(train, key=int(key), method=self.method)
        stacked = self._cache[tag]
        if self.dump:
            self._save(stacked, train, horizon, num_samples or 1000, int(key))
        if self.weights == "multistep":
            w = multistep_weights(stacked.in_sample_scores(horizon))
            if w is not None:
                weights = pd.Series(w, index=stacked.weights.index, name="weight")
                stacked = dataclasses.replace(stacked, weights=weights)
        stacked = dataclasses.replace(stacked, recalibrate=self.recalibrate)
        draws = stacked.forecast_samples(horizon, num_samples=num_samples or 1000, key=int(key))
        problems = [
            f"{name}: {row.first_problem}"
            for name, row in stacked.table.iterrows()
            if row.problems and stacked.weights[name] > 0.05
        ]
        return draws, problems


def default_variants(method, dump=None):
    """The default, not recalibrated / recalibrated (widen-only, full quantile map or the
    adaptive conformal map), and with stacking weights on in-sample h-step scores instead of
    LOO."""
    return {
        "default": DefaultVariant("default", method=method, recalibrate=False, dump=dump),
        "default + widen": DefaultVariant("default + widen", method=method, recalibrate="widen"),
        "default + quantile": DefaultVariant(
            "default + quantile", method=method, recalibrate="quantile"
        ),
        "default + adaptive": DefaultVariant(
            "default + adaptive", method=method, recalibrate="adaptive"
        ),
        "default h-step w": DefaultVariant(
            "default h-step w", method=method, recalibrate=False, weights="multistep"
        ),
    }


def simulated_level(n=560, seed=0):
    """Weekly data from the default's own random-walk-level candidate (log scale: level sd
    0.04, observation sd 0.05 per week): a series on which the model is calibrated by
    construction, so recalibration should change nothing beyond noise."""
    rng = np.random.default_rng(seed)
    z = 1.0 + np.cumsum(0.04 * rng.standard_normal(n)) + 0.05 * rng.standard_normal(n)
    index = pd.date_range("2010-01-03", periods=n, freq="W-SUN")
    return pd.Series(np.exp(z), index=index, name="simulated level")


def peers(season, period):
    from statsforecast.models import MSTL, AutoETS, AutoTheta

    m = season if season > 1 else 1
    out = [
        StatsforecastPeer("AutoETS", lambda: AutoETS(season_length=m if m <= 24 else 1)),
        StatsforecastPeer("AutoTheta", lambda: AutoTheta(season_length=m)),
    ]
    if m > 1:
        out.append(StatsforecastPeer("MSTL", lambda: MSTL(season_length=m)))
    out.append(TrigUC(period))
    out.append(baselines.ProphetBaseline())
    return out


def table(scores: pd.DataFrame, steps) -> pd.DataFrame:
    """CRPS and coverage at each step in ``steps`` and averaged over 1..step (all folds)."""
    rows = []
    for model, part in scores.groupby("model", sort=False):
        row = {
            "model": model,
            "flagged folds": int((~part["converged"]).groupby(part["fold"]).any().sum()),
        }
        for h in steps:
            at, upto = part[part["horizon"] == h], part[part["horizon"] <= h]
            row[f"CRPS@{h}"] = at["crps"].mean()
            row[f"cov80@{h}"] = at["covered_80"].mean()
            row[f"cov95@{h}"] = at["covered_95"].mean()
            row[f"CRPS1-{h}"] = upto["crps"].mean()
            row[f"cov95 1-{h}"] = upto["covered_95"].mean()
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ili", choices=sorted(PRESETS))
    parser.add_argument("--column", default=None)
    parser.add_argument("--diff", action="store_true", help="forecast first differences")
    parser.add_argument("--folds", type=int)
    parser.add_argument("--step", type=int)
    parser.add_argument("--horizon", type=int)
    parser.add_argument("--method", default="svi", choices=["svi", "nuts"])
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument(
        "--no-variants",
        action="store_true",
        help="run bs.AutoTS() only (default: its five variants from one shared fit per origin: "
        "LOO or in-sample h-step stacking weights, recalibrated or not)",
    )
    parser.add_argument("--key", type=int, default=0)
    parser.add_argument(
        "--dump",
        default=None,
        help="folder: save each origin's mixture draws and in-sample PIT values (.npz) for "
        "benchmarks/recalibration_offline.py",
    )
    parser.add_argument("--out", default=None, help="write the tidy scores (CSV) here")
    parser.add_argument(
        "--report", action="store_true", help="only print the tables of the scores in --out"
    )
    parser.add_argument(
        "--resume", action="store_true", help="keep the origins already in --out, run the rest"
    )
    args = parser.parse_args(argv)
    column, season, folds, step, horizon = PRESETS[args.dataset]
    column = args.column or column
    folds, step, horizon = args.folds or folds, args.step or step, args.horizon or horizon
    y = simulated_level() if args.dataset == "simulated" else datasets.load(args.dataset)
    if isinstance(y, pd.DataFrame):
        y = y[column]
    if args.diff:
        y = y.diff().iloc[1:]
    period = {52: 52.18}.get(season, season)
    if args.no_variants:
        runners = {"default": bs.AutoTS(method=args.method)}
    else:
        runners = default_variants(args.method, args.dump)
    if not args.no_peers:
        runners.update({p.name: p for p in peers(season, period)})
    load0 = os.getloadavg()
    start = time.perf_counter()
    # one origin at a time (the series cut at origin + horizon, one fold), so that the tidy
    # scores so far are written after every origin and a long run can be read part-way
    last_origin = len(y) - horizon
    frames, fold_rows = [], []
    if args.resume or args.report:  # origins already scored in --out: keep, go on after
        done = pd.read_csv(args.out, parse_dates=["cutoff", "timestamp"])
        frames.append(done)
    first = int(frames[0]["fold"].max()) + 1 if frames else 0
    for k in range(first, 0 if args.report else folds):
        origin = last_origin - step * (folds - 1 - k)
        part = backtest(
            runners,
            y.iloc[: origin + horizon],
            horizon=horizon,
            folds=1,
            season=season,
            min_train=max(2 * season, 30),
            key=args.key + k,
            progress=False,
        )
        fold_rows.append(part.attrs["folds"].assign(fold=k))
        part.attrs = {}  # a DataFrame in attrs breaks pd.concat's attrs comparison
        frames.append(part.assign(fold=k))
        if args.out:
            pd.concat(frames, ignore_index=True).to_csv(args.out, index=False)
        print(f"origin {k + 1}/{folds} done, {time.perf_counter() - start:.0f} s", flush=True)
    scores = pd.concat(frames, ignore_index=True)
    scores.attrs["folds"] = pd.concat(fold_rows, ignore_index=True) if fold_rows else None
    seconds = time.perf_counter() - start
    load1 = os.getloadavg()
    per_model = (
        scores.attrs["folds"].groupby("model", sort=False)["seconds"].sum()
        if scores.attrs["folds"] is not None
        else {}
    )
    pd.set_option("display.width", 200)
    print(
        f"{args.dataset}{'/' + column if column else ''}{' (differenced)' if args.diff else ''}: "
        f"{len(y)} steps, {folds} origins {step} apart, the last at n-{horizon}, "
        f"{horizon} steps each; {seconds:.0f} s in all; load average "
        f"{load0[0]:.1f} at start, {load1[0]:.1f} at end (2 shared cores)"
    )
    steps = sorted({1, 4, horizon} & set(range(1, horizon + 1)))
    out = table(scores, steps)
    out["seconds"] = out["model"].map(per_model)
    print(out.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    pit = scores.assign(bin=pd.cut(scores["pit"], [0, 0.025, 0.1, 0.5, 0.9, 0.975, 1]))
    bands = sorted({0, *(b for b in (4, 13) if b < horizon), horizon})
    for name in [m for m in runners if m.startswith("default")]:
        part = pit[pit["model"] == name]
        hist = (
            part.groupby([pd.cut(part["horizon"], bands), "bin"], observed=False).size().unstack()
        )
        print(f"\n{name}: PIT histogram by horizon band (share; uniform = 0.025/0.075/0.4/...)")
        print((hist.div(hist.sum(axis=1), axis=0)).round(3).to_string())
    if args.out:
        scores.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
