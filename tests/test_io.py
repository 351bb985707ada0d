"""Saving and loading fits: exact round trips, atomic writes, clear errors on bad files."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from toy_models import ToyLocalLevel, simulate_local_level

import bayes_ssm.inference.fitting as bi
from bayes_ssm.inference import io
from bayes_ssm.models import Seasonal, StructuralTS


@pytest.fixture(scope="module")
def structural_fit():
    rng = np.random.default_rng(0)
    t = np.arange(90)
    y = 5 + np.sin(2 * np.pi * t / 12) + np.cumsum(rng.normal(0, 0.1, t.size))
    y[[10, 40]] = np.nan
    x = pd.DataFrame(
        {"promo": (t % 9 == 0).astype(float)},
        index=pd.date_range("2018-01-31", periods=90, freq="ME"),
    )
    series = pd.Series(y + 0.5 * x["promo"].to_numpy(), index=x.index, name="sales")
    model = StructuralTS(trend="local_linear", seasonal=Seasonal(12, harmonics=2))
    return bi.fit_svi(
        model, series, covariates=x, key=2, steps=1000, num_samples=200, progress=False
    )


@pytest.fixture(scope="module")
def nuts_fit():
    y, _ = simulate_local_level(np.random.default_rng(1), 40, 1.0, 0.3)
    return bi.fit_nuts(
        ToyLocalLevel(), y, key=0, num_chains=2, num_warmup=100, num_samples=100, progress=False
    )


def _assert_same_fit(a, b):
    assert a.model == b.model and a.method == b.method
    assert dict(a.scales) == dict(b.scales) and dict(a.info) == dict(b.info)
    for group in ("draws", "sample_stats", "guide_params"):
        ga, gb = getattr(a, group), getattr(b, group)
        assert set(ga) == set(gb)
        for k in ga:
            assert ga[k].dtype == gb[k].dtype
            np.testing.assert_array_equal(ga[k], gb[k])
    np.testing.assert_array_equal(a.data.y, b.data.y)
    assert a.data.index.equals(b.data.index) and a.data.freq == b.data.freq
    assert a.data.name == b.data.name and a.data.covariate_names == b.data.covariate_names


def test_round_trip_structural_with_covariates(structural_fit, tmp_path):
    path = tmp_path / "fit.nc"
    structural_fit.save(path)
    loaded = io.load(path)
    _assert_same_fit(structural_fit, loaded)
    np.testing.assert_array_equal(loaded.data.covariates, structural_fit.data.covariates)
    np.testing.assert_array_equal(loaded.svi_loss, structural_fit.svi_loss)
    future = pd.DataFrame(
        {"promo": [0.0, 1.0, 0.0]}, index=pd.date_range("2025-07-31", periods=3, freq="ME")
    )
    a = structural_fit.forecast(3, covariates=future, key=9)
    b = loaded.forecast(3, covariates=future, key=9)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert a.index.equals(future.index)
    assert [f for f in os.listdir(tmp_path) if f != "fit.nc"] == []  # no temporary left over


def test_round_trip_nuts_range_index(nuts_fit, tmp_path):
    path = tmp_path / "nuts.nc"
    io.save(nuts_fit, path)
    loaded = io.load(str(path))
    _assert_same_fit(nuts_fit, loaded)
    assert isinstance(loaded.data.index, pd.RangeIndex)
    np.testing.assert_array_equal(
        nuts_fit.forecast_samples(4, key=1), loaded.forecast_samples(4, key=1)
    )
    # a loaded fit keeps working: update and summaries
    assert loaded.update([0.5]).data.num_steps == 41


def test_save_replaces_atomically(nuts_fit, structural_fit, tmp_path, monkeypatch):
    path = tmp_path / "fit.nc"
    nuts_fit.save(path)
    before = path.read_bytes()

    def broken(self, *args, **kwargs):
        with open(args[0], "wb") as fh:  # half a file, then a crash
            fh.write(b"\x89HDF\r\n\x1a\npartial")
        raise OSError("disk full")

    monkeypatch.setattr(xr.DataTree, "to_netcdf", broken)
    with pytest.raises(OSError, match="disk full"):
        structural_fit.save(path)
    assert path.read_bytes() == before  # the old file is intact
    assert os.listdir(tmp_path) == ["fit.nc"]
    monkeypatch.undo()
    structural_fit.save(path)
    assert io.load(path).model == structural_fit.model


def test_truncated_file(nuts_fit, tmp_path):
    path = tmp_path / "fit.nc"
    nuts_fit.save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupted"):
        io.load(path)


def test_corrupted_bytes(nuts_fit, tmp_path):
    path = tmp_path / "fit.nc"
    nuts_fit.save(path)
    clean = path.read_bytes()
    value = nuts_fit.draws["obs_sd"][0, :4].tobytes()  # the raw bytes of some draws
    at = clean.find(value)
    assert at > 0
    path.write_bytes(clean[:at] + bytes(b ^ 0xFF for b in value) + clean[at + len(value) :])
    with pytest.raises(ValueError, match="corrupted"):
        io.load(path)
    # a damaged header
    path.write_bytes(clean[:8] + b"\x00" * 64 + clean[72:])
    with pytest.raises(ValueError, match="corrupted"):
        io.load(path)


def test_foreign_files(tmp_path):
    text = tmp_path / "data.nc"
    text.write_text("date,value\n2020-01-01,1\n")
    with pytest.raises(ValueError, match="not a saved bayes_ssm fit"):
        io.load(text)
    other = tmp_path / "other.nc"
    xr.Dataset({"a": ("x", np.arange(3.0))}).to_netcdf(other, engine="h5netcdf")
    with pytest.raises(ValueError, match="not a saved bayes_ssm fit"):
        io.load(other)
    with pytest.raises(FileNotFoundError):
        io.load(tmp_path / "missing.nc")
    with pytest.raises(ValueError, match="Fit"):
        io.save({"not": "a fit"}, tmp_path / "x.nc")


def test_save_into_missing_folder(nuts_fit, tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        nuts_fit.save(tmp_path / "nope" / "fit.nc")


def test_structural_to_arviz_and_loo(structural_fit):
    tree = structural_fit.to_arviz()
    observed = ~np.isnan(structural_fit.data.y)
    assert tree["log_likelihood"]["y"].shape == (1, 200, observed.sum())
    assert tree["constant_data"]["covariates"].shape == (observed.sum(), 1)
    assert set(tree["posterior"].data_vars) >= {"sigma_obs", "sigma_level", "beta"}
    rep = tree["posterior_predictive"]["y"].to_numpy()[0]  # (draw, time): y_t | y_<t replicates
    assert rep.shape == (200, observed.sum())
    lo, hi = np.quantile(rep[:, 24:], [0.025, 0.975], axis=0)  # after two seasons of burn-in
    obs = tree["observed_data"]["y"].to_numpy()[24:]
    assert 0.85 <= np.mean((lo <= obs) & (obs <= hi)) <= 1.0
    import arviz_stats

    assert np.isfinite(arviz_stats.loo(tree).elpd)
