"""Inference drivers against closed forms: NUTS vs the Kalman predictive and smoother, update."""

from __future__ import annotations

import numpy as np
import optax
import pandas as pd
import pytest
from scipy import stats
from toy_models import (
    ToyExplicitLevel,
    ToyLocalLevel,
    kalman_predictive_numpy,
    kalman_smoother_numpy,
    simulate_local_level,
)

import bayes_ssm.inference.fitting as bi
from bayes_ssm.models import Seasonal, StructuralTS

OBS_SD, LEVEL_SD, INIT_SD = 1.0, 0.5, 10.0


def _weekly(values, start="2020-01-04", name="y"):
    return pd.Series(
        values, index=pd.date_range(start, periods=len(values), freq="W-SAT"), name=name
    )


@pytest.fixture(scope="module")
def conjugate():
    """Known variances, explicit level path: NUTS samples the exact Gaussian smoothing law."""
    y, _ = simulate_local_level(np.random.default_rng(42), 30, OBS_SD, LEVEL_SD, start=5.0)
    y[7] = np.nan  # a missing week is data
    model = ToyExplicitLevel(obs_sd=OBS_SD, level_sd=LEVEL_SD, init_sd=INIT_SD)
    fit = bi.fit_nuts(
        model, _weekly(y), key=0, num_chains=2, num_warmup=400, num_samples=2000, progress=False
    )
    return y, fit


def test_nuts_forecast_matches_kalman_predictive(conjugate):
    y, fit = conjugate
    horizon = 4
    mean, sd = kalman_predictive_numpy(y, OBS_SD, LEVEL_SD, y[0], INIT_SD**2, horizon)
    draws = fit.forecast_samples(horizon, key=7)
    n = draws.shape[0] / 2  # conservative effective sample size (autocorrelated chains)
    np.testing.assert_allclose(draws.mean(0), mean, atol=4 * sd.max() / np.sqrt(n))
    np.testing.assert_allclose(draws.std(0), sd, rtol=4 / np.sqrt(2 * n))
    for p in (0.025, 0.1, 0.5, 0.9, 0.975):
        exact = stats.norm.ppf(p, mean, sd)
        se = np.sqrt(p * (1 - p) / n) / stats.norm.pdf(stats.norm.ppf(p)) * sd
        np.testing.assert_array_less(np.abs(np.quantile(draws, p, axis=0) - exact), 4 * se)
    fc = fit.forecast(horizon, key=7, prob=(0.95,))
    np.testing.assert_allclose(fc["upper_95"], np.quantile(draws, 0.975, axis=0))


def test_nuts_components_match_kalman_smoother(conjugate):
    y, fit = conjugate
    smooth_mean, smooth_var = kalman_smoother_numpy(y, OBS_SD, LEVEL_SD, y[0], INIT_SD**2)
    comp = fit.components(prob=(0.9,))
    assert list(comp.columns.get_level_values(0).unique()) == ["level"]
    assert comp.attrs["scale"] == "data"  # not a count model: components on the data's scale
    n = fit.num_samples / 4
    np.testing.assert_allclose(
        comp["level"]["mean"], smooth_mean, atol=4 * np.sqrt(smooth_var.max() / n)
    )
    fitted = fit.fitted()
    assert fitted.index.equals(fit.data.index)
    np.testing.assert_allclose(fitted["mean"], comp["level"]["mean"], rtol=1e-6)
    assert fit.info["chain_method"] == "vectorized"  # one CPU device, two chains


def test_update_refuses_models_with_per_step_latents(conjugate):
    _, fit = conjugate
    with pytest.raises(ValueError, match="refit"):
        fit.update([1.0, 2.0])


@pytest.fixture(scope="module")
def svi_split():
    y, _ = simulate_local_level(np.random.default_rng(3), 100, 1.0, 0.4, start=2.0)
    series = _weekly(y)
    fit = bi.fit_svi(ToyLocalLevel(), series.iloc[:80], key=1, steps=3000, progress=False)
    return series, fit


