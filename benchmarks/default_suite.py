"""The default forecaster beside its peers on panels of bundled health and finance series.

Judges changes to the default (issue 12: "a default that is right for ILI and wrong for
monthly deaths or daily returns is not done"). Panels (``benchmarks/suite_panels.py``): ``ili``,
``national_illness``, ``covid_weekly_cases``, ``monthly_deaths``, ``fx_levels``,
``fx_returns``, ``etth1``; each a few series scored at a few rolling origins, every model
fitted on all data before each origin. Models (``benchmarks/suite_runners.py``): registered
variants of the default (``default`` = ``bs.auto_fit`` as shipped, ``default_norecal`` = the
same fit with ``recalibrate=False``) and peers (seasonal naive with empirical quantiles,
statsforecast AutoETS / AutoTheta / MSTL / AutoARIMA, statsmodels UC, Prophet, GARCH(1,1)).

Scores (``benchmarks/suite_scores.py``), pooled over series x origins x steps per panel: CRPS
divided by the series' mean |y| over its training data ("scaled CRPS"), the same relative to
the seasonal naive's ("rel. CRPS"), WQL (0.1..0.9, the Chronos protocol), 80% and 95% interval
coverage, the rank by scaled CRPS, and wall seconds per model (all fits of the panel).

Every forecast's per-step scores go to ``--out`` (CSV, written atomically after every
origin). Rows already there are reused, not recomputed: rerunning one variant does not rerun
the peers. ``--rerun`` recomputes the selected models.

Usage::

    nice -n 10 env PYTHONPATH=. python benchmarks/default_suite.py            # everything
    PYTHONPATH=. python benchmarks/default_suite.py --panels monthly_deaths,fx_returns \\
        --variant default --origins 1
    PYTHONPATH=. python benchmarks/default_suite.py --report        # tables from --out only

A new variant: ``suite_runners.register_variant(name, fit)`` in a small script that then calls
``default_suite.main([...,"--variant", name])`` (see ``suite_runners``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import suite_panels  # noqa: E402
import suite_runners  # noqa: E402
import suite_scores  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "default_suite.csv")
KEYS = ["panel", "model", "series", "origin"]
PUBLISHED = {  # full protocols, not rerun here (benchmarks/README.md)
    "ili": "20-origin protocol (benchmarks/default_model.py, session 8, the default with "
    "widen): CRPS 1-4 0.277, 95% cov 1-4 0.838, 80% cov @4 0.60, CRPS 1-26 0.672, 95% cov 1-26 "
    "0.821 (session 6: 0.286 / 0.825 / 0.60 / 0.687 / 0.835); AutoETS CRPS 1-4 0.388",
    "fx_levels": "Chronos Benchmark II WQL (one window = this panel's origin): default 0.01011 "
    "(session 6), AutoTheta 0.0097, AutoETS 0.0105, AutoARIMA 0.0107, Seasonal naive 0.0130",
}


def _write(frame: pd.DataFrame, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    frame.to_csv(tmp, index=False, float_format="%.9g")
    os.replace(tmp, path)


def _baseline_name(panel) -> str:
    return suite_runners.EmpiricalNaive(panel.season).name


def _cutoff(stamp) -> str:
    """The CSV label of an origin: its last training timestamp."""
    return stamp.strftime("%Y-%m-%d" if stamp == stamp.normalize() else "%Y-%m-%d %H:%M")


def _rows_of(scores: pd.DataFrame, panel, models) -> pd.DataFrame:
    """The rows of ``models`` at the panel's selected origins (``--origins``)."""
    first = next(iter(panel.series.values()))
    cutoffs = {_cutoff(first.index[origin - 1]) for origin in panel.origins}
    keep = (scores["panel"] == panel.name) & scores["model"].isin(models)
    return scores[keep & scores["origin"].isin(cutoffs)]


