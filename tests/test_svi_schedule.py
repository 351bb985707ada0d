"""SVI's decaying step size and the stopping rule's nats floor (what ``bs.auto_fit`` uses):
same key, same fit; a converged case stops earlier than with the constant step size, at a
loss no worse and with the same forecast; a stalled optimiser is still flagged."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import pytest
from toy_models import simulate_local_level

import bayes_ssm.inference.fitting as bi
from bayes_ssm.inference.auto_settings import AUTO_SVI
from bayes_ssm.inference.diagnostics import check
from bayes_ssm.inference.schedules import default_optimizer
from bayes_ssm.inference.stacking import mixture_counts
from bayes_ssm.inference.svi_stop import StopRule, _no_progress
from bayes_ssm.models import StructuralTS


@pytest.fixture(scope="module")
def series():
    y, _ = simulate_local_level(np.random.default_rng(3), 120, 0.3, 0.15, start=2.0)
    return y


def test_decay_schedule_is_the_documented_step_size():
    """10 x lr at step 0, halved every 250 steps, floored at lr / 2: Adam's first update of a
    unit gradient equals the schedule's value (Adam's first step is lr * sign(g))."""
    opt = default_optimizer(0.01, "decay")
    assert default_optimizer(0.01, "decay") is opt  # cached: one static argument, one program
    params = {"x": jnp.zeros(1)}

    def step(state, _):
        update, state = opt.update({"x": jnp.ones(1)}, state, params)
        return state, -update["x"][0]

    _, sizes = jax.lax.scan(step, opt.init(params), None, length=1500)
    expected = np.maximum(0.1 * 0.5 ** (np.arange(1500) / 250), 0.005)
    # Adam: lr * m_hat / (sqrt(v_hat) + eps), lr to float32 rounding and eps
    np.testing.assert_allclose(sizes, expected, rtol=5e-5)
    assert isinstance(default_optimizer(0.01), optax.GradientTransformation)
    with pytest.raises(ValueError, match="schedule must be one of"):
        bi.fit_svi(StructuralTS(trend=None), np.arange(30.0), key=0, schedule="cosine")
    with pytest.raises(ValueError, match="min_change must be a number >= 0"):
        bi.fit_svi(StructuralTS(trend=None), np.arange(30.0), key=0, min_change=-1.0)


def test_min_change_counts_small_changes_as_flat():
    """A change of 0.5 nats that is 5 standard errors (a nearly noiseless loss) is progress
    for the noise test, and no progress with a floor of 1 nat; never with a floor of 0.4."""
    n, var = 250, 0.01 * 250  # window mean's standard error 0.1
    earlier = [(100.5, var)] * 4
    assert not _no_progress(100.0, var, earlier, n, tol=1e-9)
    assert _no_progress(100.0, var, earlier, n, tol=1e-9, min_change=1.0)
    assert not _no_progress(100.0, var, earlier, n, tol=1e-9, min_change=0.4)


def test_floor_never_calls_a_crawl_converged():
    """Flat losses with parameters moving steadily one way: stalled, not converged, however
    large the floor; jittering parameters: converged after three windows."""
    losses = 500.0 + np.random.default_rng(0).normal(0, 1.0, 2500)
    for moves, converged in (((1.0, 1.0), False), ((0.1, 1.0), True)):
        rule = StopRule(1e-4, 250, min_change=1.0)
        for i in range(10):
            if rule.update(losses[i * 250 : (i + 1) * 250], moves):
                break
        assert rule.converged is converged and rule.stalled is not converged
        assert rule.done == (750 if converged else 2500)


def test_same_key_same_fit_with_the_decay_schedule(series):
    kw = dict(key=7, schedule="decay", min_change=1.0, steps=1500, progress=False)
    model = StructuralTS(trend=None)
    a, b = bi.fit_svi(model, series, **kw), bi.fit_svi(model, series, **kw)
    np.testing.assert_array_equal(a.svi_loss, b.svi_loss)
    for name in a.draws:
        np.testing.assert_array_equal(a.draws[name], b.draws[name])
    assert a.info["schedule"] == "decay" and a.info["min_change"] == 1.0


def test_decay_stops_earlier_at_no_worse_loss_and_the_same_forecast(series, x64):
    """The converged local level: fewer steps with the decay schedule and 1-nat floor than
    with the constant step size, a final loss within noise of it (or lower), the same 8-step
    forecast (medians and 95% bounds within Monte-Carlo and posterior noise), and bs.check
    finds nothing."""
    model = StructuralTS(trend=None)
    kw = dict(key=11, progress=False, num_samples=2000)
    before = bi.fit_svi(model, series, **kw)
    after = bi.fit_svi(model, series, schedule="decay", min_change=1.0, **kw)
    assert before.info["converged"] and after.info["converged"]
    assert after.info["steps"] < before.info["steps"]
    assert after.info["final_loss"] < before.info["final_loss"] + 1.0
    assert check(after, warn=False) == []
    q = [2.5, 50, 97.5]
    qb = np.percentile(before.forecast_samples(8, key=1, num_samples=2000), q, axis=0)
    qa = np.percentile(after.forecast_samples(8, key=1, num_samples=2000), q, axis=0)
    width = qb[2] - qb[0]
    assert np.all(np.abs(qa - qb) < 0.1 * width)


def test_auto_fit_fits_with_the_auto_settings(series):
    """``auto_fit`` passes its schedule and floor (constant, 0: the decay lost accuracy on the
    suite) to ``fit_svi`` unless ``fit_kwargs`` says otherwise (NUTS gets neither)."""
    from bayes_ssm.inference.auto import prepare_window

    def fit_kwargs(method="svi", given=None):
        args = ("none", None, method, None, None, given, False, None, False)
        return prepare_window(series, *args)[-1]

    kw = fit_kwargs()
    assert kw["schedule"] == AUTO_SVI["schedule"] == "constant"
    assert kw["min_change"] == AUTO_SVI["min_change"]
    mine = fit_kwargs(given={"schedule": "decay", "min_change": 1.0})
    assert mine["schedule"] == "decay" and mine["min_change"] == 1.0
    assert "schedule" not in fit_kwargs("nuts") and "min_change" not in fit_kwargs("nuts")


class _FakeFit:
    """A candidate whose forecast draws are ``offset + key-dependent noise``; counts calls."""

    num_samples = 50

    def __init__(self, offset):
        self.offset, self.calls = offset, 0

    def forecast_samples(self, horizon, *, num_samples, key):
        self.calls += 1
        rng = np.random.default_rng(int(jax.random.randint(key, (), 0, 2**30)))
        return self.offset + rng.normal(size=(num_samples, horizon))


def test_stacked_draws_skip_a_candidate_with_no_share():
    """A weight that rounds to no draw (0.0004 of 1000): that candidate is not run, and the
    draws are those of the mixture of the others, drawn with their own keys as before."""
    from bayes_ssm.inference.stacked_fit import StackedFit, resolve_transform

    fits = {"a": _FakeFit(0.0), "tiny": _FakeFit(100.0), "b": _FakeFit(10.0)}
    weights = pd.Series([0.6, 0.0004, 0.3996], index=list(fits), name="weight")
    stacked = StackedFit(
        fits=fits, weights=weights, transform=resolve_transform("none", [1.0]), data=None,
        table=pd.DataFrame(), weights_from="stacking (PSIS-LOO)", seconds=0.0,
    )  # fmt: skip
    draws = stacked.forecast_samples(3, num_samples=1000, key=5)
    assert fits["tiny"].calls == 0 and fits["a"].calls == fits["b"].calls == 1
    counts = mixture_counts(weights.to_numpy(), 1000)
    assert counts[1] == 0
    base = jax.random.PRNGKey(5)
    expected = [
        fits[name].forecast_samples(3, num_samples=50, key=jax.random.fold_in(base, i))
        for i, name in ((0, "a"), (2, "b"))
    ]
    expected = np.concatenate(
        [e[np.resize(np.arange(50), c)] for e, c in zip(expected, counts[[0, 2]], strict=True)]
    )
    np.testing.assert_array_equal(draws, expected)
