"""Count draws: our Poisson / negative-binomial samplers against scipy.stats at small and huge
means, the unchanged log-pmf, and the warning on exploding count forecasts."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pandas as pd
import pytest
from scipy import stats

from bayes_ssm.data.validation import as_series_data
from bayes_ssm.inference.fit import Fit
from bayes_ssm.inference.forecast import warn_exploding_counts
from bayes_ssm.kernels.counts import gamma_poisson_counts, poisson_counts
from bayes_ssm.models import StructuralTS
from bayes_ssm.models.likelihoods import NegativeBinomialCounts, observation_distribution

INT32_MAX = 2**31 - 1
N = 100_000


def _ks_distance(draws, cdf):
    """``max |ECDF - CDF|`` over the support points of integer-valued draws."""
    values, counts = np.unique(np.asarray(draws, dtype=np.float64), return_counts=True)
    ecdf = np.cumsum(counts) / counts.sum()
    ref = cdf(values)
    below = cdf(values - 1)  # the CDF just before each value, against the ECDF just before
    return max(np.max(np.abs(ecdf - ref)), np.max(np.abs(np.r_[0.0, ecdf[:-1]] - below)))


# KS 0.1 % critical value ~1.95 / sqrt(n) for a continuous law; conservative for a discrete one
KS_BOUND = 2.0 / np.sqrt(N)


def _moments_agree(draws, mean, var, excess_kurtosis):
    """Sample mean and variance within 5 standard errors of the closed form."""
    x = np.asarray(draws, dtype=np.float64)
    se_mean = np.sqrt(var / N)
    se_var = var * np.sqrt((2.0 + excess_kurtosis) / N)
    assert abs(x.mean() - mean) < 5 * se_mean, (x.mean(), mean)
    assert abs(x.var() - var) < 5 * se_var, (x.var(), var)


# ------------------------------------------------------------------ Poisson
# both branches and the switch: exact (< 1e3), normal with the skewness term (>= 1e3)
@pytest.mark.parametrize("rate", [0.7, 3.0, 30.0, 999.0, 1e3, 2e4, 3e6, 2e7, 1e10])
def test_poisson_counts_follow_scipy_in_float64(rate, x64):
    draws = poisson_counts(jax.random.PRNGKey(0), jnp.full((N,), rate))
    assert draws.dtype == jnp.float64
    d = np.asarray(draws)
    np.testing.assert_array_equal(d, np.round(d))
    assert _ks_distance(d, stats.poisson(rate).cdf) < KS_BOUND
    _moments_agree(d, rate, rate, 1.0 / rate)


@pytest.mark.parametrize("rate", [3.0, 5e3, 2e5, 9e6, 1e8, 1e10, 1e12])
def test_poisson_counts_do_not_clip_in_float32(rate):
    """``jax.random.poisson`` gives 2**31 - 1 for every draw at mean 1e10 (int32); ours is
    float32 with the Poisson mean and variance."""
    draws = poisson_counts(jax.random.PRNGKey(1), jnp.float32(rate), (N,))
    assert draws.dtype == jnp.float32
    _moments_agree(draws, rate, rate, 1.0 / rate)
    if rate > INT32_MAX:
        assert np.asarray(jax.random.poisson(jax.random.PRNGKey(1), rate, (3,))).max() == INT32_MAX


@pytest.mark.parametrize("rate", [1e3, 4e3])
def test_poisson_counts_are_skewed_like_poisson_above_the_switch(rate, x64):
    """The third central moment is ``rate``: the Cornish-Fisher term ``(z^2 - 1) / 6`` is
    there (a plain rounded normal has 0, 13 standard errors off at 1e3 with 1e6 draws)."""
    n = 1_000_000
    x = np.asarray(poisson_counts(jax.random.PRNGKey(7), jnp.float64(rate), (n,)))
    m3 = np.mean((x - x.mean()) ** 3)
    assert abs(m3 - rate) < 4 * np.sqrt(6 * rate**3 / n), (m3, rate)


def test_poisson_counts_edge_values():
    rate = jnp.array([0.0, 0.0, jnp.nan, jnp.inf], jnp.float32)
    out = np.asarray(poisson_counts(jax.random.PRNGKey(2), rate))
    assert out[0] == 0 and out[1] == 0 and np.isnan(out[2]) and out[3] == np.inf
    # broadcasting a scalar rate to a shape, and a batch of mixed branches in one call
    mixed = jnp.array([2.0, 2e3, 2e7, 2e10], jnp.float32)
    out = np.asarray(poisson_counts(jax.random.PRNGKey(3), mixed, (5000, 4)))
    np.testing.assert_allclose(out.mean(axis=0), mixed, rtol=0.05)


# ------------------------------------------------------- negative binomial
@pytest.mark.parametrize(("mean", "k"), [(4.0, 1.5), (50.0, 20.0), (3e4, 0.4), (1e10, 20.0)])
def test_gamma_poisson_counts_follow_scipy_nbinom(mean, k, x64):
    logits = jnp.log(mean) - jnp.log(k)
    draws = np.asarray(gamma_poisson_counts(jax.random.PRNGKey(4), logits, k, (N,)))
    law = stats.nbinom(k, k / (k + mean))
    assert _ks_distance(draws, law.cdf) < KS_BOUND
    _moments_agree(draws, law.mean(), law.var(), law.stats(moments="k"))


@pytest.mark.parametrize(("mean", "k"), [(10.0, 3.0), (1e10, 20.0), (1e10, 2.0)])
def test_negative_binomial_forecast_draws_do_not_saturate_in_float32(mean, k):
    """The observation law of the forecast site, in float32: NumPyro's NegativeBinomialLogits
    gave 2147483647 for every draw at mean 1e10; ours has the NB mean and variance."""
    signal = jnp.full((N,), jnp.log(mean), jnp.float32)
    law = observation_distribution("negative_binomial", signal, {"concentration": jnp.float32(k)})
    assert isinstance(law, NegativeBinomialCounts)
    draws = law.sample(jax.random.PRNGKey(5))
    assert draws.shape == (N,) and draws.dtype == jnp.float32
    ref = stats.nbinom(k, k / (k + mean))
    _moments_agree(draws, ref.mean(), ref.var(), ref.stats(moments="k"))
    if mean > INT32_MAX:
        assert not np.any(np.asarray(draws) == np.float32(INT32_MAX))
        old = dist.NegativeBinomialLogits(jnp.float32(k), signal[:100] - jnp.log(k))
        assert np.mean(np.asarray(old.sample(jax.random.PRNGKey(5))) == INT32_MAX) > 0.5
    # sample_shape in front of the batch shape
    small = observation_distribution("negative_binomial", signal[:3], {"concentration": k})
    assert small.sample(jax.random.PRNGKey(6), (2, 4)).shape == (2, 4, 3)


def test_negative_binomial_log_prob_unchanged(x64):
    """Only sampling changed: the log-pmf is NumPyro's, which equals scipy's."""
    y = jnp.array([0.0, 1.0, 7.0, 120.0, 5e4, 3e9, 1.2e10])
    mean = jnp.array([0.5, 3.0, 10.0, 100.0, 4e4, 2e9, 1e10])
    for k in (0.3, 4.0, 60.0):
        logits = jnp.log(mean) - jnp.log(k)
        ours = NegativeBinomialCounts(k, logits).log_prob(y)
        numpyro_lp = dist.NegativeBinomialLogits(k, logits).log_prob(y)
        np.testing.assert_array_equal(ours, numpyro_lp)
        ref = stats.nbinom.logpmf(np.asarray(y), k, k / (k + np.asarray(mean)))
        # both lose digits to lgamma cancellation at counts of 1e9 and more (~1e-6 relative)
        np.testing.assert_allclose(ours[:5], ref[:5], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(ours[5:], ref[5:], rtol=1e-5)
    # the observation law's clip of the log-mean at +-40 is unchanged too
    law = observation_distribution("negative_binomial", jnp.array([50.0]), {"concentration": 2.0})
    np.testing.assert_allclose(law.mean, 2.0 * jnp.exp(40.0 - jnp.log(2.0)), rtol=1e-12)


# ------------------------------------------------------ the forecast warning
def test_warn_exploding_counts_bound():
    observed = np.array([3.0, np.nan, 120.0, 40.0])
    sane = np.full((50, 4), 119_000.0)  # below 1000 x 120
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_exploding_counts(sane, observed) == 0
    wild = sane.copy()
    wild[[3, 7], 2] = 2.5e9
    with pytest.warns(UserWarning, match=r"2 of 200 count forecast draws .* exceed 1000 x .*120"):
        assert warn_exploding_counts(wild, observed) == 2
    # an all-zero (or all-missing) history: the bound is the factor itself
    with pytest.warns(UserWarning, match="largest draw is 1e\\+03"):
        warn_exploding_counts(np.array([[1000.5]]), np.array([0.0, np.nan]))


def _count_fit(sigma_slope: float, num_draws: int = 16) -> Fit:
    """A hand-made NUTS-like fit of a negative-binomial local linear trend on 30 days of counts
    near 50: flat state path (every innovation 0) at the data level, slope sd as given."""
    rng = np.random.default_rng(0)
    index = pd.date_range("2020-03-01", periods=30, freq="D", name="date")
    y = pd.Series(rng.poisson(50.0, 30).astype(float), index=index, name="deaths")
    model = StructuralTS(
        likelihood="negative_binomial", trend="local_linear", state_parameterization="noncentred"
    )
    data = as_series_data(y)
    scales = model.data_scales(data.y)
    s = (1, num_draws)
    draws = {
        "sigma_level": np.full(s, 0.02),
        "sigma_slope": np.full(s, sigma_slope),
        "concentration": np.full(s, 30.0),
        "state_init_z": np.zeros(s + (2,)),
        "state_z": np.zeros(s + (29, 2)),
    }
    return Fit(model, data, scales, "nuts", draws)


def test_count_forecast_warns_when_it_explodes_and_not_otherwise():
    sane = _count_fit(sigma_slope=0.005)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fc = sane.forecast(14, key=1)
    assert fc.index.name == "date"
    assert 20 < fc["median"].iloc[0] < 120 and fc["upper_95"].max() < 1000
    wild = _count_fit(sigma_slope=3.0)  # slope innovations of e^3 per day: a diverged trend
    with pytest.warns(UserWarning, match="exceed 1000 x the largest observed count"):
        draws = wild.forecast_samples(14, key=1)
    # far past int32 (NumPyro's sampler clipped these at 2147483647), still finite
    assert draws.max() > 1e12 and np.isfinite(draws).all()
    assert not np.any(draws == np.float32(INT32_MAX))
