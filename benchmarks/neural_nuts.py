"""NUTS on a small NeuralSSM (issue 15): does it mix, and is it the network's symmetries?

Fits ``NeuralSSM(width, num_layers=1, state_size, input_lags)`` by NUTS on the last ``--weeks``
weeks of ILI (before the final ``--horizon``), once per form in ``--forms``: ``plain`` (the
network as SVI fits it) and ``identified`` (``identifiable=True``: ordered layer-0 half-lives,
positive lead input weight, the same model; :mod:`bayes_ssm.models.neural_identified`), with
the same keys and draws. One markdown row per form: time, divergences, smallest BFMI, share of
draws at the maximum tree depth, r_hat / bulk ESS of ``intercept`` and ``obs_sd``, the worst
r_hat over the network's weights as sampled and over the weights on one copy of the symmetries
(plain draws folded by :func:`identify`; for the identified form the weights it computes
with, :func:`network_values`: sorted half-lives, ``|w_in_lead|``), the worst r_hat
and smallest ESS of the one-step predictive means ``y_fitted`` (invariant to every symmetry),
r_hat / ESS of the mean of the ``--horizon``-step forecast path, each chain's mean total
log-likelihood (chains in different modes differ here) and the forecast's median and 90%
interval at the last step. ``--svi`` adds the SVI fit of the same model for comparison.

Usage::

    PYTHONPATH=. nice -n 10 python benchmarks/neural_nuts.py --width 2 --state-size 1 --chains 4
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
from bayes_ssm.models.neural_identified import identify, network_values

COLUMNS = (
    "form", "s (load)", "div", "min BFMI", "max depth", "intercept r_hat (ESS)",
    "obs_sd r_hat (ESS)", "weights r_hat", "folded r_hat", "y_fitted r_hat (ESS)",
    "forecast mean r_hat (ESS)", "chain log-lik", "median, 90% at last step",
)  # fmt: skip


def rhat_ess(x):
    """x: (chain, draw, ...) -> (worst r_hat, smallest bulk ESS) over the trailing axes."""
    x = np.asarray(x, float).reshape(x.shape[0], x.shape[1], -1)
    x = x[..., np.ptp(x, axis=(0, 1)) > 0]
    return float(np.max(split_gelman_rubin(x))), float(np.min(effective_sample_size(x)))


def _worst(draws):
    return max(rhat_ess(v)[0] for k, v in draws.items() if k.startswith("net."))


def run_form(y, args, identifiable):
    """Fit one form by NUTS; return the row's cells (strings) and the fit."""
    model = NeuralSSM(width=args.width, num_layers=1, state_size=args.state_size,
                      input_lags=args.input_lags, identifiable=identifiable)  # fmt: skip
    load0, start = os.getloadavg()[0], time.perf_counter()
    fit = bs.fit_nuts(
        model, y, key=args.key, num_chains=args.chains, num_warmup=args.warmup,
        num_samples=args.samples, chain_method="sequential", target_accept=args.target_accept,
        init=args.init, progress=False,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    c, s = args.chains, args.samples
    stats = fit.sample_stats
    depth = np.mean(np.asarray(stats["tree_depth"]) >= fit.info.get("max_tree_depth", 10))
    bfmi = min(bs.summary(fit).attrs["bfmi"])
    pred = fit._predict(args.key, ("y_fitted", "log_lik"), components=True)
    fitted = rhat_ess(np.asarray(pred["y_fitted"]).reshape(c, s, -1)[:, :, 1:])
    chain_ll = np.asarray(pred["log_lik"]).sum(-1).reshape(c, s).mean(1)
    forecast = np.asarray(fit.forecast_samples(args.horizon, key=args.key + 1))
    fc = rhat_ess(forecast.reshape(c, s, -1).mean(-1)[..., None])
    net = {k: v for k, v in fit.draws.items() if k.startswith("net.")}
    # the weights the network computes with, on one copy of the symmetries
    folded = _worst(network_values(net) if identifiable else identify(net, num_layers=1))
    q = np.percentile(forecast[:, -1], [5, 50, 95])
    cells = [
        "identified" if identifiable else "plain",
        f"{seconds:.0f} ({load0:.1f} -> {os.getloadavg()[0]:.1f})",
        str(int(np.sum(stats["diverging"]))),
        f"{bfmi:.2f}",
        f"{depth:.0%}",
        "{:.3f} ({:.0f})".format(*rhat_ess(fit.draws["intercept"])),
        "{:.3f} ({:.0f})".format(*rhat_ess(fit.draws["obs_sd"])),
        f"{_worst(net):.2f}",
        f"{folded:.2f}",
        "{:.3f} ({:.0f})".format(*fitted),
        "{:.3f} ({:.0f})".format(*fc),
        " / ".join(f"{v:.1f}" for v in chain_ll),
        f"{q[1]:.2f}, {q[0]:.2f}..{q[2]:.2f}",
    ]
    return cells, fit, model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weeks", type=int, default=104)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--horizon", type=int, default=8)
    parser.add_argument("--key", type=int, default=0)
    parser.add_argument("--width", type=int, default=2)
    parser.add_argument("--state-size", type=int, default=1)
    parser.add_argument("--input-lags", type=int, default=2)
    parser.add_argument("--target-accept", type=float, default=0.8)
    parser.add_argument("--init", default="prior", choices=("prior", "median", "svi", "map"))
    parser.add_argument("--forms", default="plain,identified")
    parser.add_argument("--svi", action="store_true", help="also fit by SVI for comparison")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    y = datasets.load("ili").iloc[-args.weeks - args.horizon : -args.horizon]
    print(
        f"NUTS, NeuralSSM(width={args.width}, num_layers=1, state_size={args.state_size}, "
        f"input_lags={args.input_lags}), {args.weeks} weeks of ILI, {args.chains} chains x "
        f"({args.warmup} warm-up + {args.samples}), target_accept {args.target_accept}, "
        f"init {args.init!r}, key {args.key}; times on 2 shared cores, sequential chains\n"
    )
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS), flush=True)
    model = None
    for form in args.forms.split(","):
        if form not in ("plain", "identified"):
            raise SystemExit(f"--forms takes plain and/or identified; got {form!r}")
        cells, fit, model = run_form(y, args, form == "identified")
        print("| " + " | ".join(cells) + " |", flush=True)
        print(f"<!-- {form}: problems: {bs.check(fit, warn=False)} -->", flush=True)
    if args.svi and model is not None:
        svi = bs.fit_svi(model, y, key=args.key, progress=False)
        q = np.percentile(np.asarray(svi.forecast_samples(args.horizon, key=args.key + 1))[:, -1],
                          [5, 50, 95])  # fmt: skip
        checks = bs.check(svi, warn=False)
        print(f"SVI: median {q[1]:.2f}, 90% {q[0]:.2f}..{q[2]:.2f}; checks {checks}")


if __name__ == "__main__":
    main()
