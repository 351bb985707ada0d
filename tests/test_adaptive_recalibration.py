"""Adaptive conformal recalibration (bayes_ssm.inference.adaptive_recalibration).

The recursion against a hand computation, the coverage guarantee of Gibbs & Candès (2021,
Proposition 4.1) on simulated PIT sequences with and without a variance break (against the
static map's coverage on the same sequence), and the mode end to end through ``StackedFit``
and the CLI.
"""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from scipy import stats

from bayes_ssm.cli import _common, main
from bayes_ssm.inference.adaptive_recalibration import (
    GAMMA,
    aci_path,
    aci_run,
    adaptive_levels,
    check_gamma,
    select_gamma,
)
from bayes_ssm.inference.recalibration import check_mode, recalibrated_levels


def aci_bound(start, gamma, num):
    """Gibbs & Candès (2021), Prop. 4.1:
    ``|mean miss - p| <= (max(l1, 1 - l1) + gamma) / (gamma T)``."""
    return (max(start, 1 - start) + gamma) / (gamma * num)


def test_recursion_equals_a_hand_computation():
    pit = np.array([[0.01], [np.nan], [0.5], [0.99], [0.02]])
    # p = 0.1, gamma = 0.1: a miss (u < l) moves l by 0.1 * (0.1 - 1), a hit by 0.1 * 0.1;
    # the missing outcome changes nothing
    path = aci_path(pit, [0.1], gamma=0.1)[:, 0, 0]
    np.testing.assert_allclose(path, [0.1, 0.01, 0.01, 0.02, 0.03, -0.06])
    # two levels and two steps at once: each column its own recursion
    two = aci_path(np.column_stack([pit[:, 0], 1 - pit[:, 0]]), [0.1, 0.9], gamma=0.1)
    np.testing.assert_allclose(two[:, 0, 0], path)
    u = 1 - pit[:, 0]
    hand = [0.9]
    for value in u:
        hand.append(hand[-1] if np.isnan(value) else hand[-1] + 0.1 * (0.9 - (value < hand[-1])))
    np.testing.assert_allclose(two[:, 1, 1], hand)


def test_online_loss_uses_the_levels_known_at_each_origin():
    # the same PIT values as 1-step (column 0) and 2-step (column 1) outcomes: a 2-step outcome
    # of origin s is known at s + 2, so origin s forecasts with the level after origin s - 2
    col = np.array([0.01, 0.5, 0.99])
    final, loss = aci_run(np.column_stack([col, col]), [0.1], gamma=0.1)
    path = [0.1, 0.01, 0.02, 0.03]  # the recursion, as in the hand computation above
    rho = lambda u, level: (u - level) * (0.1 - (u < level))  # noqa: E731
    one_step = np.mean([rho(col[s], path[s]) for s in range(3)])
    two_step = np.mean([rho(col[s], path[max(s - 1, 0)]) for s in range(3)])
    np.testing.assert_allclose(loss[0], [one_step, two_step])
    np.testing.assert_allclose(final[0], [0.03, 0.03])


def test_auto_gamma_is_small_when_stationary_and_large_after_a_drift():
    rng = np.random.default_rng(6)
    calm = rng.random((1500, 1))
    # a PIT that drifts: the model's median is too high, then too low, in long stretches
    drift = stats.norm.cdf(rng.standard_normal(1500) + 1.5 * np.sign(np.sin(np.arange(1500) / 40)))
    chosen = select_gamma(np.column_stack([calm[:, 0], drift]))
    assert chosen[0] <= 0.002 and chosen[1] >= 0.02


def misses(pit, level):
    """Outcome t below the level in force for it, ``pit (T,)``, ``level (T,)``."""
    return (pit < level).astype(float)


def break_pit(rng, before, after, scale):
    """PIT values under a N(0, 1) forecaster of N(0, 1) data, then of N(0, scale^2) data."""
    y = np.concatenate([rng.standard_normal(before), scale * rng.standard_normal(after)])
    return stats.norm.cdf(y)


