"""The command line a newcomer can guess: --version, help on every option, CSV columns found
without options, anomalies and diagnose on a saved fit, one-line errors with exit status 2."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest

import bayes_ssm as bs
from bayes_ssm.cli import COMMANDS, _common, build_parser, main
from bayes_ssm.data.validation import as_series_data
from bayes_ssm.inference.fit import Fit


def _run(argv, capsys):
    """Exit status, stdout and stderr of ``bayes-ssm argv`` (argparse exits count too)."""
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


def test_version(capsys):
    code, out, _ = _run(["--version"], capsys)
    assert code == 0 and out.strip() == f"bayes-ssm {bs.__version__}"


def test_every_option_of_every_command_has_help():
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert (
        set(sub.choices) == set(COMMANDS) >= {"forecast", "forecast-many", "anomalies", "diagnose"}
    )
    missing = [
        f"{name} {action.dest}"
        for name, parser in sub.choices.items()
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction) and not action.help
    ]
    assert missing == []


@pytest.mark.parametrize(
    ("columns", "named", "expected"),
    [
        (["ds", "y", "extra"], (None, None), ("ds", "y")),
        (["week", "visits"], (None, None), ("week", "visits")),
        (["week", "visits", "other"], ("week", "visits"), ("week", "visits")),
        (["ds", "visits", "other"], (None, "visits"), ("ds", "visits")),
    ],
)
def test_csv_columns_are_found(columns, named, expected):
    assert _common.pick_columns(columns, *named, "f.csv") == expected


def test_csv_columns_that_cannot_be_guessed_are_asked_for():
    with pytest.raises(ValueError, match="--date-col and --value-col"):
        _common.pick_columns(["a", "b", "c"], None, None, "f.csv")
    with pytest.raises(ValueError, match="column 'v' not in f.csv"):
        _common.pick_columns(["ds", "y"], None, "v", "f.csv")


def test_a_two_column_file_loads_as_date_and_value(tmp_path):
    path = tmp_path / "two.csv"
    pd.DataFrame({"week": ["2024-01-06", "2024-01-13"], "visits": [1.5, 2.0]}).to_csv(
        path, index=False
    )
    args = argparse.Namespace(
        dataset=None,
        csv=path,
        date_col=None,
        value_col=None,
        date_format=None,
        dayfirst=False,
    )
    y = _common.load_series(args)
    assert y.name == "visits" and y.index.name == "week" and y.tolist() == [1.5, 2.0]


def test_model_line_is_words_not_fields():
    text = _common.describe_model(
        bs.StructuralTS(trend="local_linear", seasonal=bs.Seasonal(52.18, harmonics=3))
    )
    assert text == (
        "structural time series: local linear trend, seasonal of period 52.18 "
        "(3 harmonics), Gaussian noise"
    )


@pytest.fixture(scope="module")
def saved_fit(tmp_path_factory):
    """A local-level SVI fit made by hand (draws near the truth), saved as bayes-ssm saves."""
    rng = np.random.default_rng(0)
    level = np.cumsum(rng.normal(0, 0.1, 80))
    y = level + rng.normal(0, 0.2, 80)
    y[40] += 3.0  # one observation far outside its one-step band
    series = pd.Series(y, index=pd.date_range("2024-01-01", periods=80, freq="D"), name="y")
    model = bs.StructuralTS(trend=None)
    data = as_series_data(series)
    draws = {
        "sigma_obs": rng.normal(0.2, 0.01, (1, 200)).clip(0.05),
        "sigma_level": rng.normal(0.1, 0.01, (1, 200)).clip(0.02),
    }
    info = {"converged": True, "guide": "normal", "steps": 1000}
    fit = Fit(model, data, model.data_scales(data.y), "svi", draws, info=info)
    path = tmp_path_factory.mktemp("fit") / "fit.nc"
    fit.save(path)
    return path


def test_diagnose_prints_summary_and_checks(saved_fit, tmp_path, capsys):
    code, out, err = _run(["diagnose", str(saved_fit), "--out", str(tmp_path / "s.csv")], capsys)
    assert code == 0, err
    assert "model: structural time series: random-walk level, Gaussian noise" in out
    assert "sigma_obs" in out and "checks: SVI converged" in out
    table = pd.read_csv(tmp_path / "s.csv", index_col="parameter")
    assert list(table.index) == ["sigma_obs", "sigma_level"]
    assert table.loc["sigma_obs", "mean"] == pytest.approx(0.2, abs=0.01)


def test_anomalies_of_a_saved_fit_find_the_planted_point(saved_fit, tmp_path, capsys):
    out_csv, png = tmp_path / "a.csv", tmp_path / "a.png"
    code, out, err = _run(
        ["anomalies", "--fit", str(saved_fit), "--out", str(out_csv), "--plot", str(png)], capsys
    )
    assert code == 0, err
    found = pd.read_csv(out_csv, index_col="date", parse_dates=True)
    assert pd.Timestamp("2024-02-10") in found.index  # step 40
    assert found.loc["2024-02-10", "direction"] == "high"
    assert png.stat().st_size > 10_000
    assert f"{len(found)} of 80 observations outside their 99% one-step band" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["forecast", "--csv", "nope.csv", "--horizon", "3"], "nope.csv does not exist"),
        (["forecast", "--csv", "{three}", "--horizon", "3"], "--date-col and --value-col"),
        (["forecast", "--csv", "{text}", "--horizon", "3"], "holds non-numbers, e.g. ['n/a?']"),
        (["forecast", "--csv", "{two}", "--horizon", "0"], "horizon"),
        (["forecast-many", "--csv", "nope.csv", "--horizon", "3"], "nope.csv does not exist"),
        (["anomalies", "--csv", "{three}"], "--date-col and --value-col"),
        (["diagnose", "nope.nc"], "no fit file nope.nc"),
        (["diagnose", "{three}"], "three.csv"),
        (["anomalies", "--fit", "{fit}", "--level", "1.5"], "--level must be in (0, 1)"),
        (["diagnose", "{fit}", "--out", "{dir}"], "error:"),
    ],
)
def test_bad_input_is_one_line_and_exit_status_2(argv, message, saved_fit, tmp_path, capsys):
    files = {"three": tmp_path / "three.csv", "two": tmp_path / "two.csv"}
    pd.DataFrame({"a": ["2024-01-01"] * 3, "b": [1, 2, 3], "c": [1, 2, 3]}).to_csv(
        files["three"], index=False
    )
    dates = pd.date_range("2024-01-01", periods=30).strftime("%Y-%m-%d")
    pd.DataFrame({"ds": dates, "y": np.arange(30.0) + 1}).to_csv(files["two"], index=False)
    text = tmp_path / "text.csv"
    pd.DataFrame({"ds": dates[:3], "y": ["1", "n/a?", "3"]}).to_csv(text, index=False)
    names = {**files, "text": text, "fit": saved_fit, "dir": tmp_path}
    argv = [a.format(**names) for a in argv]
    code, out, err = _run(argv, capsys)
    assert code == 2
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"bayes-ssm {argv[0]}: error:") and message in err, err
