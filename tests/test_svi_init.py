"""The default forecaster's speed-ups keep its results: SVI's initialisation on the latent sites
only gives NumPyro's own initial state, and PSIS-LOO read from the guide's draws equals PSIS-LOO
recomputed through the model's program."""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd

import bayes_ssm as bs
from bayes_ssm.inference import auto, engine
from bayes_ssm.inference import svi as _svi
from bayes_ssm.inference.fitting import _prepare_timed
from bayes_ssm.inference.schedules import default_optimizer
from bayes_ssm.models import Seasonal, StructuralTS

STEPS = dict(steps=200, check_every=100, num_samples=200)


def _series(n=60, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    y = 1.0 + 0.3 * np.sin(2 * np.pi * t / 12) + np.cumsum(rng.normal(0, 0.05, n))
    y = y + rng.standard_t(3, n) * 0.1
    return pd.Series(y, index=pd.date_range("2015-01-31", periods=n, freq="ME"), name="y")


def _both_inits(model, y, key):
    """SVI's initial state from ``_svi_init`` and from NumPyro's ``svi.init`` on the whole
    program (each jitted), for ``model`` on ``y``."""
    optimizer = default_optimizer(0.01)
    model, data, scales = _prepare_timed(model, y, None, None)
    yy, cov = _svi.jnp_data(data)
    mkey = engine.ModelKey(model)

    def ours(s, d):
        return _svi._svi_init(mkey, "normal", optimizer, s, key, yy, d, cov)

    def numpyros(s, d):
        kwargs = _svi._kwargs(s, d, cov)
        svi = _svi._make_svi(model, "normal", optimizer)
        return jax.jit(lambda k, v: svi.init(k, v, **kwargs))(key, yy)

    return [engine.call_with_scales(model, scales, f) for f in (ours, numpyros)]


def test_latent_only_init_equals_numpyros_init(x64):
    """``_svi_init`` (the program without its likelihood) returns bit for bit the state that
    NumPyro's ``svi.init`` on the whole program returns: same guide locations and scales, same
    optimiser state, same key. The Student-t structure (Gamma sites, one latent precision per
    step) with a damped trend (a bounded damping factor)."""
    model = StructuralTS(trend="damped", likelihood="student_t")
    ours, theirs = _both_inits(model, _series(), jax.random.PRNGKey(7))
    a, b = jax.tree.leaves(ours), jax.tree.leaves(theirs)
    assert len(a) == len(b) > 3
    for x, z in zip(a, b, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(z))


def test_loo_reads_the_guide_log_lik_and_equals_the_recomputed_one(x64, monkeypatch):
    """``auto_fit`` runs no predictive program for PSIS-LOO (the guide's draws brought
    ``log_lik`` along), and the pointwise elpd and Pareto k equal those recomputed through
    ``engine.predict`` from the same draws (a padded fit)."""
    y = _series(72, seed=2)
    model = StructuralTS(trend=None, seasonal=[Seasonal(12, harmonics=2)])
    calls = []
    real_predict = engine.predict
    monkeypatch.setattr(engine, "predict", lambda *a, **k: calls.append(1) or real_predict(*a, **k))
    stacked = bs.auto_fit(
        y, key=1, candidates={"level": model}, fit_kwargs=STEPS, pad_to=80, recalibrate=False
    )
    assert calls == []
    fit = stacked.fits["level"]
    assert fit.info["padded_to"] == 80  # pad_to (below fit_last, 400)
    kept = auto._loo(fit)
    object.__delattr__(fit, "_pointwise_log_lik")
    recomputed = auto._loo(fit)  # through engine.predict on the padded series
    assert len(calls) == 1
    np.testing.assert_allclose(kept[0], recomputed[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(kept[1], recomputed[1], rtol=1e-8, atol=1e-10)