@pytest.mark.parametrize("p", [0.025, 0.1, 0.9, 0.975])
def test_long_run_coverage_within_the_aci_bound_after_a_variance_break(p):
    rng = np.random.default_rng(3)
    before, after = 1000, 3000
    pit = break_pit(rng, before, after, 3.0)
    path = aci_path(pit[:, None], [p])[:-1, 0, 0]
    bound = aci_bound(p, GAMMA, pit.size)
    assert abs(misses(pit, path).mean() - p) <= bound
    # the static map (the empirical PIT quantile of the data before the break, i.e. what
    # the in-sample map had learnt) misses far more often than the bound allows
    static = recalibrated_levels(pit[:before, None], [p], "quantile")[0, 0]
    assert abs(misses(pit, np.full(pit.size, static)).mean() - p) > 2 * bound
    # after the break the adaptive levels are those of the new law (PIT quantile of N(0, 9))
    target = stats.norm.cdf(3.0 * stats.norm.ppf(p))
    assert abs(np.median(path[-1000:]) - target) < 0.03


def test_stationary_pit_stays_near_nominal():
    rng = np.random.default_rng(4)
    pit = rng.random((2000, 2))  # calibrated: uniform PIT values, two horizon steps
    probs = [0.025, 0.1, 0.5, 0.9, 0.975]
    path = aci_path(pit, probs)
    for j, p in enumerate(probs):
        for h in range(2):
            miss = misses(pit[:, h], path[:-1, j, h]).mean()
            assert abs(miss - p) <= aci_bound(p, GAMMA, pit.shape[0])
            assert abs(miss - p) < 0.02
    # the final map is close to the identity, and widen-only is never narrower
    two_sided = adaptive_levels(pit, probs, widen=False)
    np.testing.assert_allclose(two_sided, np.array(probs)[:, None] * np.ones(2), atol=0.06)
    widened = adaptive_levels(pit, probs)
    lower, upper = np.array(probs) < 0.5, np.array(probs) > 0.5
    assert np.all(widened[lower] <= np.array(probs)[lower, None])
    assert np.all(widened[upper] >= np.array(probs)[upper, None])


def test_recent_misses_widen_the_next_interval_and_the_static_map_does_not():
    rng = np.random.default_rng(5)
    pit = rng.random((1000, 1))
    pit[-10:] = 0.001  # the last 10 outcomes far below the model's 2.5% quantile
    adaptive = recalibrated_levels(pit, [0.025, 0.975], "adaptive")
    static = recalibrated_levels(pit, [0.025, 0.975], "widen")
    # 10 misses move the 2.5% level by 10 * gamma * 0.975 ~ 0.05: to the smallest draw; the
    # static map sees 10 small values among 1000, which its 2.5% quantile hardly notices
    assert adaptive[0, 0] < 1e-9 and static[0, 0] > 0.01
    np.testing.assert_allclose(adaptive[1, 0], 0.975, atol=0.03)  # the upper tail: untouched
    # and recalibrated_levels takes the full sequence when given (the adaptive data)
    calm = rng.random((1000, 1))
    levels = recalibrated_levels(calm, [0.025], "adaptive", np.vstack([calm, pit[-10:]]))
    assert levels[0, 0] < 0.01


def test_bad_options_raise_clear_errors():
    for bad in (0.0, 1.0, -0.1, float("nan"), "big"):
        with pytest.raises(ValueError, match="step size gamma"):
            check_gamma(bad)
    with pytest.raises(ValueError, match="'adaptive'"):
        check_mode("adaptiv")
    assert check_mode("adaptive") == "adaptive"
    ns = argparse.Namespace
    assert _common.recalibrate_option(ns(recalibrate="adaptive")) == "adaptive"
    with pytest.raises(ValueError, match="--recalibrate takes one of"):
        _common.recalibrate_option(ns(recalibrate="sometimes"))


