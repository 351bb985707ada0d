"""Why NUTS chains of a neural forecaster disagree (issue 15): the sign symmetry, shown.

A one-channel ``NeuralSSM`` has the sign symmetry of its channel (module docstring of
:mod:`bayes_ssm.models.neural_identified`): chains of the plain form started from prior draws
land on either copy, so their signed weights disagree; folded onto the identified form they
agree (much more closely; what is left is slow mixing within one copy).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpyro import handlers
from numpyro.diagnostics import split_gelman_rubin

import bayes_ssm as bs
from bayes_ssm.models import NeuralSSM
from bayes_ssm.models.neural_identified import identify

KW = dict(width=1, state_size=1, num_layers=1, input_lags=1, min_length=10)
TRUTH = {
    "net.w_in_lead": np.array([1.0]),
    "net.b_in": np.array([0.3]),
    "net.layer0.half_life_raw": np.array([4.0]),
    "net.layer0.C_real": np.array([[0.6]]),
    "net.layer0.C_imag": np.array([[0.0]]),
    "net.layer0.D": np.array([0.5]),
    "net.layer0.mix": np.array([[-1.0]]),
    "net.w_out": np.array([0.8]),
    "intercept": np.array(0.0),
    "obs_sd": np.array(0.25),
}


def _simulate(n=100):
    """A path of the identified model at ``TRUTH`` (standardised units), as a weekly Series."""
    model = NeuralSSM(**KW, identifiable=True)
    start = np.zeros(1)
    scales = {"loc": 0.0, "scale": 1.0, "input_lo": -50.0, "input_hi": 50.0}
    with handlers.seed(rng_seed=3):
        tr = handlers.trace(handlers.substitute(model.model, data=TRUTH)).get_trace(
            start, scales=scales, horizon=n - 1
        )
    y = np.concatenate([start, np.asarray(tr["y_forecast"]["value"])])
    return pd.Series(y, index=pd.date_range("2020-01-05", periods=n, freq="W"))


def _rhat(draws):
    x = np.asarray(draws, float).reshape(draws.shape[0], draws.shape[1], -1)
    return float(np.max(split_gelman_rubin(x)))


@pytest.mark.slow
def test_plain_chains_split_on_the_sign_symmetry_and_folding_joins_them(x64):
    """Four chains of the plain one-channel network from prior draws: they sit on both signs
    of the channel (the signed weights' r_hat is large), and :func:`identify` (the map onto
    the identified form, same outputs) brings the chains' weights together."""
    y = _simulate()
    fit = bs.fit_nuts(NeuralSSM(**KW), y, key=1, num_chains=4, num_warmup=120,
                      num_samples=120, chain_method="vectorized", progress=False)  # fmt: skip
    lead = fit.draws["net.w_in"][..., 0, 0].mean(axis=1)  # per chain
    assert lead.max() > 0.3 and lead.min() < -0.3, lead
    folded = identify(fit.draws, num_layers=1)
    pairs = {
        "lead input weight": (fit.draws["net.w_in"][..., 0, :], folded["net.w_in_lead"]),
        "w_out": (fit.draws["net.w_out"], folded["net.w_out"]),
        "mix": (fit.draws["net.layer0.mix"], folded["net.layer0.mix"]),
    }
    for site, (raw_draws, fold_draws) in pairs.items():
        raw, fold = _rhat(raw_draws), _rhat(fold_draws)
        assert raw > 1.3 and fold - 1.0 < 0.25 * (raw - 1.0), (site, raw, fold)
