"""The default forecaster: stacking weights, mixture quantiles, transforms, seasonal rules."""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from bayes_ssm.inference import auto
from bayes_ssm.inference.auto_settings import AUTO_SVI
from bayes_ssm.inference.fitting import fit_svi
from bayes_ssm.inference.stacking import (
    mixture_counts,
    mixture_quantiles,
    stacking_objective,
    stacking_weights,
)
from bayes_ssm.models import StructuralTS


def _weekly(values, name="y"):
    index = pd.date_range("2015-01-03", periods=len(values), freq="W-SAT")
    return pd.Series(values, index=index, name=name)


def test_stacking_weights_equal_a_direct_optimisation():
    """EM fixed point == SLSQP on the simplex (scipy), on a toy lpd matrix."""
    rng = np.random.default_rng(0)
    lpd = np.column_stack(
        [
            stats.norm(0, 1).logpdf(rng.standard_t(3, 200)),
            stats.t(3).logpdf(rng.standard_t(3, 200)),
            stats.norm(0, 2).logpdf(rng.standard_t(3, 200)),
        ]
    )
    ours = stacking_weights(lpd)
    res = optimize.minimize(
        lambda w: -stacking_objective(w, lpd),
        np.full(3, 1 / 3),
        method="SLSQP",
        bounds=[(0, 1)] * 3,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1}],
        options={"ftol": 1e-14, "maxiter": 1000},
    )
    assert res.success
    np.testing.assert_allclose(ours, res.x, atol=2e-4)
    assert stacking_objective(ours, lpd) >= -res.fun - 1e-7
    # one candidate best at every point: it takes all the weight
    np.testing.assert_allclose(stacking_weights(lpd[:, [1]] + [[0.0, -5.0]]), [1, 0], atol=1e-6)


def test_mixture_quantiles_equal_the_weighted_mixture():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, (300, 3)), rng.normal(3, 0.5, (500, 3))
    w = np.array([0.3, 0.7])
    probs = np.array([0.025, 0.1, 0.5, 0.9, 0.975])
    ours = mixture_quantiles([a, b], w, probs)
    for t in range(3):
        pool = np.sort(np.concatenate([a[:, t], b[:, t]]))
        cdf = np.array([w[0] * np.mean(a[:, t] <= v) + w[1] * np.mean(b[:, t] <= v) for v in pool])
        for j, p in enumerate(probs):  # the smallest pooled value whose mixture CDF reaches p
            assert ours[j, t] == pool[np.argmax(cdf >= p - 1e-12)]
    assert mixture_counts([0.2, 0.5, 0.3], 7).tolist() == [1, 4, 2]
    assert mixture_counts([1 / 3] * 3, 1000).sum() == 1000


def test_box_cox_matches_scipy_and_inverts():
    y = np.array([0.5, 1.0, 2.0, 10.0])
    for lam in (0.0, 0.5, -0.3):
        tf = auto.resolve_transform(lam, y)
        np.testing.assert_allclose(tf.forward(y), stats.boxcox(y, lmbda=lam), rtol=1e-12)
        np.testing.assert_allclose(tf.inverse(tf.forward(y)), y, rtol=1e-12)
    assert str(auto.resolve_transform("auto", y)) == "log"
    assert str(auto.resolve_transform("auto", y - 1)) == "none"
    with pytest.raises(ValueError, match="positive"):
        auto.resolve_transform("log", y - 1)
    with pytest.raises(ValueError, match="transform"):
        auto.resolve_transform("sqrt", y)


def test_seasonal_rule_follows_frequency_and_data():
    rng = np.random.default_rng(2)
    t = np.arange(520)
    seasonal = np.sin(2 * np.pi * t / 52.18) + rng.normal(0, 0.3, t.size)
    walk = np.cumsum(rng.normal(0, 1, t.size))
    assert auto.seasonal_periods("W-SAT", seasonal) == [(52.18, 3)]
    assert auto.seasonal_periods("W-SAT", walk) == []  # no seasonality in the data
    assert auto.seasonal_periods("W-SAT", seasonal[:150]) == []  # under three cycles
    assert auto.seasonal_periods("MS", np.sin(2 * np.pi * t / 12) + walk * 0.01) == [(12, 3)]
    assert auto.seasonal_periods(None, seasonal) == []


def test_log_transform_forecasts_are_exp_of_log_scale_draws():
    rng = np.random.default_rng(3)
    y = _weekly(np.exp(1.0 + np.cumsum(rng.normal(0, 0.05, 60)) + rng.normal(0, 0.05, 60)))
    model = StructuralTS(trend=None)
    kw = {"steps": 400, "num_samples": 200}
    stacked = auto.auto_fit(
        y, key=0, transform="log", candidates={"level": model}, fit_kwargs=kw, recalibrate=False
    )  # the raw mixture (recalibration: tests/test_recalibration.py)
    assert stacked.weights.tolist() == [1.0] and str(stacked.transform) == "log"
    # the same fit by hand on log(y) (auto_fit's SVI settings), and its draws with the key auto
    # uses for candidate 0
    kw.update(AUTO_SVI)
    by_hand = fit_svi(model, np.log(y), key=jax.random.fold_in(jax.random.PRNGKey(0), 0), **kw)
    log_draws = by_hand.forecast_samples(
        5, num_samples=200, key=jax.random.fold_in(jax.random.PRNGKey(3), 0)
    )
    draws = stacked.forecast_samples(5, num_samples=200, key=3)
    np.testing.assert_allclose(draws, np.exp(log_draws), rtol=1e-6)
    frame = stacked.forecast(5, num_samples=200, key=3)
    np.testing.assert_allclose(
        frame["upper_95"],
        np.quantile(np.exp(log_draws), 0.975, axis=0, method="inverted_cdf"),
        rtol=1e-6,  # float32 draws
    )
    np.testing.assert_allclose(frame["mean"], np.exp(log_draws).mean(axis=0), rtol=1e-6)
    assert frame.index[0] == y.index[-1] + pd.offsets.Week(weekday=5)


@pytest.mark.slow
def test_stacking_prefers_the_candidate_that_generated_the_data():
    """Student-t vs Gaussian observation noise around a random walk. On heavy-tailed data the
    Student-t candidate takes the largest weight. On Gaussian data the Student-t candidate
    (large nu) predicts as the Gaussian does: the candidates are nested, so stacking splits
    the weight rather than picking one; the Gaussian keeps a real share and the LOO scores
    agree within 2 nats."""
    rng = np.random.default_rng(4)
    n = 200
    level = np.cumsum(rng.normal(0, 0.1, n))
    candidates = {
        "gaussian": StructuralTS(trend=None),
        "student_t": StructuralTS(trend=None, likelihood="student_t"),
    }
    heavy = auto.auto_fit(
        _weekly(level + 0.2 * rng.standard_t(1.5, n)),
        key=0,
        transform="none",
        candidates=candidates,
    )
    assert heavy.weights.idxmax() == "student_t" and heavy.weights["student_t"] > 0.8
    light = auto.auto_fit(
        _weekly(level + rng.normal(0, 0.5, n)), key=0, transform="none", candidates=candidates
    )
    table = light.summary()
    assert abs(table.loc["gaussian", "elpd_loo"] - table.loc["student_t", "elpd_loo"]) < 2
    assert light.weights["gaussian"] > 0.25
