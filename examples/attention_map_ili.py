"""Which past weeks drive next week's flu forecast? The posterior attention map on ILINet.

Fits :class:`bayes_ssm.models.attention_ar.AttentionAR` (one stochastic-decay SSD layer with a
``HalfLife(weeks=8)`` prior on its memory) by SVI to the weekly US % weighted ILI series, then
prints and plots the posterior of the implied attention map of the forecast made at a chosen
week (default: the last fitted week), with credible bands.

Run from the repository root::

    PYTHONPATH=. python examples/attention_map_ili.py --weeks 300 --heads 2 --out attention.png
"""

from __future__ import annotations

import argparse
import time

import matplotlib

matplotlib.use("Agg")

from bayes_ssm.data import datasets  # noqa: E402
from bayes_ssm.inference.fitting import fit_svi  # noqa: E402
from bayes_ssm.models.attention_ar import AttentionAR  # noqa: E402
from bayes_ssm.plotting import plot_attention_map  # noqa: E402
from bayes_ssm.priors import HalfLife  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weeks", type=int, default=300, help="fit the last WEEKS weeks")
    parser.add_argument("--end", default=None, help="last fitted week (date), default: latest")
    parser.add_argument("--origin", default=None, help="forecast origin (date), default: end")
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--max-lag", type=int, default=12)
    parser.add_argument("--out", default=None, help="PNG of the map")
    args = parser.parse_args(argv)

    y = datasets.load("ili")
    if args.end is not None:
        y = y[: args.end]
    y = y[-args.weeks :]
    model = AttentionAR(half_life=HalfLife(weeks=8), step_days=7, num_heads=args.heads)
    start = time.perf_counter()
    fit = fit_svi(model, y, key=0, steps=args.steps, learning_rate=0.02, progress=False)
    print(f"SVI: {fit.info['steps']} steps, converged={fit.info['converged']}, "
          f"{time.perf_counter() - start:.1f} s")  # fmt: skip
    for site in model.parameter_sites:
        draws = fit.draws[site].reshape(fit.num_samples, -1)
        print(f"  {site:18s} mean {draws.mean(0).round(3)}  sd {draws.std(0).round(3)}")
    df = fit.attention_map(origin=args.origin, max_lag=args.max_lag, prob=(0.5, 0.9))
    print(f"\nImplied attention of the forecast for {df.attrs['target'].date()} "
          f"(made on {df.attrs['origin'].date()}):")  # fmt: skip
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.out:
        ax = plot_attention_map(df, title=f"ILI: which weeks drive the forecast for "
                                          f"{df.attrs['target'].date()}")  # fmt: skip
        # weights can be negative (trend extrapolation): keep the whole band visible
        lo, hi = df.filter(like="lower_").min().min(), df.filter(like="upper_").max().max()
        pad = 0.05 * (hi - min(lo, 0.0))
        ax.set_ylim(min(lo, 0.0) - pad, hi + pad)
        ax.axhline(0.0, color="0.5", linewidth=0.8)
        ax.figure.savefig(args.out, dpi=120, bbox_inches="tight")
        print(f"wrote {args.out}")
    return df


if __name__ == "__main__":
    main()
