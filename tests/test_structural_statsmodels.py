"""StructuralTS's state space and likelihood == statsmodels' ``UnobservedComponents``.

Two matched initialisations, both exact comparisons (float64, 1e-6 relative or better):

* approximate diffuse: statsmodels' default for ``UnobservedComponents`` (``use_exact_diffuse``
  is False): non-stationary states start at mean 0, variance ``1e6``; AR states from their
  stationary law; the first ``loglikelihood_burn`` (= number of diffuse states) terms are dropped.
  We build the same start with ``structural_system(..., diffuse=1e6)`` and drop the same terms.
* known (proper) start: our model's data-scaled prior on the initial state, handed to statsmodels
  with ``ssm.initialize_known`` and no burn-in. This is the likelihood the NumPyro model uses.

Statsmodels' exact diffuse initialisation (``use_exact_diffuse=True``) is a different likelihood
(the diffuse limit, not a finite-variance prior): ``StructuralTS(initialization="diffuse")`` is
compared with it, and with KFAS, in ``tests/test_kfas_reference.py``.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest
from numpyro import handlers

from bayes_ssm.kernels.kalman import kalman_filter_last
from bayes_ssm.models import Seasonal, StructuralTS
from bayes_ssm.models.components import pacf_to_ar, structural_system

sm = pytest.importorskip("statsmodels.api")

T = 150

# (our model, statsmodels kwargs, our variances keyed by statsmodels param name)
CASES = {
    "level": (StructuralTS(trend=None), {"level": "llevel"}),
    "local_linear_trend": (StructuralTS(trend="local_linear"), {"level": "lltrend"}),
    "dummy_seasonal": (
        StructuralTS(trend=None, seasonal=Seasonal(7, kind="dummy")),
        {"level": "llevel", "seasonal": 7},
    ),
    "trig_seasonal": (
        StructuralTS(trend="local_linear", seasonal=Seasonal(12, harmonics=3)),
        {"level": "lltrend", "freq_seasonal": [{"period": 12, "harmonics": 3}]},
    ),
    "two_trig_fractional": (
        StructuralTS(trend=None, seasonal=[Seasonal(7, harmonics=2), Seasonal(30.5, harmonics=2)]),
        {
            "level": "llevel",
            "freq_seasonal": [{"period": 7, "harmonics": 2}, {"period": 30.5, "harmonics": 2}],
        },
    ),
    "ar": (StructuralTS(trend=None, ar_order=2), {"level": "llevel", "autoregressive": 2}),
    "regression": (StructuralTS(trend=None, regression=True), {"level": "llevel", "exog": True}),
    "everything": (
        StructuralTS(
            trend="local_linear",
            seasonal=[Seasonal(4, kind="dummy"), Seasonal(12, harmonics=2)],
            ar_order=1,
            regression=True,
        ),
        {
            "level": "lltrend",
            "seasonal": 4,
            "freq_seasonal": [{"period": 12, "harmonics": 2}],
            "autoregressive": 1,
            "exog": True,
        },
    ),
}


def _data(seed=0, missing=False):
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    x = rng.normal(size=(T, 2))
    y = (
        5.0
        + np.cumsum(rng.normal(scale=0.3, size=T))
        + 2.0 * np.sin(2 * np.pi * t / 12)
        + x @ np.array([1.5, -0.7])
        + rng.normal(scale=0.5, size=T)
    )
    if missing:
        y[[3, 40, 41, 42, 100]] = np.nan
    return y, x


def _statsmodels(kwargs, y, x):
    kwargs = dict(kwargs)
    exog = x if kwargs.pop("exog", False) else None
    return sm.tsa.UnobservedComponents(y, exog=exog, **kwargs)


def _m(mod, name):
    """A time-invariant statsmodels system matrix as 2-D."""
    return np.atleast_3d(mod.ssm[name])[:, :, 0]


def _params(mod, seed=1):
    """Random admissible statsmodels parameters (variances, stationary AR, betas)."""
    rng = np.random.default_rng(seed)
    params = []
    for name in mod.param_names:
        if name.startswith("sigma2."):
            params.append(rng.uniform(0.05, 0.8))
        elif name.startswith("ar.L"):
            params.append(0.0)
        else:  # beta
            params.append(rng.normal())
    params = np.array(params)
    ar = [i for i, n in enumerate(mod.param_names) if n.startswith("ar.L")]
    if ar:
        params[ar] = pacf_to_ar(jnp.asarray(rng.uniform(-0.8, 0.8, len(ar))))
    return params


def _ours(model, mod, params, x, scales=None, diffuse=None):
    """Map statsmodels params to our state space."""
    p = dict(zip(mod.param_names, params, strict=True))
    var = {}
    if model.level:
        var["level_var"] = p["sigma2.level"]
    if model.trend is not None:
        var["slope_var"] = p["sigma2.trend"]
    ix = 0
    for s in model.seasonal:
        if s.kind == "dummy":
            var[f"{s.name}_var"] = p["sigma2.seasonal"]
        else:
            var[f"{s.name}_var"] = p[f"sigma2.freq_seasonal_{s.period!r}({s.harmonics})"]
            ix += 1
    if model.ar_order:
        var["ar_coefs"] = np.array([p[f"ar.L{i + 1}"] for i in range(model.ar_order)])
        var["ar_var"] = p["sigma2.ar"]
    var = {k: jnp.asarray(v, jnp.float64) for k, v in var.items()}
    system = structural_system(model, var, scales, diffuse=diffuse)
    offset = 0.0
    if model.regression:
        beta = np.array([p[f"beta.x{j + 1}"] for j in range(x.shape[1])])
        offset = jnp.asarray(x @ beta)
    ss = system.state_space(jnp.asarray(p["sigma2.irregular"]), offset)
    return system, ss


@pytest.mark.parametrize(
    "case, missing",
    [(c, False) for c in sorted(CASES)] + [("everything", True), ("trig_seasonal", True)],
)
def test_state_space_matches_statsmodels(x64, case, missing):
    """Same transition, design, state covariance; same log-likelihood (approximate diffuse)."""
    model, kwargs = CASES[case]
    y, x = _data(missing=missing)
    mod = _statsmodels(kwargs, y, x)
    params = _params(mod)
    mod.update(params)
    system, ss = _ours(model, mod, params, x, diffuse=mod.ssm.initial_variance)
    np.testing.assert_allclose(system.transition, _m(mod, "transition"), atol=1e-14)
    np.testing.assert_allclose(system.observation, _m(mod, "design")[0], atol=1e-14)
    sel = _m(mod, "selection")
    q = sel @ _m(mod, "state_cov") @ sel.T
    np.testing.assert_allclose(np.diag(system.noise_var), q, atol=1e-14)
    burn = mod.loglikelihood_burn
    assert burn == model.state_size - model.ar_order  # statsmodels' count of diffuse states
    ours = kalman_filter_last(ss, jnp.asarray(y), burn_in=burn)
    theirs = mod.loglike(params)
    assert np.isfinite(theirs)
    np.testing.assert_allclose(float(ours.log_likelihood), theirs, rtol=1e-8)
    # per-step terms too (statsmodels' loglikeobs sets the burn-in steps to 0)
    steps = np.asarray(ours.log_lik_steps)
    np.testing.assert_allclose(steps[burn:], mod.loglikeobs(params)[burn:], rtol=1e-7)


@pytest.mark.parametrize(
    "case, method",
    [
        ("local_linear_trend", "sequential"),
        ("everything", "sequential"),
        ("everything", "parallel"),
        ("trig_seasonal", "sequential"),
        ("ar", "sequential"),
    ],
)
def test_numpyro_log_lik_matches_statsmodels_known_init(x64, case, method):
    """The NumPyro program's ``log_lik`` site at fixed parameters == statsmodels with our
    data-scaled initial state (``initialize_known``, no burn-in), every step; with the
    sequential and the parallel-in-time filter."""
    model, kwargs = CASES[case]
    model = dataclasses.replace(model, method=method)
    y, x = _data(seed=3, missing=True)
    mod = _statsmodels(kwargs, y, x)
    params = _params(mod, seed=4)
    scales = model.data_scales(y, x if model.regression else None)
    system, _ = _ours(model, mod, params, x, scales=scales)
    mod.ssm.initialize_known(np.asarray(system.init_mean), np.asarray(system.init_cov))
    mod.ssm.loglikelihood_burn = 0
    p = dict(zip(mod.param_names, params, strict=True))
    sites = {"sigma_obs": np.sqrt(p["sigma2.irregular"]), "sigma_level": np.sqrt(p["sigma2.level"])}
    if model.trend:
        sites["sigma_slope"] = np.sqrt(p["sigma2.trend"])
    for s in model.seasonal:
        key = "sigma2.seasonal" if s.kind == "dummy" else f"sigma2.freq_seasonal_12({s.harmonics})"
        sites[f"sigma_{s.name}"] = np.sqrt(p[key])
    if model.ar_order:
        coefs = np.array([p[f"ar.L{i + 1}"] for i in range(model.ar_order)])
        sites["ar_pacf"] = _ar_to_pacf(coefs)
        sites["sigma_ar"] = np.sqrt(p["sigma2.ar"])
    if model.regression:
        sites["beta"] = np.array([p["beta.x1"], p["beta.x2"]])
    sites = {k: jnp.asarray(v, jnp.float64) for k, v in sites.items()}
    cov = jnp.asarray(x) if model.regression else None
    with handlers.trace() as tr, handlers.seed(rng_seed=0), handlers.substitute(data=sites):
        model.model(jnp.asarray(y), scales=scales, covariates=cov)
    ours = np.asarray(tr["log_lik"]["value"])
    np.testing.assert_allclose(ours, mod.loglikeobs(params), rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(ours.sum(), mod.loglike(params), rtol=1e-9)


def _ar_to_pacf(coefs):
    """Inverse Durbin-Levinson (step-down), numpy."""
    phi = np.array(coefs, dtype=float)
    out = np.zeros_like(phi)
    for k in range(len(phi) - 1, -1, -1):
        r = phi[k]
        out[k] = r
        if k:
            phi = (phi[:k] + r * phi[:k][::-1]) / (1 - r * r)
    return out


def test_pacf_to_ar_matches_theoretical_pacf(x64):
    """Our stationary reparameterisation: the AR(p) built from partial autocorrelations ``r``
    has theoretical PACF ``r`` (statsmodels' ``arma_pacf``)."""
    from statsmodels.tsa.arima_process import arma_pacf

    rng = np.random.default_rng(0)
    for p in (1, 2, 3, 5):
        r = rng.uniform(-0.9, 0.9, p)
        phi = np.asarray(pacf_to_ar(jnp.asarray(r)))
        np.testing.assert_allclose(arma_pacf(np.r_[1, -phi], [1], lags=p + 1)[1:], r, atol=1e-10)
        np.testing.assert_allclose(_ar_to_pacf(phi), r, atol=1e-12)
        assert np.all(np.abs(np.roots(np.r_[1, -phi])) < 1)  # stationary
