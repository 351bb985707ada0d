"""Which SVI schedule a model gets (issue 15): ``HybridTS`` and ``NeuralSSM`` name the warm-up +
cosine, the structural models none (constant); ``fit_svi_many``'s vmapped program uses the
model's schedule as ``fit_svi`` does."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from toy_models import ToyLocalLevel, simulate_local_level

from bayes_ssm.inference.schedules import SCHEDULES, resolve_schedule, schedule_optimizer
from bayes_ssm.models import HybridTS, NeuralSSM, StructuralTS
from bayes_ssm.models.base import register_model


def test_models_name_their_schedule():
    hybrid = HybridTS(structural=StructuralTS(trend="local_linear"))
    assert resolve_schedule(hybrid, None) == "warmup_cosine"
    assert resolve_schedule(NeuralSSM(), None) == "warmup_cosine"
    assert resolve_schedule(StructuralTS(), None) == "constant"
    assert resolve_schedule(hybrid, "constant") == "constant"  # a named schedule wins
    # the schedule is a class attribute, not a field: specs and equality are unchanged
    assert "svi_schedule" not in str(hybrid.spec())
    assert hybrid == HybridTS(structural=StructuralTS(trend="local_linear"))

    @dataclass(frozen=True)
    class Odd:
        svi_schedule = "cosine"

    with pytest.raises(ValueError, match="schedule must be one of"):
        resolve_schedule(Odd(), None)
    for name in SCHEDULES:  # every name builds, cached per setting
        assert schedule_optimizer(name, 0.01, 500) is schedule_optimizer(name, 0.01, 500)
    with pytest.raises(ValueError, match="steps"):
        schedule_optimizer("warmup_cosine", 0.01, 1)


@register_model
@dataclass(frozen=True)
class CosineLocalLevel(ToyLocalLevel):
    """The toy local level, naming the warm-up + cosine schedule (as NeuralSSM does)."""

    kind = "toy_cosine_local_level"
    svi_schedule = "warmup_cosine"


@pytest.mark.slow
def test_fit_svi_many_vmapped_uses_the_model_schedule():
    """Two series in one vmapped program equal their ``fit_svi`` fits (the model's warm-up +
    cosine) to float rounding, and differ from the constant step; before session 9 the
    vmapped program ran the constant step whatever the model named."""
    import jax

    import bayes_ssm as bs

    rng = np.random.default_rng(2)
    series = {
        name: pd.Series(
            simulate_local_level(rng, 60, 0.5, 0.2)[0],
            index=pd.date_range("2015-01-04", periods=60, freq="W"),
        )
        for name in ("a", "b")
    }
    model = CosineLocalLevel()
    kw = dict(steps=400, check_every=100, num_samples=20, progress=False)
    many = bs.fit_svi_many(model, series, key=4, batch="vmap", devices=None, **kw)
    keys = jax.random.split(jax.random.PRNGKey(4), 2)
    for i, name in enumerate(series):
        alone = bs.fit_svi(model, series[name], key=keys[i], **kw)
        assert many[name].info["schedule"] == alone.info["schedule"] == "warmup_cosine"
        np.testing.assert_allclose(many[name].svi_loss, alone.svi_loss, rtol=1e-5, atol=1e-4)
    constant = bs.fit_svi(model, series["b"], key=keys[1], schedule="constant", **kw)
    assert not np.allclose(constant.svi_loss, many["b"].svi_loss, rtol=1e-3)