def test_update_filters_forward_without_refitting(svi_split):
    series, fit = svi_split
    new = fit.update(series.iloc[80:])
    assert fit.data.num_steps == 80 and new.data.num_steps == 100  # the old fit is untouched
    assert new.data.index.equals(series.index)
    for k in fit.draws:
        np.testing.assert_array_equal(fit.draws[k], new.draws[k])
    horizon = 3
    draws = new.forecast_samples(horizon, key=5)
    # reference: mixture over the parameter draws of the closed-form predictive given all 100
    obs_sd = fit.draws["obs_sd"].ravel().astype(float)
    level_sd = fit.draws["level_sd"].ravel().astype(float)
    scale = fit.scales["scale"]
    p1 = (ToyLocalLevel().init_sd * scale) ** 2
    moments = [
        kalman_predictive_numpy(series.to_numpy(), o, s, fit.scales["loc"], p1, horizon)
        for o, s in zip(obs_sd, level_sd, strict=True)
    ]
    means = np.array([m for m, _ in moments])
    sds = np.array([s for _, s in moments])
    mix_mean = means.mean(0)
    mix_sd = np.sqrt((sds**2).mean(0) + means.var(0))
    n = draws.shape[0]
    np.testing.assert_allclose(draws.mean(0), mix_mean, atol=4 * mix_sd.max() / np.sqrt(n))
    np.testing.assert_allclose(draws.std(0), mix_sd, rtol=5 / np.sqrt(2 * n))
    # and the old fit forecasts from week 80, far from the update's answer
    assert abs(fit.forecast_samples(1, key=5).mean() - mix_mean[0]) > 0.1
    fc = new.forecast(2)
    assert fc.index[0] == series.index[-1] + pd.offsets.Week(weekday=5)
    # an array continues the index the same way
    pd.testing.assert_frame_equal(fit.update(series.iloc[80:].to_numpy()).forecast(2), fc)


def test_update_bad_input(svi_split):
    series, fit = svi_split
    with pytest.raises(ValueError, match="start after"):
        fit.update(series.iloc[70:85])
    with pytest.raises(ValueError, match="covariates"):
        fit.update(series.iloc[80:], covariates=np.ones((20, 1)))
    gap = series.iloc[[82, 85]]  # missing weeks in between become NaN
    assert np.isnan(fit.update(gap).data.y[80:85]).sum() == 4


@pytest.mark.parametrize(
    "guide",
    [
        "normal",
        "delta",
        pytest.param("multivariate_normal", marks=pytest.mark.slow),
        pytest.param("low_rank", marks=pytest.mark.slow),
    ],
)
def test_svi_guides(guide):
    y, _ = simulate_local_level(np.random.default_rng(0), 60, 1.0, 0.3)
    fit = bi.fit_svi(
        ToyLocalLevel(), y, key=0, guide=guide, steps=500, num_samples=50, progress=False
    )
    assert fit.method == "svi" and fit.info["guide"] == guide
    assert set(fit.draws) == {"obs_sd", "level_sd"}
    assert fit.draws["obs_sd"].shape == (1, 50)
    assert fit.svi_loss.shape == (fit.info["steps"],)
    spread = fit.draws["obs_sd"].std()
    assert (spread == 0) if guide == "delta" else (spread > 0)
    assert fit.guide_params


def test_svi_same_key_same_fit_and_convergence_flag():
    y, _ = simulate_local_level(np.random.default_rng(0), 60, 1.0, 0.3)
    a = bi.fit_svi(ToyLocalLevel(), y, key=3, steps=300, progress=False)
    b = bi.fit_svi(ToyLocalLevel(), y, key=3, steps=300, progress=False)
    np.testing.assert_array_equal(a.draws["obs_sd"], b.draws["obs_sd"])
    short = bi.fit_svi(
        ToyLocalLevel(),
        y,
        key=3,
        steps=20,
        check_every=10,
        tol=1e-12,
        optimizer=optax.sgd(1e-6),
        progress=False,
    )
    assert short.info["converged"] is False and short.info["steps"] == 20


