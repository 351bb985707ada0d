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
from bayes_ssm.kernels.ssd import choose_ssd_chunk, ssd, ssd_discrete


def _prescaled(x, dt, A, B, C, chunk):
    """Session 6's form: ``x * dt`` written by XLA (in the promoted dtype), then the kernels."""
    return ssd_discrete(x * dt[..., None], dt * A, B, C, chunk_size=chunk, fused=True)


def _grad(fn):
    loss = lambda *a: jnp.sum((a[-1] * fn(*a[:-1])).astype(jnp.float32))  # noqa: E731
    return jax.jit(jax.value_and_grad(loss, argnums=range(5)))  # the loss too: no DCE


def _triton_wall_ms(x, dt, A, B, C, repeats):
    """Triton's forward timed like ours: wall clock around the call and a synchronize."""
    import statistics
    import time

    import torch
    from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined

    tdt = {jnp.float32: torch.float32, jnp.bfloat16: torch.bfloat16}[x.dtype.type]
    tt = lambda v, d=tdt: torch.from_numpy(np.asarray(v.astype(jnp.float32))).cuda().to(d)  # noqa: E731
    args = (tt(x), tt(dt, torch.float32), tt(A, torch.float32), tt(B), tt(C), 256)
    mamba_chunk_scan_combined(*args)
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        mamba_chunk_scan_combined(*args)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def _triton_forward(x, dt, A, B, C, repeats):
    """Triton's forward by CUDA events and its output: ``(ms, None, y)`` like ``_triton``."""
    import torch
    from _timing import torch_median_ms
    from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined

    tdt = {jnp.float32: torch.float32, jnp.bfloat16: torch.bfloat16}[x.dtype.type]
    tt = lambda v, d=tdt: torch.from_numpy(np.array(v.astype(jnp.float32))).cuda().to(d)  # noqa: E731
    args = (tt(x), tt(dt, torch.float32), tt(A, torch.float32), tt(B), tt(C), 256)
    ms = torch_median_ms(lambda: mamba_chunk_scan_combined(*args), repeats)
    y = mamba_chunk_scan_combined(*args).float().cpu().numpy()
    return ms, None, y


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
    parser.add_argument(
        "--tiles",
        nargs="+",
        default=["auto+grad"],
        help="variants BMxWARPSxSTAGES[xCB[xBK]][+pass|+carry][+seq][+pre][+grad] or "
        "auto[+grad] (ssd's defaults): chunk_scan tile (CB 1: the group's C Bᵀ by XLA; BK inner "
        "block), steps 2+3 by the state-passing kernel or by chunk_state + the carry kernel "
        "(else chunk_state + XLA's carry, +seq: sequential), x*dt formed by XLA before the "
        "kernels (session 6's form), forward+backward timed too",
    )
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--no-triton", action="store_true")
    parser.add_argument(
        "--triton-forward-only", action="store_true", help="Triton's forward only (its "
        "backward's autotuning takes minutes on a cold machine)",
    )  # fmt: skip
    parser.add_argument("--passing", action="store_true", help="steps 2+3 by state_passing")
    parser.add_argument("--no-xla", action="store_true")
    args = parser.parse_args()
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
                if args.triton_forward_only:
                    tri = _triton_forward(x, dt, A, B, C, args.repeats)
                else:
                    tri = _triton(x, dt, A, B, C, w, args.repeats)
            except Exception as err:
                print(f"# Triton not run: {type(err).__name__}: {str(err)[:200]}")

            def row(what, f_ms, b_ms=None, y=None, tri=tri, floor=floor, name=shape_name,
                    dtype_name=dtype_name):  # fmt: skip
                vs_f = f"{tri[0] / f_ms:.2f}x" if tri else ""
                vs_b = f"{tri[1] / b_ms:.2f}x" if tri and tri[1] and b_ms else ""
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
                head = f"| {shape_name} | {dtype_name} | Triton chunk 256"
                both = f"{tri[1]:.3f}" if tri[1] else ""
                print(f"{head} (CUDA events) | {tri[0]:.3f} | {both} | 1.00x | 1.00x "
                      f"| {floor / tri[0]:.2f} | |")  # fmt: skip
                wall = _triton_wall_ms(x, dt, A, B, C, args.repeats)
                print(f"{head} (wall clock, as ours) | {wall:.3f} | | {tri[0] / wall:.2f}x | "
                      f"| {floor / wall:.2f} | |", flush=True)  # fmt: skip
            if not args.no_xla:
                auto = choose_ssd_chunk(x.shape[1], dtype, state_size=B.shape[-1])
                fn = lambda *a: ssd(*a, fused=False)  # noqa: E731
                f_ms, y = median_ms(jax.jit(fn), x, dt, A, B, C, repeats=args.repeats)
                b_ms, _ = median_ms(_grad(fn), x, dt, A, B, C, w, repeats=args.repeats)
                row(f"XLA chunked, auto chunk {auto}", f_ms, b_ms, y)
            for tile in [t for t in args.tiles if t.startswith("auto")]:
                ssd_fused.DEFAULT_SSD_TILE = ssd_fused.USE_STATE_PASSING = None
                f_ms, y = median_ms(jax.jit(ssd), x, dt, A, B, C, repeats=args.repeats)
                b_ms = None
                if "grad" in tile:
                    b_ms, _ = median_ms(_grad(ssd), x, dt, A, B, C, w, repeats=args.repeats)
                auto = choose_ssd_chunk(x.shape[1], dtype, state_size=B.shape[-1])
                config = ssd_fused.fused_config(dtype, B.shape[-1])
                row(f"ssd defaults (chunk {auto}; tile, passing {config})", f_ms, b_ms, y)
            for chunk in args.chunks:
                for tile in [t for t in args.tiles if not t.startswith("auto")]:
                    spec, *flags = tile.split("+")
                    ssd_fused.DEFAULT_SSD_TILE = tuple(int(v) for v in spec.split("x"))
                    passing = args.passing or "pass" in flags
                    ssd_fused.USE_STATE_PASSING = "carry" if "carry" in flags else passing
                    carry = "sequential" if "seq" in flags else "auto"  # step 3 in XLA
                    fn = lambda *a, c=chunk, m=carry: ssd(  # noqa: E731
                        *a, chunk_size=c, fused=True, scan_method=m
                    )
                    if "pre" in flags:
                        fn = lambda *a, c=chunk: _prescaled(*a, c)  # noqa: E731
                    try:
                        f_ms, y = median_ms(jax.jit(fn), x, dt, A, B, C, repeats=args.repeats)
                        b_ms = None
                        if "grad" in flags:
                            b_ms, _ = median_ms(_grad(fn), x, dt, A, B, C, w, repeats=args.repeats)
                    except Exception as err:
                        print(f"| {shape_name} | {dtype_name} | fused {chunk} {tile} | failed: "
                              f"{type(err).__name__}: {str(err)[:150]} |")  # fmt: skip
                        continue
                    row(f"fused chunk {chunk}, tile {tile}", f_ms, b_ms, y)


if __name__ == "__main__":
    main()
