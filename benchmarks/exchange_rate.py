"""Reproduce the published exchange_rate protocol (Chronos "Benchmark II" / fev) and score ours.

Protocol (datasets/README.md): the 8 daily exchange-rate series, the last 30 steps of each held
out, one window, season length 5. WQL = mean over q in 0.1..0.9 of 2 * sum of pinball losses /
sum of |actuals|, pooled over all 8 series and 30 steps; MASE = mean over the series of
mean |y - median| / (in-sample mean absolute 5-step difference).

Published rows (chronos-forecasting / fev result files): AutoTheta 0.0097, AutoETS 0.0105,
AutoARIMA 0.0107, Chronos-Bolt-base 0.0120, Seasonal naive 0.0130.

Usage::

    PYTHONPATH=. python benchmarks/exchange_rate.py                      # naive + statsforecast
    PYTHONPATH=. python benchmarks/exchange_rate.py --models naive,ets,uc,structural
    PYTHONPATH=. python benchmarks/exchange_rate.py --models structural --method nuts
    PYTHONPATH=. python benchmarks/exchange_rate.py --models default   # bs.auto_fit
    PYTHONPATH=. python benchmarks/exchange_rate.py --models structural --method svi_many
    python benchmarks/exchange_rate.py --models structural --trends local_linear,damped,none

``--context`` limits every model's training window to the last N points (the benchmark's
statsforecast runs used 2,500).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from bayes_ssm.data import datasets
from bayes_ssm.evaluation import baselines, metrics

HORIZON, SEASON = 30, 5
PUBLISHED = {
    "AutoTheta (published)": 0.0097,
    "AutoETS (published)": 0.0105,
    "AutoARIMA (published)": 0.0107,
    "Chronos-Bolt-base (published)": 0.0120,
    "Seasonal naive (published)": 0.0130,
}


def split(context: int | None):
    frame = datasets.load("exchange_rate")
    out = []
    for column in frame:
        series = frame[column]
        train, test = series.iloc[:-HORIZON], series.iloc[-HORIZON:]
        out.append((column, train, test))
    return out, context


def score(name: str, series, quantile_frames, seconds: float) -> dict:
    """Pool the WQL over all series; MASE per series (median as point forecast), averaged."""
    actual = np.concatenate([test.to_numpy() for _, _, test in series])
    quantiles = pd.concat(
        [frame.reset_index(drop=True) for frame in quantile_frames], ignore_index=True
    )
    pooled = metrics.wql(actual, quantiles)
    mases = [
        metrics.mase(test.to_numpy(), frame[0.5].to_numpy(), y_train=train, season=SEASON)
        for (_, train, test), frame in zip(series, quantile_frames, strict=True)
    ]
    return {"model": name, "WQL": pooled, "MASE": float(np.mean(mases)), "seconds": seconds}


def from_samples(draws: np.ndarray, index) -> pd.DataFrame:
    return pd.DataFrame(
        np.quantile(draws, metrics.QUANTILES, axis=0).T,
        index=index,
        columns=list(metrics.QUANTILES),
    )


def run_baseline(name, baseline, series, context, num_samples, key):
    start = time.perf_counter()
    frames = []
    for i, (_, train, test) in enumerate(series):
        y = train.to_numpy()[-context:] if context else train.to_numpy()
        draws = baseline.forecast_samples(y, HORIZON, num_samples=num_samples, key=key + i)
        frames.append(from_samples(draws, test.index))
    return score(name, series, frames, time.perf_counter() - start)


def run_statsforecast(series, context):
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, AutoTheta

    long = pd.concat(
        [
            pd.DataFrame(
                {"unique_id": name, "ds": np.arange(len(train)), "y": train.to_numpy()}
            ).iloc[-(context or len(train)) :]
            for name, train, _ in series
        ]
    )
    rows = []
    for model in (AutoETS(season_length=SEASON), AutoTheta(season_length=SEASON)):
        start = time.perf_counter()
        sf = StatsForecast(models=[model], freq=1, n_jobs=1)
        fc = sf.forecast(h=HORIZON, df=long, level=[20, 40, 60, 80])
        alias = str(model)
        frames = []
        for name, _, test in series:
            part = fc[fc["unique_id"] == name]
            cols = {0.5: part[alias].to_numpy()}
            for level in (20, 40, 60, 80):
                q = (1 - level / 100) / 2
                cols[round(q, 1)] = part[f"{alias}-lo-{level}"].to_numpy()
                cols[round(1 - q, 1)] = part[f"{alias}-hi-{level}"].to_numpy()
            frames.append(pd.DataFrame(cols, index=test.index)[list(metrics.QUANTILES)])
        rows.append(score(f"statsforecast {alias}", series, frames, time.perf_counter() - start))
    return rows


def run_structural(series, context, method, num_samples, key, trend, nuts=None):
    from bayes_ssm.inference import diagnostics
    from bayes_ssm.inference import fitting as infer
    from bayes_ssm.models.structural import StructuralTS

    model = StructuralTS(trend=None if trend == "none" else trend)
    start = time.perf_counter()
    frames, problems = [], 0
    for i, (_, train, test) in enumerate(series):
        y = train.iloc[-context:] if context else train
        if method == "nuts":
            fit = infer.fit_nuts(model, y, key=key + i, progress=False, **(nuts or {}))
        else:
            fit = infer.fit_svi(model, y, key=key + i, progress=False)
        found = diagnostics.check(fit, warn=False)
        problems += bool(found)
        for text in found:
            print(f"  [{series[i][0]}, StructuralTS {trend}, {method}] {text}")
        draws = fit.forecast_samples(
            HORIZON, num_samples=min(num_samples, fit.num_samples), key=key + i
        )
        frames.append(from_samples(np.asarray(draws), test.index))
    label = "local level" if trend == "none" else trend.replace("_", " ")
    row = score(f"StructuralTS {label} ({method})", series, frames, time.perf_counter() - start)
    row["note"] = f"{problems} of {len(series)} fits flagged by diagnostics" if problems else ""
    return row


def run_default(series, context, method, num_samples, key):
    """The default forecaster (``bs.auto_fit``: transform, seasonals and stacked candidates
    chosen from the data) on each series; its own fit window (``--context`` does not apply).
    Four rows from the same fits: ``recalibrate=False``, ``"widen"``, ``"quantile"``, and with
    stacking weights on in-sample h-step scores (``recalibration.multistep_weights``)."""
    import dataclasses

    from bayes_ssm.inference.auto import auto_fit
    from bayes_ssm.inference.recalibration import multistep_weights

    start = time.perf_counter()
    variants = {
        "recalibrate=False": [],
        "recalibrate='widen'": [],
        "recalibrate='quantile'": [],
        "h-step weights": [],
    }
    notes = []
    for i, (name, train, test) in enumerate(series):
        stacked = auto_fit(train, key=key + i, method=method)
        for label, frames in variants.items():
            mode = {"recalibrate='widen'": "widen", "recalibrate='quantile'": "quantile"}
            version = dataclasses.replace(stacked, recalibrate=mode.get(label, False))
            if label == "h-step weights":
                w = multistep_weights(stacked.in_sample_scores(HORIZON))
                if w is not None:
                    w = pd.Series(w, index=stacked.weights.index, name="weight")
                    version = dataclasses.replace(version, weights=w)
            draws = version.forecast_samples(HORIZON, num_samples=num_samples, key=key + i)
            frames.append(from_samples(np.asarray(draws), test.index))
        top = stacked.weights.idxmax()
        seas = "seasonal" if stacked.fits[top].model.seasonal else "no season"
        notes.append(f"{name}: {top} {stacked.weights[top]:.2f} ({seas})")
        print(f"  [{name}] {str(stacked.transform)}; weights {stacked.weights.round(3).to_dict()}")
    seconds = time.perf_counter() - start
    rows = []
    for label, frames in variants.items():
        row = score(f"default, bs.auto_fit ({method}), {label}", series, frames, seconds)
        row["note"] = "; ".join(notes) if not rows else "same fits"
        rows.append(row)
    return rows


def run_structural_many(series, context, num_samples, key, trend, batch):
    """All series through ``bs.fit_svi_many`` (series ``i`` gets ``split(key, n)[i]``)."""
    import jax

    from bayes_ssm.inference import diagnostics
    from bayes_ssm.inference.many import fit_svi_many
    from bayes_ssm.models.structural import StructuralTS

    model = StructuralTS(trend=None if trend == "none" else trend)
    start = time.perf_counter()
    data = {name: (train.iloc[-context:] if context else train) for name, train, _ in series}
    fits = fit_svi_many(model, data, key=key, batch=batch, progress=False)
    keys = jax.random.split(jax.random.PRNGKey(key + 1), len(series))
    frames, problems = [], 0
    for k, (name, _, test) in zip(keys, series, strict=True):
        fit = fits[name]
        problems += bool(diagnostics.check(fit, warn=False))
        draws = fit.forecast_samples(HORIZON, num_samples=min(num_samples, fit.num_samples), key=k)
        frames.append(from_samples(np.asarray(draws), test.index))
    label = "local level" if trend == "none" else trend.replace("_", " ")
    row = score(
        f"StructuralTS {label} (fit_svi_many, {fits.info['batch']})",
        series,
        frames,
        time.perf_counter() - start,
    )
    row["note"] = f"{problems} of {len(series)} fits flagged by diagnostics" if problems else ""
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="naive,statsforecast")
    parser.add_argument("--context", type=int, default=2500)
    parser.add_argument("--method", default="svi", choices=["svi", "nuts", "svi_many"])
    parser.add_argument(
        "--batch", default="auto", choices=["auto", "vmap", "loop"], help="for svi_many"
    )
    parser.add_argument("--chains", type=int, default=2, help="NUTS chains")
    parser.add_argument("--num-warmup", type=int, default=500, help="NUTS warm-up per chain")
    parser.add_argument("--num-draws", type=int, default=500, help="NUTS draws per chain")
    parser.add_argument("--series", type=int, default=8, help="use the first N series only")
    parser.add_argument(
        "--trends", default="local_linear,none", help="StructuralTS trends (none = local level)"
    )
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--key", type=int, default=0)
    args = parser.parse_args(argv)
    series, context = split(args.context)
    series = series[: args.series]
    nuts = {"num_chains": args.chains, "num_warmup": args.num_warmup, "num_samples": args.num_draws}
    wanted = args.models.split(",")
    rows = []
    if "naive" in wanted:  # the published protocol uses the full history for the naive
        rows.append(
            run_baseline(
                "Seasonal naive (ours)", baselines.SeasonalNaive(SEASON), series, None, 1, 0
            )
        )
    if "statsforecast" in wanted:
        rows.extend(run_statsforecast(series, context))
    if "ets" in wanted:
        rows.append(
            run_baseline(
                "statsmodels ETS (AAdN)",
                baselines.StatsmodelsETS(),
                series,
                context,
                args.num_samples,
                args.key,
            )
        )
    if "uc" in wanted:
        rows.append(
            run_baseline(
                "statsmodels UC (local linear trend)",
                baselines.StatsmodelsUC(),
                series,
                context,
                args.num_samples,
                args.key,
            )
        )
    if "default" in wanted:
        rows.extend(run_default(series, context, args.method, args.num_samples, args.key))
    if "structural" in wanted:
        for trend in args.trends.split(","):
            if args.method == "svi_many":
                row = run_structural_many(
                    series, context, args.num_samples, args.key, trend, args.batch
                )
            else:
                row = run_structural(
                    series, context, args.method, args.num_samples, args.key, trend, nuts=nuts
                )
            rows.append(row)
    table = pd.DataFrame(rows)
    for name, value in PUBLISHED.items():
        table.loc[len(table)] = {"model": name, "WQL": value}
    pd.set_option("display.width", 120)
    print(f"exchange_rate, horizon {HORIZON}, season {SEASON}, context {context}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.5f}"))


if __name__ == "__main__":
    main()
