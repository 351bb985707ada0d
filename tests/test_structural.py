"""StructuralTS: the site contract, forecasts and components against closed forms, bad input."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from numpyro import handlers
from numpyro.infer import Predictive
from scipy import stats

from bayes_ssm.kernels.kalman import kalman_forecast, kalman_smoother
from bayes_ssm.models import Seasonal, StructuralTS, model_from_spec
from bayes_ssm.models._structural_program import to_variances
from bayes_ssm.models.components import structural_system

T = 60


def _series(seed=0, n=T):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return (
        10 + np.cumsum(rng.normal(0, 0.2, n)) + np.sin(2 * np.pi * t / 12) + rng.normal(0, 0.3, n)
    )


def _trace(model, y, scales=None, **kwargs):
    """Site values (sample and deterministic sites) and distributions of one seeded run."""
    if scales is None:
        scales = model.data_scales(np.asarray(y), kwargs.get("covariates"))
    with handlers.trace() as tr, handlers.seed(rng_seed=1):
        model.model(jnp.asarray(y), scales=scales, **kwargs)
    return {
        k: v
        for k, v in tr.items()
        if v["type"] == "deterministic" or (v["type"] == "sample" and not k.endswith("likelihood"))
    }


@pytest.mark.parametrize("likelihood", ["gaussian", "student_t", "negative_binomial"])
def test_sites_and_shapes(likelihood):
    model = StructuralTS(
        trend="damped",
        seasonal=[Seasonal(4, kind="dummy"), Seasonal(12, harmonics=1)],
        ar_order=2,
        likelihood=likelihood,
    )
    y = _series()
    if likelihood == "negative_binomial":
        y = np.round(y)
    x = np.random.default_rng(0).normal(size=(T, 3))
    tr = _trace(
        model, y, covariates=jnp.asarray(x), horizon=5, future_covariates=x[:5], components=True
    )
    shapes = {k: tuple(v["value"].shape) for k, v in tr.items()}
    expected = {
        "sigma_level": (),
        "sigma_slope": (),
        "damping": (),
        "sigma_seasonal_4": (),
        "sigma_seasonal_12": (),
        "ar_pacf": (2,),
        "sigma_ar": (),
        "beta": (3,),
        "log_lik": (T,),
        "y_forecast": (5,),
        "component/level": (T,),
        "component/seasonal_4": (T,),
        "component/seasonal_12": (T,),
        "component/ar": (T,),
        "component/regression": (T,),
        "y_rep": (T,),
    }
    n = model.state_size
    if likelihood == "negative_binomial":
        expected |= {
            "concentration": (),
            "state_init_z": (n,),
            "state_path": (T - 1, 1),  # "auto" is "mixed" with a trend: the level centred
            "state_z": (T - 1, n - 4),
            "forecast_state_z": (5, n),
        }
    else:
        expected |= {"sigma_obs": (), "forecast_state_z": (6, n), "y_fitted": (T,)}
    if likelihood == "student_t":
        expected |= {"nu": (), "obs_precision": (T,)}
    assert shapes == expected
    for name, value in tr.items():
        assert np.all(np.isfinite(value["value"])), name
    assert set(model.parameter_sites) <= set(shapes)
    if likelihood == "negative_binomial":
        counts = np.asarray(tr["y_forecast"]["value"])
        assert np.all(counts >= 0) and np.all(counts == np.round(counts))
    # without horizon / components only parameters and log_lik
    tr = _trace(model, y, covariates=jnp.asarray(x))
    assert not any(k.startswith(("component/", "y_forecast", "y_fitted")) for k in tr)


def test_spec_round_trips_through_json():
    model = StructuralTS(
        trend="damped",
        seasonal=[Seasonal(7, kind="dummy"), Seasonal(365.25, harmonics=4, name="yearly")],
        ar_order=1,
        likelihood="student_t",
        priors={
            "sigma_obs": {"dist": "HalfNormal", "scale": 0.5},
            "nu": {"dist": "Gamma", "concentration": 3.0, "rate": 0.2},
        },
    )
    spec = json.loads(json.dumps(model.spec()))
    again = model_from_spec(spec)
    assert again == model and hash(again) == hash(model)
    assert again.seasonal[1].name == "yearly" and again.seasonal[0].name == "seasonal_7"
    assert StructuralTS(seasonal=52).seasonal == (Seasonal(52, harmonics=3, name="seasonal"),)


def test_prior_override_is_used():
    model = StructuralTS(priors={"sigma_obs": {"dist": "HalfNormal", "scale": 0.123}})
    tr = _trace(model, _series())
    assert isinstance(tr["sigma_obs"]["fn"], dist.HalfNormal)
    assert float(tr["sigma_obs"]["fn"].scale) == pytest.approx(0.123)
    default = _trace(StructuralTS(), _series())["sigma_obs"]["fn"]
    assert float(default.scale) == pytest.approx(np.std(_series()))
    with pytest.raises(ValueError, match="unknown distribution"):
        _trace(StructuralTS(priors={"sigma_obs": {"dist": "Nope"}}), _series())


def _fixed(model, y, **extra):
    """Fixed parameter values for the sites of ``model``."""
    vals = {
        "sigma_obs": 0.3,
        "sigma_level": 0.2,
        "sigma_slope": 0.02,
        "damping": 0.9,
        "sigma_seasonal": 0.05,
        "ar_pacf": np.array([0.5]),
        "sigma_ar": 0.2,
        "beta": np.array([0.8, -0.5]),
        "nu": 4.0,
        "concentration": 10.0,
    }
    vals.update(extra)
    return {k: jnp.asarray(v, jnp.float64) for k, v in vals.items() if k in model.parameter_sites}


def _state_space(model, params, scales, covariates, horizon=None):
    sys = structural_system(model, to_variances(model, params), scales)
    offset = 0.0 if covariates is None else jnp.asarray(covariates) @ params["beta"]
    return sys, sys.state_space(params["sigma_obs"] ** 2, offset)


def test_forecast_draws_match_kalman_forecast_moments(x64):
    """Mean and variance of ``y_forecast`` draws == closed-form predictive moments."""
    model = StructuralTS(
        trend="damped", seasonal=Seasonal(12, harmonics=2), ar_order=1, regression=True
    )
    y = _series()
    y[[5, 30]] = np.nan
    rng = np.random.default_rng(2)
    x, xf = rng.normal(size=(T, 2)), rng.normal(size=(4, 2))
    scales = model.data_scales(y, x)
    params = _fixed(model, y)
    n = 5000
    post = {k: jnp.broadcast_to(v, (n, *v.shape)) for k, v in params.items()}
    draws = Predictive(model.model, posterior_samples=post, return_sites=["y_forecast"])(
        jax.random.PRNGKey(0),
        jnp.asarray(y),
        scales=scales,
        covariates=jnp.asarray(x),
        horizon=4,
        future_covariates=jnp.asarray(xf),
    )["y_forecast"]
    _, ss = _state_space(model, params, scales, x)
    sm = kalman_smoother(ss, jnp.asarray(y))
    fss = ss._replace(obs_offset=jnp.asarray(xf) @ params["beta"])
    fc = kalman_forecast(fss, sm.filtered_means[-1], sm.filtered_covs[-1], 4)
    sd = np.sqrt(np.asarray(fc.obs_vars))
    assert np.all(np.abs(np.mean(draws, 0) - fc.obs_means) < 5 * sd / np.sqrt(n))
    np.testing.assert_allclose(np.var(draws, 0) / fc.obs_vars, 1.0, atol=5 * np.sqrt(2 / n))


def test_components_are_draws_from_the_smoother(x64):
    """Simulation-smoother draws: mean and variance == smoothed moments (DK smoother)."""
    model = StructuralTS(trend="local_linear", seasonal=Seasonal(12, harmonics=2), ar_order=1)
    y = _series(seed=4)
    y[[10, 11]] = np.nan
    scales = model.data_scales(y)
    params = _fixed(model, y, sigma_seasonal=0.1)
    n = 2000
    post = {k: jnp.broadcast_to(v, (n, *v.shape)) for k, v in params.items()}
    out = Predictive(model.model, posterior_samples=post)(
        jax.random.PRNGKey(1), jnp.asarray(y), scales=scales, components=True
    )
    sys, ss = _state_space(model, params, scales, None)
    sm = kalman_smoother(ss, jnp.asarray(y))
    for name, start, stop in sys.spans:
        z = np.zeros(model.state_size)
        z[start:stop] = np.asarray(sys.observation[start:stop])
        mean = np.asarray(sm.smoothed_means) @ z
        var = np.einsum("i,tij,j->t", z, np.asarray(sm.smoothed_covs), z)
        draws = np.asarray(out[f"component/{name}"])
        assert np.all(np.abs(draws.mean(0) - mean) < 5 * np.sqrt(var / n) + 1e-9)
        np.testing.assert_allclose(draws.var(0) / var, 1.0, atol=5 * np.sqrt(2 / n))
    np.testing.assert_allclose(
        out["y_fitted"][0], kalman_smoother(ss, jnp.asarray(y)).predicted_obs_means
    )


def test_student_t_with_unit_precisions_filters_like_the_gaussian(x64):
    """Given all precisions = 1 the Student-t likelihood factor is the Gaussian one, and its
    ``log_lik`` (marginal over each step's precision) matches the direct quadrature."""
    y = _series()
    gauss, student = StructuralTS(), StructuralTS(likelihood="student_t")
    scales = gauss.data_scales(y)
    params = _fixed(student, y)
    traces = []
    for model, extra in ((gauss, {}), (student, {"obs_precision": jnp.ones(T)})):
        sub = {k: v for k, v in params.items() if k in model.parameter_sites} | extra
        with handlers.trace() as tr, handlers.seed(rng_seed=0), handlers.substitute(data=sub):
            model.model(jnp.asarray(y), scales=scales, components=True)
        traces.append(tr)
    factors = [float(tr["y_log_likelihood"]["fn"].log_factor) for tr in traces]
    assert factors[0] == pytest.approx(float(traces[0]["log_lik"]["value"].sum()), rel=1e-12)
    assert factors[1] == pytest.approx(factors[0], rel=1e-12)
    # log_lik of the Student-t: marginal over lambda_t with state variance S_t = F_t - sigma^2
    mean = np.asarray(traces[0]["y_fitted"]["value"])
    _, ss = _state_space(gauss, params, scales, None)
    from bayes_ssm.kernels.kalman import kalman_filter

    state_var = np.asarray(kalman_filter(ss, jnp.asarray(y)).predicted_obs_vars) - 0.3**2
    expected = _student_t_marginal(y, mean, state_var, 0.3, 4.0)
    np.testing.assert_allclose(traces[1]["log_lik"]["value"], expected, rtol=1e-7)


def _student_t_marginal(y, mean, state_var, scale, nu):
    """Brute force: dense trapezoid over s = log(lambda) in numpy."""
    from scipy.special import logsumexp

    s = np.linspace(-40.0, 8.0, 200_001)
    log_prior = stats.gamma.logpdf(np.exp(s), nu / 2, scale=2 / nu) + s
    out = []
    for yt, mt, vt in zip(y, mean, state_var, strict=True):
        sd = np.sqrt(vt + scale**2 * np.exp(-s))
        out.append(logsumexp(stats.norm.logpdf(yt, mt, sd) + log_prior) + np.log(s[1] - s[0]))
    return np.array(out)


@pytest.mark.parametrize("nu", [0.5, 3.0, 40.0, 1e4])
def test_student_t_predictive_quadrature(x64, nu):
    """Closed form at S = 0 (the Student-t density), brute force at S > 0, extreme outliers."""
    from bayes_ssm.models.likelihoods import student_t_predictive_log_prob

    y = np.array([0.1, -4.0, 60.0, 3000.0, np.nan])
    mean = np.zeros(5)
    got = student_t_predictive_log_prob(jnp.asarray(y), jnp.asarray(mean), jnp.zeros(5), 1.3, nu)
    ref = stats.t.logpdf(np.nan_to_num(y), nu, 0.0, 1.3)
    ref[-1] = 0.0
    np.testing.assert_allclose(got, ref, rtol=1e-9)
    state_var = np.full(4, 0.7)
    got = student_t_predictive_log_prob(
        jnp.asarray(y[:4]), jnp.asarray(mean[:4]), jnp.asarray(state_var), 1.3, nu
    )
    np.testing.assert_allclose(
        got, _student_t_marginal(y[:4], mean[:4], state_var, 1.3, nu), rtol=1e-6
    )


def test_negative_binomial_log_lik_matches_scipy(x64):
    model = StructuralTS(
        trend=None, seasonal=Seasonal(12, harmonics=1), likelihood="negative_binomial"
    )
    rng = np.random.default_rng(3)
    y = rng.poisson(20, T).astype(float)
    y[7] = np.nan
    scales = model.data_scales(y)
    assert scales["y_loc"] == pytest.approx(np.nanmean(np.log1p(y)))
    with handlers.trace() as tr, handlers.seed(rng_seed=5):
        model.model(jnp.asarray(y), scales=scales, components=True)
    log_mean = np.asarray(tr["component/level"]["value"] + tr["component/seasonal"]["value"])
    k = float(tr["concentration"]["value"])
    mu = np.exp(log_mean)
    expected = stats.nbinom.logpmf(np.nan_to_num(y), k, k / (k + mu))
    expected[7] = 0.0
    np.testing.assert_allclose(tr["log_lik"]["value"], expected, rtol=1e-8)


def test_prior_predictive_and_all_missing_series():
    model = StructuralTS(trend="local_linear", seasonal=12)
    y = _series()
    scales = model.data_scales(y)
    pp = model.prior_predictive(48, key=0, scales=scales, num_samples=50)
    assert pp["y_prior"].shape == (50, 48) and np.isfinite(pp["y_prior"]).all()
    assert abs(np.median(pp["y_prior"][:, 0]) - scales["y_loc"]) < 3 * scales["y_scale"]
    tr = _trace(model, np.full(T, np.nan), scales=scales, horizon=3)
    assert np.all(tr["log_lik"]["value"] == 0) and np.isfinite(tr["y_forecast"]["value"]).all()


@pytest.mark.parametrize("likelihood", ["gaussian", "negative_binomial"])
def test_constant_series_is_finite(likelihood):
    """Documented behaviour: scales are floored, the fit gives finite, near-constant output."""
    model = StructuralTS(seasonal=4, likelihood=likelihood)
    y = np.full(T, 7.0)
    model.validate(y)
    scales = model.data_scales(y)
    assert scales["y_scale"] > 0 and scales["dy_scale"] > 0
    tr = _trace(model, y, horizon=3, components=True)
    for name, site in tr.items():
        assert np.all(np.isfinite(site["value"])), name


def test_bad_input_raises():
    y = _series()
    with pytest.raises(ValueError, match="longer than the series"):
        StructuralTS(seasonal=52).validate(y[:40])
    with pytest.raises(ValueError, match="non-negative integer"):
        StructuralTS(likelihood="negative_binomial").validate(np.array([1.0, 2.5, 3.0]))
    with pytest.raises(ValueError, match="non-negative integer"):
        StructuralTS(likelihood="negative_binomial").validate(np.array([1.0, -2.0, 3.0]))
    with pytest.raises(ValueError, match="needs covariates"):
        StructuralTS(regression=True).validate(y)
    with pytest.raises(ValueError, match="covariates must have shape"):
        StructuralTS().validate(y, np.ones((T - 1, 2)))
    with pytest.raises(ValueError, match="numeric"):
        StructuralTS().validate(np.array(["1", "2", "3"], dtype=object))
    with pytest.raises(ValueError, match="inf"):
        StructuralTS().validate(np.array([1.0, np.inf, 3.0]))
    with pytest.raises(ValueError, match="at least 2"):
        StructuralTS().validate(np.array([1.0, np.nan, np.nan]))
    for kwargs, match in [
        ({"trend": "cubic"}, "trend must be"),
        ({"level": False}, "needs level=True"),
        ({"likelihood": "poisson"}, "likelihood must be"),
        ({"seasonal": {"period": 12, "harmonics": 7}}, "harmonics"),
        ({"seasonal": 1}, "period must be >= 2"),
        ({"seasonal": "weekly"}, "seasonal must be"),
        ({"ar_order": -1}, "ar_order"),
        # no state: the irregular model (Gaussian, tests/test_kfas_reference.py); not for counts
        ({"level": False, "trend": None, "likelihood": "negative_binomial"}, "state component"),
        ({"cycle": "yes"}, "cycle must be"),
        ({"regression_states": "ar"}, "regression_states must be"),
        ({"regression_states": "constant", "regression": False}, "regression=True or None"),
        ({"initialization": "exact"}, "initialization must be"),
        ({"cycle": True, "likelihood": "negative_binomial"}, "Gaussian and Student-t"),
        ({"initialization": "diffuse", "likelihood": "negative_binomial"}, "Gaussian and"),
    ]:
        with pytest.raises(ValueError, match=match):
            StructuralTS(**kwargs)
    with pytest.raises(ValueError, match="integer period"):
        Seasonal(365.25, kind="dummy")
    # covariates over the horizon: missing, NaN, wrong shape
    model = StructuralTS()
    x = np.ones((T, 2))
    for future, match in [
        (None, "future_covariates of shape"),
        (np.full((3, 2), np.nan), "NaN"),
        (np.ones((2, 2)), "must have shape"),
    ]:
        with pytest.raises(ValueError, match=match):
            _trace(model, y, covariates=jnp.asarray(x), horizon=3, future_covariates=future)


def test_damped_trend_matrices_and_limit():
    """Damped trend: ``[[1, 1], [0, phi]]``; ``phi = 1`` is the local linear trend."""
    from bayes_ssm.models.components import level_trend_block

    block = level_trend_block(jnp.asarray(0.1), jnp.asarray(0.01), jnp.asarray(0.9))
    np.testing.assert_allclose(block.transition, [[1.0, 1.0], [0.0, 0.9]])
    np.testing.assert_allclose(block.noise_var, [0.1, 0.01], rtol=1e-6)
    llt = level_trend_block(jnp.asarray(0.1), jnp.asarray(0.01))
    np.testing.assert_allclose(level_trend_block(0.1, 0.01, 1.0).transition, llt.transition)


@pytest.mark.parametrize("likelihood", ["gaussian", "student_t", "negative_binomial"])
def test_gradient_is_finite_with_missing_values(likelihood):
    """NaN in y never reaches the log density or its gradient (float32, as NUTS runs it)."""
    from numpyro.infer.util import initialize_model

    model = StructuralTS(seasonal=Seasonal(12, harmonics=1), ar_order=1, likelihood=likelihood)
    y = np.round(_series())
    y[[0, 7, 8, 30]] = np.nan
    info = initialize_model(
        jax.random.PRNGKey(0),
        model.model,
        model_kwargs={"y": jnp.asarray(y, jnp.float32), "scales": model.data_scales(y)},
    )
    value, grad = jax.value_and_grad(info.potential_fn)(info.param_info.z)
    assert np.isfinite(value)
    for name, g in grad.items():
        assert np.all(np.isfinite(g)), name
