"""ArviZ view of a fit, summary, plain-words checks (planted problems), LOO comparison."""

from __future__ import annotations

import warnings

import arviz_stats
import numpy as np
import pytest
import xarray as xr
from toy_models import ToyDivergent, ToyLocalLevel, kalman_predictive_numpy, simulate_local_level

import bayes_ssm.inference.fitting as bi
from bayes_ssm.inference.diagnostics import FitWarning, check, compare, summary
from bayes_ssm.inference.fit import Fit


@pytest.fixture(scope="module")
def data():
    y, _ = simulate_local_level(np.random.default_rng(4), 60, 1.0, 0.3, start=3.0)
    y[5] = np.nan
    return y


@pytest.fixture(scope="module")
def nuts_fit(data):
    return bi.fit_nuts(
        ToyLocalLevel(), data, key=0, num_chains=2, num_warmup=300, num_samples=300, progress=False
    )


def _loglik_numpy(y, obs_sd, level_sd, scales):
    """Total log likelihood by prediction-error decomposition, via the closed-form predictive."""
    total = 0.0
    p1 = (ToyLocalLevel().init_sd * scales["scale"]) ** 2
    for t in range(len(y)):
        if np.isnan(y[t]):
            continue
        m, s = kalman_predictive_numpy(y[:t], obs_sd, level_sd, scales["loc"], p1, 1)
        total += -0.5 * np.log(2 * np.pi * s[0] ** 2) - 0.5 * ((y[t] - m[0]) / s[0]) ** 2
    return total


def test_to_arviz_groups_and_log_likelihood(nuts_fit, data):
    tree = nuts_fit.to_arviz()
    assert isinstance(tree, xr.DataTree)
    for group in (
        "posterior",
        "sample_stats",
        "log_likelihood",
        "posterior_predictive",
        "observed_data",
    ):
        assert group in tree.children, group
    observed = ~np.isnan(data)
    ll = tree["log_likelihood"]["y"]
    assert ll.dims == ("chain", "draw", "time") and ll.shape == (2, 300, observed.sum())
    assert tree["posterior_predictive"]["y"].shape == (2, 300, observed.sum())
    np.testing.assert_array_equal(tree["observed_data"]["y"].to_numpy(), data[observed])
    assert tree["sample_stats"]["diverging"].dtype == bool
    # pointwise terms sum to the exact log likelihood at that draw (independent computation)
    obs_sd = float(tree["posterior"]["obs_sd"][1, 17])
    level_sd = float(tree["posterior"]["level_sd"][1, 17])
    expected = _loglik_numpy(data, obs_sd, level_sd, nuts_fit.scales)
    np.testing.assert_allclose(float(ll[1, 17].sum()), expected, rtol=1e-4)
    loo = arviz_stats.loo(tree)
    assert np.isfinite(loo.elpd) and loo.n_data_points == observed.sum()


def test_summary_columns(nuts_fit):
    table = summary(nuts_fit)
    assert list(table.index) == ["obs_sd", "level_sd"]
    for col in ("mean", "sd", "ess_bulk", "ess_tail", "r_hat"):
        assert col in table.columns
    assert any(c.startswith("eti94") for c in table.columns)
    assert table.attrs["divergences"] == int(nuts_fit.sample_stats["diverging"].sum())
    assert len(table.attrs["bfmi"]) == 2
    np.testing.assert_allclose(
        table.loc["obs_sd", "mean"], nuts_fit.draws["obs_sd"].mean(), rtol=1e-5
    )
    hdi = summary(nuts_fit, ci_kind="hdi", ci_prob=0.9)
    assert any(c.startswith("hdi90") for c in hdi.columns)
    with pytest.raises(ValueError, match="ci_prob"):
        summary(nuts_fit, ci_prob=1.0)


def test_check_passes_a_good_fit(nuts_fit):
    with warnings.catch_warnings():
        warnings.simplefilter("error", FitWarning)
        assert check(nuts_fit) == []


def test_check_flags_planted_divergences():
    fit = bi.fit_nuts(
        ToyDivergent(),
        np.zeros(10),
        key=1,
        num_chains=2,
        num_warmup=50,
        num_samples=200,
        progress=False,
    )
    n_div = int(fit.sample_stats["diverging"].sum())
    assert n_div > 0
    with pytest.warns(FitWarning) as caught:
        problems = check(fit)
    assert any(f"{n_div} of 400 draws" in p and "divergence" in p for p in problems)
    assert any("divergence" in str(w.message) for w in caught)


def test_check_flags_chains_that_disagree(nuts_fit):
    draws = {k: np.array(v) for k, v in nuts_fit.draws.items()}
    draws["level_sd"][1] += 1.0  # chain 1 sits elsewhere
    stats = dict(nuts_fit.sample_stats)
    stats["diverging"] = np.zeros_like(stats["diverging"])
    bad = Fit(
        model=nuts_fit.model,
        data=nuts_fit.data,
        scales=nuts_fit.scales,
        method="nuts",
        draws=draws,
        sample_stats=stats,
        info=nuts_fit.info,
    )
    problems = check(bad, warn=False)
    assert any(p.startswith("r_hat of level_sd is") for p in problems)
    assert not any("obs_sd" in p and "r_hat" in p for p in problems)
    # low ESS: keep 30 draws per chain
    few = {k: np.array(v[:, :30]) for k, v in nuts_fit.draws.items()}
    short = Fit(
        model=nuts_fit.model,
        data=nuts_fit.data,
        scales=nuts_fit.scales,
        method="nuts",
        draws=few,
        sample_stats={k: v[:, :30] for k, v in stats.items()},
        info=nuts_fit.info,
    )
    assert any("effective sample size" in p for p in check(short, warn=False))


def test_check_flags_svi_not_converged(data):
    fit = bi.fit_svi(ToyLocalLevel(), data, key=0, steps=100, check_every=50, progress=False)
    with pytest.warns(FitWarning, match="did not converge"):
        check(fit)


def test_compare_by_loo(nuts_fit, data):
    # a model whose level barely moves cannot follow the random walk: LOO must rank it last
    stiff = bi.fit_svi(ToyLocalLevel(level_sd=0.01), data, key=0, steps=1000, progress=False)
    table = compare({"local_level": nuts_fit, "stiff": stiff})
    assert list(table.index) == ["local_level", "stiff"]
    assert "elpd" in table.columns and "weight" in table.columns
    assert table.loc["local_level", "elpd"] > table.loc["stiff", "elpd"]
    with pytest.raises(ValueError, match="at least two"):
        compare([nuts_fit])