def run_panel(panel, runners, done, key0, log):
    """Score every runner on every series and origin of ``panel`` not already in ``done``
    (a set of ``(panel, model, series, origin)``); yield the new rows after each origin."""
    for o, origin in enumerate(panel.origins):
        frames = []
        for s, (series, y) in enumerate(panel.series.items()):
            train, test = y.iloc[:origin], y.iloc[origin : origin + panel.horizon]
            cutoff = _cutoff(train.index[-1])
            scale = suite_panels.training_scale(train)
            key = key0 + 1000 * o + s
            for runner in runners:
                if (panel.name, runner.name, series, cutoff) in done:
                    continue
                load, t0 = os.getloadavg()[0], time.perf_counter()
                try:
                    draws = runner.forecast(
                        train.rename(series), panel.horizon, key, max(panel.origins)
                    )
                except Exception as err:  # noqa: BLE001 - report and go on with the others
                    log(f"  FAILED {runner.name} on {panel.name}/{series} @ {cutoff}: {err!r}")
                    continue
                seconds = time.perf_counter() - t0
                rows = suite_scores.forecast_rows(test.to_numpy(float), draws, scale=scale)
                frames.append(
                    rows.assign(
                        panel=panel.name,
                        model=runner.name,
                        series=series,
                        origin=cutoff,
                        seconds=seconds,
                        load=load,
                    )
                )
                note = f" weights {runner.weights}" if hasattr(runner, "weights") else ""
                log(f"  {panel.name}/{series} @ {cutoff}: {runner.name} {seconds:.1f} s{note}")
        if frames:
            yield pd.concat(frames, ignore_index=True)


def markdown(frame: pd.DataFrame) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4f}" if abs(v) < 0.1 else f"{v:.3f}" if abs(v) < 100 else f"{v:.0f}"
        return str(v)

    head = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" if c in ("model", "panel") else "---:" for c in frame.columns)
    rule += "|"
    body = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in frame.itertuples(False)]
    return "\n".join([head, rule, *body])


def report(scores: pd.DataFrame, panels, models, print_=print) -> None:
    """Print one table per panel (pooled over all steps), the last step's scaled CRPS and
    95% coverage beside it."""
    for panel in panels:
        part = _rows_of(scores, panel, models)
        if part.empty:
            continue
        base = _baseline_name(panel)
        table = suite_scores.summary(part, baseline=base)
        last = suite_scores.summary(part, baseline=base, steps=[panel.horizon])
        last = last.set_index("model")
        table[f"sCRPS@{panel.horizon}"] = table["model"].map(last["scaled CRPS"])
        table[f"cov95@{panel.horizon}"] = table["model"].map(last["cov95"])
        n_series = part["series"].nunique()
        n_origins = part["origin"].nunique()
        print_(
            f"\n### {panel.name}: {panel.note}\n\n{n_series} series x {n_origins} origins "
            f"({', '.join(sorted(part['origin'].unique()))}) x {panel.horizon} steps; "
            f"rel. CRPS relative to {base}; rank by scaled CRPS over steps 1-{panel.horizon}; "
            f"seconds: all fits; load {part['load'].min():.1f}-{part['load'].max():.1f} "
            "(2 shared cores)\n"
        )
        print_(markdown(table.drop(columns=["n"])))
        if panel.name in PUBLISHED:
            print_(f"\nPublished, not rerun: {PUBLISHED[panel.name]}")


DATASET_OF = {  # panel -> the bundled file it is built from (datasets/README.md)
    "ili": "ili",
    "national_illness": "national_illness",
    "covid_weekly_cases": "covid",
    "monthly_deaths": "covid",
    "fx_levels": "exchange_rate",
    "fx_returns": "exchange_rate",
    "etth1": "etth1",
}


