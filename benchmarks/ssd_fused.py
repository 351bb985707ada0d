"""Benchmark: the fused Pallas SSD kernels beside the XLA chunked form and Mamba-2's Triton.

For each shape and dtype prints, measured in one process: the official Mamba-2 Triton kernel
(``mamba_chunk_scan_combined``, chunk 256; when ``benchmarks/fetch_mamba_triton.sh`` put it on
``PYTHONPATH``), :func:`bayes_ssm.kernels.ssd` with the XLA chunked form (``fused=False``,
``chunk_size="auto"``) and with the fused kernels (``fused=True``) at each chunk length and
kernel tile (rows BM, warps, pipeline stages), forward and forward + backward (the loss
``sum(w * y)`` and its gradient w.r.t. ``x, dt, A, B, C``), the speed-up over Triton, and the
HBM floor of the forward (``x, dt, B, C`` read and ``y`` written once, at the bandwidth of
``x * 0.5 + w`` measured in the same run) with the fraction of it reached.

Usage (GPU)::

    PYTHONPATH=_vendor:. python3 benchmarks/ssd_fused.py
"""

from __future__ import annotations

import argparse
import datetime
import platform

import jax
import jax.numpy as jnp
import numpy as np
from _timing import median_ms
from ssd_chunk_sweep import SHAPES, _inputs, _triton

import bayes_ssm.kernels.ssd_fused as ssd_fused
from bayes_ssm.kernels.ssd import choose_ssd_chunk, ssd


def _grad(fn):
    loss = lambda *a: jnp.sum((a[-1] * fn(*a[:-1])).astype(jnp.float32))  # noqa: E731
    return jax.jit(jax.value_and_grad(loss, argnums=range(5)))  # the loss too: no DCE


def _floor_ms(x, dt, B, C, repeats):
    w = jnp.ones_like(x)
    ms, _ = median_ms(jax.jit(lambda x, w: x * 0.5 + w), x, w, repeats=repeats)
    per_byte = ms / (3 * x.nbytes)  # read two, write one
    return per_byte * (2 * x.nbytes + dt.nbytes + B.nbytes + C.nbytes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES)[:2])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--chunks", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--tiles", nargs="+", default=["64x4x2"], help="BMxWARPSxSTAGES[xCB]")
    parser.add_argument("--grad-tiles", type=int, default=1, help="fwd+bwd for the first N tiles")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--no-triton", action="store_true")
    parser.add_argument("--passing", action="store_true", help="steps 2+3 by state_passing")
    parser.add_argument("--no-xla", action="store_true")
    args = parser.parse_args()
    ssd_fused.USE_STATE_PASSING = args.passing
    dev = jax.devices()[0]
    print(
        f"# fused SSD: {jax.default_backend()} ({dev.device_kind}), jax {jax.__version__}, "
        f"python {platform.python_version()}, {datetime.date.today()}, median of {args.repeats}"
    )
    print("| shape | dtype | what | fwd ms | fwd+bwd ms | fwd vs Triton | fwd+bwd vs Triton "
          "| fwd of floor | max rel diff |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for shape_name in args.shapes:
        for dtype_name in args.dtypes:
            dtype = jnp.dtype(dtype_name)
            x, dt, A, B, C, w = _inputs(SHAPES[shape_name], dtype)
            floor = _floor_ms(x, dt, B, C, args.repeats)
            tri = None
            try:
                if args.no_triton:
                    raise RuntimeError("--no-triton")
                tri = _triton(x, dt, A, B, C, w, args.repeats)
            except Exception as err:
                print(f"# Triton not run: {type(err).__name__}: {str(err)[:200]}")

            def row(what, f_ms, b_ms=None, y=None, tri=tri, floor=floor, name=shape_name,
                    dtype_name=dtype_name):  # fmt: skip
                vs_f = f"{tri[0] / f_ms:.2f}x" if tri else ""
                vs_b = f"{tri[1] / b_ms:.2f}x" if tri and b_ms else ""
                diff = ""
                if tri is not None and y is not None:
                    y = np.asarray(y.astype(jnp.float32))
                    diff = f"{float(np.max(np.abs(y - tri[2])) / np.max(np.abs(tri[2]))):.1e}"
                b = f"{b_ms:.3f}" if b_ms else ""
                print(
                    f"| {name} | {dtype_name} | {what} | {f_ms:.3f} | {b} | {vs_f} | {vs_b} "
                    f"| {floor / f_ms:.2f} | {diff} |",
                    flush=True,
                )

            print(f"| {shape_name} | {dtype_name} | HBM floor | {floor:.3f} | | | | 1.00 | |")
            if tri:
                print(f"| {shape_name} | {dtype_name} | Triton chunk 256 | {tri[0]:.3f} | "
                      f"{tri[1]:.3f} | 1.00x | 1.00x | {floor / tri[0]:.2f} | |")  # fmt: skip
            if not args.no_xla:
                auto = choose_ssd_chunk(x.shape[1], dtype, state_size=B.shape[-1])
                fn = lambda *a: ssd(*a, fused=False)  # noqa: E731
                f_ms, y = median_ms(jax.jit(fn), x, dt, A, B, C, repeats=args.repeats)
                b_ms, _ = median_ms(_grad(fn), x, dt, A, B, C, w, repeats=args.repeats)
                row(f"XLA chunked, auto chunk {auto}", f_ms, b_ms, y)
            for chunk in args.chunks:
                for i, tile in enumerate(args.tiles):
                    ssd_fused.DEFAULT_SSD_TILE = tuple(int(v) for v in tile.split("x"))
                    fn = lambda *a, c=chunk: ssd(*a, chunk_size=c, fused=True)  # noqa: E731
                    try:
                        f_ms, y = median_ms(jax.jit(fn), x, dt, A, B, C, repeats=args.repeats)
                        b_ms = None
                        if i < args.grad_tiles:
                            b_ms, _ = median_ms(_grad(fn), x, dt, A, B, C, w, repeats=args.repeats)
                    except Exception as err:
                        print(f"| {shape_name} | {dtype_name} | fused {chunk} {tile} | failed: "
                              f"{type(err).__name__}: {str(err)[:150]} |")  # fmt: skip
                        continue
                    row(f"fused chunk {chunk}, tile {tile}", f_ms, b_ms, y)


if __name__ == "__main__":
    main()
