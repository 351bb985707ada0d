"""Training-step time of the forecasters against context length: one SVI step (ELBO + gradient).

Each row is a model as a user fits it: its NumPyro program with an ``AutoNormal`` guide, one
``Trace_ELBO`` loss-and-gradient evaluation (one particle), jitted, timed as the median of
``--repeats`` calls after a warm-up call (which compiles). The slope of log(time) against
log(T) (least squares over ``T >= --fit-from``) is ~1 for linear growth.

Models:

=======================  ===================================================================
neural_ssm_s4d           ``NeuralSSM(width=8, num_layers=2)`` (S4D layers, FFT convolution)
neural_ssm_selective     the same with ``layer="selective"`` (Mamba-1 selective scan)
neural_ssm_ssd           the same with ``layer="ssd"`` (Mamba-2 SSD, chunked algorithm)
neural_ssm_attention     the same with ``layer="attention"`` (causal softmax: O(T²) by design)
neural_ssm_ssd_bidir     ``layer="ssd", direction="bidirectional"`` (two stacks)
structural_discrete      ``StructuralTS(trend=None, seasonal=Seasonal(52.18, 3))`` (Kalman)
structural_continuous    the same at irregular times (time-varying Kalman, ``time="continuous"``)
=======================  ===================================================================

The sequence layers themselves (S4D, selective, SSD, linear and softmax attention), forward plus
backward, are timed by ``benchmarks/layers.py --grad``.

Example::

    PYTHONPATH=. python benchmarks/training_step.py --sizes 64 256 1024 4096 8192
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.handlers import seed, trace
from numpyro.infer import Trace_ELBO
from numpyro.infer.autoguide import AutoNormal

from bayes_ssm.models import NeuralSSM, Seasonal, StructuralTS


def _series(num_steps, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(num_steps)
    return np.sin(2 * np.pi * t / 52.18) + np.cumsum(rng.normal(0, 0.1, num_steps))


def _models(num_steps):
    rng = np.random.default_rng(1)
    times = np.cumsum(rng.uniform(0.5, 1.5, num_steps))
    seasonal = Seasonal(52.18, harmonics=3)
    return {
        "neural_ssm_s4d": NeuralSSM(width=8, num_layers=2),
        "neural_ssm_selective": NeuralSSM(width=8, num_layers=2, layer="selective"),
        "neural_ssm_ssd": NeuralSSM(width=8, num_layers=2, layer="ssd"),
        "neural_ssm_attention": NeuralSSM(width=8, num_layers=2, layer="attention"),
        "neural_ssm_ssd_bidir": NeuralSSM(
            width=8, num_layers=2, layer="ssd", direction="bidirectional"
        ),
        "structural_discrete": StructuralTS(trend=None, seasonal=seasonal),
        "structural_continuous": StructuralTS(trend=None, seasonal=seasonal).with_times(times),
    }


def step_fn(model, y, scales):
    """``params -> (loss, grads)`` of one ELBO evaluation, and the initial guide params."""
    kwargs = dict(scales=scales, horizon=0)
    guide = AutoNormal(model.model)
    elbo = Trace_ELBO()
    key = jax.random.PRNGKey(0)
    with trace() as tr:
        seed(guide, key)(y, **kwargs)
    params = {k: v["value"] for k, v in tr.items() if v["type"] == "param"}

    def loss(p):
        return elbo.loss(key, p, model.model, guide, y, **kwargs)

    return jax.jit(jax.value_and_grad(loss)), params


def measure(fn, params, repeats):
    jax.block_until_ready(fn(params))  # compile + warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(params))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 1024, 4096, 8192])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--fit-from", type=int, default=256)
    parser.add_argument("--models", nargs="+", default=list(_models(8)))
    parser.add_argument("--float32", action="store_true", help="float32 (as on a GPU)")
    parser.add_argument(
        "--by-model", action="store_true", help="finish one model's sizes before the next"
    )
    args = parser.parse_args(argv)
    # a script, not the package: float64 as fitted on a CPU, float32 where asked
    jax.config.update("jax_enable_x64", not args.float32)
    dtype = "float32" if args.float32 else "float64"
    results = {}
    cells = [(t, m) for m in args.models for t in args.sizes]  # one model's row at a time
    if not args.by_model:
        cells = [(t, m) for t in args.sizes for m in args.models]
    for num_steps, name in cells:
        y = jnp.asarray(_series(num_steps), dtype)
        model = _models(num_steps)[name]
        scales = model.data_scales(np.asarray(y))
        start = time.perf_counter()
        fn, params = step_fn(model, y, scales)
        sec = measure(fn, params, args.repeats)
        results[name, num_steps] = sec
        total = time.perf_counter() - start  # compile + repeats: where a call's time goes
        print(
            f"  {name:22s} T={num_steps:>6d} {sec * 1e3:9.3f} ms  ({total:.1f} s incl. compile)",
            file=sys.stderr,
            flush=True,
        )
    device = jax.devices()[0].device_kind
    print(f"\nOne SVI step (ms, median of {args.repeats}; {device}, {dtype})\n")
    print("| model | " + " | ".join(f"T={t}" for t in args.sizes) + " | slope |")
    print("|---|" + "---|" * (len(args.sizes) + 1))
    for name in args.models:
        pts = [
            (t, results[name, t]) for t in args.sizes if t >= args.fit_from and (name, t) in results
        ]
        slope = float("nan")
        if len(pts) >= 2:
            slope = np.polyfit(np.log([p[0] for p in pts]), np.log([p[1] for p in pts]), 1)[0]
        cells = " | ".join(
            f"{results[name, t] * 1e3:.3f}" if (name, t) in results else "" for t in args.sizes
        )
        print(f"| {name} | {cells} | {slope:.2f} |")


if __name__ == "__main__":
    main()
