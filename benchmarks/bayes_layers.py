"""Cost of a random draw: Bayesian layers against the deterministic kernels they wrap.

One forward pass (and one forward + backward) of one posterior draw, jitted, per length ``T``:

=====================  ==================================================================
ssd                    ``kernels.ssd.ssd_discrete`` (chunked), fixed decay   (baseline)
stoch_ssd_chunked      ``StochasticDecaySSD`` (sampling + chunked kernel)     O(T)
stoch_ssd_scan         ``StochasticDecaySSD(method="scan")``                  O(T)
stoch_ssd_quadratic    ``StochasticDecaySSD(method="quadratic")``            O(T²)
softmax                ``kernels.attention.softmax_attention``              O(T²) (baseline)
bam_softmax            ``BayesianAttention`` guide (Weibull weights)          O(T²)
=====================  ==================================================================

The stochastic-decay layer keeps the linear-time forms for every draw (the random mask stays
1-semiseparable); Bayesian attention on the ``T x T`` weights cannot. The table reports the
median wall time of ``--repeats`` calls after a warm-up call (which compiles), the ratio to the
deterministic baseline, and the log-log slope of time against ``T`` (``T >= --fit-from``).

Examples
--------
::

    PYTHONPATH=. python benchmarks/bayes_layers.py --sizes 256 1024 4096 --max-quadratic-T 4096
    PYTHONPATH=. python benchmarks/bayes_layers.py --sizes 1024 4096 16384 65536 262144
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.handlers import scope, seed, substitute

from bayes_ssm.kernels.attention import softmax_attention
from bayes_ssm.kernels.ssd import ssd_discrete
from bayes_ssm.layers import BayesianAttention, StochasticDecaySSD

METHODS = ("ssd", "stoch_ssd_chunked", "stoch_ssd_scan", "stoch_ssd_quadratic", "softmax",
           "bam_softmax")  # fmt: skip
QUADRATIC = ("stoch_ssd_quadratic", "softmax", "bam_softmax")
BASELINE = {"stoch_ssd_chunked": "ssd", "stoch_ssd_scan": "ssd", "stoch_ssd_quadratic": "ssd",
            "bam_softmax": "softmax"}  # fmt: skip


def _fn(method, T, h, p, n, chunk):
    """``(f, args)``: a scalar function of its array arguments (all passed in, so XLA cannot
    fold them as constants); gradients are taken with respect to the first."""
    kx, kb, kc = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (T, h, p))
    B = jax.random.normal(kb, (T, 1, n)) / math.sqrt(n)
    C = jax.random.normal(kc, (T, 1, n)) / math.sqrt(n)
    if method == "ssd":

        def f(x, log_a, B, C):
            return jnp.sum(ssd_discrete(x, log_a, B, C, method="chunked", chunk_size=chunk) ** 2)

        return f, (x, jnp.full((T, h), math.log(0.95)), B, C)
    if method.startswith("stoch_ssd"):
        layer = StochasticDecaySSD(num_heads=h, head_dim=p, state_dim=n, chunk_size=chunk,
                                   method=method.removeprefix("stoch_ssd_"))  # fmt: skip

        def f(x, key, B, C):
            return jnp.sum(seed(scope(layer, prefix="l"), key)(x, B=B, C=C) ** 2)

        return f, (x, jax.random.PRNGKey(1), B, C)
    d = h * p
    xd = x.reshape(T, d)
    w = jax.random.normal(kb, (3, d, h, p)) / math.sqrt(d)
    if method == "softmax":

        def f(xd, w):
            q, k, v = (jnp.einsum("td,dhn->thn", xd, w[i]) for i in range(3))
            return jnp.sum(softmax_attention(q, k, v) ** 2)

        return f, (xd, w)
    layer = BayesianAttention(num_heads=h, head_dim=p, concentration=10.0)

    def f(xd, w, key):
        params = {"a/query_weight": w[0], "a/key_weight": w[1], "a/value_weight": w[2]}
        return jnp.sum(substitute(seed(scope(layer.guide, prefix="a"), key), params)(xd) ** 2)

    return f, (xd, w, jax.random.PRNGKey(1))


def _time(fn, args, repeats):
    jax.block_until_ready(fn(*args))  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--head-dim", type=int, default=16)
    parser.add_argument("--state", type=int, default=16)
    parser.add_argument("--chunk", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-quadratic-T", type=int, default=8192)
    parser.add_argument("--fit-from", type=int, default=1024)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    args = parser.parse_args(argv)

    print(f"# backend: {jax.default_backend()} ({jax.devices()[0].device_kind}), float32, "
          f"heads={args.heads}, head_dim={args.head_dim}, state={args.state}, "
          f"chunk={args.chunk}, median of {args.repeats}")  # fmt: skip
    results = {}
    for method in args.methods:
        for T in args.sizes:
            if method in QUADRATIC and T > args.max_quadratic_T:
                continue
            f, fargs = _fn(method, T, args.heads, args.head_dim, args.state, args.chunk)
            fwd = _time(jax.jit(f), fargs, args.repeats)
            bwd = _time(jax.jit(jax.value_and_grad(f)), fargs, args.repeats)
            results[method, T] = (fwd, bwd)

    print("\n| method | T | forward ms | fwd+bwd ms | forward / baseline | fwd+bwd / baseline |")
    print("|---|---:|---:|---:|---:|---:|")
    for (method, T), (fwd, bwd) in results.items():
        base = results.get((BASELINE.get(method), T))
        r1 = f"{fwd / base[0]:.2f}" if base else ""
        r2 = f"{bwd / base[1]:.2f}" if base else ""
        print(f"| {method} | {T} | {fwd * 1e3:.3f} | {bwd * 1e3:.3f} | {r1} | {r2} |")

    print("\n| method | slope of log time vs log T (forward) | (fwd+bwd) |")
    print("|---|---:|---:|")
    for method in args.methods:
        pts = [(T, v) for (m, T), v in results.items() if m == method and T >= args.fit_from]
        if len(pts) >= 2:
            lt = np.log([t for t, _ in pts])
            s1 = np.polyfit(lt, np.log([v[0] for _, v in pts]), 1)[0]
            s2 = np.polyfit(lt, np.log([v[1] for _, v in pts]), 1)[0]
            print(f"| {method} | {s1:.2f} | {s2:.2f} |")


if __name__ == "__main__":
    main()
