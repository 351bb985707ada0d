"""StructuralTS under NUTS on the ILI demo: cost per gradient and a whole NUTS run.

The CLI demo (``bayes-ssm forecast --dataset ili --horizon 26``) fits
``StructuralTS(trend="local_linear", seasonal=52)`` (local linear trend + trigonometric seasonal,
52 weeks, 3 harmonics: 8 states) to ~1400 weekly values with NUTS; the target is NUTS within ~2
minutes on 2 CPU cores. This script measures, side by side in one run and on whatever backend
JAX has:

* ``grad ms``: one ``jit(value_and_grad(potential))`` of the model's log density (median of
  ``--repeats``), the unit NUTS pays per leapfrog step; ``compile s``: its first call.
* ``nuts s``: wall time of ``MCMC(NUTS)`` with ``--warmup`` / ``--samples`` / ``--chains``
  (chains run sequentially: ``chain_method="sequential"``), including compilation;
  ``steps``: mean leapfrog steps per iteration; ``div``: divergences;
  ``grads``: total gradient evaluations; ``ms/grad``: ``nuts s`` / ``grads``.

Usage::

    PYTHONPATH=. python benchmarks/structural_nuts.py                       # ILI, defaults
    PYTHONPATH=. python benchmarks/structural_nuts.py --likelihoods gaussian --chains 2 \\
        --warmup 500 --samples 500
    PYTHONPATH=. python benchmarks/structural_nuts.py --method parallel     # GPU path
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer import MCMC, NUTS
from numpyro.infer.util import initialize_model

from bayes_ssm.data import datasets
from bayes_ssm.models import StructuralTS


def _data(likelihood, tile):
    y = np.asarray(datasets.load("ili"), dtype=float)[:-26]
    y = np.tile(y, tile)
    if likelihood == "negative_binomial":  # ILI is a percentage; scale to counts
        y = np.round(y * 1000.0)
    return y


def _grad_cost(model, y, scales, repeats):
    info = initialize_model(
        jax.random.PRNGKey(0),
        model.model,
        model_kwargs={"y": jnp.asarray(y, jnp.float32), "scales": scales},
    )
    fn = jax.jit(jax.value_and_grad(info.potential_fn))
    z = info.param_info.z
    t = time.perf_counter()
    jax.block_until_ready(fn(z))
    compile_s = time.perf_counter() - t
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(z))
        times.append(time.perf_counter() - t)
    return compile_s, 1e3 * float(np.median(times))


def _nuts(model, y, scales, args):
    mcmc = MCMC(
        NUTS(model.model),
        num_warmup=args.warmup,
        num_samples=args.samples,
        num_chains=args.chains,
        chain_method="sequential",
        progress_bar=False,
    )
    t = time.perf_counter()
    mcmc.run(
        jax.random.PRNGKey(1),
        jnp.asarray(y, jnp.float32),
        scales=scales,
        extra_fields=("num_steps", "diverging"),
    )
    samples = mcmc.get_samples()
    jax.block_until_ready(samples)
    wall = time.perf_counter() - t
    extra = mcmc.get_extra_fields()
    steps = np.asarray(extra["num_steps"])
    # warm-up steps are not kept; assume the same mean for them
    grads = float(np.mean(steps)) * (args.warmup + args.samples) * args.chains
    return wall, float(np.mean(steps)), int(np.sum(extra["diverging"])), grads


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--likelihoods", nargs="+", default=["gaussian", "student_t", "negative_binomial"]
    )
    parser.add_argument("--harmonics", type=int, default=3)
    parser.add_argument("--tile", type=int, default=1, help="repeat the series (longer T)")
    parser.add_argument("--method", default="auto", choices=["auto", "sequential", "parallel"])
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--chains", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--no-nuts", action="store_true")
    args = parser.parse_args(argv)

    from bayes_ssm.models import Seasonal

    print(f"backend: {jax.default_backend()}  devices: {jax.devices()}")
    header = (
        f"{'likelihood':<18} {'T':>6} {'states':>6} {'compile s':>9} {'grad ms':>8} "
        f"{'nuts s':>7} {'steps':>6} {'div':>4} {'grads':>8} {'ms/grad':>8}"
    )
    print(header)
    print("-" * len(header))
    for likelihood in args.likelihoods:
        model = StructuralTS(
            trend="local_linear",
            seasonal=Seasonal(52, harmonics=args.harmonics),
            likelihood=likelihood,
            method=args.method,
        )
        y = _data(likelihood, args.tile)
        scales = model.data_scales(y)
        compile_s, grad_ms = _grad_cost(model, y, scales, args.repeats)
        row = (
            f"{likelihood:<18} {len(y):>6} {model.state_size:>6} {compile_s:>9.2f} {grad_ms:>8.2f}"
        )
        if not args.no_nuts:
            wall, steps, div, grads = _nuts(model, y, scales, args)
            row += f" {wall:>7.1f} {steps:>6.1f} {div:>4d} {grads:>8.0f} {1e3 * wall / grads:>8.2f}"
        print(row, flush=True)


if __name__ == "__main__":
    main()
