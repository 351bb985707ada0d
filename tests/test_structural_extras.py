"""StructuralTS's cycle, regression states, irregular-only model and diffuse start: specs,
forecasts against closed-form Kalman moments, prior predictive (the likelihoods are checked
against KFAS and statsmodels in ``tests/test_kfas_reference.py``)."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer import Predictive

from bayes_ssm.kernels.kalman import kalman_filter, kalman_forecast
from bayes_ssm.models import StructuralTS, model_from_spec
from bayes_ssm.models._structural_program import to_variances
from bayes_ssm.models.structural_extras import extra_variances, full_system

T = 60


def _data(seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    x = np.c_[rng.normal(size=T), np.linspace(-1, 1, T)]
    y = 2.0 + 1.5 * np.cos(2 * np.pi * t / 9) + x @ [0.8, -0.5] + rng.normal(scale=0.3, size=T)
    return y, x


def test_spec_round_trips_and_old_specs_load_with_defaults():
    model = StructuralTS(
        trend=None, cycle=True, regression_states="random_walk", initialization="diffuse"
    )
    again = model_from_spec(json.loads(json.dumps(model.spec())))
    assert again == model
    old = StructuralTS().spec()
    for key in ("cycle", "regression_states", "initialization"):
        del old["params"][key]  # a fit saved before these options existed
    assert model_from_spec(old) == StructuralTS()
    assert StructuralTS(level=False, trend=None).parameter_sites == ("sigma_obs",)
    assert model.parameter_sites == (
        "sigma_obs",
        "sigma_level",
        "sigma_cycle",
        "cycle_frequency",
        "cycle_damping",
        "sigma_beta",
    )


@pytest.mark.parametrize(
    "initialization", [pytest.param("proper", marks=pytest.mark.slow), "diffuse"]
)
def test_forecast_draws_match_kalman_forecast_moments(x64, initialization):
    """``y_forecast`` with a cycle and random-walk coefficients (future covariates extend the
    observation rows): mean and variance == the kernel's closed-form forecast moments from the
    last filtered state (of the proper-start filter or the exact diffuse one)."""
    model = StructuralTS(
        trend=None, cycle=True, regression_states="random_walk", initialization=initialization
    )
    y, x = _data()
    y[[4, 20]] = np.nan
    xf = np.random.default_rng(3).normal(size=(4, 2))
    scales = model.data_scales(y, x)
    params = {
        "sigma_obs": 0.3,
        "sigma_level": 0.1,
        "sigma_cycle": 0.2,
        "cycle_frequency": 2 * np.pi / 9,
        "cycle_damping": 0.9,
        "sigma_beta": np.array([0.05, 0.02]),
    }
    params = {k: jnp.asarray(v, jnp.float64) for k, v in params.items()}
    n = 4000
    post = {k: jnp.broadcast_to(v, (n, *v.shape)) for k, v in params.items()}
    draws = Predictive(model.model, posterior_samples=post, return_sites=["y_forecast"])(
        jax.random.PRNGKey(0),
        jnp.asarray(y),
        scales=scales,
        covariates=jnp.asarray(x),
        horizon=4,
        future_covariates=jnp.asarray(xf),
    )["y_forecast"]
    variances = {**to_variances(model, params), **extra_variances(model, params)}
    system, p_inf = full_system(model, variances, scales, jnp.asarray(x))
    ss = system.state_space(params["sigma_obs"] ** 2)
    if initialization == "diffuse":  # the diffuse limit, approached by a huge prior variance
        ss = ss._replace(init_cov=ss.init_cov * (1 - p_inf) + 1e8 * p_inf)
    res = kalman_filter(ss, jnp.asarray(y), method="sequential")
    rows = np.tile(np.asarray(system.observation[-1]), (4, 1))
    rows[:, -2:] = xf
    fc = kalman_forecast(
        ss._replace(observation=jnp.asarray(rows)), res.filtered_means[-1], res.filtered_covs[-1], 4
    )
    sd = np.sqrt(np.asarray(fc.obs_vars))
    assert np.all(np.abs(np.mean(draws, 0) - fc.obs_means) < 5 * sd / np.sqrt(n))
    np.testing.assert_allclose(np.var(draws, 0) / fc.obs_vars, 1.0, atol=5 * np.sqrt(2 / n))


def test_prior_predictive_with_new_components_and_diffuse_refused():
    y, x = _data()
    model = StructuralTS(trend=None, cycle=True, regression_states="constant")
    scales = model.data_scales(y, x)
    draws = model.prior_predictive(T, key=0, scales=scales, num_samples=20, covariates=x)
    assert draws["y_prior"].shape == (20, T) and np.all(np.isfinite(draws["y_prior"]))
    freq = draws["cycle_frequency"]
    assert np.all((freq > 2 * np.pi / (T / 2)) & (freq < 2 * np.pi / 3))
    irregular = StructuralTS(level=False, trend=None)
    draws = irregular.prior_predictive(T, key=1, scales=irregular.data_scales(y), num_samples=5)
    assert set(draws) == {"sigma_obs", "y_prior"}
    diffuse = StructuralTS(initialization="diffuse")
    with pytest.raises(ValueError, match="no prior predictive"):
        diffuse.prior_predictive(T, key=0, scales=diffuse.data_scales(y), num_samples=2)
    with pytest.raises(ValueError, match="regression_states='constant' needs covariates"):
        model.validate(y, None)


def test_hybrid_refuses_the_new_structural_options():
    """HybridTS builds its own state space from the original components: no silent drop."""
    from bayes_ssm.models import HybridTS

    for kwargs in (
        {"cycle": True},
        {"regression_states": "constant"},
        {"initialization": "diffuse"},
        {"level": False, "trend": None},
    ):
        with pytest.raises(ValueError, match="HybridTS"):
            HybridTS(structural=StructuralTS(**kwargs))
