"""Count-model state parameterisations: one model in two coordinate systems."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro import handlers
from numpyro.infer.util import log_density

from bayes_ssm.models import Seasonal, StructuralTS
from bayes_ssm.models._state_path_densities import CentredStatePath, state_path
from bayes_ssm.models._state_paths import centred_states, resolve_parameterization
from bayes_ssm.models._structural_program import to_variances
from bayes_ssm.models.base import model_from_spec
from bayes_ssm.models.components import noise_mask, structural_system

T = 40

MODELS = {
    # all states noisy: the vectorised centred path
    "trend+trig": dict(trend="local_linear", seasonal=Seasonal(7, harmonics=2)),
    # noiseless dummy-seasonal and AR lags: the scanned centred path
    "damped+dummy+ar": dict(trend="damped", seasonal=Seasonal(4, kind="dummy"), ar_order=2),
}


def _counts(seed=0):
    rng = np.random.default_rng(seed)
    log_mean = np.log(20.0) + np.cumsum(rng.normal(0, 0.1, T)) + 0.3 * np.sin(np.arange(T))
    y = rng.poisson(np.exp(log_mean)).astype(float)
    y[[3, 17]] = np.nan
    return y


def _model(name, parameterization):
    return StructuralTS(
        likelihood="negative_binomial", state_parameterization=parameterization, **MODELS[name]
    )


def _run(model, y, scales, values, key, **kwargs):
    """Trace of the model with ``values`` substituted at the latent sites."""
    fn = handlers.substitute(handlers.seed(model.model, key), data=values)
    return handlers.trace(fn).get_trace(jnp.asarray(y), scales=scales, **kwargs)


def _noncentred_point(nc, y, key):
    """A prior draw of the non-centred model: ``(scales, trace, latent values, noisy-state
    indices, system, alpha_1, innovations eta (T - 1, state))``."""
    scales = nc.data_scales(y)
    tr = _run(nc, y, scales, {}, key, horizon=4, components=True)
    latent = {
        k: v["value"]
        for k, v in tr.items()
        if v["type"] == "sample" and not v["is_observed"] and k not in ("y_forecast", "y_rep")
    }
    idx = np.flatnonzero(noise_mask(nc))
    params = {k: latent[k] for k in nc.parameter_sites}
    system = structural_system(nc, to_variances(nc, params), scales)
    alpha1 = system.init_mean + jnp.linalg.cholesky(system.init_cov) @ latent["state_init_z"]
    sd = jnp.sqrt(system.noise_var[idx])
    eta = jnp.zeros((T - 1, nc.state_size)).at[:, idx].set(latent["state_z"] * sd)
    return scales, tr, latent, idx, system, alpha1, eta


@pytest.mark.parametrize("coords", ["centred", "mixed"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_log_joint_differs_by_the_log_jacobian(name, coords, x64):
    """Non-centred ``z`` and (partly) centred ``alpha_{2..T}`` of one point: the log joint
    densities differ by ``log |d alpha / d z| = (T - 1) sum log sd`` over the centred states,
    and every output (log_lik, forecasts, components, replicates) agrees."""
    y = _counts()
    nc, c = _model(name, "noncentred"), _model(name, coords)
    key = jax.random.PRNGKey(3)
    # the same point in centred coordinates: the noisy states alpha_2..alpha_T, rebuilt from
    # z exactly as the non-centred program does
    scales, tr, latent, idx, system, alpha1, eta = _noncentred_point(nc, y, key)
    sd = jnp.sqrt(system.noise_var[idx])
    cidx, nidx = centred_states(coords, idx, nc.level)
    assert cidx.size
    path = state_path(system.transition, alpha1, eta)[1:, cidx]
    centred = {k: v for k, v in latent.items() if k != "state_z"} | {"state_path": path}
    if nidx.size:
        centred["state_z"] = latent["state_z"][:, np.isin(idx, nidx)]

    kwargs = {"y": jnp.asarray(y), "scales": scales}
    lp_nc, _ = log_density(nc.model, (), kwargs, latent)
    lp_c, _ = log_density(c.model, (), kwargs, centred)
    log_jacobian = (T - 1) * jnp.sum(jnp.log(sd[np.isin(idx, cidx)]))
    np.testing.assert_allclose(lp_nc - lp_c, log_jacobian, rtol=1e-10, atol=1e-8)
    assert abs(float(log_jacobian)) > 1.0  # the check is not vacuous

    tc = _run(c, y, scales, centred, key, horizon=4, components=True)
    for site in ["log_lik"] + [f"component/{s}" for s in nc.component_names]:
        np.testing.assert_allclose(tc[site]["value"], tr[site]["value"], rtol=1e-9, atol=1e-9)
    for site in ["y_forecast", "y_rep"]:  # the same count laws (draws use other keys)
        np.testing.assert_allclose(tc[site]["fn"].mean, tr[site]["fn"].mean, rtol=1e-9)


def test_centred_prior_matches_the_closed_form(x64):
    """``CentredStatePath``: moments of its draws and its density against closed forms."""
    transition = jnp.array([[1.0, 1.0], [0.0, 1.0]])
    alpha1 = jnp.array([2.0, 0.1])
    sd = jnp.array([0.3, 0.05])
    d = CentredStatePath(transition, alpha1, sd, np.arange(2), 6)
    draws = np.asarray(d.sample(jax.random.PRNGKey(0), (20000,)))
    assert draws.shape == (20000, 5, 2)
    # closed form: slope_t = 0.1 + sum of t slope shocks; level_t = 2 + 0.1 t + ...
    steps = np.arange(1, 6)
    slope_var = steps * 0.05**2
    level_var = steps * 0.3**2 + 0.05**2 * np.array([sum(j**2 for j in range(t)) for t in steps])
    np.testing.assert_allclose(draws[:, :, 0].mean(0), 2.0 + 0.1 * steps, atol=0.02)
    np.testing.assert_allclose(draws[:, :, 1].var(0), slope_var, rtol=0.05)
    np.testing.assert_allclose(draws[:, :, 0].var(0), level_var, rtol=0.05)
    # the density: the product of the Gaussian transition densities
    x = draws[0]
    prev = np.vstack([alpha1, x[:-1]])
    expected = -0.5 * np.sum(((x - prev @ np.asarray(transition).T) / sd) ** 2)
    expected -= 5 * np.sum(np.log(np.sqrt(2 * np.pi) * sd))
    np.testing.assert_allclose(d.log_prob(jnp.asarray(x)), expected, rtol=1e-10)


def test_auto_choice_and_spec_round_trip():
    small = np.random.default_rng(0).poisson(2.0, 120).astype(float)
    level = StructuralTS(trend=None, likelihood="negative_binomial")
    trend = StructuralTS(likelihood="negative_binomial")
    assert resolve_parameterization(level, 120) == "noncentred"
    assert resolve_parameterization(level, 360) == "mixed"
    assert resolve_parameterization(trend, 120) == "mixed"
    seasonal_only = StructuralTS(
        level=False, trend=None, seasonal=4, likelihood="negative_binomial"
    )
    assert resolve_parameterization(seasonal_only, 1000) == "noncentred"
    for choice in ("centred", "noncentred", "mixed"):
        forced = StructuralTS(likelihood="negative_binomial", state_parameterization=choice)
        assert resolve_parameterization(forced, small.size) == choice
        assert model_from_spec(forced.spec()) == forced
    # specs saved before the option existed were non-centred
    spec = trend.spec()
    del spec["params"]["state_parameterization"]
    assert model_from_spec(spec).state_parameterization == "noncentred"
    with pytest.raises(ValueError, match="state_parameterization"):
        StructuralTS(state_parameterization="partial")


def test_negative_binomial_log_pmf_is_accurate_in_float32_for_large_counts():
    """float32 log-pmf against scipy in float64, counts 0 .. 3e5: the old lgamma / betaln
    difference was off by ~0.02 per point and jittered by units in ``concentration``."""
    from scipy import stats

    from bayes_ssm.models.likelihoods import negative_binomial_log_prob

    y = np.array([0, 1, 3, 9, 10, 11, 50, 1234, 5e4, 1e5, 3e5])
    log_mean = np.log(1.1 * y + 0.5)
    for k in [0.3, 1.0, 12.0, 200.0]:
        ours = negative_binomial_log_prob(
            jnp.asarray(y, jnp.float32), jnp.asarray(log_mean, jnp.float32), jnp.float32(k)
        )
        ref = stats.nbinom.logpmf(y, k, k / (k + np.exp(log_mean)))
        np.testing.assert_allclose(ours, ref, atol=5e-4 * max(1.0, k / 12.0), rtol=1e-5)


@pytest.mark.slow  # ~20-40 s of compilation (NUTS, forecast, reload); not statistical
@pytest.mark.parametrize("coords", ["mixed", "mixed_rms"])  # others: spec and Jacobian tests
def test_fit_saves_loads_and_forecasts_alike(coords, tmp_path):
    """A (tiny) NUTS fit round-trips through save/load: the reloaded fit resolves the same
    parameterisation and gives the same forecast draws."""
    import bayes_ssm as bs

    model = StructuralTS(
        trend="local_linear",
        seasonal=Seasonal(7, harmonics=1),
        likelihood="negative_binomial",
        state_parameterization=coords,
    )
    y = np.nan_to_num(_counts(), nan=20.0)
    fit = bs.fit_nuts(
        model, y, key=0, num_chains=1, num_warmup=5, num_samples=4, max_tree_depth=3,
        init="median", progress=False,
    )  # fmt: skip
    assert ("state_path" in fit.draws) == (coords != "noncentred")
    assert ("state_z" in fit.draws) == (coords != "centred")
    fit.save(tmp_path / "fit.nc")
    same = bs.load(tmp_path / "fit.nc")
    assert same.model == model
    a = fit.forecast_samples(3, key=1)
    np.testing.assert_array_equal(a, same.forecast_samples(3, key=1))
    assert a.shape[-1] == 3 and np.all(a >= 0)


@pytest.mark.parametrize("coords", ["mixed_rms", "trend_rms"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_rms_ratio_coordinates_are_the_same_model(name, coords, x64):
    """Non-centred ``(sigma_j, z_j)`` and ratio coordinates ``(r_j, path_j)`` of one point, with
    ``path_j`` the centred states and ``r_j = sigma_j / rms(eta_j)``: the log joint densities
    differ by ``-(T - 1) sum log sigma_j + sum log rms(eta_j)`` (the two Jacobians); NUTS'
    potential energies (``log sigma_j = log r_j + log rms_j``, a shift) by ``(T - 1) sum log
    sigma_j``; the outputs agree."""
    from numpyro.infer.util import get_transforms, potential_energy

    y = _counts(1)
    nc, new = _model(name, "noncentred"), _model(name, coords)
    key = jax.random.PRNGKey(5)
    # the innovations and states of the point, as the non-centred program builds them
    scales, tr, latent, idx, system, alpha1, eta = _noncentred_point(nc, y, key)
    states = state_path(system.transition, alpha1, eta)
    cidx, nidx = centred_states(coords, idx, nc.level, nc.trend is not None)
    sites = {0: "sigma_level", 1: "sigma_slope"}
    assert list(cidx) == ([0, 1] if coords == "trend_rms" else [0])
    moved = {k: v for k, v in latent.items() if k not in [sites[i] for i in cidx]}
    moved["state_path"] = states[1:, cidx]
    moved["state_z"] = latent["state_z"][:, np.isin(idx, nidx)]
    log_sd, log_rms = 0.0, 0.0
    for i in cidx:
        rms = jnp.sqrt(jnp.mean(eta[:, i] ** 2))
        moved[f"{sites[i]}_ratio"] = latent[sites[i]] / rms
        log_sd, log_rms = log_sd + jnp.log(latent[sites[i]]), log_rms + jnp.log(rms)

    kwargs = {"y": jnp.asarray(y), "scales": scales}
    lp_nc, _ = log_density(nc.model, (), kwargs, latent)
    lp_new, _ = log_density(new.model, (), kwargs, moved)
    expected = -(T - 1) * log_sd + log_rms
    np.testing.assert_allclose(lp_new - lp_nc, expected, rtol=1e-10, atol=1e-8)
    assert abs(float(log_rms)) > 0.5  # the ratio's Jacobian term is not vacuous

    def unconstrained(model, values):  # the sites of the fit (no forecast), as NUTS sees them
        tf = get_transforms(model.model, (), kwargs, values)
        return {k: tf[k].inv(v) for k, v in values.items() if k in tf}

    u_nc, u_new = unconstrained(nc, latent), unconstrained(new, moved)
    assert "sigma_level" not in u_new and "forecast_state_z" not in u_new
    pe_nc = potential_energy(nc.model, (), kwargs, u_nc)
    pe_new = potential_energy(new.model, (), kwargs, u_new)
    np.testing.assert_allclose(pe_new - pe_nc, (T - 1) * log_sd, rtol=1e-10, atol=1e-8)

    tn = _run(new, y, scales, moved, key, horizon=4, components=True)
    for i in cidx:
        np.testing.assert_allclose(tn[sites[i]]["value"], latent[sites[i]], rtol=1e-12)
    for site in ["log_lik"] + [f"component/{s}" for s in nc.component_names]:
        np.testing.assert_allclose(tn[site]["value"], tr[site]["value"], rtol=1e-9, atol=1e-9)
    for site in ["y_forecast", "y_rep"]:  # same count laws; the forecast uses the sds
        np.testing.assert_allclose(tn[site]["fn"].mean, tr[site]["fn"].mean, rtol=1e-9)


@pytest.mark.parametrize("coords", ["mixed_rms", pytest.param("trend_rms", marks=pytest.mark.slow)])
def test_rms_coordinates_start_from_prior_draws(coords):
    """``fit_nuts(init="prior")`` and the SVI guides start from prior draws: the ratio
    coordinates' sampling methods give finite starting points; the level sd is reported at the
    deterministic site ``sigma_level``, positive, with the ratios near 1."""
    from numpyro.infer import Predictive, init_to_median, init_to_sample
    from numpyro.infer.util import initialize_model

    y = np.nan_to_num(_counts(2), nan=20.0)
    model = _model("trend+trig", coords)
    kwargs = {"y": jnp.asarray(y, jnp.float32), "scales": model.data_scales(y)}
    for strategy in (init_to_sample, init_to_median(num_samples=5)):
        info = initialize_model(
            jax.random.PRNGKey(0), model.model, model_kwargs=kwargs, init_strategy=strategy
        )[0]
        assert np.isfinite(float(info.potential_energy))
        assert "sigma_level_ratio" in info.z and "sigma_level" not in info.z
    draws = Predictive(model.model, num_samples=200)(jax.random.PRNGKey(1), **kwargs)
    ratios = [k for k in draws if k.endswith("_ratio")]
    assert ratios == (
        ["sigma_level_ratio", "sigma_slope_ratio"]
        if coords == "trend_rms"
        else ["sigma_level_ratio"]
    )
    for site in ratios:
        r = np.asarray(draws[site])
        # 1 / r^2 ~ Gamma((n - 1) / 2, n / 2), n = T - 1: mean (n - 1) / n, sd ~ sqrt(2 / n)
        assert abs(np.mean(1 / r**2) - (T - 2) / (T - 1)) < 4 * np.sqrt(2 / (T - 1) / 200)
    assert np.all(np.asarray(draws["sigma_level"]) > 0)