def compact(scores: pd.DataFrame, panels, models_by_panel, print_=print) -> None:
    """One short table per bundled dataset (its panels stacked): rank, rel. CRPS, WQL,
    80/95% coverage over all steps (the tables of ``datasets/README.md``)."""
    for dataset in dict.fromkeys(DATASET_OF[p.name] for p in panels):
        parts = []
        for panel in (p for p in panels if DATASET_OF[p.name] == dataset):
            part = _rows_of(scores, panel, models_by_panel[panel.name])
            if part.empty:
                continue
            table = suite_scores.summary(part, baseline=_baseline_name(panel))
            table.insert(0, "panel", f"{panel.name} (h 1-{panel.horizon})")
            parts.append(table[["panel", "model", "rank", "rel. CRPS", "WQL", "cov80", "cov95"]])
        if parts:
            print_(f"\n#### {dataset}\n")
            print_(markdown(pd.concat(parts, ignore_index=True)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--panels", default=",".join(suite_panels.PANELS))
    parser.add_argument("--origins", type=int, default=None, help="keep each panel's last N")
    parser.add_argument(
        "--variant",
        action="append",
        help=f"registered variant(s), repeatable or comma-separated (default: default,"
        f"default_norecal; none: peers only); registered: {sorted(suite_runners.VARIANTS)}",
    )
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--out", default=OUT, help="CSV of per-step scores (cache and output)")
    parser.add_argument(
        "--cache",
        action="append",
        default=[],
        help="more CSVs of scores to reuse (read only; e.g. the committed peers' rows)",
    )
    parser.add_argument("--rerun", action="store_true", help="recompute the selected models")
    parser.add_argument("--report", action="store_true", help="only print tables from --out")
    parser.add_argument("--key", type=int, default=0)
    args = parser.parse_args(argv)
    names = [v for arg in (args.variant or ["default,default_norecal"]) for v in arg.split(",")]
    names = [v for v in names if v != "none"]  # --variant none: peers only
    unknown = [v for v in names if v not in suite_runners.VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; registered: {sorted(suite_runners.VARIANTS)}")
    panels = suite_panels.load_panels(args.panels.split(","), args.origins)
    old = pd.read_csv(args.out, dtype={"origin": str}) if os.path.exists(args.out) else None
    frames = [] if old is None else [old]
    extra = [pd.read_csv(path, dtype={"origin": str}) for path in args.cache]
    load0, start = os.getloadavg(), time.perf_counter()
    models_by_panel = {}
    for panel in panels:
        runners = [suite_runners.VARIANTS[v] for v in names]
        runners += [] if args.no_peers else suite_runners.peers(panel)
        models_by_panel[panel.name] = [r.name for r in runners]
        if args.report:
            continue
        if args.rerun and frames:
            drop = (frames[0]["panel"] == panel.name) & frames[0]["model"].isin(
                models_by_panel[panel.name]
            )
            frames[0] = frames[0][~drop]
        cached = pd.concat(frames + extra, ignore_index=True) if frames or extra else None
        done = set() if cached is None else set(map(tuple, cached[KEYS].astype(str).values))
        if args.rerun:
            done = {k for k in done if k[1] not in models_by_panel[panel.name]}
        print(f"{panel.name}: {len(panel.series)} series, origins {panel.origins}", flush=True)
        for rows in run_panel(panel, runners, done, args.key, lambda m: print(m, flush=True)):
            frames.append(rows)
            _write(pd.concat(frames, ignore_index=True), args.out)
    if not frames + extra:
        raise SystemExit(f"no scores: {args.out} does not exist; run without --report first")
    scores = pd.concat(frames + extra, ignore_index=True)
    # the first copy of a row wins (--out before --cache)
    scores = scores.drop_duplicates([*KEYS, "h"], keep="first")
    load1 = os.getloadavg()
    print(
        f"\n{time.perf_counter() - start:.0f} s; load average {load0[0]:.1f} at start, "
        f"{load1[0]:.1f} at end (2 cores shared with other engineers); scores in {args.out}"
    )
    for panel in panels:
        report(scores, [panel], models_by_panel[panel.name])
    print("\n## One table per dataset (datasets/README.md)")
    compact(scores, panels, models_by_panel)


if __name__ == "__main__":
    main()
