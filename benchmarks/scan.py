"""Benchmark: the three linear-recurrence algorithms side by side, in one run.

Prints, for each length T and channel count D, the median wall time of each method (after a
compile/warm-up call), its ratio to ``sequential`` and the achieved memory bandwidth, counting
the bytes of ``a`` and ``b`` read plus ``h`` written (3 * T * D * itemsize) per second.

Usage::

    python benchmarks/scan.py                       # CPU defaults: T = 1e3 .. 1e6, D = 16
    python benchmarks/scan.py --sizes 1048576 --channels 256 --max-sequential-T 65536   # GPU
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from bayes_ssm.kernels import choose_method, linear_recurrence
from bayes_ssm.kernels.recurrence import DEFAULT_CHUNK_SIZE


def _time(fn, *args, repeats: int) -> float:
    fn(*args).block_until_ready()  # compile + warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args).block_until_ready()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--channels", type=int, nargs="+", default=[16])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE)
    parser.add_argument(
        "--max-sequential-T",
        type=int,
        default=10**9,
        help="skip lax.scan above this length (it takes ~18 us/step on a GPU)",
    )
    parser.add_argument("--dtype", default="float32")
    args = parser.parse_args()

    device = jax.devices()[0]
    print(
        f"# linear_recurrence benchmark: {jax.default_backend()} ({device.device_kind}), "
        f"jax {jax.__version__}, python {platform.python_version()}, dtype {args.dtype}, "
        f"chunk_size {args.chunk_size}, median of {args.repeats}"
    )
    header = (
        f"| {'T':>9} | {'D':>4} | {'method':<11} | {'time (ms)':>10} | "
        f"{'vs sequential':>13} | {'GB/s':>8} |"
    )
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    rng = np.random.default_rng(0)
    dtype = jnp.dtype(args.dtype)
    for channels in args.channels:
        for length in args.sizes:
            a = jnp.asarray(rng.uniform(0.9, 1.0, (length, channels)), dtype)
            b = jnp.asarray(rng.normal(size=(length, channels)), dtype)
            moved = 3 * length * channels * dtype.itemsize
            results = {}
            for method in ("sequential", "associative", "chunked"):
                if method == "sequential" and length > args.max_sequential_T:
                    continue
                fn = jax.jit(
                    lambda a, b, m=method: linear_recurrence(
                        a, b, method=m, chunk_size=args.chunk_size
                    )
                )
                results[method] = _time(fn, a, b, repeats=args.repeats)
            base = results.get("sequential")
            for method, seconds in results.items():
                ratio = f"{seconds / base:.2f}x" if base else "n/a"
                print(
                    f"| {length:>9} | {channels:>4} | {method:<11} | {seconds * 1e3:>10.3f} | "
                    f"{ratio:>13} | {moved / seconds / 1e9:>8.2f} |"
                )
            print(
                f"|           |      | auto picks  | {choose_method(length, dtype=dtype):<10} |"
                f"               |          |"
            )
            del a, b


if __name__ == "__main__":
    main()
