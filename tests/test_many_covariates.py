"""Covariates per series in long format: each series' regression coefficients are its own, the
many-series fits equal single-series ``fit_svi(..., covariates=X)`` fits, future covariates come
as a long frame on each series' own dates; series of different lengths and start dates share
one padded program and keep their own calendars."""

from __future__ import annotations

from types import SimpleNamespace

import jax
import numpy as np
import pandas as pd
import pytest

import bayes_ssm as bs
from bayes_ssm.data.long_format import split_long, split_long_covariates
from bayes_ssm.inference.many_covariates import future_covariates

MODEL = bs.StructuralTS()  # local level + regression on the covariates (beta per series)
BETAS = {"a": (2.0, -1.0), "b": (-0.5, 3.0), "c": (1.0, 0.0)}
SVI = dict(steps=400, check_every=200, num_samples=200, progress=False)


def panel(starts=("2021-01-03",) * 3, lengths=(70, 70, 70), horizon=4, seed=0):
    """Long frames (training, future covariates) of series ``y = level + x @ beta_i + noise``,
    series ``i`` starting on ``starts[i]`` with ``lengths[i]`` weekly points."""
    rng = np.random.default_rng(seed)
    train, future = [], []
    for (ident, beta), start, n in zip(BETAS.items(), starts, lengths, strict=True):
        ds = pd.date_range(start, periods=n + horizon, freq="W")
        x = rng.normal(size=(n + horizon, 2))
        level = np.cumsum(rng.normal(0, 0.05, n + horizon))
        y = level + x @ np.array(beta) + rng.normal(0, 0.2, n + horizon)
        rows = pd.DataFrame({"unique_id": ident, "ds": ds, "y": y, "x1": x[:, 0], "x2": x[:, 1]})
        train.append(rows.iloc[:n])
        future.append(rows.iloc[n:].drop(columns="y"))
    frame = pd.concat(train, ignore_index=True).sample(frac=1.0, random_state=seed)
    return frame, pd.concat(future, ignore_index=True)


@pytest.fixture(scope="module")
def data():
    return panel()


@pytest.fixture(scope="module")
def vmapped(data):  # tests that use it are slow: the vmapped program compiles in ~10-30 s
    return bs.fit_svi_many(MODEL, data[0], key=1, covariates=["x1", "x2"], batch="vmap", **SVI)


@pytest.mark.slow
def test_each_series_recovers_its_own_coefficients(vmapped):
    for ident, beta in BETAS.items():
        draws = vmapped[ident].draws["beta"].reshape(-1, 2)
        assert vmapped[ident].data.covariate_names == ("x1", "x2")
        np.testing.assert_allclose(draws.mean(0), beta, atol=0.15, err_msg=ident)


@pytest.mark.slow
def test_vmap_and_loop_equal_single_fits_with_covariates(data, vmapped):
    """``batch="loop"`` runs ``fit_svi(y_i, covariates=X_i)`` itself (bit for bit); the vmapped
    program takes the same steps (equal up to float rounding of the batched arithmetic)."""
    frame, _ = data
    series = split_long(frame)
    covs = split_long_covariates(frame, ["x1", "x2"])
    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    loop = bs.fit_svi_many(MODEL, series, key=1, covariates=covs, batch="loop", **SVI)
    for i, ident in enumerate(series):
        single = bs.fit_svi(MODEL, series[ident], key=keys[i], covariates=covs[ident], **SVI)
        for name, value in single.draws.items():
            np.testing.assert_array_equal(loop[ident].draws[name], value, err_msg=name)
            np.testing.assert_allclose(
                vmapped[ident].draws[name], value, rtol=1e-3, atol=1e-4, err_msg=name
            )
        assert vmapped[ident].info["steps"] == single.info["steps"]


@pytest.mark.slow
def test_forecast_with_future_covariates_in_long_format(data, vmapped):
    _, future = data
    fc = vmapped.forecast(4, covariates=future.sample(frac=1.0, random_state=3), key=7)
    keys = jax.random.split(jax.random.PRNGKey(7), 3)
    for k, ident in zip(keys, vmapped, strict=True):
        rows = future[future["unique_id"] == ident].set_index("ds")[["x1", "x2"]]
        own = vmapped[ident].forecast(4, covariates=rows, key=k)
        got = fc[fc["unique_id"] == ident].set_index("ds")
        np.testing.assert_array_equal(got["mean"].to_numpy(), own["mean"].to_numpy())
        assert got.index.equals(own.index)
    # the covariates move the forecasts: zero covariates give other means
    zero = future.assign(x1=0.0, x2=0.0)
    assert not np.allclose(vmapped.forecast(4, covariates=zero, key=7)["mean"], fc["mean"])


