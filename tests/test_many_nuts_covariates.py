"""NUTS across series in one program WITH covariates (each series its own coefficients) ==
NUTS per series, within Monte-Carlo error."""

from __future__ import annotations

import numpy as np
import pytest
from test_many_nuts import _mean_and_mcse
from test_many_pooling_covariates import coefficient_panel

import bayes_ssm as bs

MODEL = bs.StructuralTS(trend=None)  # local level + regression on the covariates


@pytest.mark.slow
def test_vectorised_nuts_with_covariates_equals_per_series_nuts_within_mcse():
    """Two series with two covariates each: every chain of every series in one vmapped program
    vs one fit_nuts per series. The posterior means of every log sd and every coefficient agree
    within 4 combined Monte-Carlo standard errors."""
    frame, truth = coefficient_panel(2, (50,), seed=5)
    nuts = dict(num_chains=2, num_warmup=200, num_samples=250, covariates=["x1", "x2"])
    vmapped = bs.fit_nuts_many(MODEL, frame, key=1, batch="vmap", **nuts)
    looped = bs.fit_nuts_many(MODEL, frame, key=2, batch="loop", chain_method="vectorized", **nuts)
    assert vmapped.info["batch"] == "vmap" and looped.info["batch"] == "loop"
    z_scores = []
    for ident in looped:
        assert vmapped[ident].draws["beta"].shape == (2, 250, 2)
        for site in ("sigma_obs", "sigma_level"):
            m1, se1 = _mean_and_mcse(vmapped[ident].draws[site])
            m2, se2 = _mean_and_mcse(looped[ident].draws[site])
            z_scores.append((m1 - m2) / np.hypot(se1, se2))
        for j in range(2):
            m1, se1 = _mean_and_mcse(vmapped[ident].draws["beta"][..., j], log=False)
            m2, se2 = _mean_and_mcse(looped[ident].draws["beta"][..., j], log=False)
            z_scores.append((m1 - m2) / np.hypot(se1, se2))
            assert abs(m1 - truth[ident][j]) < 0.15, (ident, j, m1, truth[ident][j])
    assert np.max(np.abs(z_scores)) < 4, z_scores
