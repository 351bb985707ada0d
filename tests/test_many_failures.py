"""One bad series does not sink the batch: it is reported by name, the others keep their fits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayes_ssm as bs
from bayes_ssm.data.long_format import split_long

MODEL = bs.StructuralTS(trend=None)
SVI = dict(steps=300, check_every=100, num_samples=10, progress=False)


def frame_with_bad_series():
    """Two ordinary series and, between them, one whose scale (1e30) overflows float32: its
    SVI loss is NaN from the first step."""
    rng = np.random.default_rng(1)
    ds = pd.date_range("2021-01-03", periods=40, freq="W")
    rows = []
    for ident, y in {
        "a": np.cumsum(rng.normal(size=40)),
        "bad": 1e30 * np.linspace(1, 2, 40),
        "c": 5 + np.cumsum(rng.normal(size=40)),
    }.items():
        rows.append(pd.DataFrame({"unique_id": ident, "ds": ds, "y": y}))
    return pd.concat(rows, ignore_index=True)


@pytest.mark.parametrize("batch", ["vmap", "loop"])
def test_bad_series_reported_by_name_others_kept(batch):
    frame = frame_with_bad_series()
    with pytest.warns(RuntimeWarning, match="1 of 3 series failed.*'bad'"):
        many = bs.fit_svi_many(MODEL, frame, key=0, batch=batch, **SVI)
    assert list(many) == ["a", "c"]
    assert list(many.failures) == ["bad"]
    assert many.failures["bad"].startswith("FloatingPointError: SVI loss became")
    summary = many.summary()
    assert list(summary.index) == ["a", "c", "bad"]
    assert summary.loc["bad", "error"] == many.failures["bad"]
    assert summary.loc[["a", "c"], "error"].isna().all()
    # the good series get the fits they get without the bad one (same split keys)
    import jax

    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    series = split_long(frame)
    for i, ident in [(0, "a"), (2, "c")]:
        alone = bs.fit_svi(MODEL, series[ident], key=keys[i], **SVI)
        for name, value in alone.guide_params.items():
            np.testing.assert_allclose(many[ident].guide_params[name], value, rtol=1e-4, atol=1e-6)
    fc = many.forecast(3)
    assert sorted(set(fc["unique_id"])) == ["a", "c"]