@pytest.mark.slow
def test_future_covariate_errors(data, vmapped):
    _, future = data
    first = future[(future["unique_id"] == "b")].index[1]
    with pytest.raises(ValueError, match="series 'b'.*no rows for 1 timestamps"):
        vmapped.forecast(4, covariates=future.drop(index=first))
    with pytest.raises(ValueError, match=r"no rows for 1 fitted series, e.g. \['c'\]"):
        vmapped.forecast(4, covariates=future[future["unique_id"] != "c"])
    with pytest.raises(ValueError, match=r"lack the fitted covariate columns \['x2'\]"):
        vmapped.forecast(4, covariates=future.drop(columns="x2"))
    nan = future.copy()
    nan.loc[nan.index[0], "x1"] = np.nan
    with pytest.raises(ValueError, match="series 'a'.*NaN"):
        vmapped.forecast(4, covariates=nan)
    with pytest.raises(ValueError, match="the model uses covariates"):
        vmapped.forecast(4)


def test_training_covariate_errors(data):
    frame, future = data
    plain = {"a": SimpleNamespace(data=SimpleNamespace(covariate_names=()))}  # a Fit's part
    with pytest.raises(ValueError, match="fitted without any"):
        future_covariates(future, plain, "unique_id", "ds")
    fit = dict(key=0, batch="loop", steps=2, check_every=2, num_samples=2, progress=False)
    nan = frame.copy()
    nan.loc[nan.index[(nan["unique_id"] == "c").to_numpy()][3], "x2"] = np.nan
    with pytest.raises(ValueError, match="series 'c': covariates contain NaN at 1 rows"):
        bs.fit_svi_many(MODEL, nan, covariates=["x1", "x2"], **fit)
    with pytest.raises(ValueError, match=r"missing \['x3'\]"):
        bs.fit_svi_many(MODEL, frame, covariates=["x1", "x3"], **fit)
    with pytest.raises(ValueError, match="include the value column 'y'"):
        bs.fit_svi_many(MODEL, frame, covariates=["x1", "y"], **fit)
    with pytest.raises(ValueError, match="names its covariate columns"):
        bs.fit_svi_many(MODEL, frame, covariates={"a": frame}, **fit)
    with pytest.raises(ValueError, match=r"missing for \['c'\]"):
        series = split_long(frame)
        covs = split_long_covariates(frame, ["x1"])
        bs.fit_svi_many(MODEL, series, covariates={"a": covs["a"], "b": covs["b"]}, **fit)


@pytest.mark.slow
def test_unequal_lengths_and_start_dates_in_one_padded_program():
    """Three series starting on three dates, ending on three others, in ONE padded program
    (with covariates): each fit is its unpadded single fit (up to rounding) on its own dates,
    and each series' forecast dates continue its own calendar."""
    starts, lengths = ("2021-01-03", "2021-05-02", "2020-10-04"), (70, 40, 55)
    frame, future = panel(starts=starts, lengths=lengths, seed=4)
    many = bs.fit_svi_many(
        MODEL, frame, key=2, covariates=["x1", "x2"], batch="vmap", pad=True, **SVI
    )
    assert many.info["padded"] and many.info["groups"] == [["a", "b", "c"]]
    keys = jax.random.split(jax.random.PRNGKey(2), 3)
    series, covs = split_long(frame), split_long_covariates(frame, ["x1", "x2"])
    fc = many.forecast(4, covariates=future)
    for i, (ident, start, n) in enumerate(zip(BETAS, starts, lengths, strict=True)):
        own = pd.date_range(start, periods=n + 4, freq="W")
        assert many[ident].data.index.equals(pd.DatetimeIndex(own[:n], name="ds"))
        dates = pd.DatetimeIndex(fc.loc[fc["unique_id"] == ident, "ds"])
        assert dates.equals(pd.DatetimeIndex(own[n:], name="ds"))
        if ident != "b":  # the most padded series (40 of 70 steps) against its own fit
            continue
        single = bs.fit_svi(MODEL, series[ident], key=keys[i], covariates=covs[ident], **SVI)
        assert many[ident].info["steps"] == single.info["steps"]
        for name, value in single.guide_params.items():
            np.testing.assert_allclose(
                many[ident].guide_params[name], value, rtol=1e-3, atol=1e-3, err_msg=name
            )
