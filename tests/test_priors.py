"""Priors on memory: HalfLife in user units, conversions to decay and step size."""

from __future__ import annotations

import datetime

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import pytest
from scipy import stats

from bayes_ssm.priors import HalfLife, decay_to_half_life, half_life_to_decay, half_life_to_dt


def test_half_life_units_convert_to_steps():
    week = datetime.timedelta(weeks=1)
    assert HalfLife(weeks=8).median_steps(step=week) == pytest.approx(8.0)
    assert HalfLife(days=56).median_steps(step=week) == pytest.approx(8.0)
    assert HalfLife(weeks=1).median_steps(step=datetime.timedelta(days=1)) == pytest.approx(7.0)
    assert HalfLife(hours=48).median_steps(step=datetime.timedelta(days=1)) == pytest.approx(2.0)
    assert HalfLife(steps=5).median_steps() == 5.0


def test_decay_halves_weight_after_half_life():
    h = jnp.array([0.5, 3.0, 8.0, 104.0])
    a = half_life_to_decay(h)
    np.testing.assert_allclose(np.asarray(a) ** np.asarray(h), 0.5, rtol=1e-5)
    np.testing.assert_allclose(decay_to_half_life(a), h, rtol=1e-5)


def test_dt_gives_the_half_life_for_a_rate():
    h = jnp.array([2.0, 8.0])
    rate = jnp.array([-0.5, -3.0])
    dt = half_life_to_dt(h, rate)
    np.testing.assert_allclose(np.exp(np.asarray(dt * rate)), half_life_to_decay(h), rtol=1e-6)
    # complex rates: the envelope |exp(dt A)| has the half-life
    dtc = half_life_to_dt(8.0, -0.25 + 3.0j)
    assert abs(np.exp(complex(dtc) * (-0.25 + 3.0j))) ** 8 == pytest.approx(0.5, rel=1e-5)


def test_distribution_is_lognormal_with_the_stated_median_and_interval():
    prior = HalfLife(weeks=8, spread=0.4)
    d = prior.distribution(step=datetime.timedelta(weeks=1))
    draws = np.asarray(d.sample(jax.random.key(0), (20000,)))
    ref = stats.lognorm(s=0.4, scale=8.0)
    assert stats.kstest(draws, ref.cdf).pvalue > 1e-3
    lo, hi = prior.interval(0.9, step=datetime.timedelta(weeks=1))
    np.testing.assert_allclose((lo, hi), ref.ppf([0.05, 0.95]), rtol=1e-6)


def test_sample_site_under_scope_has_name_and_shape():
    def frag():
        with numpyro.handlers.scope(prefix="ssd"):
            HalfLife(steps=4).sample("half_life", shape=(3,))

    tr = numpyro.handlers.trace(numpyro.handlers.seed(frag, 0)).get_trace()
    assert list(tr) == ["ssd/half_life"]
    assert tr["ssd/half_life"]["value"].shape == (3,)
    assert tr["ssd/half_life"]["fn"].event_shape == (3,)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"weeks": 0}, "weeks"),
        ({"weeks": -3.0}, "weeks"),
        ({"steps": float("nan")}, "steps"),
        ({"days": float("inf")}, "days"),
        ({}, "exactly one"),
        ({"weeks": 2, "days": 3}, "exactly one"),
        ({"steps": 4, "spread": 0.0}, "spread"),
        ({"steps": "8"}, "steps"),
    ],
)
def test_bad_half_life_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HalfLife(**kwargs)


def test_calendar_units_need_a_step():
    with pytest.raises(ValueError, match="step="):
        HalfLife(weeks=8).distribution()
    with pytest.raises(ValueError, match="step"):
        HalfLife(weeks=8).median_steps(step=datetime.timedelta(0))


def test_conversions_refuse_bad_values():
    with pytest.raises(ValueError, match="half_life"):
        half_life_to_decay(0.0)
    with pytest.raises(ValueError, match="half_life"):
        half_life_to_decay(jnp.array([1.0, -2.0]))
    with pytest.raises(ValueError, match="rate"):
        half_life_to_dt(4.0, 0.5)
    with pytest.raises(ValueError, match="decay"):
        decay_to_half_life(1.5)
