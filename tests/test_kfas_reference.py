"""StructuralTS against the KFAS reference results that statsmodels ships (issue 13).

``statsmodels/tsa/statespace/tests/results/results_structural.py`` holds, for every structural
case statsmodels tests, the log-likelihood that R's KFAS computes on the US unemployment rate
(statsmodels' ``macrodata``, quarterly 1959-2009; regression on ``log(realgdp)``) at given
parameters. Three independent computations meet here:

* ours: the NumPyro program's ``log_lik`` site (:class:`StructuralTS` at the reference
  parameters, substituted), exact diffuse start (``initialization="diffuse"``); or, for the
  ``*_approx_diffuse`` cases, our state space (:func:`full_system` with variance ``1e6``) through
  the Kalman kernel with no burn-in;
* KFAS's value (``llf``), with statsmodels' tolerances (``rtol`` 1e-7 unless the case says).
  KFAS leaves ``log(2 pi) / 2`` out of each diffuse step's term; like statsmodels' test we add
  it back for the comparison;
* statsmodels' own ``UnobservedComponents(..., use_exact_diffuse=True).loglike`` at the same
  parameters.

Every case of the file is run; none is skipped or marked as failing.
"""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp
import numpy as np
import pytest
from numpyro import handlers

from bayes_ssm.kernels.kalman import kalman_log_likelihood
from bayes_ssm.models import Seasonal, StructuralTS
from bayes_ssm.models._structural_program import to_variances
from bayes_ssm.models.structural_extras import extra_variances, full_system

sm = pytest.importorskip("statsmodels.api")
results = pytest.importorskip("statsmodels.tsa.statespace.tests.results.results_structural")
macrodata = pytest.importorskip("statsmodels.datasets.macrodata")

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)

LLT = {"trend": "local_linear"}
NO_LEVEL = {"level": False, "trend": None}
# KFAS case -> our model (the reference parameters set the variances; absent ones are 0)
MODELS = {
    "irregular": NO_LEVEL,
    "fixed_intercept": {"trend": None},  # statsmodels adds the irregular, as KFAS's script does
    "deterministic_constant": {"trend": None},
    "local_level": {"trend": None},
    "random_walk": {"trend": None},
    "fixed_slope": LLT,
    "deterministic_trend": LLT,
    "local_linear_deterministic_trend": LLT,
    "random_walk_with_drift": LLT,
    "local_linear_trend": LLT,
    "smooth_trend": LLT,
    "random_trend": LLT,
    "cycle": {**NO_LEVEL, "cycle": True},
    "seasonal": {**NO_LEVEL, "seasonal": Seasonal(4, kind="dummy")},
    "freq_seasonal": {**NO_LEVEL, "seasonal": Seasonal(5, harmonics=2)},
    "reg": {**NO_LEVEL, "regression_states": "constant"},
    "rtrend_ar1": {**LLT, "ar_order": 1},
    "lltrend_cycle_seasonal_reg_ar1": {
        **LLT,
        "seasonal": Seasonal(4, kind="dummy"),
        "cycle": True,
        "ar_order": 1,
        "regression_states": "constant",
    },
}
APPROX = [
    "cycle_approx_diffuse",
    "seasonal_approx_diffuse",
    "freq_seasonal_approx_diffuse",
    "reg_approx_diffuse",
    "lltrend_cycle_seasonal_reg_ar1_approx_diffuse",
]


def test_every_case_of_the_reference_file_is_run():
    """The file's cases are exactly ours (a case added upstream fails here, not silently)."""
    cases = {k for k, v in vars(results).items() if isinstance(v, dict) and "llf" in v}
    assert cases == set(MODELS) | set(APPROX)


def _data():
    dta = macrodata.load_pandas().data
    return dta["unemp"].to_numpy(float), np.log(dta["realgdp"].to_numpy(float))[:, None]


def _statsmodels(case, y, x):
    true = getattr(results, case)
    kwargs = {**true["models"][0], **true["kwargs"]}
    if kwargs.pop("exog", False):
        kwargs["exog"] = x
    kwargs.pop("loglikelihood_burn", None)
    return sm.tsa.UnobservedComponents(y, use_exact_diffuse=True, **kwargs), true


