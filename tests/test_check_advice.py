"""bs.check: the user's parameters first, nuisance latents grouped, concrete advice."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import bayes_ssm as bs
from bayes_ssm.data.validation import as_series_data
from bayes_ssm.inference.diagnostics import FitWarning, check
from bayes_ssm.inference.fit import Fit

CHAINS, DRAWS = 4, 300


def _hand_made_fit(model, bad=(), diverging=0, **info):
    """A NUTS fit with independent normal draws (they mix perfectly) except the ``bad`` sites,
    whose chains sit apart; ``diverging`` divergent draws in chain 0."""
    rng = np.random.default_rng(0)
    sites = {name: () for name in model.parameter_sites}
    sites.update({"h_z": (20,), "obs_precision": (20,)})
    draws = {}
    for name, shape in sites.items():
        x = rng.normal(size=(CHAINS, DRAWS, *shape))
        if name in bad:
            x += np.arange(CHAINS).reshape((CHAINS, 1) + (1,) * len(shape))
        draws[name] = x
    div = np.zeros((CHAINS, DRAWS), bool)
    div[0, :diverging] = True
    stats = {"diverging": div, "energy": rng.normal(size=(CHAINS, DRAWS)) * 10}
    y = pd.Series(rng.normal(size=20), index=pd.date_range("2024-01-01", periods=20, freq="D"))
    info = {"num_warmup": 500, "target_accept": 0.8, "max_tree_depth": 10, **info}
    return Fit(model, as_series_data(y), {}, "nuts", draws, stats, info)


def test_nuisance_latents_are_grouped_after_the_users_parameters():
    fit = _hand_made_fit(bs.StochasticVolatility(), bad=("phi", "h_z", "obs_precision"))
    problems = check(fit, warn=False)
    assert problems[0].startswith("r_hat of phi is")
    assert "num_warmup=1000 (now 500)" in problems[0]
    # no sentence per nuisance site; one grouped sentence, last, naming both in words
    assert not any(p.startswith(("r_hat of h_z", "r_hat of obs_precision")) for p in problems)
    grouped = problems[-1]
    assert grouped.startswith("2 of the model's internal latent variables mix poorly")
    assert "h_z (standardised log-volatility innovations)" in grouped
    assert "obs_precision (" in grouped
    # a good fit of the same shape: nothing at all
    assert check(_hand_made_fit(bs.StochasticVolatility()), warn=False) == []


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (
            bs.StructuralTS(trend="local_linear", likelihood="negative_binomial"),
            'state_parameterization="trend_rms"',
        ),
        (
            bs.StructuralTS(trend=None, likelihood="negative_binomial"),
            'state_parameterization="mixed_rms"',
        ),
        (
            bs.StructuralTS(
                trend=None, likelihood="negative_binomial", state_parameterization="mixed_rms"
            ),
            'state_parameterization="noncentred"',
        ),
    ],
)
def test_divergences_name_target_accept_and_a_coordinate_system(model, expected):
    fit = _hand_made_fit(model, diverging=12)
    with pytest.warns(FitWarning, match="target_accept=0.95"):
        problems = check(fit)
    (div,) = [p for p in problems if "divergence" in p]
    assert div.startswith("12 of 1200 draws") and expected in div, div


def test_divergences_of_a_gaussian_model_do_not_suggest_state_coordinates():
    fit = _hand_made_fit(bs.StructuralTS(), diverging=3)
    (div,) = [p for p in check(fit, warn=False) if "divergence" in p]
    assert "target_accept=0.95" in div and "state_parameterization" not in div


@pytest.mark.parametrize(
    "now, advice",
    [(0.8, "target_accept=0.95"), (0.95, "target_accept=0.975"), (0.99, "already 0.99")],
)
def test_divergence_advice_never_asks_for_the_target_accept_already_used(now, advice):
    fit = _hand_made_fit(bs.StructuralTS(), diverging=3, target_accept=now)
    (div,) = [p for p in check(fit, warn=False) if "divergence" in p]
    assert advice in div, div
    assert f"(now {now})" in div or "already" in div


def test_svi_on_stochastic_volatility_warns_at_fit_and_in_check():
    rng = np.random.default_rng(1)
    returns = pd.Series(
        rng.standard_t(5, size=60) * 0.01, index=pd.date_range("2024-01-01", periods=60)
    )
    # The warning comes before any compiling: as an error it stops the fit at once.
    with warnings.catch_warnings():
        warnings.simplefilter("error", FitWarning)
        with pytest.raises(FitWarning, match=r"0\.0015 by SVI vs 0\.0064 by NUTS"):
            bs.fit_svi(bs.StochasticVolatility(), returns, key=0, progress=False)
    nuts = _hand_made_fit(bs.StochasticVolatility())
    svi = Fit(
        nuts.model,
        nuts.data,
        {},
        "svi",
        {k: v[:1] for k, v in nuts.draws.items()},
        info={"converged": True, "guide": "normal"},
    )
    (problem,) = check(svi, warn=False)
    assert "overconfident" in problem and "bs.fit_nuts" in problem