@pytest.mark.slow
@pytest.mark.parametrize("init", ["svi", "map"])
def test_nuts_inits_and_same_key(init):
    y, _ = simulate_local_level(np.random.default_rng(0), 50, 1.0, 0.3)
    kw = dict(key=11, num_chains=2, num_warmup=60, num_samples=40, init=init, progress=False)
    a = bi.fit_nuts(ToyLocalLevel(), y, **kw)
    assert a.draws["level_sd"].shape == (2, 40)
    assert a.sample_stats["diverging"].shape == (2, 40)
    if init == "map":
        b = bi.fit_nuts(ToyLocalLevel(), y, **kw)
        np.testing.assert_array_equal(a.draws["level_sd"], b.draws["level_sd"])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(key="zero"), "key"),
        (dict(key=0, num_chains=0), "num_chains"),
        (dict(key=0, target_accept=1.5), "target_accept"),
        (dict(key=0, chain_method="threads"), "chain_method"),
        (dict(key=0, init="random"), "init"),
    ],
)
def test_nuts_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bi.fit_nuts(ToyLocalLevel(), np.arange(20.0), **kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(guide="flow"), "guide"), (dict(steps=0), "steps"), (dict(optimizer="adam"), "optax")],
)
def test_svi_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bi.fit_svi(ToyLocalLevel(), np.arange(20.0), key=0, **kwargs)


@pytest.mark.slow
def test_structural_fit_components_and_update():
    """The real model through the drivers: components, fitted values, update, forecast."""
    rng = np.random.default_rng(5)
    t = np.arange(130)
    y = 3 + np.cumsum(rng.normal(0, 0.05, t.size)) + np.sin(2 * np.pi * t / 13)
    y = y + rng.normal(0, 0.1, t.size)
    series = _weekly(y, name="sim")
    model = StructuralTS(trend=None, seasonal=Seasonal(13, harmonics=2))
    fit = bi.fit_svi(model, series.iloc[:120], key=0, steps=3000, progress=False)
    comp = fit.components(num_samples=200)
    assert set(comp.columns.get_level_values(0)) == {"level", "seasonal"}
    recon = comp["level"]["mean"] + comp["seasonal"]["mean"]
    assert np.corrcoef(recon, y[:120])[0, 1] > 0.95
    fitted = fit.fitted(num_samples=200)
    assert np.corrcoef(fitted["mean"].iloc[13:], y[13:120])[0, 1] > 0.9
    new = fit.update(series.iloc[120:])
    fc = new.forecast(5, num_samples=400)
    assert fc.index[0] == series.index[-1] + pd.offsets.Week(weekday=5)
    truth = 3 + np.sin(2 * np.pi * np.arange(130, 135) / 13)
    # the seasonal phase carries over the update: the forecast follows the sine
    assert np.corrcoef(fc["median"], truth)[0, 1] > 0.9


def test_svi_stopping_rule_sees_a_slow_drift_hidden_in_noise():
    """A loss that drifts down by 0.8 standard errors per window looks flat between neighbours
    but not over four windows: the rule must not call that converged; a flat noisy loss is."""
    from bayes_ssm.inference.svi_stop import _no_progress

    rng = np.random.default_rng(0)
    n, sd = 250, 5.0
    se_window = sd / np.sqrt(n)

    def windows(drift_per_window, count):
        return [
            (1000.0 - drift_per_window * se_window * k + rng.normal(0, 0.05 * se_window), sd**2)
            for k in range(count)
        ]

    drifting = windows(0.8, 6)
    mean, var = drifting[-1]
    # neighbours alone: a change of ~0.8 se is well inside the noise floor (the old rule)
    assert abs(mean - drifting[-2][0]) < 2 * np.sqrt(2 * var / n)
    assert not _no_progress(mean, var, drifting[:-1], n, tol=1e-9)
    flat = windows(0.0, 6)
    assert _no_progress(*flat[-1], flat[:-1], n, tol=1e-9)
    # a relative change below tol counts as converged whatever the noise
    assert _no_progress(1000.0, 1e6, [(1000.0 + 1e-4, 1e6)], n, tol=1e-6)
