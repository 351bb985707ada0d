"""Time and memory of the sequence layers against length: linear (SSM) vs quadratic (attention).

Methods (all from ``bayes_ssm.kernels``, jitted, float32 unless ``--dtype``):

=================  ======================================================================
ssd_chunked        ``ssd(..., method="chunked")``          O(T l)   matrix products
ssd_scan           ``ssd(..., method="scan")``             O(T)     scan on (T,h,p,n) states
ssd_quadratic      ``ssd(..., method="quadratic")``        O(T²)    the dual masked-attention form
selective_scan     ``selective_scan`` (Mamba-1, d = h·p)   O(T)     states (T,d,n)
s4d_conv           ``s4d(..., mode="convolution")``        O(T log T) FFT
linear_attention   ``linear_attention(method="chunked")``  O(T l)   elu+1 features
softmax_attention  ``softmax_attention``                   O(T²)
=================  ======================================================================

Measured: the median wall time of ``--repeats`` calls after one warm-up call (which compiles),
and memory. Memory is what XLA plans for the compiled program (``compiled.memory_analysis()``:
arguments + outputs + temporaries), the same measure on CPU and GPU; on a GPU the process
peak ``memory_stats()["peak_bytes_in_use"]`` after the method is also printed (cumulative
over the run, so only its growth is informative). The slope of log(time) against log(T)
(least squares over ``T >= --fit-from``) separates linear (~1) from quadratic (~2) growth;
the crossover is the first length where a linear method beats softmax attention.

Examples
--------
CPU, small sizes::

    PYTHONPATH=. python benchmarks/layers.py --sizes 256 1024 4096 16384 65536 \\
        --max-quadratic-T 8192

GPU (the lent H100), with the 2^20 run and the Mamba-2 target configuration::

    PYTHONPATH=. python benchmarks/layers.py --long --target
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from bayes_ssm.kernels import (
    init_s4d,
    init_selective_A,
    linear_attention,
    s4d,
    selective_scan,
    softmax_attention,
    ssd,
)

LINEAR = ("ssd_chunked", "ssd_scan", "selective_scan", "s4d_conv", "linear_attention")
QUADRATIC = ("ssd_quadratic", "softmax_attention")
ALL = (
    "ssd_chunked",
    "ssd_scan",
    "ssd_quadratic",
    "selective_scan",
    "s4d_conv",
    "linear_attention",
    "softmax_attention",
)


def make_inputs(T, args, dtype, key=0):
    """Random inputs at length ``T``: (b, T, h, p) for SSD/attention, (b, T, d) for the others."""
    b, h, p, n, g = args.batch, args.heads, args.head_dim, args.state, args.groups
    d = h * p
    ks = jax.random.split(jax.random.key(key), 8)
    x = jax.random.normal(ks[0], (b, T, h, p), dtype)
    return dict(
        x=x,
        dt=jax.nn.softplus(jax.random.normal(ks[1], (b, T, h), dtype) - 3),
        A=-jnp.exp(jax.random.uniform(ks[2], (h,), dtype)),
        B=jax.random.normal(ks[3], (b, T, g, n), dtype) / math.sqrt(n),
        C=jax.random.normal(ks[4], (b, T, g, n), dtype) / math.sqrt(n),
        q=jax.random.normal(ks[5], (b, T, h, p), dtype),
        k=jax.random.normal(ks[6], (b, T, h, p), dtype),
        xd=x.reshape(b, T, d),
        dtd=jax.nn.softplus(jax.random.normal(ks[7], (b, T, d), dtype) - 3),
        Bs=jax.random.normal(ks[3], (b, T, n), dtype) / math.sqrt(n),
        Cs=jax.random.normal(ks[4], (b, T, n), dtype) / math.sqrt(n),
        A_sel=init_selective_A(d, n, dtype=dtype),
        # S4D parameters are complex: keep them float32 when the inputs are bfloat16.
        s4d=init_s4d(
            jax.random.key(key + 1), d, args.state, dtype=jnp.promote_types(dtype, "float32")
        ),
    )


def method_fn(name, args, T):
    """``(function, argument names)`` of a method; the function takes the arrays positionally."""
    chunk = args.chunk
    block = args.selective_block if T > args.selective_block else None
    table = {
        "ssd_chunked": (
            lambda x, dt, A, B, C: ssd(x, dt, A, B, C, chunk_size=chunk),
            ("x", "dt", "A", "B", "C"),
        ),
        "ssd_scan": (
            lambda x, dt, A, B, C: ssd(x, dt, A, B, C, method="scan"),
            ("x", "dt", "A", "B", "C"),
        ),
        "ssd_quadratic": (
            lambda x, dt, A, B, C: ssd(x, dt, A, B, C, method="quadratic"),
            ("x", "dt", "A", "B", "C"),
        ),
        "selective_scan": (
            lambda x, dt, A, B, C: selective_scan(x, dt, A, B, C, block_size=block),
            ("xd", "dtd", "A_sel", "Bs", "Cs"),
        ),
        "s4d_conv": (lambda p, x: s4d(p, x), ("s4d", "xd")),
        "linear_attention": (
            lambda q, k, v: linear_attention(q, k, v, method="chunked", chunk_size=chunk),
            ("q", "k", "x"),
        ),
        "softmax_attention": (lambda q, k, v: softmax_attention(q, k, v), ("q", "k", "x")),
    }
    return table[name]


def _with_grad(fn):
    """Forward plus backward: the gradient of a scalar of the output w.r.t. every input."""

    def loss(*a):
        return jnp.sum(fn(*a).astype(jnp.float32) ** 2)

    return lambda *a: jax.grad(loss, argnums=tuple(range(len(a))))(*a)


def measure(fn, inputs, repeats):
    """Compile, warm up, then the median of ``repeats`` timed calls; XLA-planned memory."""
    jitted = jax.jit(fn)
    compiled = jitted.lower(*inputs).compile()
    mem = None
    try:
        ma = compiled.memory_analysis()
        mem = ma.temp_size_in_bytes + ma.argument_size_in_bytes + ma.output_size_in_bytes
    except Exception:  # noqa: BLE001 - not every backend reports it
        pass
    jax.block_until_ready(compiled(*inputs))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*inputs))
        times.append(time.perf_counter() - start)
    return statistics.median(times), mem


def gpu_peak():
    try:
        stats = jax.devices()[0].memory_stats() or {}
        return stats.get("peak_bytes_in_use")
    except Exception:  # noqa: BLE001
        return None


def run_table(args, dtype):
    results = {}  # (method, T) -> (seconds, bytes) or a string
    for T in args.sizes:
        inputs = make_inputs(T, args, dtype)
        for name in args.methods:
            if name in QUADRATIC and T > args.max_quadratic_T:
                results[name, T] = "skip"
                continue
            fn, names = method_fn(name, args, T)
            if args.grad:
                fn = _with_grad(fn)
            try:
                sec, mem = measure(fn, [inputs[k] for k in names], args.repeats)
                results[name, T] = (sec, mem)
                extra = ""
                if jax.default_backend() == "gpu":
                    peak = gpu_peak()
                    extra = f" gpu_peak={peak / 2**20:.0f}MB" if peak else ""
                print(
                    f"  [{time.strftime('%H:%M:%S')}] {name:18s} T={T:>8d}  {sec * 1e3:10.3f} ms  "
                    f"{(mem or 0) / 2**20:9.1f} MB{extra}",
                    file=sys.stderr,
                    flush=True,
                )
            except Exception as err:  # noqa: BLE001 - out of memory and friends end up here
                msg = str(err).splitlines()[0][:60]
                results[name, T] = "OOM" if "RESOURCE_EXHAUSTED" in str(err) else f"error: {msg}"
                print(f"  {name} T={T}: {results[name, T]}", file=sys.stderr, flush=True)
    return results


def fit_slope(results, name, sizes, fit_from):
    pts = [
        (T, results[name, T][0])
        for T in sizes
        if T >= fit_from and isinstance(results.get((name, T)), tuple)
    ]
    if len(pts) < 2:
        return float("nan")
    logT, logt = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(logT, logt, 1)[0])


def print_tables(results, args):
    sizes = args.sizes
    head = "| method | " + " | ".join(f"T={T}" for T in sizes) + " | slope |"
    rule = "|---|" + "---|" * (len(sizes) + 1)
    print(
        f"\nTime (ms, median of {args.repeats} after warm-up{', fwd+bwd' if args.grad else ''})\n"
    )
    print(head)
    print(rule)
    for name in args.methods:
        cells = []
        for T in sizes:
            r = results.get((name, T))
            cells.append(f"{r[0] * 1e3:.3g}" if isinstance(r, tuple) else str(r))
        slope = fit_slope(results, name, sizes, args.fit_from)
        print(f"| {name} | " + " | ".join(cells) + f" | {slope:.2f} |")
    print("\nMemory (MB, XLA-planned: arguments + outputs + temporaries)\n")
    print("| method | " + " | ".join(f"T={T}" for T in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for name in args.methods:
        cells = []
        for T in sizes:
            r = results.get((name, T))
            cells.append(
                f"{r[1] / 2**20:.3g}"
                if isinstance(r, tuple) and r[1]
                else str(r if not isinstance(r, tuple) else "n/a")
            )
        print(f"| {name} | " + " | ".join(cells) + " |")
    if "softmax_attention" in args.methods:
        print("\nCrossover (first measured T where the method is faster than softmax attention):")
        for name in LINEAR:
            if name not in args.methods:
                continue
            cross = None
            for T in sizes:
                a, s = results.get((name, T)), results.get(("softmax_attention", T))
                if isinstance(a, tuple) and isinstance(s, tuple) and a[0] < s[0]:
                    cross = T
                    break
            print(f"  {name:18s} {cross if cross else 'not within measured sizes'}")
        for name in LINEAR:
            big = [
                T
                for T in sizes
                if isinstance(results.get((name, T)), tuple)
                and isinstance(results.get(("softmax_attention", T)), tuple)
            ]
            if name in args.methods and big:
                T = big[-1]
                ratio = results["softmax_attention", T][0] / results[name, T][0]
                print(f"  at T={T}: softmax / {name} = {ratio:.1f}x")


def run_long(args, dtype):
    """SSD chunked and the (blocked) selective scan at T = 2^20 (where softmax cannot run)."""
    T = args.long_T
    print(f"\nLong series: T = {T}\n")
    print("| method | ms | MB (XLA-planned) |")
    print("|---|---|---|")
    inputs = make_inputs(T, args, dtype)
    for name in ("ssd_chunked", "selective_scan"):
        fn, names = method_fn(name, args, T)
        try:
            sec, mem = measure(fn, [inputs[k] for k in names], args.repeats)
            print(f"| {name} | {sec * 1e3:.3g} | {(mem or 0) / 2**20:.4g} |")
        except Exception as err:  # noqa: BLE001
            print(f"| {name} | {'OOM' if 'RESOURCE_EXHAUSTED' in str(err) else err} | |")


def run_target(args):
    """The issue's targets: SSD (b=2, T=4096, h=16, p=64, n=64), selective (b=4, d=1024, n=16)."""
    print(
        "\nTargets (issue 5): SSD b=2 T=4096 h=16 p=64 n=64 chunk 128; "
        "selective b=4 T=4096 d=1024 n=16\n"
    )
    print("| kernel | dtype | forward ms | forward+backward ms | MB (fwd) |")
    print("|---|---|---|---|---|")
    for dtype in (jnp.float32, jnp.bfloat16):
        t_args = argparse.Namespace(
            **{
                **vars(args),
                "batch": 2,
                "heads": 16,
                "head_dim": 64,
                "state": 64,
                "groups": 1,
                "chunk": 128,
            }
        )
        inputs = make_inputs(4096, t_args, dtype)
        for name in ("ssd_chunked", "ssd_quadratic", "ssd_scan"):
            fn, names = method_fn(name, t_args, 4096)
            arrays = [inputs[k] for k in names]
            try:
                fwd, mem = measure(fn, arrays, args.repeats)
                bwd, _ = measure(_with_grad(fn), arrays, args.repeats)
                print(
                    f"| {name} | {jnp.dtype(dtype).name} | {fwd * 1e3:.3g} | {bwd * 1e3:.3g} | "
                    f"{(mem or 0) / 2**20:.4g} |"
                )
            except Exception as err:  # noqa: BLE001
                print(f"| {name} | {jnp.dtype(dtype).name} | {str(err)[:40]} | | |")
    s_args = argparse.Namespace(
        **{
            **vars(args),
            "batch": 4,
            "heads": 16,
            "head_dim": 64,
            "state": 16,
            "selective_block": 1 << 30,
        }
    )
    inputs = make_inputs(4096, s_args, jnp.float32)
    fn, names = method_fn("selective_scan", s_args, 4096)
    variants = [(m, None) for m in ("associative", "chunked", "sequential")]
    variants += [("associative", blk) for blk in (256, 1024)]
    for method, blk in variants:

        def f(x, dt, A, B, C, m=method, blk=blk):
            return selective_scan(x, dt, A, B, C, method=m, block_size=blk)

        arrays = [inputs[k] for k in names]
        label = f"selective_scan[{method}{f', block {blk}' if blk else ''}]"
        try:
            fwd, mem = measure(f, arrays, args.repeats)
            both, _ = measure(_with_grad(f), arrays, args.repeats)
        except Exception as err:  # noqa: BLE001 - e.g. out of memory
            print(f"| {label} | float32 | {str(err).splitlines()[0][:60]} | | |")
            continue
        print(
            f"| {label} | float32 | {fwd * 1e3:.3g} | {both * 1e3:.3g} | {(mem or 0) / 2**20:.4g} |"
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 4096, 16384, 65536])
    parser.add_argument(
        "--max-quadratic-T",
        type=int,
        default=8192,
        help="largest T for the O(T^2) methods (memory)",
    )
    parser.add_argument("--methods", nargs="+", default=list(ALL), choices=ALL)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--head-dim", type=int, default=16)
    parser.add_argument("--state", type=int, default=16)
    parser.add_argument("--groups", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=64)
    parser.add_argument(
        "--selective-block",
        type=int,
        default=65536,
        help="time block of the selective scan above this length (memory)",
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--grad", action="store_true", help="time forward + backward")
    parser.add_argument("--fit-from", type=int, default=1024, help="smallest T in the slope fit")
    parser.add_argument("--long", action="store_true", help="also SSD and selective at --long-T")
    parser.add_argument("--long-T", type=int, default=1 << 20)
    parser.add_argument("--target", action="store_true", help="the issue's target sizes")
    parser.add_argument("--skip-table", action="store_true")
    args = parser.parse_args(argv)
    dtype = jnp.dtype(args.dtype)
    dev = jax.devices()[0]
    print(
        f"Measured by benchmarks/layers.py on {jax.default_backend()} ({dev.device_kind}), jax "
        f"{jax.__version__}; batch={args.batch} heads={args.heads} head_dim={args.head_dim} "
        f"state={args.state} groups={args.groups} chunk={args.chunk} dtype={args.dtype}"
    )
    if not args.skip_table:
        results = run_table(args, dtype)
        print_tables(results, args)
    if args.long:
        run_long(args, dtype)
    if args.target:
        run_target(args)


if __name__ == "__main__":
    main()