def test_cli_recalibrate_map_is_parsed_and_checked(capsys):
    argv = ["forecast", "--dataset", "ili", "--horizon", "3", "--quiet"]
    with pytest.raises(SystemExit) as err:
        main([*argv, "--recalibrate", "sometimes"])
    assert err.value.code == 2
    assert "--recalibrate takes one of quantile, widen, adaptive" in capsys.readouterr().err
    parser = argparse.ArgumentParser()
    _common.add_recalibrate_arg(parser)
    assert parser.parse_args(["--recalibrate", "adaptive"]).recalibrate == "adaptive"
    assert parser.parse_args(["--recalibrate"]).recalibrate is True
    assert parser.parse_args(["--no-recalibrate"]).recalibrate is False
    assert parser.parse_args([]).recalibrate is None


@pytest.fixture
def _x64():
    import jax

    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", False)


def test_stacked_forecast_adaptive_after_a_break_and_says_so(_x64):
    from tests.test_recalibration import level_fit, simulate_level, stacked

    rng = np.random.default_rng(11)
    y = simulate_level(rng, 200, 0.2, 0.1)
    y[-25:] += 0.8 * rng.standard_normal(25)  # the last 25 weeks: 4x the noise
    fit = level_fit(y, sigma_obs=0.2, sigma_level=0.1, draws=2000)  # the model before it
    adaptive, widen = stacked(fit, "adaptive"), stacked(fit, "widen")
    fc, fc_widen = adaptive.forecast(3, key=0), widen.forecast(3, key=0)
    fc_off = stacked(fit, False).forecast(3, key=0)
    assert "adaptive map" in fc.attrs["recalibration"]
    # burn 20: step h has outcomes y_{21+h-1} .. y_199 (0-based), 179 + 178 + 177 values
    assert fc.attrs["recalibration"].startswith("recalibrated from 534 in-sample PIT values")
    width = lambda f: (f["upper_95"] - f["lower_95"]).to_numpy()  # noqa: E731
    # the recent misses widen the 95% intervals beyond the static map's (which sees them
    # among 177 origins) and well beyond the model's
    assert np.all(width(fc) > width(fc_widen)) and np.all(width(fc) > 1.3 * width(fc_off))
    # the frame's quantiles == the quantiles of the recalibrated draws (two computations)
    draws = adaptive.forecast_samples(3, num_samples=4000, key=0)
    q = np.quantile(draws, [0.1, 0.9], axis=0)
    np.testing.assert_allclose(q[0], fc["lower_80"], atol=0.05 * width(fc).mean())
    np.testing.assert_allclose(q[1], fc["upper_80"], atol=0.05 * width(fc).mean())


def test_recent_rows_extend_the_in_sample_table_and_leave_it_unchanged(_x64):
    from bayes_ssm.inference.recalibration import candidate_pit, in_sample_scores
    from tests.test_recalibration import level_fit, simulate_level

    y = simulate_level(np.random.default_rng(12), 80, 0.3, 0.2)
    fit = level_fit(y, sigma_obs=0.3, sigma_level=0.2)
    scores = in_sample_scores({"level": fit}, 3)
    old, _ = candidate_pit(fit, 3, burn=scores["burn"])  # the table without recent rows
    np.testing.assert_allclose(scores["pit"]["level"], old, rtol=0, atol=1e-12)
    recent = scores["recent"]["level"]  # origins n-3, n-2: steps past the end are NaN
    assert recent.shape == (2, 3)
    np.testing.assert_array_equal(np.isfinite(recent), [[True, True, False], [True, False, False]])
    # a recent row's 1-step value == the 1-step table's value at that origin (horizon 1)
    one, _ = candidate_pit(fit, 1, burn=scores["burn"])
    np.testing.assert_allclose(recent[:, 0], one[-2:, 0], rtol=0, atol=1e-12)
