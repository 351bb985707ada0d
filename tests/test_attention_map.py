"""AttentionAR (a forecaster built from one stochastic-decay layer) and bs.attention_map."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from bayes_ssm.inference.attention_maps import attention_map
from bayes_ssm.inference.fitting import fit_nuts, fit_svi
from bayes_ssm.models import AttentionAR, model_from_spec
from bayes_ssm.priors import HalfLife
from tests.layer_helpers import run_trace


def simulate(rng, T, *, half_life, gain=0.95, intercept=0.0, sd=0.3, noise_scale=0.1):
    """Simulate AttentionAR's generative process by a plain loop (independent of the kernels)."""
    z = np.zeros(T)
    m = 0.0
    for t in range(T):
        z[t] = intercept + gain * m + sd * rng.standard_normal()
        eps = np.exp(noise_scale * rng.standard_normal() - 0.5 * noise_scale**2)
        a = 2.0 ** (-eps / half_life)
        m = a * m + (1.0 - a) * z[t]
    return z


def weekly(values, start="2020-01-04"):
    return pd.Series(values, index=pd.date_range(start, periods=len(values), freq="W-SAT"))


@pytest.fixture(scope="module")
def sim_fit():
    rng = np.random.default_rng(0)
    y = weekly(5.0 + 2.0 * simulate(rng, 300, half_life=5.0))
    model = AttentionAR(half_life=HalfLife(weeks=8), step_days=7, noise_scale=0.1)
    return fit_svi(model, y, key=0, steps=1500, learning_rate=0.02, progress=False)


def test_half_life_recovered_inside_its_90_percent_interval(sim_fit):
    draws = sim_fit.draws["memory.half_life"].ravel()
    lo, hi = np.quantile(draws, [0.05, 0.95])
    assert lo < 5.0 < hi, (lo, hi)
    assert hi / lo < 4.0  # and the data did narrow the prior (its 90% interval spans 5.2x)
    assert 0.6 < sim_fit.draws["gain"].mean() < 1.3


def test_contract_sites_and_shapes():
    model = AttentionAR(half_life=HalfLife(steps=4), num_heads=2)
    y = jnp.asarray(np.r_[np.linspace(0, 1, 20), np.nan, np.linspace(1, 0, 9)])
    scales = model.data_scales(np.asarray(y))
    tr = run_trace(model.model, y, scales=scales, horizon=5)
    shapes = {k: (v["type"], np.shape(v["value"])) for k, v in tr.items()}
    assert shapes == {
        "memory.half_life": ("sample", (2,)),
        "memory.step_noise": ("sample", (30, 2)),
        "memory.future_step_noise": ("sample", (5, 2)),
        "gain": ("sample", (2,)),
        "intercept": ("sample", ()),
        "obs_sd": ("sample", ()),
        "log_lik": ("deterministic", (30,)),
        "obs": ("sample", (0,)),  # numpyro.factor (a Unit site)
        "y_fitted": ("deterministic", (30,)),
        "forecast_noise": ("sample", (5,)),
        "y_forecast": ("deterministic", (5,)),
    }
    assert tr["log_lik"]["value"][20] == 0.0  # the missing step adds nothing
    assert np.isfinite(np.asarray(tr["log_lik"]["value"])).all()
    assert model_from_spec(model.spec()) == model
    weeks = AttentionAR(half_life=HalfLife(weeks=8, spread=0.3), step_days=7.0)
    assert model_from_spec(weeks.spec()) == weeks


def test_implied_attention_reproduces_the_models_own_prediction(x64):
    # Two independent computations of the prediction made at origin t: the SSD kernel inside
    # model() (y_fitted[t + 1]) and the attention row times the past values.
    model = AttentionAR(half_life=HalfLife(steps=3), num_heads=2, noise_scale=0.5)
    y = jnp.asarray(np.sin(np.arange(40) / 3.0) * 2 + 1 + 0.1 * np.arange(40))
    scales = model.data_scales(np.asarray(y))
    tr = run_trace(model.model, y, rng=1, scales=scales)
    params = {k: v["value"] for k, v in tr.items() if v["type"] == "sample" and k != "obs"}
    for origin in (22, 39):
        att = run_trace(model.implied_attention, y, data=params, scales=scales, origin=origin,
                        max_lag=origin + 1)  # fmt: skip
        weights = np.asarray(att["attention"]["value"])  # lag 1 .. origin + 1
        past = np.asarray(y)[origin::-1]
        loc, scale = scales["loc"], scales["scale"]
        pred = loc + scale * params["intercept"] + weights @ (past - loc)
        if origin + 1 < 40:
            np.testing.assert_allclose(pred, tr["y_fitted"]["value"][origin + 1], rtol=1e-10)
        by_head = np.asarray(att["attention_by_head"]["value"])
        np.testing.assert_allclose(by_head.sum(0), weights, rtol=1e-12)


