"""Negative-binomial StructuralTS under NUTS: state parameterisations side by side.

The count model samples its state path (``bayes_ssm/models/_state_paths.py``). This script fits
the same model and data under ``state_parameterization="mixed"`` (the default for long
series), ``"centred"`` and ``"noncentred"`` (and ``dense_mass`` variants on request) and
prints, per run:

* ``rhat``: the largest split r-hat over the parameter sites (``sigma_*``, ``concentration``) and
  the level (log scale) at 10 time points; ``ess/s``: their smallest bulk ESS per second of wall
  time (NumPyro's estimator);
* ``depth``: mean tree depth of the kept draws (``log2(steps + 1)``); ``sat``: share of kept
  draws at ``max_tree_depth``; ``div``: divergences; ``wall s``: warm-up + draws, compilation
  included, chains in parallel (one CPU device per chain).

Data: ``sim``, simulated by hand (numpy, not our code) from a local linear trend plus a fixed
weekly pattern on the log scale with known parameters (mean count ~200); ``covid``: Japan's daily
new COVID-19 deaths (``bayes_ssm.data.datasets.load("covid")``, negative corrections as missing,
1143 days, median 31); ``ili``: weekly ILI x 1000 as counts without the last 26 weeks (T =
1410, the series of the earlier tree-depth saturation). The model: local linear trend +
trigonometric weekly seasonal (period 7, 3 harmonics) for the daily series; local linear trend
+ seasonal 52.18 (3 harmonics) for ILI.

Usage::

    PYTHONPATH=. python benchmarks/counts_nuts.py --data sim --steps 300 1400
    PYTHONPATH=. python benchmarks/counts_nuts.py --data covid ili --chains 4 --warmup 500
    PYTHONPATH=. python benchmarks/counts_nuts.py --data sim --steps 300 \\
        --parameterizations noncentred centred --dense

Runs on whatever backend JAX has (the sampler is sequential per chain; on a GPU host prefer
``JAX_PLATFORMS=cpu``, the per-step scan is latency-bound).
"""

from __future__ import annotations

import argparse
import os
import time

_p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
_p.add_argument("--data", nargs="+", default=["sim"], choices=["sim", "covid", "italy", "ili"])
_p.add_argument(
    "--trend", default="local_linear", choices=["local_linear", "none"], help="trend of the model"
)
_p.add_argument("--steps", nargs="+", type=int, default=[300], help="T of the simulated series")
_p.add_argument(
    "--parameterizations",
    nargs="+",
    default=["mixed", "centred", "noncentred"],
    choices=["mixed", "mixed_rms", "trend_rms", "centred", "noncentred", "auto"],
    help="to compare",
)
_p.add_argument("--dense", action="store_true", help="also run each with dense_mass=True")
_p.add_argument("--chains", type=int, default=4)
_p.add_argument("--warmup", type=int, default=500)
_p.add_argument("--samples", type=int, default=500)
_p.add_argument("--max-tree-depth", type=int, default=10)
_p.add_argument("--target-accept", type=float, default=0.8)
_p.add_argument("--seed", type=int, default=0)
_p.add_argument(
    "--init",
    default="median",
    choices=["median", "prior"],
    help="NUTS start: fit_nuts(init='median') (path from the counts) or init='prior' (default)",
)
ARGS = _p.parse_args()
os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={ARGS.chains}")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from numpyro.diagnostics import effective_sample_size, split_gelman_rubin  # noqa: E402
from numpyro.infer import MCMC, NUTS, init_to_sample  # noqa: E402

from bayes_ssm.data import datasets  # noqa: E402
from bayes_ssm.models import Seasonal, StructuralTS  # noqa: E402
from bayes_ssm.models._state_paths import init_to_median_path  # noqa: E402

TRUTH = {"sigma_level": 0.05, "sigma_slope": 0.0005, "concentration": 20.0}
MEDIANS = ("sigma_level", "sigma_slope", "concentration")


def simulate(num_steps, seed=0):
    """Local linear trend on the log scale + fixed weekly pattern, NB counts (by hand)."""
    rng = np.random.default_rng(seed)
    level, slope = np.log(200.0), 0.0
    weekly = 0.3 * np.sin(2 * np.pi * np.arange(7) / 7) + 0.1 * np.cos(4 * np.pi * np.arange(7) / 7)
    log_mean = np.empty(num_steps)
    for t in range(num_steps):
        log_mean[t] = level + weekly[t % 7]
        level += slope + rng.normal(0, TRUTH["sigma_level"])
        slope += rng.normal(0, TRUTH["sigma_slope"])
    k = TRUTH["concentration"]
    return rng.negative_binomial(k, k / (k + np.exp(log_mean))).astype(float)


