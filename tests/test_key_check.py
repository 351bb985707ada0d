"""``bs.check_keys`` (issue 15): refits with other keys flag a model whose SVI runs land in
different optima, and pass a well-identified model.

The planted case: ``theta`` enters the mean of the data as ``theta^2`` (two optima, at
``theta`` near +1 and -1, separated by a 25-nat barrier at 0) and a tilt makes the negative
optimum about 7 nats worse; the forecast reads ``theta`` itself, so the two optima also forecast
different centres. The initial point (the median of 15 prior draws) has a random sign, so keys
choose the optimum. Runs in the same optimum must pass, runs in different optima must be
flagged, on the loss and on the forecast.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from toy_models import ToyLocalLevel, ToyTwoOptima, simulate_local_level

from bayes_ssm.inference.fitting import fit_svi
from bayes_ssm.inference.key_check import check_keys, compare_key_fits, final_loss

FIT = dict(steps=600, check_every=100, num_samples=400, progress=False)


@pytest.fixture(scope="module")
def two_optima_fits():
    rng = np.random.default_rng(0)
    y = pd.Series(1.0 + rng.standard_normal(50), index=pd.date_range("2020", periods=50, freq="D"))
    fits = {k: fit_svi(ToyTwoOptima(), y, key=k, **FIT) for k in range(4)}
    sign = {k: np.sign(np.median(f.draws["theta"])) for k, f in fits.items()}
    return fits, sign


def test_runs_in_different_optima_are_flagged_and_in_one_optimum_pass(two_optima_fits):
    fits, sign = two_optima_fits
    pos = [k for k, s in sign.items() if s > 0]
    neg = [k for k, s in sign.items() if s < 0]
    assert pos and neg, f"the planted case needs keys in both optima; got signs {sign}"
    # different optima: the loss gap (~7 nats) is far above the noise, the medians (+1, -1)
    # far outside each other's 50% intervals (+-0.07)
    bad = compare_key_fits(
        [fits[pos[0]], fits[neg[0]]], horizon=3, keys=(pos[0], neg[0]), warn=False
    )
    assert not bad.ok and len(bad.problems) == 1
    row = bad.pairs.iloc[0]
    assert row["loss_disagrees"] and row["forecast_disagrees"]
    assert 4.0 < row["loss_gap"] < 12.0 and row["median_gap"] > 5.0
    sentence = bad.problems[0]
    assert "different optima" in sentence and f"keys {pos[0]} and {neg[0]}" in sentence
    with pytest.warns(UserWarning, match="different optima"):
        compare_key_fits([fits[pos[0]], fits[neg[0]]], horizon=3)
    # the same optimum, different keys: agreement
    same = pos if len(pos) >= 2 else neg
    assert len(same) >= 2, f"need two keys in one optimum; got signs {sign}"
    good = compare_key_fits([fits[same[0]], fits[same[1]]], horizon=3, warn=False)
    assert good.ok, good.problems
    assert good.pairs.iloc[0]["median_gap"] < 0.5


def test_a_well_identified_model_passes_and_bad_input_is_refused():
    y, _ = simulate_local_level(np.random.default_rng(5), 80, 0.5, 0.2, start=1.0)
    result = check_keys(ToyLocalLevel(), y, keys=(0, 1, 2), horizon=6, warn=False, **FIT)
    assert result.ok, result.problems
    assert len(result.pairs) == 3 and list(result.losses.index) == ["0", "1", "2"]
    assert (result.pairs["loss_gap"] < 1.0).all() and (result.pairs["median_gap"] < 0.5).all()
    with pytest.raises(ValueError, match="at least two"):
        check_keys(ToyLocalLevel(), y, keys=(0,))
    with pytest.raises(ValueError, match="not key="):
        check_keys(ToyLocalLevel(), y, key=0)
    with pytest.raises(ValueError, match="at least two fits"):
        compare_key_fits(result.fits[:1])


def test_final_loss_standard_error_is_the_batch_means_one():
    rng = np.random.default_rng(1)
    trace = 100.0 + rng.standard_normal(2000)  # independent steps: se = 1 / sqrt(500)
    mean, se = final_loss(trace, window=500, batch=25)
    assert mean == pytest.approx(trace[-500:].mean())
    assert se == pytest.approx(1 / np.sqrt(500), rel=0.4)
    # strongly autocorrelated steps: the batch-means error is larger than the naive one
    ar = np.zeros(2000)
    for t in range(1, 2000):
        ar[t] = 0.95 * ar[t - 1] + rng.standard_normal()
    _, se_ar = final_loss(ar, window=500, batch=25)
    assert se_ar > 2.5 * ar[-500:].std() / np.sqrt(500)
    with pytest.raises(ValueError, match="non-finite"):
        final_loss(np.array([1.0, 2.0, np.nan, 3.0, 4.0]))


@pytest.mark.slow
def test_structural_model_passes_the_key_check():
    """A local level + noise on 150 simulated points: two keys, one optimum."""
    from bayes_ssm.models import StructuralTS

    y, _ = simulate_local_level(np.random.default_rng(3), 150, 0.3, 0.15, start=2.0)
    result = check_keys(StructuralTS(trend=None), y, keys=(0, 1), horizon=8, warn=False)
    assert result.ok, (result.problems, result.pairs)
    assert result.losses["converged"].all()