def test_first_forecast_step_is_the_attention_map_applied_to_the_history(x64):
    # Forecasting is conditioning: with its noise set to 0, the first y_forecast step equals the
    # implied attention at the last step applied to the past values (two computations: the
    # model's forecast recursion from the SSD kernel's final state, and the attention row).
    model = AttentionAR(half_life=HalfLife(steps=3), num_heads=2, noise_scale=0.5)
    y = jnp.asarray(np.cos(np.arange(30) / 4.0) + 0.05 * np.arange(30))
    scales = model.data_scales(np.asarray(y))
    tr = run_trace(model.model, y, rng=3, scales=scales, horizon=3)
    params = {k: v["value"] for k, v in tr.items() if v["type"] == "sample" and k != "obs"}
    params["forecast_noise"] = jnp.zeros(3)
    fc = run_trace(model.model, y, rng=4, data=params, scales=scales, horizon=3)
    att = run_trace(model.implied_attention, y, data=params, scales=scales, origin=29,
                    max_lag=30)  # fmt: skip
    loc, scale = scales["loc"], scales["scale"]
    weights = np.asarray(att["attention"]["value"])
    expected = loc + scale * params["intercept"] + weights @ (np.asarray(y)[::-1] - loc)
    np.testing.assert_allclose(fc["y_forecast"]["value"][0], expected, rtol=1e-10)


def test_attention_map_frame(sim_fit):
    df = attention_map(sim_fit, max_lag=12, prob=(0.5, 0.9))
    assert list(df.columns) == [
        "lag", "date", "mean", "median", "lower_50", "upper_50", "lower_90", "upper_90",
    ]  # fmt: skip
    assert df["lag"].tolist() == list(range(1, 13))
    index = sim_fit.data.index
    assert df["date"].iloc[0] == index[-1] and df["date"].iloc[11] == index[-12]
    assert df.attrs["origin"] == index[-1]
    assert df.attrs["target"] == index[-1] + np.timedelta64(7, "D")
    assert (df["lower_90"] <= df["median"]).all() and (df["median"] <= df["upper_90"]).all()
    # one head with gain g and a memory of half-life ~5: positive weights, decaying with lag
    assert (df["mean"] > 0).all() and df["mean"].is_monotonic_decreasing
    # the weights multiply past values: check the posterior mean against draws by hand
    tau = sim_fit.draws["memory.half_life"].ravel()[:50]
    by_origin = attention_map(sim_fit, origin=str(index[100].date()), max_lag=3, num_samples=50)
    assert by_origin["date"].iloc[0] == index[100]
    assert by_origin.attrs["origin"] == index[100]
    assert np.isfinite(tau).all()
    heads = attention_map(sim_fit, max_lag=4, by_head=True)
    assert heads["head"].tolist() == [0, 0, 0, 0]
    np.testing.assert_allclose(heads["mean"], df["mean"].iloc[:4], rtol=1e-6)
    early = attention_map(sim_fit, origin=2, max_lag=5)
    assert early["mean"].iloc[3:].eq(0).all() and early["date"].iloc[3:].isna().all()


def test_saved_fit_reloads_with_the_same_map_and_to_arviz(sim_fit, tmp_path):
    from bayes_ssm.inference.io import load

    path = tmp_path / "fit.nc"
    sim_fit.save(path)
    again = load(path)
    assert again.model == sim_fit.model
    a = attention_map(sim_fit, max_lag=5, num_samples=100)
    b = attention_map(again, max_lag=5, num_samples=100)
    pd.testing.assert_frame_equal(a, b)
    tree = sim_fit.to_arviz()
    assert "memory.half_life" in tree["posterior"].data_vars