def dataset(name, num_steps):
    if name == "sim":
        return f"sim T={num_steps}", simulate(num_steps), Seasonal(7, harmonics=3)
    if name == "italy":  # the window of notebooks/health_counts.ipynb, without its 28 test days
        y = datasets.load("covid")["italy_new_deaths"].astype(float)["2021-10-01":"2022-04-28"]
        y = y.to_numpy()[:-28]
        y[y < 0] = np.nan
        return f"covid italy deaths T={y.size}", y, Seasonal(7, harmonics=3)
    if name == "covid":
        y = datasets.load("covid")["japan_new_deaths"].to_numpy(dtype=float)
        y[y < 0] = np.nan
        return f"covid japan deaths T={y.size}", y, Seasonal(7, harmonics=3)
    y = np.round(np.asarray(datasets.load("ili"), dtype=float)[:-26] * 1000.0)
    return f"ili x1000 T={y.size}", y, Seasonal(52.18, harmonics=3)


def run(label, y, seasonal, parameterization, dense):
    model = StructuralTS(
        trend=None if ARGS.trend == "none" else ARGS.trend,
        seasonal=seasonal,
        likelihood="negative_binomial",
        state_parameterization=parameterization,
    )
    scales = model.data_scales(y)
    kernel = NUTS(
        model.model,
        # fit_nuts(init="median") or fit_nuts(init="prior")
        init_strategy=init_to_median_path if ARGS.init == "median" else init_to_sample,
        dense_mass=dense,
        max_tree_depth=ARGS.max_tree_depth,
        target_accept_prob=ARGS.target_accept,
    )
    mcmc = MCMC(
        kernel,
        num_warmup=ARGS.warmup,
        num_samples=ARGS.samples,
        num_chains=ARGS.chains,
        chain_method="parallel" if jax.local_device_count() >= ARGS.chains else "vectorized",
        progress_bar=False,
    )
    t = time.perf_counter()
    mcmc.run(
        jax.random.PRNGKey(ARGS.seed),
        jnp.asarray(y, jnp.float32),
        scales=scales,
        extra_fields=("num_steps", "diverging"),
    )
    post = mcmc.get_samples(group_by_chain=True)
    jax.block_until_ready(post)
    wall = time.perf_counter() - t
    stats = mcmc.get_extra_fields(group_by_chain=True)
    # the level at 10 time points, from the sampled states (same in both coordinates)
    pred = _log_intensity(model, y, scales, post)
    checks = {k: np.asarray(post[k]) for k in model.parameter_sites}
    for j, t_ in enumerate(np.linspace(0, y.size - 1, 10).astype(int)):
        checks[f"eta_{j}"] = pred[..., t_]
    rhat = max(float(np.max(split_gelman_rubin(v))) for v in checks.values())
    rhat_sl = float(split_gelman_rubin(checks["sigma_level"]))
    ess_sl = float(effective_sample_size(checks["sigma_level"]))
    ess = min(float(np.min(effective_sample_size(v))) for v in checks.values())
    steps = np.asarray(stats["num_steps"])
    depth = np.log2(steps + 1)
    sat = float(np.mean(depth >= ARGS.max_tree_depth))
    div = int(np.sum(stats["diverging"]))
    med = {k: float(np.median(post[k])) if k in post else np.nan for k in MEDIANS}
    name = parameterization + (" dense" if dense else "")
    print(
        f"| {label} | {name} | {rhat:.3f} | {ess:.0f} | {rhat_sl:.3f} | {ess_sl:.0f} "
        f"| {ess / wall:.2f} | {depth.mean():.1f} "
        f"| {sat:.2f} | {div} | {wall:.0f} | {med['sigma_level']:.3f} | "
        f"{med['sigma_slope']:.4f} | {med['concentration']:.1f} |",
        flush=True,
    )


def _log_intensity(model, y, scales, post):
    """The level component (chain, draw, time) recomputed from the draws (same in both
    coordinates)."""
    from numpyro.infer import Predictive

    flat = {k: v.reshape((-1,) + v.shape[2:]) for k, v in post.items()}
    chains, draws = next(iter(post.values())).shape[:2]
    pred = Predictive(model.model, posterior_samples=flat, return_sites=["component/level"])
    ll = pred(jax.random.PRNGKey(1), jnp.asarray(y, jnp.float32), scales=scales, components=True)
    ll = ll["component/level"]
    return np.asarray(ll).reshape(chains, draws, -1)


def main():
    print(
        f"backend {jax.default_backend()}, {ARGS.chains} chains x ({ARGS.warmup} warm-up + "
        f"{ARGS.samples} draws), max_tree_depth {ARGS.max_tree_depth}, target_accept "
        f"{ARGS.target_accept}, init {ARGS.init}, trend {ARGS.trend}; simulated truth {TRUTH}"
    )
    print(
        "| data | parameterisation | max rhat | min ess | rhat sl | ess sl | ess/s | depth | sat "
        "| div | wall s "
        "| sigma_level | sigma_slope | concentration |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    cases = []
    for name in ARGS.data:
        for num_steps in ARGS.steps if name == "sim" else [None]:
            cases.append(dataset(name, num_steps))
    for label, y, seasonal in cases:
        for parameterization in ARGS.parameterizations:
            for dense in [False, True] if ARGS.dense else [False]:
                run(label, y, seasonal, parameterization, dense)


if __name__ == "__main__":
    main()
