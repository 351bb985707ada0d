"""HybridTS: StructuralTS plus a neural observation offset, with the exact Kalman likelihood.

Proofs: with the read-out at zero the log-likelihood is StructuralTS's, bit for bit; at fixed
weights it is statsmodels' ``UnobservedComponents`` likelihood of ``y - offset`` with the
offset from a numpy loop over the network; forecasts are the filtered final state propagated
with the neural term recomputed (numpy) along the drawn path; on data with a nonlinear
autoregressive term the hybrid predicts held-out steps better than StructuralTS alone.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy.special import logsumexp

from bayes_ssm.inference import engine as _engine
from bayes_ssm.inference.fitting import fit_svi
from bayes_ssm.kernels.kalman import kalman_filter_last
from bayes_ssm.models import HybridTS, NeuralSSM, StructuralTS, model_from_spec
from bayes_ssm.models.components import structural_system
from tests.layer_helpers import run_trace
from tests.neural_helpers import reference_predictions

sm = pytest.importorskip("statsmodels.api")


def _series(seed=0, T=80):
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    y = 3.0 + np.cumsum(0.2 * rng.standard_normal(T)) + np.sin(2 * np.pi * t / 12)
    y = y + 0.3 * rng.standard_normal(T)
    y[[4, 30, 31]] = np.nan
    return y


def _samples(tr):
    return {k: v["value"] for k, v in tr.items() if v["type"] == "sample" and v["value"].size}


def _offset(model, p, y, scales):
    """The neural term by the numpy twin of the network (prefix ``neural``)."""
    n = model.neural
    s = {"loc": scales["y_loc"], "scale": scales["y_scale"],
         "input_lo": scales["input_lo"], "input_hi": scales["input_hi"]}  # fmt: skip
    mean, _ = reference_predictions(p, y, s, width=n.width, state_size=n.state_size,
                                    num_layers=n.num_layers, lags=n.input_lags,
                                    prefix="neural")  # fmt: skip
    return mean - s["loc"]


def test_zero_read_out_is_exactly_structural_ts(x64):
    sts = StructuralTS(trend="local_linear", seasonal=12)
    model = HybridTS(structural=sts, neural=NeuralSSM(width=3, num_layers=2))
    y = _series()
    scales = model.data_scales(y)
    assert scales == {**sts.data_scales(y), "input_lo": scales["input_lo"],
                      "input_hi": scales["input_hi"]}  # fmt: skip
    tr = run_trace(model.model, jnp.asarray(y), rng=1, scales=scales)
    p = _samples(tr)
    p["neural.w_out"] = jnp.zeros(3)
    hyb = run_trace(model.model, jnp.asarray(y), data=p, scales=scales)
    ref = run_trace(sts.model, jnp.asarray(y), data=p, scales=scales)
    np.testing.assert_array_equal(hyb["log_lik"]["value"], ref["log_lik"]["value"])
    assert hyb["log_lik"]["value"][4] == 0.0


def test_log_lik_is_statsmodels_on_y_minus_the_neural_offset(x64):
    sts = StructuralTS(trend="local_linear")
    model = HybridTS(structural=sts, neural=NeuralSSM(width=3, state_size=2, num_layers=2))
    y = _series(seed=2)
    scales = model.data_scales(y)
    p = _samples(run_trace(model.model, jnp.asarray(y), rng=3, scales=scales))
    p["neural.w_out"] = 3.0 * p["neural.w_out"]  # a sizeable offset
    tr = run_trace(model.model, jnp.asarray(y), data=p, scales=scales, components=True)
    offset = _offset(model, p, y, scales)
    assert np.std(offset) > 0.1
    np.testing.assert_allclose(tr["component/neural"]["value"], offset, rtol=1e-9, atol=1e-12)
    var = {"level_var": p["sigma_level"] ** 2, "slope_var": p["sigma_slope"] ** 2}
    system = structural_system(sts, var, scales)
    mod = sm.tsa.UnobservedComponents(y - offset, level="lltrend")
    mod.ssm.initialize_known(np.asarray(system.init_mean), np.asarray(system.init_cov))
    mod.ssm.loglikelihood_burn = 0
    params = np.array([p["sigma_obs"] ** 2, var["level_var"], var["slope_var"]], float)
    ours = np.asarray(tr["log_lik"]["value"])
    np.testing.assert_allclose(ours, mod.loglikeobs(params), rtol=1e-7, atol=1e-10)
    assert np.isfinite(ours).all()


def test_forecast_is_the_filtered_state_propagated_with_the_offset_on_the_path(x64):
    sts = StructuralTS(trend="local_linear", seasonal=12)
    model = HybridTS(structural=sts, neural=NeuralSSM(width=3, state_size=2, num_layers=1))
    y = _series(seed=4)
    T, H = len(y), 6
    scales = model.data_scales(y)
    tr = run_trace(model.model, jnp.asarray(y), rng=5, scales=scales, horizon=H)
    p = _samples(tr)
    p["neural.w_out"] = 3.0 * p["neural.w_out"]
    # Start the path at the filtered mean (zero draw of the last state): the square root of the
    # filtered covariance is not unique where its eigenvalues repeat (the seasonal states), and
    # two programs' covariances that differ in the last bit (the model's and this test's filter
    # on a GPU) give different eigenvectors, so a drawn start could not be compared exactly.
    p["forecast_state_z"] = jnp.asarray(p["forecast_state_z"]).at[0].set(0.0)
    tr = run_trace(model.model, jnp.asarray(y), data=p, scales=scales, horizon=H)
    path = np.asarray(tr["y_forecast"]["value"])
    # independently: the offset on the extended series (numpy), the Kalman filter's last
    # state, a numpy propagation of the drawn state noise, plus the drawn observation noise
    offset = _offset(model, p, np.r_[y, path], scales)
    var = {"level_var": p["sigma_level"] ** 2, "slope_var": p["sigma_slope"] ** 2,
           "seasonal_var": p["sigma_seasonal"] ** 2}  # fmt: skip
    system = structural_system(sts, var, scales)
    ss = system.state_space(p["sigma_obs"] ** 2, jnp.asarray(offset[:T]))
    last = kalman_filter_last(ss, jnp.asarray(y))
    z = np.asarray(p["forecast_state_z"])
    alpha = np.asarray(last.last_mean)
    expected = []
    Tm, Z, sd = (np.asarray(a) for a in (system.transition, system.observation, system.noise_var))
    for k in range(H):
        alpha = Tm @ alpha + np.sqrt(sd) * z[k + 1]
        eps = float(p["forecast_noise"][k])
        expected.append(Z @ alpha + offset[T + k] + float(p["sigma_obs"]) * eps)
    np.testing.assert_allclose(path, expected, rtol=1e-7, atol=1e-9)


def test_spec_round_trip_and_bad_input():
    model = HybridTS(structural=StructuralTS(trend=None, seasonal=7),
                     neural=NeuralSSM(width=2, num_layers=1, input_lags=3))  # fmt: skip
    assert model_from_spec(model.spec()) == model
    with pytest.raises(ValueError, match="gaussian"):
        HybridTS(structural=StructuralTS(likelihood="student_t"))
    with pytest.raises(ValueError, match="noise law"):
        HybridTS(neural=NeuralSSM(neural_scale=True))
    with pytest.raises(ValueError, match="StructuralTS"):
        HybridTS(structural=NeuralSSM())
    with pytest.raises(ValueError, match="min_length"):
        model.validate(np.arange(15.0))


def simulate_nonlinear(rng, T):
    """Random-walk level plus a nonlinear momentum term of the past two observations."""
    y = np.zeros(T)
    level = 5.0
    for t in range(T):
        level += 0.05 * rng.standard_normal()
        push = 1.5 * np.tanh(2.0 * (y[t - 1] - y[t - 2])) if t >= 2 else 0.0
        y[t] = level + push + 0.3 * rng.standard_normal()
    return y


def _held_out_log_score(fit, y, start):
    out = _engine.predict(fit.model, 2, fit._flat_draws(), y, fit.scales, sites=("log_lik",))
    ll = out["log_lik"][:, start:]
    return float(np.sum(logsumexp(ll, axis=0) - np.log(ll.shape[0])))


@pytest.mark.slow
def test_hybrid_beats_structural_on_a_nonlinear_autoregression(tmp_path):
    rng = np.random.default_rng(11)
    y = simulate_nonlinear(rng, 350)
    train = pd.Series(y[:250], index=pd.date_range("2001-01-01", periods=250, freq="D"))
    sts = StructuralTS(trend=None)
    hybrid = HybridTS(structural=sts, neural=NeuralSSM(width=4, num_layers=1))
    kw = dict(key=0, steps=3000, learning_rate=0.01, progress=False)
    f_sts, f_hyb = fit_svi(sts, train, **kw), fit_svi(hybrid, train, **kw)
    s_sts, s_hyb = _held_out_log_score(f_sts, y, 250), _held_out_log_score(f_hyb, y, 250)
    # 100 held-out one-step log predictive densities (posterior-averaged), summed
    print(f"held-out log score: hybrid {s_hyb:.1f}, structural {s_sts:.1f}")
    assert s_hyb > s_sts + 10.0, (s_hyb, s_sts)
    fc = f_hyb.forecast(4, key=1)
    assert fc.shape == (4, 6) and np.isfinite(fc.to_numpy()).all()
    comps = f_hyb.components(num_samples=50)
    assert {"level", "neural"} <= set(comps.columns.get_level_values(0))
    from bayes_ssm.inference.io import load

    f_hyb.save(tmp_path / "hybrid.nc")
    again = load(tmp_path / "hybrid.nc")
    assert again.model == hybrid
    pd.testing.assert_frame_equal(fc, again.forecast(4, key=1))