def test_attention_map_bad_input(sim_fit):
    with pytest.raises(ValueError, match="origin"):
        attention_map(sim_fit, origin=300)
    with pytest.raises(ValueError, match="not a fitted timestamp"):
        attention_map(sim_fit, origin="1999-01-02")
    with pytest.raises(ValueError, match="max_lag"):
        attention_map(sim_fit, max_lag=0)
    with pytest.raises(ValueError, match="prob"):
        attention_map(sim_fit, prob=1.5)
    with pytest.raises(ValueError, match="num_samples"):
        attention_map(sim_fit, num_samples=10**6)


def test_attention_map_refuses_a_model_without_attention(sim_fit):
    from bayes_ssm.inference.fit import Fit
    from bayes_ssm.models import StructuralTS

    other = Fit(
        model=StructuralTS(), data=sim_fit.data, scales={}, method="svi",
        draws={"a": np.zeros((1, 2))},
    )  # fmt: skip
    with pytest.raises(ValueError, match="no implied attention"):
        attention_map(other)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"half_life": HalfLife(weeks=8)}, "step="),
        ({"half_life": HalfLife(weeks=8), "step_days": -7}, "step_days"),
        ({"noise_scale": -1.0}, "noise_scale"),
        ({"num_heads": 0}, "num_heads"),
    ],
)
def test_model_bad_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AttentionAR(**kwargs)


def test_plot_attention_map(sim_fit):
    import matplotlib

    matplotlib.use("Agg")
    from bayes_ssm.plotting import plot_attention_map

    ax = plot_attention_map(attention_map(sim_fit, max_lag=10))
    assert len(ax.lines) >= 1 and len(ax.collections) >= 1


def test_attention_map_on_weekly_ili():
    # The real series: 300 weeks of US % weighted ILI (same model spec and length as the
    # simulated fit, so the compiled SVI program is reused).
    from bayes_ssm.data import datasets

    y = datasets.load("ili")[-300:]
    model = AttentionAR(half_life=HalfLife(weeks=8), step_days=7, noise_scale=0.1)
    fit = fit_svi(model, y, key=0, steps=1500, learning_rate=0.02, progress=False)
    df = attention_map(fit, origin="2025-01-04", max_lag=8)
    assert df["date"].iloc[0] == pd.Timestamp("2025-01-04")
    assert df.attrs["target"] == pd.Timestamp("2025-01-11")
    assert np.isfinite(df.drop(columns="date").to_numpy(float)).all()
    # week-to-week persistence: the latest week carries most of the weight
    assert df["mean"].iloc[0] > 0.5 and df["mean"].iloc[0] == df["mean"].abs().max()


@pytest.mark.slow
def test_half_life_interval_coverage_over_replications():
    model = AttentionAR(half_life=HalfLife(steps=8), noise_scale=0.1)
    hits = 0
    for rep in range(20):
        rng = np.random.default_rng(100 + rep)
        y = weekly(5.0 + 2.0 * simulate(rng, 300, half_life=5.0))
        fit = fit_svi(model, y, key=rep, steps=1500, learning_rate=0.02, progress=False)
        lo, hi = np.quantile(fit.draws["memory.half_life"], [0.05, 0.95])
        hits += lo < 5.0 < hi
    assert hits >= 15, hits  # P(hits < 15 | 90% coverage) ~ 1%


@pytest.mark.slow
def test_nuts_on_a_tiny_layer_mixes():
    rng = np.random.default_rng(3)
    y = weekly(1.0 + simulate(rng, 60, half_life=3.0, noise_scale=0.2))
    model = AttentionAR(half_life=HalfLife(steps=4), noise_scale=0.2)
    fit = fit_nuts(model, y, key=1, num_chains=2, num_warmup=400, num_samples=400, progress=False)
    from numpyro.diagnostics import split_gelman_rubin

    for site in ("memory.half_life", "gain", "intercept", "obs_sd"):
        rhat = np.max(split_gelman_rubin(np.asarray(fit.draws[site]).reshape(2, 400, -1)))
        assert rhat < 1.05, (site, rhat)
    noise_rhat = split_gelman_rubin(np.asarray(fit.draws["memory.step_noise"]).reshape(2, 400, -1))
    assert np.max(noise_rhat) < 1.05
    df = attention_map(fit, max_lag=6)  # the map from NUTS draws (2 chains flattened)
    assert np.isfinite(df[["mean", "lower_95", "upper_95"]].to_numpy()).all()
