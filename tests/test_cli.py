"""The command line: ``bayes-ssm forecast`` writes a forecast CSV and a fan chart."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_ssm.cli import main


@pytest.fixture
def weekly_csv(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(160)
    y = np.exp(1 + 0.5 * np.sin(2 * np.pi * t / 52.18) + np.cumsum(rng.normal(0, 0.03, t.size)))
    dates = pd.date_range("2019-01-05", periods=t.size, freq="W-SAT")
    frame = pd.DataFrame({"week": dates.strftime("%Y-%m-%d"), "visits": y})
    path = tmp_path / "visits.csv"
    frame.to_csv(path, index=False)
    return path, frame


def test_forecast_from_csv(weekly_csv, tmp_path, capsys):
    path, frame = weekly_csv
    out, plot, saved = tmp_path / "o" / "fc.csv", tmp_path / "fc.png", tmp_path / "fit.nc"
    code = main(
        [
            "forecast",
            "--csv",
            str(path),
            "--date-col",
            "week",
            "--value-col",
            "visits",
            "--horizon",
            "6",
            "--model",
            "structural",
            "--method",
            "svi",
            "--svi-steps",
            "1500",
            "--out",
            str(out),
            "--plot",
            str(plot),
            "--save-fit",
            str(saved),
            "--quiet",
            "--prob",
            "0.5",
            "0.9",
        ]
    )
    assert code == 0
    fc = pd.read_csv(out, index_col="date", parse_dates=True)
    assert list(fc.columns) == ["mean", "median", "lower_50", "upper_50", "lower_90", "upper_90"]
    expected = pd.date_range(pd.Timestamp(frame["week"].iloc[-1]), periods=7, freq="W-SAT")[1:]
    assert fc.index.equals(pd.DatetimeIndex(expected, name="date"))
    assert (fc["lower_90"] > 0).all()  # log transform: positive forecasts
    # the series sits around exp(1 +- 0.5): the forecast does too
    assert fc["median"].between(1.0, 8.0).all()
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert saved.is_file()
    text = capsys.readouterr().out
    assert "Posterior summary (svi" in text and "sigma_obs" in text and "wrote" in text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--csv", "x.csv", "--horizon", "3"], "x.csv does not exist"),
        (["--dataset", "ili", "--horizon", "0"], "horizon"),
        (["--dataset", "ili", "--horizon", "3", "--prob", "1.5"], "prob"),
        (["--dataset", "nope", "--horizon", "3"], "unknown dataset"),
        (["--dataset", "exchange_rate", "--horizon", "3"], "--value-col"),
        (["--dataset", "ili", "--horizon", "3", "--transform", "sqrt"], "Box-Cox lambda"),
        (
            ["--dataset", "ili", "--horizon", "3", "--model", "structural", "--transform", "0.5"],
            "applies to --model auto only",
        ),
    ],
)
def test_bad_arguments(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as err:
        main(["forecast", *argv, "--quiet"])
    assert err.value.code == 2
    assert message in capsys.readouterr().err


def test_unsorted_csv_is_refused(weekly_csv, capsys):
    path, frame = weekly_csv
    frame.iloc[::-1].to_csv(path, index=False)
    with pytest.raises(SystemExit):
        main(
            [
                "forecast",
                "--csv",
                str(path),
                "--date-col",
                "week",
                "--value-col",
                "visits",
                "--horizon",
                "3",
                "--method",
                "svi",
                "--quiet",
            ]
        )
    assert "sorted" in capsys.readouterr().err


@pytest.mark.slow
def test_readme_main_job(tmp_path, capsys):
    """The README's main-job command on the bundled ILI series, as ``make demo`` runs it: the
    default forecaster."""
    out, plot = tmp_path / "forecast.csv", tmp_path / "forecast.png"
    argv = "forecast --dataset ili --horizon 26 --quiet".split()
    code = main([*argv, "--out", str(out), "--plot", str(plot)])
    assert code == 0
    fc = pd.read_csv(out, index_col="date", parse_dates=True)
    assert len(fc) == 26 and fc.index[0] == pd.Timestamp("2025-04-12")
    assert (fc["lower_95"] > 0).all() and (fc["upper_95"] < 20).all()
    assert plot.stat().st_size > 10_000
    text = capsys.readouterr().out
    assert "weights from stacking (PSIS-LOO)" in text and "Posterior summary (svi" in text
    assert "WARNINGS" not in text  # no candidate with weight > 5% is flagged by bs.check


@pytest.mark.slow
def test_compile_cache_is_written_and_reused(weekly_csv, tmp_path):
    """``--compile-cache`` fills the directory, and a second run in a new process with another
    ``PYTHONHASHSEED`` compiles nothing new (every program is found in JAX's cache or in the
    program store beside it) and gives the same forecast. SVI: its step program used to
    depend on the hash seed (NumPyro's ``Trace_ELBO`` sums over a set of site names;
    ``OrderedTraceELBO`` sums in trace order).
    A subprocess each, as the option changes JAX's global configuration.
    """
    import os
    import subprocess
    import sys

    path, _ = weekly_csv
    cache = tmp_path / "jax-cache"
    outs = [tmp_path / "a.csv", tmp_path / "b.csv"]
    entries = []
    for seed, out in zip(("1", "2"), outs, strict=True):
        argv = [sys.executable, "-m", "bayes_ssm.cli", "forecast", "--csv", str(path)]
        argv += ["--date-col", "week", "--value-col", "visits", "--horizon", "4"]
        argv += ["--model", "structural", "--method", "svi", "--svi-steps", "300", "--quiet"]
        argv += ["--compile-cache", str(cache), "--out", str(out)]
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run(argv, check=True, capture_output=True, timeout=300, env=env)
        entries.append(sorted(str(p.relative_to(cache)) for p in cache.rglob("*")))
    assert entries[0], "the first run wrote no compiled program"
    # and the library's own programs went to the program store (inference/program_store.py)
    assert any(name.startswith("programs/") for name in entries[0])
    new = sorted(set(entries[1]) - set(entries[0]))
    assert not new, f"the second process missed the cache and compiled {len(new)}: {new}"
    first, second = (pd.read_csv(out) for out in outs)
    pd.testing.assert_frame_equal(first, second)


@pytest.fixture
def long_csv(tmp_path):
    """Three weekly series in long format, rows shuffled; one is 10x larger."""
    rng = np.random.default_rng(1)
    frames = []
    for i, name in enumerate(["north", "south", "west"]):
        t = np.arange(80)
        level = 1 + i + np.cumsum(rng.normal(0, 0.03, t.size))
        y = 10.0 ** (i == 2) * np.exp(level + 0.3 * np.sin(2 * np.pi * t / 52.18))
        dates = pd.date_range("2020-01-04", periods=t.size, freq="W-SAT")
        frames.append(pd.DataFrame({"region": name, "week": dates.strftime("%Y-%m-%d"), "n": y}))
    frame = pd.concat(frames).sample(frac=1.0, random_state=0)
    path = tmp_path / "long.csv"
    frame.to_csv(path, index=False)
    return path, frame


def test_forecast_many_from_long_csv(long_csv, tmp_path, capsys):
    path, frame = long_csv
    out = tmp_path / "many.csv"
    argv = ["forecast-many", "--csv", str(path), "--id-col", "region", "--date-col", "week"]
    argv += ["--value-col", "n", "--horizon", "4", "--svi-steps", "400", "--quiet"]
    # the loop (batch="auto" picks vmap for 3 series on a CPU; the loop compiles faster here)
    assert main([*argv, "--batch", "loop", "--out", str(out)]) == 0
    fc = pd.read_csv(out, parse_dates=["ds"])
    assert list(fc.columns[:4]) == ["unique_id", "ds", "mean", "median"]
    assert fc["unique_id"].tolist() == [r for r in ("north", "south", "west") for _ in range(4)]
    assert (fc["ds"].iloc[:4] == pd.date_range("2021-07-17", periods=4, freq="W-SAT")).all()
    # each series is forecast on its own scale (log-transformed fits, back-transformed draws)
    last = frame.assign(week=pd.to_datetime(frame["week"])).sort_values("week").groupby("region")
    ratio = fc.groupby("unique_id")["median"].first() / last["n"].last()
    assert ratio.between(0.5, 2.0).all(), ratio
    assert np.all(fc["lower_95"] < fc["lower_80"]) and np.all(fc["upper_80"] < fc["upper_95"])
    assert "3 series" in capsys.readouterr().out


def test_forecast_many_by_nuts(long_csv, tmp_path, capsys):
    path, _ = long_csv
    out = tmp_path / "many_nuts.csv"
    argv = ["forecast-many", "--csv", str(path), "--id-col", "region", "--date-col", "week"]
    argv += ["--value-col", "n", "--horizon", "3", "--method", "nuts", "--chains", "1"]
    argv += ["--warmup", "100", "--samples", "100", "--quiet", "--out", str(out)]
    assert main(argv) == 0
    fc = pd.read_csv(out)
    assert fc.shape[0] == 9 and fc["unique_id"].nunique() == 3
    text = capsys.readouterr().out
    assert "(nuts, vmap)" in text and "divergences" in text  # 3 series on a CPU: batch auto = vmap


@pytest.mark.slow
def test_forecast_many_pooled(long_csv, tmp_path, capsys):
    """--pooling partial: one hierarchical fit; the printed population and every forecast."""
    path, _ = long_csv
    out = tmp_path / "pooled.csv"
    argv = ["forecast-many", "--csv", str(path), "--id-col", "region", "--date-col", "week"]
    argv += ["--value-col", "n", "--horizon", "3", "--svi-steps", "300", "--pooling", "partial"]
    assert main([*argv, "--quiet", "--out", str(out)]) == 0
    fc = pd.read_csv(out)
    assert fc.shape[0] == 9 and np.all(fc["lower_80"] < fc["upper_80"])
    assert "(svi, pooled)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--csv", "LONG", "--horizon", "3", "--id-col", "nope"], "missing ['nope', 'ds', 'y']"),
        (["--dataset", "covid", "--horizon", "3"], "--value-cols"),
        (["--dataset", "covid", "--horizon", "3", "--value-cols", "mars"], "not in"),
        (["--csv", "LONG", "--horizon", "3", "--id-col", "region", "--date-col", "week",
          "--value-col", "n", "--svi-steps", "0"], "--svi-steps"),
        (["--csv", "LONG", "--horizon", "3", "--id-col", "region", "--date-col", "week",
          "--value-col", "n", "--scheduler", "tcp://x:1"], "--scheduler needs --backend dask"),
    ],
)  # fmt: skip
def test_forecast_many_bad_arguments(argv, message, long_csv, capsys):
    path, _ = long_csv
    argv = [str(path) if a == "LONG" else a for a in argv]
    with pytest.raises(SystemExit) as err:
        main(["forecast-many", *argv, "--quiet"])
    assert err.value.code == 2
    assert message in capsys.readouterr().err


def test_transform_lambda_reaches_the_default(monkeypatch, tmp_path):
    """``--transform 0.5`` is the Box-Cox lambda 0.5 of ``bs.auto_fit`` (parsed, not dropped)."""
    import bayes_ssm.inference.auto as auto

    seen = {}

    class Stop(Exception):
        pass

    def fake_auto_fit(y, **kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(auto, "auto_fit", fake_auto_fit)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(Stop):
        main(["forecast", "--dataset", "ili", "--horizon", "3", "--transform", "0.5", "--quiet"])
    assert seen["transform"] == 0.5
