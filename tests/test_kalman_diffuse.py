"""The exact diffuse Kalman filter against statsmodels' (``use_exact_diffuse=True``): every
step's log-likelihood term, filtered states, ``P_star`` and ``P_inf``, with missing values (the
first step too, so the diffuse period outlasts the number of diffuse states); and the split
form (diffuse steps sequential, the rest parallel) against the whole-series recursion."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from bayes_ssm.kernels import StateSpace, diffuse_kalman_filter

sm = pytest.importorskip("statsmodels.api")

CASES = {
    "trend_trig_seasonal": {"level": "lltrend", "freq_seasonal": [{"period": 12, "harmonics": 2}]},
    "level_dummy_seasonal_ar": {"level": "llevel", "seasonal": 4, "autoregressive": 1},
}


def _m(mod, name):
    return np.atleast_3d(mod.ssm[name])[:, :, 0]


def _setup(kwargs, seed=0, num_steps=80):
    rng = np.random.default_rng(seed)
    t = np.arange(num_steps)
    y = np.cumsum(rng.normal(size=num_steps)) + 2 * np.sin(2 * np.pi * t / 12)
    y = y + rng.normal(size=num_steps)
    y[[0, 5, 6, 40]] = np.nan
    mod = sm.tsa.UnobservedComponents(y, use_exact_diffuse=True, **kwargs)
    params = np.array([0.5 if not n.startswith("ar.") else 0.6 for n in mod.param_names])
    mod.update(params)
    a1, p_inf, p_star = mod.ssm.initialization(model=mod.ssm)
    sel = _m(mod, "selection")
    ss = StateSpace(
        jnp.asarray(_m(mod, "transition")),
        jnp.asarray(_m(mod, "design")[0]),
        jnp.asarray(sel @ _m(mod, "state_cov") @ sel.T),
        jnp.asarray(_m(mod, "obs_cov")[0, 0]),
        jnp.asarray(a1),
        jnp.asarray(p_star),
    )
    return mod, params, ss, jnp.asarray(p_inf), y


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_statsmodels_exact_diffuse(x64, case):
    mod, params, ss, p_inf, y = _setup(CASES[case])
    res = mod.filter(params)
    ours = diffuse_kalman_filter(ss, p_inf, jnp.asarray(y))
    np.testing.assert_allclose(ours.log_likelihood, res.llf, rtol=1e-9)
    np.testing.assert_allclose(ours.log_lik_steps, res.llf_obs, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(ours.filtered_means, res.filtered_state.T, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(
        ours.predicted_covs, np.moveaxis(res.predicted_state_cov[..., :-1], -1, 0), atol=1e-7
    )
    d = res.nobs_diffuse  # statsmodels counts the steps until P_inf vanishes, missing ones too
    np.testing.assert_allclose(
        ours.predicted_diffuse_covs[:d],
        np.moveaxis(res.predicted_diffuse_state_cov[..., :d], -1, 0),
        atol=1e-9,
    )
    np.testing.assert_allclose(ours.predicted_diffuse_covs[d:], 0.0, atol=1e-9)
    assert int(ours.diffuse_steps.sum()) == int(np.sum(~np.isnan(y[:d])))


def test_split_parallel_equals_whole_recursion_and_too_short_is_nan(x64):
    _, _, ss, p_inf, y = _setup(CASES["trend_trig_seasonal"])
    y = jnp.asarray(y)
    whole = diffuse_kalman_filter(ss, p_inf, y)
    split = diffuse_kalman_filter(ss, p_inf, y, diffuse_steps=20, method="parallel")
    for field in whole._fields:
        np.testing.assert_allclose(
            getattr(split, field), getattr(whole, field), rtol=1e-7, atol=1e-8, err_msg=field
        )
    short = diffuse_kalman_filter(ss, p_inf, y, diffuse_steps=3, method="sequential")
    assert np.isnan(short.log_likelihood)  # P_inf had not vanished: no silent wrong value
    with pytest.raises(ValueError, match="diffuse_cov must have shape"):
        diffuse_kalman_filter(ss, p_inf[:2, :2], y)
    with pytest.raises(ValueError, match="diffuse_steps must be in"):
        diffuse_kalman_filter(ss, p_inf, y, diffuse_steps=0)
