"""The CLI's default model is the default forecaster; ``bayes-ssm backtest``; the cache dir."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayes_ssm.cli import _common, main


def test_structural_options_need_model_structural(capsys):
    with pytest.raises(SystemExit) as err:
        main(["forecast", "--dataset", "ili", "--horizon", "3", "--trend", "damped", "--quiet"])
    assert err.value.code == 2
    assert "--trend apply to --model structural" in capsys.readouterr().err


def test_compile_cache_dir_rules(monkeypatch, tmp_path):
    ns = argparse.Namespace
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("BAYES_SSM_COMPILE_CACHE")
    assert _common.compile_cache_dir(ns()) == tmp_path / "bayes_ssm" / "jax"
    assert _common.compile_cache_dir(ns(compile_cache=Path("x"))) == Path("x")
    assert _common.compile_cache_dir(ns(no_compile_cache=True)) is None
    monkeypatch.setenv("BAYES_SSM_COMPILE_CACHE", "off")
    assert _common.compile_cache_dir(ns()) is None


@pytest.mark.slow
def test_backtest_command(tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = np.exp(1 + np.cumsum(rng.normal(0, 0.05, 90)))
    dates = pd.date_range("2020-01-04", periods=y.size, freq="W-SAT")
    path = tmp_path / "y.csv"
    pd.DataFrame({"week": dates, "y": y}).to_csv(path, index=False)
    out = tmp_path / "scores.csv"
    argv = ["backtest", "--csv", str(path), "--date-col", "week", "--value-col", "y"]
    argv += ["--horizon", "3", "--folds", "1", "--quiet", "--out", str(out)]
    assert main(argv) == 0
    scores = pd.read_csv(out)
    assert set(scores["model"]) == {"default", "seasonal_naive"}
    assert scores.groupby("model")["horizon"].apply(list).to_dict()["default"] == [1, 2, 3]
    text = capsys.readouterr().out
    assert "coverage and PIT by horizon" in text and "pit_mean" in text


def test_recalibrate_flag(capsys):
    from bayes_ssm.inference.auto import RECALIBRATE

    ns = argparse.Namespace
    assert _common.recalibrate_option(ns()) is RECALIBRATE
    assert _common.recalibrate_option(ns(recalibrate=True)) is True
    assert _common.recalibrate_option(ns(recalibrate=False)) is False
    with pytest.raises(SystemExit) as err:
        argv = ["forecast", "--dataset", "ili", "--horizon", "3", "--model", "structural"]
        main([*argv, "--no-recalibrate", "--quiet"])
    assert err.value.code == 2
    assert "--recalibrate / --no-recalibrate apply to --model auto only" in (
        capsys.readouterr().err
    )
