"""Session 10: the recalibration maps of the default on a second key and more origins.

The variants of ``benchmarks/suite_variants_s9.py`` (``widen_s9``, ``adaptive``,
``adaptive_quantile``) plus ``default_norecal`` (the raw mixture), all on one
``bs.auto_fit`` per series and origin. ``--peers few`` scores only the seasonal naive (the
denominator of the relative CRPS) and AutoTheta (the exchange-rate reference) beside them, so
new origins and keys cost little besides the default's fits.

The score CSV has no key column: write each key to its own ``--out`` and never pass another
key's CSV as ``--cache``. ``--origins N`` keeps each panel's last ``N`` origins; on
``fx_levels``, ``fx_returns`` and ``covid_weekly_cases`` it may also ask for *more* origins
than the panel's default (earlier ones, the same spacing; ``suite_panels._more``).

Usage (session 10; ``benchmarks/README.md``, "Recalibration default on two keys")::

    nice -n 10 env PYTHONPATH=. python benchmarks/suite_recal_s10.py --key 500 \\
        --panels fx_levels --origins 3 --peers few --out /tmp/c12/suite_key500.csv
    PYTHONPATH=. python benchmarks/suite_recal_keys_s10.py --key0 ... --key500 ...   # the tables
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import default_suite  # noqa: E402
import suite_runners  # noqa: E402
import suite_variants_s9  # noqa: E402, F401  (registers widen_s9, adaptive, adaptive_quantile)

VARIANTS = "widen_s9,adaptive,adaptive_quantile,default_norecal"


def few_peers(panel) -> list:
    """The seasonal naive (relative CRPS) and AutoTheta (the fx reference) only."""
    return [
        suite_runners.EmpiricalNaive(panel.season),
        suite_runners.Statsforecast("AutoTheta", panel.season),
    ]


def main(argv: list[str]) -> None:
    argv = list(argv)
    if "--peers" in argv:
        at = argv.index("--peers")
        choice = argv[at + 1] if at + 1 < len(argv) else ""
        if choice not in ("few", "all"):
            raise SystemExit(f"--peers takes 'few' or 'all'; got {choice!r}")
        del argv[at : at + 2]
        if choice == "few":
            suite_runners.peers = few_peers
    if "--variant" not in argv:
        argv += ["--variant", VARIANTS]
    default_suite.main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
