"""Session 9's recalibration variants of the default, judged by ``benchmarks/default_suite.py``.

All share the shipped default's fit (``bs.auto_fit``, fit id ``auto_fit``): one fit per series
and origin, the variants differ only in the recalibration map of the same mixture:

``widen_s9``
    ``recalibrate="widen"``, the shipped default recomputed in this run (its rows must equal
    the cached ``default`` rows: the check that the fit is the shipped one);
``adaptive``
    adaptive conformal levels over the in-sample PIT values in time order, widen-only
    (:mod:`bayes_ssm.inference.adaptive_recalibration`);
``adaptive_quantile``
    the same, two-sided (intervals may also narrow).

Usage (scores to their own CSV; the committed rows, peers and ``default`` included, are read
from ``--cache``)::

    nice -n 10 env PYTHONPATH=. python benchmarks/suite_variants_s9.py --no-peers \\
        --variant widen_s9,adaptive,adaptive_quantile --panels monthly_deaths \\
        --out benchmarks/results/suite_s9_adaptive.csv \\
        --cache benchmarks/results/default_suite.csv
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import default_suite  # noqa: E402
import suite_runners  # noqa: E402

for _name, _mode in (
    ("widen_s9", "widen"),
    ("adaptive", "adaptive"),
    ("adaptive_quantile", "adaptive_quantile"),
):
    suite_runners.register_variant(_name, fit_id="auto_fit", recalibrate=_mode)


if __name__ == "__main__":
    default_suite.main(sys.argv[1:])
