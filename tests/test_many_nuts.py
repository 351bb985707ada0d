"""NUTS across series in one program (``fit_nuts_many(batch="vmap")``) == NUTS per series."""

from __future__ import annotations

import numpy as np
import pytest
from numpyro.diagnostics import effective_sample_size
from test_many import long_frame

import bayes_ssm as bs

LOCAL_LEVEL = bs.StructuralTS(trend=None)


def _mean_and_mcse(draws, log=True):
    """Posterior mean and its Monte-Carlo standard error (sd / sqrt(ESS)) of ``log(draws)``
    (of ``draws`` with ``log=False``), draws shape ``(chain, draw)``."""
    x = np.asarray(draws, dtype=np.float64)
    x = np.log(x) if log else x
    ess = float(effective_sample_size(x))
    return x.mean(), x.std() / np.sqrt(ess)


@pytest.mark.slow
def test_vectorised_nuts_equals_per_series_nuts_within_mcse():
    """Two series: every chain of every series in one vmapped program (each with its own
    warm-up, step size and mass matrix) vs one fit_nuts per series (the loop). The posterior
    means of every log sd agree within 4 combined Monte-Carlo standard errors."""
    frame = long_frame(lengths=(40, 40), seed=11, shuffle=False)
    nuts = dict(num_chains=2, num_warmup=250, num_samples=300)
    vmapped = bs.fit_nuts_many(LOCAL_LEVEL, frame, key=1, batch="vmap", **nuts)
    looped = bs.fit_nuts_many(
        LOCAL_LEVEL, frame, key=2, batch="loop", chain_method="vectorized", **nuts
    )
    assert vmapped.info["batch"] == "vmap" and looped.info["batch"] == "loop"
    assert vmapped.info["groups"] == [["s0", "s1"]]
    z_scores = []
    for ident in looped:
        for site in ("sigma_obs", "sigma_level"):
            m1, se1 = _mean_and_mcse(vmapped[ident].draws[site])
            m2, se2 = _mean_and_mcse(looped[ident].draws[site])
            z_scores.append((m1 - m2) / np.hypot(se1, se2))
    assert np.max(np.abs(z_scores)) < 4, z_scores
    summary = vmapped.summary()
    assert {"divergences", "r_hat_max", "ess_min"} <= set(summary.columns)
    assert np.isfinite(summary[["r_hat_max", "ess_min"]].to_numpy()).all()
    assert vmapped["s0"].draws["sigma_obs"].shape == (2, 300)
