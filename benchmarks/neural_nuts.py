"""NUTS on a small NeuralSSM (issue 15): does it run, and does it mix?

Fits ``NeuralSSM(width=4, num_layers=1, state_size=2)`` (a few dozen weights; ``--width``,
``--state-size`` for others) by NUTS on the
last ``--weeks`` weeks of ILI and prints, beside the time: divergences, r_hat and bulk ESS of
the model's named parameters (``intercept``, ``obs_sd``), the worst r_hat over the network's
weights (unidentified up to sign and channel permutations, so weight r_hat between chains is
not expected to be near 1), and r_hat / ESS of what a forecast reads: the one-step predictive
means ``y_fitted`` (worst over the series) and the mean of the ``--horizon``-step forecast.
Then the same model by SVI (the package default) for the forecast's median and 90% interval.

Usage::

    PYTHONPATH=. nice -n 10 python benchmarks/neural_nuts.py --weeks 104 --chains 2
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np
from numpyro.diagnostics import effective_sample_size, split_gelman_rubin

import bayes_ssm as bs
from bayes_ssm.data import datasets
from bayes_ssm.models import NeuralSSM


def _rhat_ess(x):
    """x: (chain, draw, ...) -> (worst r_hat, smallest bulk ESS) over the trailing axes."""
    x = np.asarray(x, float).reshape(x.shape[0], x.shape[1], -1)
    keep = np.ptp(x, axis=(0, 1)) > 0
    x = x[..., keep]
    return float(np.max(split_gelman_rubin(x))), float(np.min(effective_sample_size(x)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weeks", type=int, default=104)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--horizon", type=int, default=8)
    parser.add_argument("--key", type=int, default=0)
    parser.add_argument("--width", type=int, default=4)
    parser.add_argument("--state-size", type=int, default=2)
    parser.add_argument("--target-accept", type=float, default=0.8)
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    y = datasets.load("ili").iloc[-args.weeks - args.horizon : -args.horizon]
    model = NeuralSSM(width=args.width, num_layers=1, state_size=args.state_size)
    load0, start = os.getloadavg()[0], time.perf_counter()
    fit = bs.fit_nuts(
        model,
        y,
        key=args.key,
        num_chains=args.chains,
        num_warmup=args.warmup,
        num_samples=args.samples,
        chain_method="sequential",
        target_accept=args.target_accept,
        progress=False,
    )
    seconds = time.perf_counter() - start
    table = bs.summary(fit)
    weights = [k for k in fit.draws if k.startswith("net.")]
    worst_w = max(_rhat_ess(fit.draws[k])[0] for k in weights)
    n_weights = sum(int(np.prod(fit.draws[k].shape[2:])) for k in weights)
    means = fit._predict(args.key, ("y_fitted",), components=True)["y_fitted"]  # (draw, time)
    fitted = _rhat_ess(np.asarray(means).reshape(args.chains, args.samples, -1)[:, :, 1:])
    forecast = fit.forecast_samples(args.horizon, key=args.key + 1)  # (draw, horizon)
    fc_mean = np.asarray(forecast).reshape(args.chains, args.samples, -1).mean(-1)
    fc = _rhat_ess(fc_mean[..., None])
    print(
        f"NUTS, NeuralSSM(width={args.width}, num_layers=1, state_size={args.state_size}): "
        f"{n_weights} network weights, "
        f"{args.weeks} weeks of ILI, {args.chains} chains x ({args.warmup} warm-up + "
        f"{args.samples}), {seconds:.0f} s (load {load0:.1f} -> {os.getloadavg()[0]:.1f}, 2 "
        "shared cores)"
    )
    print(f"divergences {table.attrs['divergences']}, BFMI {table.attrs['bfmi']}")
    print(table[["mean", "sd", "ess_bulk", "r_hat"]].to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"network weights: worst r_hat {worst_w:.2f}")
    print(f"y_fitted (one-step means): worst r_hat {fitted[0]:.3f}, smallest ESS {fitted[1]:.0f}")
    print(f"mean of the {args.horizon}-step forecast path: r_hat {fc[0]:.3f}, ESS {fc[1]:.0f}")
    print("problems:", bs.check(fit, warn=False))
    svi = bs.fit_svi(model, y, key=args.key, progress=False)
    svi_fc = np.asarray(svi.forecast_samples(args.horizon, key=args.key + 1))
    for name, f in (("NUTS", np.asarray(forecast)), ("SVI", svi_fc)):
        q = np.percentile(f[:, -1], [5, 50, 95])
        print(f"{name}: step {args.horizon} median {q[1]:.2f}, 90% interval {q[0]:.2f}..{q[2]:.2f}")
    print(f"SVI checks: {bs.check(svi, warn=False)} (steps {svi.info['steps']})")


if __name__ == "__main__":
    main()
