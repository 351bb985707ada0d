"""Padded SVI fits (``fit_svi(pad_to=...)``): one compiled program across backtest folds of
different lengths, and the same fit as without padding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayes_ssm as bs
from bayes_ssm.inference import svi as _svi
from bayes_ssm.inference.padding import padded_length
from bayes_ssm.models import StructuralTS

STEPS = dict(steps=200, check_every=100, num_samples=100)
PROGRAMS = (_svi._svi_init, _svi._svi_steps, _svi._svi_finish)


def _series(n, seed=0):
    rng = np.random.default_rng(seed)
    y = 2.0 + np.cumsum(rng.normal(0, 0.1, n)) + rng.normal(0, 0.2, n)
    return pd.Series(y, index=pd.date_range("2020-01-05", periods=n, freq="W-SUN"), name="y")


def _backtest(y, **kw):
    """Three expanding-window folds, 5 steps apart: training lengths n-13, n-8, n-3."""
    return bs.backtest(
        StructuralTS(trend=None), y, horizon=3, folds=3, step=5, min_train=40, key=0,
        fit_kwargs={**STEPS, **kw}, progress=False,
    )  # fmt: skip


def test_backtest_compiles_once_and_padding_keeps_the_fit(x64):
    """Three folds of three lengths compile SVI's programs once (the backtest pads to the
    longest window); a padded fit equals the unpadded fit of the same data to rounding."""
    y = _series(67, seed=1)
    before = [p._cache_size() for p in PROGRAMS]
    scores = _backtest(y)
    assert scores.attrs["folds"]["num_train"].tolist() == [54, 59, 64]
    added = [p._cache_size() - b for p, b in zip(PROGRAMS, before, strict=True)]
    assert added == [1, 1, 1], added

    # the first fold's fit again, plain and padded to the backtest's length (its program)
    train = y.iloc[:54]
    model = StructuralTS(trend=None)
    plain = bs.fit_svi(model, train, key=3, progress=False, **STEPS)
    padded = bs.fit_svi(model, train, key=3, progress=False, pad_to=64, **STEPS)
    assert plain.info["padded_to"] is None and padded.info["padded_to"] == 64
    assert padded.data.num_steps == 54
    np.testing.assert_allclose(padded.svi_loss, plain.svi_loss, rtol=1e-9)
    for name, draws in plain.draws.items():
        np.testing.assert_allclose(padded.draws[name], draws, rtol=1e-6, atol=1e-9)
    # a model whose latent sites grow with the length is not padded
    t_model = StructuralTS(trend=None, likelihood="student_t")
    scales = t_model.data_scales(train.to_numpy())
    assert padded_length(t_model, padded.data, scales, 64) is None
    assert padded_length(model, padded.data, scales, 64) == 64
    with pytest.raises(ValueError, match="pad_to"):
        bs.fit_svi(model, train, key=3, pad_to=0, **STEPS)


@pytest.mark.slow
def test_backtest_without_padding_compiles_per_fold(x64):
    """The twin: ``pad_to=None`` compiles SVI's programs once per training length."""
    # lengths 79, 84, 89: compiled by no other test (a worker's jit caches are shared by every
    # test it runs; at 55/60/65 the init program once found an entry another test had made)
    y = _series(92, seed=1)
    before = [p._cache_size() for p in PROGRAMS]
    _backtest(y, pad_to=None)
    added = [p._cache_size() - b for p, b in zip(PROGRAMS, before, strict=True)]
    assert added == [3, 3, 3], added
