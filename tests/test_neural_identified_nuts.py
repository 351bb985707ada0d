"""NUTS on the identified network (issue 15): chains that agree on simulated data.

A one-channel ``NeuralSSM`` has the sign symmetry of its channel (module docstring of
:mod:`bayes_ssm.models.neural_identified`): chains of the plain form started from prior draws
land on either copy, so their weights disagree although their forecasts agree; the identified
form (positive lead input weight) has one copy, and its chains agree on every weight.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpyro import handlers
from numpyro.diagnostics import split_gelman_rubin

import bayes_ssm as bs
from bayes_ssm.models import NeuralSSM
from bayes_ssm.models.neural_identified import network_values

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
    "obs_sd": np.array(0.4),
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
def test_identified_chains_agree_where_plain_chains_split(x64):
    y = _simulate()
    kw = dict(key=1, num_chains=4, num_warmup=150, num_samples=150, chain_method="sequential",
              progress=False)  # fmt: skip
    ident = bs.fit_nuts(NeuralSSM(**KW, identifiable=True), y, **kw)
    plain = bs.fit_nuts(NeuralSSM(**KW), y, **kw)
    values = network_values(ident.draws)  # sorted half-lives, |lead weight|
    rhats = {k: _rhat(v) for k, v in values.items() if k != "net.layer0.C_imag"}
    assert max(rhats.values()) < 1.05, rhats
    assert _rhat(ident.draws["obs_sd"]) < 1.05
    # the plain form's chains sit on both signs of the channel: its weights disagree
    lead = plain.draws["net.w_in"][..., 0, 0]  # (chain, draw)
    assert np.any(lead.mean(1) > 0) and np.any(lead.mean(1) < 0)
    assert _rhat(plain.draws["net.w_out"]) > 1.5, _rhat(plain.draws["net.w_out"])
    # ... while what they predict agrees with the identified form's
    for fit in (plain, ident):
        assert _rhat(fit.draws["obs_sd"]) < 1.05
