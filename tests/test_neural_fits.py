"""Fitted NeuralSSM: a non-converged SVI fit is flagged by ``bs.check``, and a bidirectional
fit scores a planted anomaly highest (issue 15)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_ssm.inference.diagnostics import check
from bayes_ssm.inference.fitting import fit_svi
from bayes_ssm.models import NeuralSSM

SPIKE = 41


def _series_with_spike(n=80):
    rng = np.random.default_rng(2)
    y = 5.0 + np.sin(2 * np.pi * np.arange(n) / 12.0) + 0.15 * rng.standard_normal(n)
    y[SPIKE] += 3.0  # 20 noise sds: the planted anomaly
    y[[20, 60]] = np.nan
    return pd.Series(y, index=pd.date_range("2020-01-05", periods=n, freq="W"))


MODEL = NeuralSSM(width=2, state_size=2, num_layers=1, layer="ssd", direction="bidirectional")


@pytest.mark.slow
def test_bidirectional_fit_flags_non_convergence_and_scores_the_planted_anomaly_highest():
    y = _series_with_spike()
    # a deliberately stopped fit: 40 steps cannot pass the stopping rule (two windows of 20
    # steps whose loss changed by < tol), so bs.check must say so
    short = fit_svi(MODEL, y, key=0, steps=40, check_every=20, num_samples=50, progress=False)
    assert short.info["converged"] is False
    problems = check(short, warn=False)
    assert any("did not converge" in p for p in problems), problems
    fit = fit_svi(MODEL, y, key=0, steps=1000, check_every=20, num_samples=100, progress=False)
    scores = fit.anomalies(level=0.99, all_steps=True, replicates=2, key=1)
    z = scores["z_score"].abs()
    assert z.idxmax() == y.index[SPIKE], z.sort_values().tail(3)
    assert bool(scores["is_anomaly"].iloc[SPIKE])
    # its neighbours read the spike from one side only: the spike still stands out most
    assert z.iloc[SPIKE] > 2 * z.drop(y.index[SPIKE]).max()
