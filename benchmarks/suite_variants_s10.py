"""Session 10's transform guard, judged by ``benchmarks/default_suite.py``.

``guard_s10``
    ``bs.auto_fit`` as shipped from session 10: ``transform="auto"`` keeps the log scale for
    positive data unless :mod:`bayes_ssm.inference.transform_check` finds random-walk forecasts
    on the log scale at least 1.5x worse on the data scale than on the square root; then the
    square root (Box-Cox 0.5). Where the guard does not fire the fit is the previous default's
    (its rows must equal the cached ``default`` rows: the check that nothing else moved).

Usage (scores to their own CSV; peers and ``default`` read from ``--cache``)::

    nice -n 10 env PYTHONPATH=. python benchmarks/suite_variants_s10.py --no-peers \\
        --variant guard_s10 --panels monthly_deaths,covid_weekly_cases \\
        --out benchmarks/results/suite_s10_guard.csv \\
        --cache benchmarks/results/default_suite.csv
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import default_suite  # noqa: E402
import suite_runners  # noqa: E402

suite_runners.register_variant("guard_s10", fit_id="auto_fit_s10")


if __name__ == "__main__":
    default_suite.main(sys.argv[1:])
