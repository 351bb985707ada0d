"""Forecast DataFrames: index, columns, quantiles, input validation, keys, the fan chart."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from toy_models import ToyLocalLevel, simulate_local_level

import bayes_ssm.inference.fitting as bi
import bayes_ssm.inference.io as bs_io
from bayes_ssm.data.validation import as_series_data, future_index
from bayes_ssm.inference.forecast import (
    level_label,
    summarize_draws,
    validate_horizon,
    validate_prob,
)
from bayes_ssm.plotting import plot_forecast


def _series(n=60, freq="W-SAT", start="2021-01-02", seed=0, name="cases"):
    y, _ = simulate_local_level(np.random.default_rng(seed), n, 1.0, 0.3, start=10.0)
    return pd.Series(y, index=pd.date_range(start, periods=n, freq=freq), name=name)


@pytest.fixture(scope="module")
def weekly_fit():
    return bi.fit_svi(ToyLocalLevel(), _series(), key=0, steps=1500, progress=False)


@pytest.fixture(scope="module")
def cov_fit():
    y = _series(50)
    x = pd.DataFrame({"x": np.sin(np.arange(50) / 3.0)}, index=y.index)
    y = y + 2.0 * x["x"]
    return bi.fit_svi(ToyLocalLevel(), y, covariates=x, key=0, steps=1500, progress=False)


# ------------------------------------------------------------------ summarize_draws
def test_summarize_draws_matches_numpy_quantiles():
    rng = np.random.default_rng(1)
    draws = rng.normal(size=(4000, 3)) * np.array([1.0, 2.0, 3.0])
    index = pd.date_range("2024-01-01", periods=3, freq="D")
    fc = summarize_draws(draws, index, prob=(0.95, 0.8, 0.5))
    assert list(fc.columns) == [
        "mean",
        "median",
        "lower_50",
        "upper_50",
        "lower_80",
        "upper_80",
        "lower_95",
        "upper_95",
    ]
    assert fc.index.equals(index)
    np.testing.assert_allclose(fc["lower_95"], np.quantile(draws, 0.025, axis=0))
    np.testing.assert_allclose(fc["upper_80"], np.quantile(draws, 0.9, axis=0))
    np.testing.assert_allclose(fc["median"], np.median(draws, axis=0))
    np.testing.assert_allclose(fc["mean"], draws.mean(axis=0))
    assert (fc["lower_95"] < fc["lower_80"]).all() and (fc["upper_80"] < fc["upper_95"]).all()


def test_level_labels():
    assert level_label(0.8) == "80"
    assert level_label(0.975) == "97.5"
    assert validate_prob(0.9) == (0.9,)


@pytest.mark.parametrize("prob", [0.0, 1.0, -0.1, 1.5, (0.8, 1.2), (), ("a",), True])
def test_bad_prob(prob):
    with pytest.raises(ValueError, match="prob"):
        validate_prob(prob)


@pytest.mark.parametrize("horizon", [0, -3, 2.5, True, "4", None])
def test_bad_horizon(horizon):
    with pytest.raises(ValueError, match="horizon"):
        validate_horizon(horizon)


def test_non_finite_draws_refused():
    draws = np.ones((10, 2))
    draws[3, 1] = np.nan
    with pytest.raises(ValueError, match="not finite"):
        summarize_draws(draws, pd.RangeIndex(2))


# ----------------------------------------------------------------- fit.forecast
def test_forecast_index_columns_and_shape(weekly_fit):
    fc = weekly_fit.forecast(8, key=1)
    assert fc.shape == (8, 6)
    assert list(fc.columns) == ["mean", "median", "lower_80", "upper_80", "lower_95", "upper_95"]
    expected = pd.date_range("2022-02-26", periods=8, freq="W-SAT")  # the week after the last
    assert weekly_fit.data.index[-1] == pd.Timestamp("2022-02-19")
    assert fc.index.equals(expected)
    assert fc.index.freqstr == "W-SAT"
    assert (fc["lower_95"] <= fc["lower_80"]).all() and (fc["lower_80"] <= fc["median"]).all()
    assert (fc["median"] <= fc["upper_80"]).all() and (fc["upper_80"] <= fc["upper_95"]).all()
    # the interval widens with the horizon (state uncertainty accumulates)
    width = fc["upper_95"] - fc["lower_95"]
    assert width.iloc[-1] > width.iloc[0]
    samples = weekly_fit.forecast_samples(8, key=1)
    assert samples.shape == (weekly_fit.num_samples, 8)
    np.testing.assert_allclose(fc["median"], np.median(samples, axis=0))


def test_forecast_daily_and_range_index():
    # same length and settings as the weekly fixture: the compiled programs are reused
    kw = dict(key=0, steps=1500, progress=False)
    daily = bi.fit_svi(ToyLocalLevel(), _series(60, "D"), **kw)
    fc = daily.forecast(3, prob=0.5)
    assert list(fc.columns) == ["mean", "median", "lower_50", "upper_50"]
    assert fc.index.equals(pd.date_range("2021-03-03", periods=3, freq="D"))
    plain = bi.fit_svi(ToyLocalLevel(), _series(60).to_numpy(), **kw)
    assert plain.forecast(4).index.equals(pd.RangeIndex(60, 64))


def test_index_name_survives_validation_and_future_index():
    """``as_series_data`` rebuilt the index (to fill gaps and carry the frequency) and dropped
    its name; ``future_index`` never set one."""
    idx = pd.date_range("2021-01-02", periods=12, freq="W-SAT", name="week_ending")
    y = pd.Series(np.arange(12.0), index=idx, name="cases")
    assert as_series_data(y).index.name == "week_ending"
    gappy = as_series_data(y.drop(idx[4]), freq="W-SAT")  # the reindexing path
    assert gappy.index.name == "week_ending" and np.isnan(gappy.y[4])
    assert future_index(gappy, 3).name == "week_ending"
    assert as_series_data(y.rename_axis(None)).index.name is None
    steps = pd.Series(np.arange(5.0), index=pd.Index([0, 1, 2, 3, 4], name="step"))
    data = as_series_data(steps)
    assert data.index.name == "step" and future_index(data, 2).name == "step"


def test_forecast_fitted_update_and_reload_keep_the_index_name(tmp_path):
    # same length and settings as the weekly fixture: the compiled programs are reused
    y = _series(60, "D").rename_axis("date")
    fit = bi.fit_svi(ToyLocalLevel(), y, key=0, steps=1500, progress=False)
    fc = fit.forecast(3)
    assert fc.index.name == "date"
    assert fc.reset_index().columns[0] == "date"
    assert fit.fitted().index.name == "date"
    new = pd.Series([9.0, 9.5], index=future_index(fit.data, 2).rename(None))  # unnamed
    assert fit.update(new).forecast(2).index.name == "date"
    fit.save(tmp_path / "fit.nc")
    assert bs_io.load(tmp_path / "fit.nc").forecast(2).index.name == "date"


def test_same_key_same_forecast_other_key_differs(weekly_fit):
    a = weekly_fit.forecast(5, key=3)
    b = weekly_fit.forecast(5, key=3)
    pd.testing.assert_frame_equal(a, b)
    c = weekly_fit.forecast(5, key=4)
    assert not np.allclose(a.to_numpy(), c.to_numpy())


def test_forecast_num_samples_thins(weekly_fit):
    s = weekly_fit.forecast_samples(3, num_samples=100, key=0)
    assert s.shape == (100, 3)
    with pytest.raises(ValueError, match="num_samples"):
        weekly_fit.forecast_samples(3, num_samples=10**6)


@pytest.mark.parametrize(
    "bad",
    [
        dict(horizon=0),
        dict(horizon=-1),
        dict(horizon=2, prob=1.0),
        dict(horizon=2, prob=(0.0, 0.5)),
        dict(horizon=2, key="x"),
    ],
)
def test_forecast_bad_input(weekly_fit, bad):
    with pytest.raises(ValueError):
        weekly_fit.forecast(**bad)


def test_covariates_required_for_the_horizon(cov_fit):
    with pytest.raises(ValueError, match="covariates"):
        cov_fit.forecast(4)
    short = pd.DataFrame({"x": [0.0, 1.0]}, index=future_index(cov_fit.data, 2))
    with pytest.raises(ValueError, match="no rows"):
        cov_fit.forecast(4, covariates=short)
    future = pd.DataFrame({"x": np.ones(4)}, index=future_index(cov_fit.data, 4))
    fc_hi = cov_fit.forecast(4, covariates=future)
    fc_lo = cov_fit.forecast(4, covariates=-future)
    # beta ~ 2: moving x from -1 to +1 shifts the forecast by about 4
    shift = (fc_hi["mean"] - fc_lo["mean"]).to_numpy()
    assert np.all((shift > 3.0) & (shift < 5.0))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda y: y.iloc[::-1], "sorted"),
        (lambda y: pd.concat([y.iloc[:10], y.iloc[9:]]), "duplicated"),
        (lambda y: y.iloc[:3], "at least"),
        (lambda y: y.astype(str), "numeric"),
    ],
)
def test_bad_series_refused(make, match):
    with pytest.raises(ValueError, match=match):
        bi.fit_svi(ToyLocalLevel(), make(_series()), key=0, steps=10, progress=False)


# -------------------------------------------------------------------- plotting
def test_plot_forecast(weekly_fit):
    fc = weekly_fit.forecast(6)
    history = pd.Series(weekly_fit.data.y, index=weekly_fit.data.index, name="cases")
    actual = pd.Series(np.zeros(6), index=fc.index)
    ax = plot_forecast(fc, history=history, actual=actual, title="t")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["observed", "95% interval", "80% interval", "forecast (median)", "actual"]
    assert ax.get_xlabel() == "date" and ax.get_ylabel() == "cases"
    assert len(ax.collections) == 2  # one band per level
    np.testing.assert_allclose(ax.lines[1].get_ydata(), fc["median"])
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="median"):
        plot_forecast(pd.DataFrame({"a": [1.0]}))


def test_warn_exploding_forecast_bound():
    from bayes_ssm.inference.forecast import warn_exploding_forecast

    observed = np.array([2.0, np.nan, 6.0, 4.0])  # range [2, 6], size 6, midrange 4
    sane = np.full((10, 3), 4.0 + 5_999.0)  # just inside 1000 x 6 of the midrange
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_exploding_forecast(sane, observed) == 0
    wild = sane.copy()
    wild[1, 0], wild[2, 2], wild[3, 1] = -1e7, np.inf, np.nan
    with pytest.warns(UserWarning, match=r"3 of 30 forecast draws .* steps \[0, 1, 2\]"):
        assert warn_exploding_forecast(wild, observed) == 3


def test_real_valued_forecast_warns_when_it_explodes_and_not_otherwise():
    """A hand-made fit of a Gaussian local linear trend: a slope sd of 1e4 data ranges per step
    is a diverged trend and its forecast warns; an ordinary one does not."""
    from bayes_ssm.inference.fit import Fit
    from bayes_ssm.models import StructuralTS

    data = as_series_data(_series())
    model = StructuralTS(trend="local_linear")

    def fit_with(sigma_slope):
        s = (1, 20)
        draws = {
            "sigma_obs": np.full(s, 0.5),
            "sigma_level": np.full(s, 0.1),
            "sigma_slope": np.full(s, sigma_slope),
        }
        return Fit(model, data, model.data_scales(data.y), "nuts", draws)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_with(0.01).forecast(8, key=0)
    span = float(np.nanmax(data.y) - np.nanmin(data.y))
    with pytest.warns(UserWarning, match="more than 1000 x the data's size"):
        fit_with(1e4 * span).forecast_samples(8, key=0)
