"""``bayes-ssm diagnose``: the posterior summary and ``bs.check`` of a saved fit."""

from __future__ import annotations

from pathlib import Path

from bayes_ssm.cli import _common

NAME = "diagnose"


def add_parser(sub):
    parser = sub.add_parser(
        NAME,
        help="summary and checks of a saved fit (r_hat, ESS, divergences, advice)",
        description="Read a fit saved by `bayes-ssm forecast --save-fit` (or Fit.save) and "
        "print its posterior summary and the problems bs.check finds, each with what to do.",
    )
    parser.add_argument("fit", type=Path, help="the saved fit (netCDF file)")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit with status 1 when a check finds a problem (for scripts and CI)",
    )
    parser.add_argument(
        "--out", type=Path, help="also write the summary table here (CSV, one row per parameter)"
    )
    return parser


def run(args, parser) -> int:
    from bayes_ssm.inference.diagnostics import check
    from bayes_ssm.inference.io import load

    if not args.fit.is_file():
        raise FileNotFoundError(f"no fit file {args.fit}")
    fit = load(args.fit)
    print(f"{args.fit}: {fit!r}")
    print(f"model: {_common.describe_model(fit.model)}")
    table = _common.print_summary(fit, fit.info.get("elapsed_s", float("nan")))
    if args.out is not None:
        _common.write_csv(table, args.out, index_label="parameter")
        print(f"wrote {args.out}")
    return 1 if args.strict and check(fit, warn=False) else 0
