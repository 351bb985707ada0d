"""Benchmark: the Pallas recurrence kernel against ``lax.associative_scan`` (and ``chunked``).

Prints, for each length T (D channels), the median wall time of each method after a compile /
warm-up call, the bandwidth roof (``a * 0.5 + b`` over the same arrays) and each method's
fraction of it (``of roof``; for gradient rows the roof is 8/3 of it: the forward's three
arrays plus the backward's five, ``a``, ``h``, the cotangent read and two gradients written),
the achieved bandwidth counting ``a`` and ``b`` read plus ``h`` written
(3 * T * D * itemsize bytes) per second, the speed-up over ``associative`` (its time over
the method's: above 1 is faster), and the largest
difference from ``associative`` (a correctness check of the compiled kernel at that size; for
bfloat16, from ``associative`` run in float32 on the same values).
``--tiles`` adds rows for other tile shapes (chunk x channels x warps, then ``t`` for the
three-pass variant).

Usage (the Pallas kernel needs a GPU; on a CPU it would run in the slow interpreter)::

    python benchmarks/scan_pallas.py --grad                           # T = 2**14 .. 2**20, D = 256
    python benchmarks/scan_pallas.py --sizes 1048576 --tiles 128x32x1 32x64x1 128x32x4t
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from bayes_ssm.kernels import linear_recurrence
from bayes_ssm.kernels.recurrence_pallas import (
    DEFAULT_TILE,
    DEFAULT_TILE_NARROW,
    linear_recurrence_pallas,
)


def _time(fn, *args, repeats: int) -> tuple[float, jax.Array]:
    out = jax.block_until_ready(fn(*args))  # compile + warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2**k for k in range(14, 21, 2)])
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--dtypes", nargs="+", default=["float32"], help="e.g. float32 bfloat16")
    parser.add_argument("--chunked-max-T", type=int, default=2**20, help="skip chunked above")
    parser.add_argument(
        "--tiles",
        nargs="*",
        default=[],
        help="extra tiles: LxBDxWARPS[t] (t: three-pass)",
    )
    parser.add_argument("--reverse", action="store_true")
    parser.add_argument(
        "--grad", action="store_true", help="also time the gradient of sum(h) w.r.t. a and b"
    )
    args = parser.parse_args()

    interpret = jax.default_backend() != "gpu"
    device = jax.devices()[0]
    print(
        f"# linear_recurrence: associative vs Pallas. {jax.default_backend()} "
        f"({device.device_kind}), jax {jax.__version__}, python {platform.python_version()}, "
        f"D = {args.channels}, reverse={args.reverse}, median of {args.repeats}, "
        f"{datetime.date.today()}; default tile (L, BD, warps) = {DEFAULT_TILE} (float32), "
        f"{DEFAULT_TILE_NARROW} (bfloat16)"
        + ("; CPU: Pallas runs in the interpreter, timings meaningless" if interpret else "")
    )
    header = (
        f"| {'T':>8} | dtype | {'method':<26} | {'time (ms)':>9} | {'GB/s':>7} | "
        f"{'vs associative':>14} | {'of roof':>7} | {'max abs diff':>12} |"
    )
    print(header)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    rng = np.random.default_rng(0)
    rev = args.reverse
    for length, dtype in itertools.product(args.sizes, map(jnp.dtype, args.dtypes)):
        dn = {"bfloat16": "bf16", "float32": "f32", "float64": "f64"}.get(dtype.name, dtype.name)
        a = jnp.asarray(rng.uniform(0.9, 1.0, (length, args.channels)), dtype)
        b = jnp.asarray(rng.normal(size=(length, args.channels)), dtype)
        moved = 3 * length * args.channels * dtype.itemsize
        # The bandwidth roof: an elementwise op over the same arrays (2 read, 1 written).
        roof, _ = _time(jax.jit(lambda a, b: a * 0.5 + b), a, b, repeats=args.repeats)
        print(
            f"| {length:>8} | {dn:>5} | {'roof a*0.5+b':<26} | {roof * 1e3:>9.3f} | "
            f"{moved / roof / 1e9:>7.1f} | {'':>14} | {'1.00':>7} | {'':>12} |"
        )
        fns = {
            "associative": lambda a, b: linear_recurrence(a, b, method="associative", reverse=rev)
        }
        if length <= args.chunked_max_T:
            fns["chunked"] = lambda a, b: linear_recurrence(a, b, method="chunked", reverse=rev)
        fns["pallas lookback"] = lambda a, b: linear_recurrence_pallas(
            a, b, reverse=rev, interpret=interpret
        )
        fns["pallas three_pass"] = lambda a, b: linear_recurrence_pallas(
            a, b, reverse=rev, method="three_pass", interpret=interpret
        )
        for tile in args.tiles:
            # LxBDxWARPS, then an optional "t" for the three-pass variant.
            method = "three_pass" if tile.endswith("t") else "lookback"
            chunk, block, warps = (int(x) for x in tile.rstrip("t").split("x"))
            fns[f"pallas {method} {tile}"] = lambda a, b, c=chunk, d=block, w=warps, m=method: (
                linear_recurrence_pallas(
                    a, b, reverse=rev, chunk_size=c, block_channels=d, num_warps=w, method=m,
                    interpret=interpret,
                )
            )  # fmt: skip
        if args.grad:  # gradients: compared with associative's, bandwidth still by 3 arrays
            for name in ("associative", "pallas lookback"):
                fns[f"grad {name}"] = jax.grad(
                    lambda a, b, f=fns[name]: jnp.sum(f(a, b)), argnums=(0, 1)
                )
        base = ref = None
        lookback_times = {}
        narrow = dtype.itemsize < 4
        if args.grad and args.tiles:  # the gradient of the fastest forward tile, last
            fns["grad pallas lookback best tile"] = None
        for name, fn in fns.items():
            if fn is None:
                best = min(lookback_times, key=lookback_times.get)
                name = f"grad {best}"
                fn = jax.grad(lambda a, b, f=fns[best]: jnp.sum(f(a, b)), argnums=(0, 1))
            if name == "grad associative":
                base = ref = None  # the gradient rows compare with each other
            try:
                seconds, out = _time(jax.jit(fn), a, b, repeats=args.repeats)
            except Exception as err:  # report and go on: one failing variant keeps the table
                err = f"{type(err).__name__}: {err!s:.60}"
                print(f"| {length:>8} | {dn:>5} | {name:<26} | failed: {err}")
                continue
            if base is None:
                base, ref = seconds, out
                if narrow:  # differences from float32 scans of the same values
                    ref = jax.jit(fn)(a.astype(jnp.float32), b.astype(jnp.float32))
            if name.startswith("pallas lookback"):
                lookback_times[name] = seconds
            diff = max(
                float(jnp.max(jnp.abs(x - y)))
                for x, y in zip(jax.tree.leaves(out), jax.tree.leaves(ref), strict=True)
            )
            print(
                f"| {length:>8} | {dn:>5} | {name:<26} | {seconds * 1e3:>9.3f} | "
                f"{moved / seconds / 1e9:>7.1f} | {base / seconds:>13.2f}x | "
                f"{roof * (8 / 3 if name.startswith('grad') else 1) / seconds:>7.2f} | "
                f"{diff:>12.2e} |",
                flush=True,
            )
            del out
        del a, b, ref


if __name__ == "__main__":
    main()
