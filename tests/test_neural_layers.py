"""NeuralSSM's layer choice and direction: every layer against a numpy twin, the bidirectional
guard, planted-future invariance of causal forecasts and the shape of the implied attention."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from numpyro.handlers import seed, trace
from scipy import stats

from bayes_ssm.models import HybridTS, NeuralSSM
from tests.layer_helpers import run_trace
from tests.neural_layer_helpers import reference_means

LAYERS = ("s4d", "selective", "ssd", "attention")


def _series(n=36, seed_=0):
    rng = np.random.default_rng(seed_)
    y = 3.0 + np.sin(np.arange(n) / 3.0) + 0.3 * rng.standard_normal(n)
    y[[7, 20, 21]] = np.nan
    return y


def _sites(tr):
    return {
        k: np.asarray(v["value"]) for k, v in tr.items() if v["type"] == "sample" and k != "obs"
    }


@pytest.mark.parametrize("layer", LAYERS)
def test_bidirectional_log_lik_equals_a_numpy_twin_of_the_network(x64, layer):
    # the bidirectional model holds the causal one (its forward stack) plus a backward stack
    # on the reversed series; the causal model alone is checked in the forecast test below
    direction = "bidirectional"
    model = NeuralSSM(width=3, state_size=2, num_layers=1, layer=layer, direction=direction)
    y = _series()
    scales = model.data_scales(y)
    tr = run_trace(model.model, jnp.asarray(y), rng=3, scales=scales)
    mean, sd = reference_means(_sites(tr), y, scales, layer=layer, num_layers=1,
                               bidirectional=direction == "bidirectional")  # fmt: skip
    np.testing.assert_allclose(tr["y_fitted"]["value"], mean, rtol=1e-8, atol=1e-8)
    obs = ~np.isnan(y)
    expected = np.where(obs, stats.norm.logpdf(np.where(obs, y, 0.0), mean, sd), 0.0)
    np.testing.assert_allclose(tr["log_lik"]["value"], expected, rtol=1e-8, atol=1e-8)


def _forecast(model, y, scales, key=4, horizon=6):
    tr = run_trace(model.model, jnp.asarray(y), rng=key, scales=scales, horizon=horizon)
    return np.asarray(tr["y_forecast"]["value"]), tr


@pytest.mark.slow
@pytest.mark.parametrize("layer", LAYERS)
def test_causal_forecast_ignores_planted_future_and_matches_the_in_sample_means(x64, layer):
    model = NeuralSSM(width=3, state_size=2, num_layers=2, layer=layer)
    y = _series(30)
    scales = model.data_scales(y)
    path, tr = _forecast(model, y, scales)
    # (1) the path's one-step means are the in-sample means of the series extended by the path
    ext = np.concatenate([y, path])
    draw = {k: v for k, v in _sites(tr).items() if k != "forecast_noise"}
    tr_ext = run_trace(model.model, jnp.asarray(ext), rng=0, scales=scales, data=draw)
    eps = np.asarray(tr["forecast_noise"]["value"])
    sd = scales["scale"] * float(draw["obs_sd"])
    np.testing.assert_allclose(tr_ext["y_fitted"]["value"][30:] + sd * eps, path, rtol=1e-8)
    # ... and those means are the numpy twin's (the causal model against its twin)
    mean, _ = reference_means(draw, ext, scales, layer=layer, num_layers=2)
    np.testing.assert_allclose(tr_ext["y_fitted"]["value"], mean, rtol=1e-8, atol=1e-8)
    # (2) planting data after the origin changes nothing in the causal in-sample means
    planted = np.concatenate([y, 100.0 + np.arange(6.0)])
    tr_pl = run_trace(model.model, jnp.asarray(planted), rng=0, scales=scales, data=draw)
    np.testing.assert_allclose(tr_pl["y_fitted"]["value"][:31], tr_ext["y_fitted"]["value"][:31],
                               rtol=1e-10)  # fmt: skip


def test_bidirectional_model_refuses_to_forecast_and_hybrid_refuses_other_layers():
    model = NeuralSSM(width=2, num_layers=1, direction="bidirectional")
    y = jnp.asarray(_series())
    with pytest.raises(ValueError, match="cannot forecast"):
        trace(seed(model.model, 0)).get_trace(y, scales=model.data_scales(y), horizon=3)
    with pytest.raises(ValueError, match="layer must be one of"):
        NeuralSSM(layer="lstm")
    with pytest.raises(ValueError, match="direction must be one of"):
        NeuralSSM(direction="both")
    with pytest.raises(ValueError, match="layer='s4d'"):
        HybridTS(neural=NeuralSSM(width=2, layer="ssd"))


@pytest.mark.slow
@pytest.mark.parametrize("layer", LAYERS)
def test_implied_attention_is_lower_triangular_causal_and_two_sided_bidirectional(x64, layer):
    y = _series(24)
    mats = {}
    for direction in ("causal", "bidirectional"):
        model = NeuralSSM(width=3, state_size=2, num_layers=2, layer=layer, direction=direction)
        scales = model.data_scales(y)
        tr = trace(seed(model.implied_attention_matrix, 1)).get_trace(jnp.asarray(y),
                                                                     scales=scales)  # fmt: skip
        mats[direction] = np.asarray(tr["attention_matrix"]["value"])
    causal, both = mats["causal"], mats["bidirectional"]
    assert np.abs(np.triu(causal)).max() < 1e-12  # reads only the strict past (FFT rounding)
    assert np.abs(np.tril(causal, -1)).max() > 1e-3
    assert np.abs(np.diag(both)).max() < 1e-12  # never reads the value it predicts
    assert np.abs(np.triu(both, 1)).max() > 1e-3 and np.abs(np.tril(both, -1)).max() > 1e-3
    # the forward half of the bidirectional model is the causal model (same sites, same draw)
    np.testing.assert_allclose(np.tril(both, -1), causal, atol=1e-12)


@pytest.mark.slow
def test_attention_map_row_is_the_gradient_of_the_one_step_mean(x64):
    model = NeuralSSM(width=3, state_size=2, num_layers=1, layer="ssd")
    y = _series(24)
    scales = model.data_scales(y)
    tr = trace(seed(model.implied_attention, 2)).get_trace(
        jnp.asarray(y), scales=scales, origin=15, max_lag=20
    )
    att = np.asarray(tr["attention"]["value"])
    draw = {k: v for k, v in _sites(tr).items()}
    h = 1e-6

    def mean16(v):
        out = run_trace(model.model, jnp.asarray(v), rng=0, scales=scales, data=draw)
        return float(out["y_fitted"]["value"][16])

    base = np.where(np.isnan(y), np.nan, y)
    for lag in (1, 3, 5):
        v = base.copy()
        v[16 - lag] += h * scales["scale"]
        fd = (mean16(v) - mean16(base)) / (h * scales["scale"])
        np.testing.assert_allclose(att[lag - 1], fd, rtol=1e-4, atol=1e-7)
    assert np.all(att[16:] == 0.0)


@pytest.mark.slow
def test_bidirectional_impute_reads_after_the_gap_and_causal_does_not(x64):
    from bayes_ssm.data.validation import as_series_data
    from bayes_ssm.inference.attention_maps import attention_map
    from bayes_ssm.inference.fit import Fit

    index = pd.date_range("2020-01-05", periods=30, freq="W")
    y = _series(30)
    y_up = y.copy()
    y_up[22:] += 5.0  # the same series with a step after the gap at 20-21
    means = {}
    for direction in ("causal", "bidirectional"):
        model = NeuralSSM(width=2, state_size=2, num_layers=1, layer="ssd", direction=direction)
        scales = model.data_scales(y)
        draw = _sites(run_trace(model.model, jnp.asarray(y), rng=1, scales=scales))
        draws = {k: np.broadcast_to(v, (1, 20, *np.shape(v))) for k, v in draw.items()}
        for name, series in (("base", y), ("up", y_up)):
            data = as_series_data(pd.Series(series, index=index))
            fit = Fit(model=model, data=data, scales=scales, method="svi", draws=draws)
            frame = fit.impute(key=0)
            assert np.isnan(frame["observed"].iloc[20]) and np.isfinite(frame["mean"]).all()
            means[direction, name] = frame["mean"].to_numpy()
    # the posterior attention map of the (bidirectional) fit is its program's gradient
    amap = attention_map(fit, origin=25, max_lag=6)
    ref = run_trace(model.implied_attention, jnp.asarray(y_up), rng=0, scales=scales,
                    data=draw, origin=25, max_lag=6)  # fmt: skip
    np.testing.assert_allclose(amap["mean"], ref["attention"]["value"], rtol=1e-6)
    gap = slice(20, 22)
    np.testing.assert_array_equal(means["causal", "base"][gap], means["causal", "up"][gap])
    assert np.abs(means["bidirectional", "up"][21] - means["bidirectional", "base"][21]) > 1e-3
