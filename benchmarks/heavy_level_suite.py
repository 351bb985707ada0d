"""``HeavyLevelTS`` as a candidate of the default on the panels of
``benchmarks/default_suite.py`` (branch ``s7-suite``; needs its ``suite_*`` modules).

One ``bs.auto_fit`` per series and origin with the default's candidates plus ``HeavyLevelTS``
(``benchmarks/heavy_level.py``'s ``candidates_for``), re-weighted by LOO stacking three ways
from the same fits: ``h5_default4`` (the default's four: the shipped default),
``h5_plus_heavy`` (all five) and ``h5_heavy_for_t`` (the new candidate instead of the
Student-t observation one).

Usage::

    PYTHONPATH=. nice -n 10 python benchmarks/heavy_level_suite.py --panels covid_weekly_cases \\
        --variant h5_default4,h5_plus_heavy,h5_heavy_for_t --no-peers --out /tmp/heavy.csv
    # tables beside the peers' committed rows:
    PYTHONPATH=. python benchmarks/heavy_level_suite.py --panels covid_weekly_cases \\
        --variant h5_default4,h5_plus_heavy,h5_heavy_for_t --out /tmp/heavy.csv \\
        --cache benchmarks/results/default_suite.csv --report
"""

from __future__ import annotations

import dataclasses
import sys

import default_suite
import numpy as np
import suite_runners
from exchange_rate_candidates import _restack
from heavy_level import candidates_for

import bayes_ssm as bs


def fit5(train, key, pad_to):
    return bs.auto_fit(train, key=key, pad_to=pad_to, candidates=candidates_for(train))


class Restacked(suite_runners.Variant):
    """A variant re-weighting the shared five-candidate fit over the candidates ``pick``
    keeps."""

    def __init__(self, name, pick):
        super().__init__(name, fit5, "heavy5")
        self.pick = pick

    def forecast(self, train, horizon, key, pad_to=None):
        stacked = suite_runners._shared_fit(self.fit_id, self.fit, train, key, pad_to)
        names = [n for n in stacked.fits if self.pick(n)]
        stacked = dataclasses.replace(stacked, weights=_restack(stacked, names))
        self.weights = stacked.weights.round(2).to_dict()
        draws = stacked.forecast_samples(horizon, num_samples=1000, key=key)
        return np.asarray(draws, float)


for _variant in (
    Restacked("h5_default4", lambda n: n != "heavy_level"),
    Restacked("h5_plus_heavy", lambda n: True),
    Restacked("h5_heavy_for_t", lambda n: n != "level_student_t"),
):
    suite_runners.VARIANTS[_variant.name] = _variant

if __name__ == "__main__":
    default_suite.main(sys.argv[1:])
