"""Bundled datasets: real dates, shapes, and cross-checks between independent files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_ssm.data import datasets


def test_available_lists_every_loader():
    assert datasets.available() == sorted(
        ["ili", "exchange_rate", "covid", "national_illness", "etth1"]
    )
    for name in datasets.available():
        assert len(datasets.load(name)) > 0


@pytest.mark.parametrize(
    "year, week, saturday",
    [
        (1997, 40, "1997-10-04"),
        (2002, 40, "2002-10-05"),
        (2021, 13, "2021-04-03"),
        (2025, 14, "2025-04-05"),
        (2020, 53, "2021-01-02"),
    ],
)
def test_mmwr_week_ending(year, week, saturday):
    """Week 1 contains January 4 (CDC's MMWR rule); 2020 had 53 weeks."""
    assert datasets.mmwr_week_ending(year, week) == pd.Timestamp(saturday)


def test_ili_is_weekly_on_mmwr_saturdays():
    y = datasets.load("ili")
    assert y.index.freqstr == "W-SAT" and y.index[0] == pd.Timestamp("1997-10-04")
    assert y.index[-1] == pd.Timestamp("2025-04-05") and y.index.is_monotonic_increasing
    assert y.between(0, 20).all()


def test_national_illness_real_dates_match_ilinet():
    """The benchmark copy, re-dated to 2002-W40, agrees with the separately exported ILINet
    file week by week (up to CDC's later revisions); one week off, it does not."""
    ni = datasets.load("national_illness")
    assert len(ni) == 966 and ni.index.freqstr == "W-SAT"
    assert ni.index[0] == pd.Timestamp("2002-10-05") and ni.index[-1] == pd.Timestamp("2021-04-03")
    ili = datasets.load("ili")
    bench = ni["% WEIGHTED ILI"].to_numpy()

    def share_equal(shift_weeks):
        other = ili.reindex(ni.index.shift(shift_weeks)).to_numpy()
        return np.mean(np.abs(other - bench) < 1e-3)

    assert share_equal(0) > 0.85
    assert max(share_equal(-1), share_equal(1)) < 0.2


def test_covid_new_is_the_difference_of_cumulative():
    frame = datasets.load("covid")
    assert frame.index.freqstr == "D" and len(frame) == 1143
    cum, new = frame["us_cum_cases"], frame["us_new_cases"]
    np.testing.assert_allclose(new.iloc[1:], np.diff(cum.to_numpy()))


def test_exchange_rate_and_etth1_shapes():
    fx = datasets.load("exchange_rate")
    assert fx.shape == (7588, 8) and "JPY" in fx.columns and fx.notna().all().all()
    ett = datasets.load("etth1")
    assert ett.index.freqstr == "h" and ett.index[0] == pd.Timestamp("2016-07-01")
    assert list(ett.columns) == ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]
    assert len(ett) == 17420 and ett.notna().all().all()  # a complete hourly grid


def test_unknown_name_and_missing_file(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        datasets.load("nope")
    monkeypatch.setenv("BAYES_SSM_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="bundled files only"):
        datasets.load("etth1")


def test_the_package_data_globs_ship_every_bundled_file():
    """An installed wheel finds the data: pyproject's package-data globs match every file
    ``load`` reads, inside the package (``bayes_ssm/data/bundled``, a link to ``datasets/``)."""
    import tomllib
    from pathlib import Path

    import bayes_ssm

    root = Path(__file__).resolve().parents[1]
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["bayes_ssm"]
    package = Path(bayes_ssm.__file__).resolve().parent
    shipped = {p.resolve() for g in globs for p in package.glob(g)}
    for name in datasets.available():
        path = (datasets.data_dir() / datasets._FILES[name]).resolve()
        assert path in shipped, f"{name}: {path} is not covered by package-data {globs}"
    assert datasets.data_dir().resolve() == (root / "datasets").resolve()
