"""One way to read a fit: methods on the Fit. The old top-level functions (``bs.anomalies``,
``bs.attention_map``, ``bs.volatility_forecast``) still work for one release: each warns with a
DeprecationWarning and returns exactly what the method returns."""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest
from toy_models import ToyLocalLevel

import bayes_ssm as bs
from bayes_ssm.inference.fitting import fit_svi

MODULES = {
    "anomalies": "bayes_ssm.inference.anomaly",
    "attention_map": "bayes_ssm.inference.attention_maps",
    "volatility_forecast": "bayes_ssm.inference.volatility_forecasts",
}


@pytest.fixture(scope="module")
def fit():
    rng = np.random.default_rng(3)
    weeks = pd.date_range("2024-01-06", periods=40, freq="W-SAT")
    y = pd.Series(10 + np.cumsum(rng.normal(0, 0.3, 40)) + rng.normal(0, 1, 40), weeks)
    return fit_svi(ToyLocalLevel(), y, key=0, steps=60, check_every=30, num_samples=16,
                   progress=False)  # fmt: skip


def _warns(name):
    return pytest.warns(DeprecationWarning, match=rf"bs\.{name}\(fit, \.\.\.\) is deprecated")


def test_deprecated_anomalies_warns_and_equals_the_method(fit):
    options = {"level": 0.8, "all_steps": True, "num_samples": 8, "key": 2}
    new = fit.anomalies(**options)
    with _warns("anomalies"):
        old = bs.anomalies(fit, **options)
    assert len(new) == fit.data.num_steps and new["is_anomaly"].any()
    pd.testing.assert_frame_equal(old, new, check_exact=True)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_method_and_deprecated_function_call_the_same_read_out(fit, name, monkeypatch):
    calls = []

    def read_out(*args, **kwargs):
        calls.append((args, kwargs))
        return pd.DataFrame({"call": [len(calls)]})

    # bs.<name> is made (and cached) at first access; make it before the patch, so the cached
    # wrapper's signature is the real function's (tests/test_typing.py reads it)
    deprecated = getattr(bs, name)
    monkeypatch.setattr(importlib.import_module(MODULES[name]), name, read_out)
    args = (5,) if name == "volatility_forecast" else ()
    new = getattr(fit, name)(*args, num_samples=7, key=1)
    with _warns(name):
        old = deprecated(fit, *args, num_samples=7, key=1)
    assert calls == [((fit, *args), {"num_samples": 7, "key": 1})] * 2
    assert new["call"].tolist() == [1] and old["call"].tolist() == [2]


def test_methods_keep_the_read_outs_errors(fit):
    with pytest.raises(ValueError, match="needs a StochasticVolatility fit"):
        fit.volatility_forecast(3)
    with pytest.raises(ValueError, match="level"):
        fit.anomalies(level=1.5)


def test_the_modules_functions_do_not_warn(fit, recwarn):
    from bayes_ssm.inference.anomaly import anomalies

    anomalies(fit, num_samples=4)
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]
