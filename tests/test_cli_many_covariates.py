"""``forecast-many --covariates X1 X2 --future-covariates FUTURE.csv``: covariate columns of
the long CSV, future covariates as a long CSV; errors before any fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_ssm.cli import main


@pytest.fixture
def csvs(tmp_path):
    """Two weekly series ``y = level + beta_i * x``, different start dates; the future rows."""
    rng = np.random.default_rng(3)
    train, future = [], []
    for name, beta, start in (("north", 2.0, "2020-01-04"), ("south", -3.0, "2020-03-07")):
        dates = pd.date_range(start, periods=64, freq="W-SAT")
        x = rng.normal(size=64)
        y = 5 + np.cumsum(rng.normal(0, 0.05, 64)) + beta * x + rng.normal(0, 0.1, 64)
        rows = pd.DataFrame({"region": name, "week": dates.strftime("%Y-%m-%d"), "n": y, "x": x})
        train.append(rows.iloc[:60])
        future.append(rows.iloc[60:].drop(columns="n"))
    paths = tmp_path / "long.csv", tmp_path / "future.csv"
    pd.concat(train).sample(frac=1.0, random_state=0).to_csv(paths[0], index=False)
    pd.concat(future).to_csv(paths[1], index=False)
    return paths, pd.concat(future, ignore_index=True)


def _argv(paths, *more):
    return [
        "forecast-many", "--csv", str(paths[0]), "--id-col", "region", "--date-col", "week",
        "--value-col", "n", "--horizon", "4", "--covariates", "x", "--future-covariates",
        str(paths[1]), "--transform", "none", "--quiet", "--batch", "loop", *more,
    ]  # fmt: skip


def test_forecast_many_with_covariates(csvs, tmp_path):
    paths, future = csvs
    out = tmp_path / "fc.csv"
    assert main(_argv(paths, "--svi-steps", "600", "--out", str(out))) == 0
    fc = pd.read_csv(out)
    for name, beta in (("north", 2.0), ("south", -3.0)):
        got = fc[fc["unique_id"] == name]
        rows = future[future["region"] == name]
        assert got["ds"].tolist() == rows["week"].tolist()  # each series' own dates
        # the forecast follows beta * x: its correlation with the future x has beta's sign
        assert np.sign(np.corrcoef(got["mean"], rows["x"])[0, 1]) == np.sign(beta)


def _error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as err:
        main(argv)
    assert err.value.code == 2
    return capsys.readouterr().err


def test_forecast_many_covariate_errors(csvs, capsys):
    paths, future = csvs
    south = future.index[(future["region"] == "south").to_numpy()]
    future.drop(index=south[1]).to_csv(paths[1], index=False)
    assert "series 'south': future covariates have no rows" in _error(_argv(paths), capsys)
    future[future["region"] == "north"].to_csv(paths[1], index=False)
    assert "no rows for series 'south'" in _error(_argv(paths), capsys)
    assert "missing ['z']" in _error([*_argv(paths), "--covariates", "z"], capsys)
    alone = [a for a in _argv(paths) if a not in ("--future-covariates", str(paths[1]))]
    assert "go together" in _error(alone, capsys)
