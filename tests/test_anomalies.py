"""Anomaly detection: planted shocks are found, tail probabilities match the exact predictive."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from scipy import stats  # noqa: E402
from toy_models import ToyLocalLevel  # noqa: E402

import bayes_ssm.inference.fitting as infer  # noqa: E402
from bayes_ssm.inference.anomaly import anomalies  # noqa: E402
from bayes_ssm.plotting import plot_anomalies  # noqa: E402

SPIKES = {40: 7.0, 80: -7.0}
MISSING = [60, 61, 62]


@pytest.fixture(scope="module")
def shocked_fit():
    rng = np.random.default_rng(7)
    n = 120
    y = np.cumsum(rng.normal(0, 0.3, n)) + rng.normal(0, 1.0, n) + 10
    for t, jump in SPIKES.items():
        y[t] += jump
    y[MISSING] = np.nan
    series = pd.Series(y, index=pd.date_range("2023-01-02", periods=n, freq="W-MON"))
    return infer.fit_svi(ToyLocalLevel(), series, key=0, progress=False)


def exact_tail_probs(fit):
    """Two-sided tail probability under the posterior mixture of exact Kalman predictives."""
    y = fit.data.y
    obs_var = fit.draws["obs_sd"].reshape(-1) ** 2
    level_var = fit.draws["level_sd"].reshape(-1) ** 2
    a = np.full_like(obs_var, fit.scales["loc"])
    p = np.full_like(obs_var, (10.0 * fit.scales["scale"]) ** 2)  # init_sd * scale
    out = np.full(y.shape, np.nan)
    for t, y_t in enumerate(y):
        f = p + obs_var
        if not np.isnan(y_t):
            cdf = np.mean(stats.norm.cdf((y_t - a) / np.sqrt(f)))
            out[t] = 2 * min(cdf, 1 - cdf)
            k = p / f
            a, p = a + k * (y_t - a), p * (1 - k)
        p = p + level_var
    return out


def test_planted_shocks_are_flagged(shocked_fit):
    found = anomalies(shocked_fit, level=0.99)
    stamps = shocked_fit.data.index
    for t, jump in SPIKES.items():
        assert stamps[t] in found.index
        row = found.loc[stamps[t]]
        assert row["direction"] == ("high" if jump > 0 else "low")
        assert row["tail_prob"] < 0.01
    assert len(found) <= len(SPIKES) + 3  # few false alarms at 99%
    assert not found.index.isin(stamps[MISSING]).any()
    assert found.attrs["level"] == 0.99


def test_tail_probabilities_match_the_exact_predictive(shocked_fit):
    full = anomalies(shocked_fit, level=0.99, all_steps=True, replicates=8, key=1)
    exact = exact_tail_probs(shocked_fit)
    observed = ~np.isnan(shocked_fit.data.y)
    np.testing.assert_allclose(full["tail_prob"][observed], exact[observed], atol=0.05)
    assert full["tail_prob"][~observed].isna().all()
    assert not full["is_anomaly"][~observed].any()
    assert (full["lower"] < full["upper"]).all()


def test_anomalies_plot_on_the_band(shocked_fit, tmp_path):
    full = anomalies(shocked_fit, all_steps=True)
    ax = plot_anomalies(full[full["is_anomaly"]], band=full)
    assert ax.get_xlabel() and ax.get_ylabel()
    ax.figure.savefig(tmp_path / "anomalies.png", dpi=80)
    assert (tmp_path / "anomalies.png").stat().st_size > 5_000


@pytest.mark.parametrize("level", [0.0, 1.0, 99])
def test_level_outside_unit_interval_is_refused(shocked_fit, level):
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        anomalies(shocked_fit, level=level)


def test_structural_model_flags_a_market_shock():
    from bayes_ssm.models.structural import StructuralTS

    rng = np.random.default_rng(3)
    n = 150
    y = np.cumsum(rng.normal(0, 0.2, n)) + rng.normal(0, 0.5, n)
    y[100] += 5.0
    y[[20, 21]] = np.nan
    series = pd.Series(y, index=pd.bdate_range("2024-01-01", periods=n))
    fit = infer.fit_svi(StructuralTS(trend=None), series, key=0, progress=False)
    found = anomalies(fit, level=0.99)
    assert series.index[100] in found.index
    assert found.loc[series.index[100], "direction"] == "high"
    assert len(found) <= 4
    assert not found.index.isin(series.index[[20, 21]]).any()
