"""``bayes-ssm anomalies``: observations outside their one-step-ahead predictive band."""

from __future__ import annotations

from pathlib import Path

from bayes_ssm.cli import _common

NAME = "anomalies"


def add_parser(sub):
    parser = sub.add_parser(
        NAME,
        help="flag observations outside their one-step-ahead predictive band",
        description="Fit a structural model to a series (or read a saved fit) and list the "
        "observations that fall outside their one-step-ahead predictive band, with tail "
        "probabilities; parameter uncertainty is integrated over the posterior.",
    )
    src = parser.add_argument_group("data (one of --fit, --dataset or --csv)")
    one = src.add_mutually_exclusive_group(required=True)
    one.add_argument("--fit", type=Path, help="a saved fit (forecast --save-fit): no refitting")
    _common.add_series_args(src, one)
    _common.add_model_args(parser.add_argument_group("model (with --dataset or --csv)"))
    _common.add_inference_args(parser.add_argument_group("inference (with --dataset or --csv)"))
    out = parser.add_argument_group("output")
    out.add_argument(
        "--level",
        type=float,
        default=0.99,
        help="central level of the one-step band; outside it is an anomaly (default 0.99)",
    )
    out.add_argument("--out", type=Path, help="CSV of the flagged observations to write")
    out.add_argument("--plot", type=Path, help="PNG of the series, its band and the anomalies")
    out.add_argument("--title", help="title of the plot (default: from the series)")
    out.add_argument("--ylabel", help="y-axis label of the plot (default: the series' name)")
    out.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def run(args, parser) -> int:
    import numpy as np

    from bayes_ssm.inference.anomaly import anomalies

    if not 0 < args.level < 1:
        raise ValueError(f"--level must be in (0, 1); got {args.level}")
    if args.fit is not None:
        from bayes_ssm.inference.io import load

        if not args.fit.is_file():
            raise FileNotFoundError(f"no fit file {args.fit}")
        fit, log = load(args.fit), False
        print(f"{args.fit}: {fit!r}")
    else:
        _common.check_positive(args, parser)
        fit, log = _common.fit_series(args)
    found = anomalies(fit, level=args.level)
    band = anomalies(fit, level=args.level, all_steps=True)
    if log:  # back to the data's scale: exp is monotone, so the bands carry over
        for frame in (found, band):
            for col in ("observed", "mean", "median", "lower", "upper"):
                if col in frame:
                    frame[col] = np.exp(frame[col])
    n = len(found)
    print(
        f"{n} of {int(band['observed'].notna().sum())} observations outside their "
        f"{100 * args.level:g}% one-step band" + (":" if n else ".")
    )
    if n:
        print(found.round(4).to_string())
    if args.out is not None:
        _common.write_csv(found, args.out, index_label="date")
        print(f"wrote {args.out}")
    if args.plot is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from bayes_ssm.plotting import plot_anomalies

        ax = plot_anomalies(found, band=band, title=args.title)
        ax.set_ylabel(args.ylabel or str(fit.data.name or "value"))
        ax.figure.set_size_inches(10, 4)
        _common.save_figure(ax.figure, args.plot)
        plt.close(ax.figure)
        print(f"wrote {args.plot}")
    return 0
