"""Priors relative to a data scale (``"scale_by": "dy_scale"``): the default's mean-reverting
candidate is one model for every series, so a backtest compiles its programs once."""

from __future__ import annotations

import numpy as np
import numpyro.distributions as dist
import pandas as pd
import pytest
from numpyro import handlers

import bayes_ssm as bs
from bayes_ssm.inference import svi as _svi
from bayes_ssm.inference.candidates import PIN_LEVEL, default_candidates
from bayes_ssm.models import StochasticVolatility, StructuralTS
from bayes_ssm.models.structural_priors import compute_scales, prior_from_spec

PROGRAMS = (_svi._svi_init, _svi._svi_steps, _svi._svi_finish)


def _series(seed, n=60, scale=1.0):
    rng = np.random.default_rng(seed)
    y = scale * (np.cumsum(rng.normal(0, 0.3, n)) + rng.normal(0, 0.5, n))
    return pd.Series(y, index=pd.date_range("2021-01-03", periods=n, freq="W-SUN"))


def test_scale_by_is_the_scale_times_the_data_scale():
    """The prior the model samples equals HalfNormal(PIN_LEVEL * dy_scale), dy_scale computed
    independently from the series."""
    model = default_candidates([])["mean_ar1"]
    y = _series(0, scale=7.0).to_numpy()
    scales = model.data_scales(y)
    prior = model.prior_overrides["sigma_level"]
    got = prior_from_spec("sigma_level", prior, scales)
    want = dist.HalfNormal(PIN_LEVEL * compute_scales(y)["dy_scale"])
    grid = np.array([1e-4, 1e-3, 1e-2])
    np.testing.assert_allclose(got.log_prob(grid), want.log_prob(grid), rtol=1e-6)
    # and that is what the model's program samples
    with handlers.seed(rng_seed=0), handlers.trace() as tr:
        model.model(y, scales=scales)
    np.testing.assert_allclose(
        tr["sigma_level"]["fn"].log_prob(grid), want.log_prob(grid), rtol=1e-5
    )


def test_two_series_one_compiled_program():
    """The mean-reverting candidate fitted to two different series of one length compiles
    SVI's programs once (an absolute scale computed from each series made a new model, and a
    new program, per backtest origin)."""
    model = default_candidates([], _series(1).to_numpy())["mean_ar1"]
    again = default_candidates([], _series(2, scale=50.0).to_numpy())["mean_ar1"]
    assert model == again and hash(model) == hash(again)
    before = [p._cache_size() for p in PROGRAMS]
    for seed, scale in ((1, 1.0), (2, 50.0)):
        bs.fit_svi(model, _series(seed, scale=scale), key=0, steps=100, check_every=50,
                   num_samples=20, progress=False)  # fmt: skip
    added = [p._cache_size() - b for p, b in zip(PROGRAMS, before, strict=True)]
    assert added == [1, 1, 1], added


def test_bad_or_unsupported_scale_by_is_a_clear_error():
    with pytest.raises(ValueError, match="scale_by must be one of"):
        StochasticVolatility(priors={"mu": {"dist": "Normal", "loc": 0.0, "scale_by": "x"}})
    spec = {"dist": "HalfNormal", "scale": 1.0, "scale_by": "dy_scale"}
    with pytest.raises(ValueError, match="needs the data scale"):
        prior_from_spec("nu_level", spec)
    StructuralTS(priors={"sigma_obs": spec})  # a valid spec is accepted
