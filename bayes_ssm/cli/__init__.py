"""Command line: ``bayes-ssm <command>``, one module per command.

``bayes-ssm forecast`` fits a structural model and writes a forecast CSV and plot;
``bayes-ssm forecast-many`` does it for every series of a long-format table (SVI).

Examples (the first is the README's main job)::

    bayes-ssm forecast --dataset ili --horizon 26 --method nuts \\
        --out out/forecast.csv --plot out/forecast.png
    bayes-ssm forecast-many --dataset covid --value-cols italy_new_deaths germany_new_deaths \\
        --horizon 14 --transform none --out out/many.csv

Adding a command: write ``bayes_ssm/cli/<command>.py`` with ``NAME`` (the command's name),
``add_parser(sub)`` (adds its sub-parser to ``sub``, the ``add_subparsers`` object) and
``run(args, parser) -> int`` (the exit status; a ``ValueError`` or ``FileNotFoundError`` it raises
becomes ``bayes-ssm <command>: error: ...`` and exit status 2), then add the module to
``COMMANDS`` below. Shared pieces (model options, reading series, seasons) live in
:mod:`bayes_ssm.cli._common`. Heavy imports (JAX, pandas) go inside functions, so ``--help``
stays fast.
"""

from __future__ import annotations

import argparse

from bayes_ssm.cli import forecast, forecast_many

__all__ = ["main", "build_parser", "COMMANDS"]

# One line per command, in the order ``--help`` lists them.
COMMANDS = {module.NAME: module for module in (forecast, forecast_many)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bayes-ssm",
        description="Uncertainty-aware forecasts with Bayesian state-space models.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS.values():
        command.add_parser(sub)
    return parser


def main(argv=None) -> int:
    """Entry point of ``bayes-ssm``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command].run(args, parser)
    except (ValueError, FileNotFoundError) as err:
        parser.exit(2, f"bayes-ssm {args.command}: error: {err}\n")
