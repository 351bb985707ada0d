"""The MAP start of SVI (``fit_svi(init="map")``, :mod:`bayes_ssm.inference.map_start`).

The mode and the starting scales are checked against an independent computation: statsmodels'
``UnobservedComponents`` log-likelihood of a local-level model (same proper initial state),
plus the same half-normal log priors and the log-Jacobian of the log transform, maximised by
``scipy.optimize.minimize``; its Hessian by central finite differences.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize, stats

import bayes_ssm as bs
from bayes_ssm.inference import engine as _engine
from bayes_ssm.inference import svi as _svi
from bayes_ssm.inference.fitting import _prepare_timed
from bayes_ssm.inference.map_start import fd_hessian, lbfgs_mode, map_problems, newton_decrement
from bayes_ssm.inference.schedules import default_optimizer
from bayes_ssm.models import StructuralTS
from bayes_ssm.models.components import structural_system

sm = pytest.importorskip("statsmodels.api")


def _level_series(n=80, seed=3):
    rng = np.random.default_rng(seed)
    return 10.0 + np.cumsum(rng.normal(scale=0.3, size=n)) + rng.normal(scale=0.5, size=n)


def _map_start(model, y, key=0):
    """The compiled MAP start: ``(locs, scales, record)`` of the guide, constrained scales."""
    bound, data, scales = _prepare_timed(model, y, None, None)
    yy, cov = _svi.jnp_data(data)
    dyn = {k: jnp.asarray(v) for k, v in scales.items()}
    opt = default_optimizer(0.01)
    svi = _svi._make_svi(bound, "normal", opt)
    state, record = _svi._svi_init_map(
        _engine.ModelKey(bound), "normal", opt, None, jax.random.PRNGKey(key), yy, dyn, cov
    )
    svi.init(jax.random.PRNGKey(0), yy, **_svi._kwargs(None, dyn, cov))
    params = svi.get_params(state)
    locs = {k[: -len("_auto_loc")]: np.asarray(v) for k, v in params.items() if "_loc" in k}
    sds = {k[: -len("_auto_scale")]: np.asarray(v) for k, v in params.items() if "_scale" in k}
    return locs, sds, np.asarray(record), bound, scales


def _statsmodels_neg_log_post(model, y, scales):
    """Minus the log posterior of ``u = (log sigma_obs, log sigma_level)``: statsmodels'
    likelihood with our proper initial state, HalfNormal priors, the log-Jacobian ``sum(u)``."""
    mod = sm.tsa.UnobservedComponents(y, level="llevel")
    system = structural_system(model, {"level_var": jnp.asarray(1.0)}, scales)
    mod.ssm.initialize_known(np.asarray(system.init_mean), np.asarray(system.init_cov))
    mod.ssm.loglikelihood_burn = 0

    def f(u):
        s = np.exp(u)
        loglik = mod.loglike(s**2)  # order: sigma2.irregular, sigma2.level
        prior = stats.halfnorm.logpdf(s[0], scale=scales["y_scale"])
        prior += stats.halfnorm.logpdf(s[1], scale=scales["dy_scale"])
        return -(loglik + prior + np.sum(u))

    return f


def test_mode_and_scales_equal_statsmodels_posterior(x64):
    model, y = StructuralTS(trend=None), _level_series()
    locs, sds, record, bound, scales = _map_start(model, y)
    assert set(locs) == {"sigma_obs", "sigma_level"}
    f = _statsmodels_neg_log_post(bound, y, scales)
    u0 = np.log([np.std(y), np.std(np.diff(y))])
    ref = optimize.minimize(f, u0, method="BFGS", options={"gtol": 1e-8})
    ours = np.array([locs["sigma_obs"], locs["sigma_level"]]).ravel()
    np.testing.assert_allclose(ours, ref.x, atol=2e-4)
    # the potential at the mode is statsmodels' minus log posterior there
    assert record[6] == pytest.approx(ref.fun, abs=1e-6)
    # starting scales: 1 / sqrt of the finite-difference Hessian's diagonal (clipped at 0.1)
    h = 1e-4
    diag = [(f(ref.x + h * e) - 2 * f(ref.x) + f(ref.x - h * e)) / h**2 for e in np.eye(2)]
    want = np.clip(1 / np.sqrt(diag), 1e-4, 0.1)
    got = np.array([sds["sigma_obs"], sds["sigma_level"]]).ravel()
    np.testing.assert_allclose(got, want, rtol=1e-3)
    assert bool(record[0]) and record[1] == 2 and bool(record[2])  # used, 2 dims, converged


def test_newton_decrement_and_lbfgs_on_a_quadratic(x64):
    a = jnp.array([[3.0, 1.0], [1.0, 2.0]])
    b = jnp.array([1.0, -2.0])

    def fun(x):
        return 0.5 * x @ a @ x - b @ x

    x, value, grad, count, converged = lbfgs_mode(fun, jnp.zeros(2))
    # the value and gradient it returns (the line search's) are those at x
    assert float(value) == pytest.approx(float(fun(x)), abs=1e-12)
    np.testing.assert_allclose(grad, a @ x - b, atol=1e-12)
    np.testing.assert_allclose(fd_hessian(jax.grad(fun), x), a, rtol=1e-6)
    np.testing.assert_allclose(x, np.linalg.solve(a, b), atol=1e-3)  # its gradient test
    assert bool(converged) and int(count) > 0
    x0 = jnp.array([0.3, 0.4])
    g = a @ x0 - b
    # half the Newton decrement is exactly the quadratic's fall to its minimum
    assert float(newton_decrement(a, g)) == pytest.approx(float(fun(x0) - value), rel=1e-9)
    assert np.isinf(float(newton_decrement(-a, g)))  # not positive definite
    # two iterations on Rosenbrock's valley: not converged, and said so
    rosen = lambda x: (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2  # noqa: E731
    _, _, grad, count, converged = lbfgs_mode(rosen, jnp.array([-1.2, 1.0]), max_iter=2)
    assert not bool(converged) and int(count) == 2 and float(jnp.max(jnp.abs(grad))) > 1e-3


def test_map_start_fit_same_key_and_no_worse_loss():
    y = _level_series(n=120, seed=5)
    model = StructuralTS(trend=None)
    kw = dict(key=1, progress=False, num_samples=200)
    a = bs.fit_svi(model, y, init="map", **kw)
    b = bs.fit_svi(model, y, init="map", **kw)
    for k in a.draws:
        np.testing.assert_array_equal(a.draws[k], b.draws[k])
    cold = bs.fit_svi(model, y, init="prior", **kw)
    assert a.info["init"] == "map" and cold.info["init"] == "prior" and "map" not in cold.info
    rec = a.info["map"]
    assert rec["used"] and rec["converged"] and rec["nonpositive_hessian_diag"] == 0
    assert a.info["converged"] and bs.check(a, warn=False) == []
    # the last window's mean loss, no worse than the cold start's beyond its MC noise
    tail = cold.svi_loss[-250:]
    se = np.std(tail) / np.sqrt(tail.size)
    assert a.info["final_loss"] <= cold.info["final_loss"] + 4 * se + 0.05
    assert a.info["steps"] <= cold.info["steps"]


def test_failed_search_is_reported():
    fit = bs.fit_svi(StructuralTS(trend=None), _level_series(), key=0, progress=False, steps=500)
    assert not any("MAP" in p for p in bs.check(fit, warn=False))  # a cold start: nothing
    base = {"iterations": 200, "grad_norm": 0.5, "newton_decrement": 3.0, "potential": 1.0}
    bad = {**base, "used": True, "converged": False, "min_hessian_diag": -1.0}
    fit = dataclasses.replace(fit, info={**fit.info, "map": {**bad, "nonpositive_hessian_diag": 1}})
    problems = bs.check(fit, warn=False)
    assert any("MAP search did not converge" in p and "3 nats" in p for p in problems)
    assert any("not a mode" in p and "1 coordinate" in p for p in problems)
    fit = dataclasses.replace(fit, info={**fit.info, "map": {**bad, "used": False}})
    assert any("MAP start failed" in p for p in bs.check(fit, warn=False))
    assert map_problems({}) == []
    assert "no MAP start" in map_problems({"map": {**bad, "dimensions": 0}})[0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"init": "mode"}, "init must be one of"), ({"init": "map", "guide": "delta"}, "AutoNormal")],
)
def test_init_is_validated(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bs.fit_svi(StructuralTS(trend=None), _level_series(), key=0, progress=False, **kwargs)


def test_auto_fit_passes_its_init():
    """``auto_fit`` starts SVI as ``AUTO_SVI["init"]`` says unless ``fit_kwargs`` says otherwise."""
    from bayes_ssm.inference.auto import prepare_window
    from bayes_ssm.inference.auto_settings import AUTO_SVI

    y = _level_series(n=60)

    def fit_kwargs(method="svi", given=None):
        args = ("none", None, method, None, None, given, False, None, False)
        return prepare_window(y, *args)[-1]

    assert fit_kwargs()["init"] == AUTO_SVI["init"]
    assert fit_kwargs(given={"init": "prior"})["init"] == "prior"
    assert "init" not in fit_kwargs("nuts")


@pytest.mark.slow
def test_fold_batches_with_a_map_start_equal_the_per_fold_loop(x64, monkeypatch):
    """``AutoTS(fold_batch="vmap", fit_kwargs={"init": "map"})``: the vmapped MAP start and
    SVI of the folds give the per-fold ``auto_fit`` loop's scores (same keys; 1e-8)."""
    import pandas as pd

    calls = []
    batched = _svi._svi_init_many_map

    def counted(*args, **kwargs):
        calls.append(args[3].shape[0])  # the keys: one row per fold
        return batched(*args, **kwargs)

    monkeypatch.setattr(_svi, "_svi_init_many_map", counted)

    y = pd.Series(_level_series(n=52), index=pd.date_range("2020-01-04", periods=52, freq="W-SAT"))
    options = dict(
        candidates={"level": StructuralTS(trend=None)},
        fit_kwargs={"steps": 300, "check_every": 100, "num_samples": 100, "init": "map"},
        recalibrate=False,
        fit_last=40,
    )
    scores = {
        mode: bs.backtest(
            bs.AutoTS(fold_batch=mode, **options), y, horizon=4, folds=2, step=2, season=1,
            key=3, progress=False,
        )
        for mode in ("vmap", "loop")
    }  # fmt: skip
    assert calls == [2] and scores["vmap"]["crps"].notna().all()
    for col in ("crps", "mean", "pit", "width_80"):
        np.testing.assert_allclose(scores["vmap"][col], scores["loop"][col], atol=1e-8)