def _sites(model, names, params):
    """statsmodels' parameters -> our sites (sds; deterministic components get sd 0)."""
    p = dict(zip(names, params, strict=True))
    sites = {"sigma_obs": math.sqrt(p.get("sigma2.irregular", 0.0))}
    if model.level:
        sites["sigma_level"] = math.sqrt(p.get("sigma2.level", 0.0))
    if model.trend:
        sites["sigma_slope"] = math.sqrt(p.get("sigma2.trend", 0.0))
    for s in model.seasonal:
        key = next(k for k in p if k.startswith(("sigma2.seasonal", "sigma2.freq_seasonal")))
        sites[f"sigma_{s.name}"] = math.sqrt(p[key])
    if model.cycle:
        sites["sigma_cycle"] = math.sqrt(p["sigma2.cycle"])
        sites["cycle_frequency"] = p["frequency.cycle"]
        sites["cycle_damping"] = p.get("damping.cycle", 1.0)
    if model.ar_order:
        sites["sigma_ar"] = math.sqrt(p["sigma2.ar"])
        sites["ar_pacf"] = [p["ar.L1"]]  # AR(1): the pacf is the coefficient
    return {k: jnp.asarray(v, jnp.float64) for k, v in sites.items()}


def _our_log_lik(model, sites, y, x):
    cov = jnp.asarray(x) if model.regression_states else None
    scales = model.data_scales(y, None if cov is None else x)
    with handlers.trace() as tr, handlers.seed(rng_seed=0), handlers.substitute(data=sites):
        model.model(jnp.asarray(y), scales=scales, covariates=cov)
    return np.asarray(tr["log_lik"]["value"])


def _num_diffuse(model, num_covariates):
    """Steps with ``F_inf > 0`` on a complete series: the number of diffuse states."""
    return model.state_size - model.ar_order + (num_covariates if model.regression_states else 0)


@pytest.mark.filterwarnings("ignore:Specified model does not contain a stochastic element")
@pytest.mark.parametrize("case", sorted(MODELS))
def test_exact_diffuse_matches_kfas_and_statsmodels(x64, case):
    y, x = _data()
    mod, true = _statsmodels(case, y, x)
    model = StructuralTS(**MODELS[case], initialization="diffuse")
    params = np.asarray(true["params"], float)
    steps = _our_log_lik(model, _sites(model, mod.param_names, params), y, x)
    ours = steps.sum()
    kfas = ours + _num_diffuse(model, x.shape[1]) * HALF_LOG_2PI
    np.testing.assert_allclose(kfas, true["llf"], rtol=true.get("rtol", 1e-7))
    res = mod.filter(params)
    assert res.nobs_diffuse == _num_diffuse(model, x.shape[1])
    np.testing.assert_allclose(ours, res.llf, rtol=1e-9)
    np.testing.assert_allclose(steps, res.llf_obs, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("case", APPROX)
def test_approximate_diffuse_matches_kfas(x64, case):
    """Variance 1e6 on every non-stationary state, no burn-in (the ``*_approx_diffuse`` cases):
    our state space through the Kalman kernel."""
    y, x = _data()
    mod, true = _statsmodels(case, y, x)
    model = StructuralTS(**MODELS[case.removesuffix("_approx_diffuse")])
    sites = _sites(model, mod.param_names, np.asarray(true["params"], float))
    params = {**sites, "ar_pacf": sites.get("ar_pacf", jnp.zeros(0))}
    variances = {**to_variances(model, params), **extra_variances(model, params)}
    variances.setdefault("obs", sites["sigma_obs"] ** 2)
    cov = jnp.asarray(x) if model.regression_states else None
    system, _ = full_system(model, variances, covariates=cov, diffuse=1e6)
    ss = system.state_space(sites["sigma_obs"] ** 2)
    ours = kalman_log_likelihood(ss, jnp.asarray(y), method="sequential")
    np.testing.assert_allclose(float(ours), true["llf"], rtol=true.get("rtol", 1e-7))


@pytest.mark.slow
def test_parallel_diffuse_equals_sequential(x64):
    """The diffuse steps run sequentially, the rest in parallel: the same ``log_lik``."""
    y, x = _data()
    case = "lltrend_cycle_seasonal_reg_ar1"
    mod, true = _statsmodels(case, y, x)
    model = StructuralTS(**MODELS[case], initialization="diffuse", method="sequential")
    sites = _sites(model, mod.param_names, np.asarray(true["params"], float))
    seq = _our_log_lik(model, sites, y, x)
    par = _our_log_lik(dataclasses.replace(model, method="parallel"), sites, y, x)
    np.testing.assert_allclose(par, seq, rtol=1e-7, atol=1e-9)
