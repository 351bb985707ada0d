"""Command line: ``bayes-ssm <command>``, one module per command.

``bayes-ssm forecast`` fits a structural model and writes a forecast CSV and plot;
``bayes-ssm forecast-many`` does it for every series of a long-format table (SVI);
``bayes-ssm anomalies`` lists observations outside their one-step-ahead band;
``bayes-ssm diagnose`` prints the summary and checks of a saved fit.

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
import sys

from bayes_ssm.cli import anomalies, diagnose, forecast, forecast_many

__all__ = ["main", "build_parser", "COMMANDS"]

# One line per command, in the order ``--help`` lists them.
COMMANDS = {module.NAME: module for module in (forecast, forecast_many, anomalies, diagnose)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bayes-ssm",
        description="Uncertainty-aware forecasts with Bayesian state-space models.",
        epilog="Run 'bayes-ssm COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"bayes-ssm {_version()}")
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
    except (ValueError, OSError, KeyError) as err:
        # Bad input (a missing file, a column or value that is wrong, a file that cannot be
        # written): one line naming the problem, exit status 2, no traceback.
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        if isinstance(err, OSError) and err.filename and str(err.filename) not in str(err):
            message = f"{err} ({err.filename})"
        parser.exit(2, f"bayes-ssm {args.command}: error: {message}\n")
    except KeyboardInterrupt:
        parser.exit(130, f"bayes-ssm {args.command}: interrupted\n")


def _version() -> str:
    # the package is imported before any of its submodules (an import of the namespace itself
    # would point up the layers)
    return sys.modules["bayes_ssm"].__version__
