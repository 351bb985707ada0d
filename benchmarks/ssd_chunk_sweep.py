"""Benchmark: chunked SSD per chunk length and dtype, beside the official Mamba-2 Triton kernel.

For each shape and dtype, prints forward and forward + backward (gradient of ``sum(w * y)``
w.r.t. ``x, dt, A, B, C``) times of :func:`bayes_ssm.kernels.ssd` at chunk lengths 32..256
and ``chunk_size="auto"``, and of mamba_ssm's ``mamba_chunk_scan_combined`` (Triton, its
chunk 256, same inputs; when ``benchmarks/fetch_mamba_triton.sh`` put it on ``PYTHONPATH``),
with the speed-up of ours over Triton. The last lines give the best chunk per (dtype, shape)
by forward + backward time: the table in ``bayes_ssm/kernels/ssd_chunk.py`` comes from them.

Usage (GPU)::

    PYTHONPATH=_vendor:. python3 benchmarks/ssd_chunk_sweep.py
"""

from __future__ import annotations

import argparse
import datetime
import platform

import jax
import jax.numpy as jnp
import numpy as np
from _timing import median_ms, torch_median_ms

from bayes_ssm.kernels.ssd import ssd

SHAPES = {
    "b2 L4096 H16 P64 N64": (2, 4096, 16, 64, 64),
    "b8 L4096 H32 P64 N128": (8, 4096, 32, 64, 128),
    "b1 L256 H2 P16 N16": (1, 256, 2, 16, 16),  # a smoke test (--shapes "b1 L256 H2 P16 N16")
}


def _inputs(shape, dtype):
    b, T, H, P, N = shape
    k = jax.random.split(jax.random.key(0), 6)
    x = jax.random.normal(k[0], (b, T, H, P)).astype(dtype)
    dt = jax.nn.softplus(jax.random.normal(k[1], (b, T, H)) - 2.0).astype(jnp.float32)
    A = -jnp.exp(jax.random.uniform(k[2], (H,), minval=0.0, maxval=2.0))
    B = jax.random.normal(k[3], (b, T, 1, N)).astype(dtype)
    C = jax.random.normal(k[4], (b, T, 1, N)).astype(dtype)
    w = jax.random.normal(k[5], (b, T, H, P)).astype(dtype)
    return x, dt, A, B, C, w


def _triton(x, dt, A, B, C, w, repeats):
    import torch
    from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined

    tdt = {jnp.float32: torch.float32, jnp.bfloat16: torch.bfloat16}[x.dtype.type]
    tt = lambda v, d=tdt: torch.from_numpy(np.asarray(v.astype(jnp.float32))).cuda().to(d)  # noqa: E731
    xt, Bt, Ct, wt = tt(x), tt(B), tt(C), tt(w)
    dtt, At = tt(dt, torch.float32), tt(A, torch.float32)
    fwd = torch_median_ms(lambda: mamba_chunk_scan_combined(xt, dtt, At, Bt, Ct, 256), repeats)
    leaves = [v.requires_grad_() for v in (xt, dtt, At, Bt, Ct)]

    def both():
        y = mamba_chunk_scan_combined(*leaves, 256)
        torch.autograd.grad((y * wt).sum(), leaves)

    bwd = torch_median_ms(both, repeats)
    with torch.no_grad():
        y = mamba_chunk_scan_combined(xt, dtt, At, Bt, Ct, 256).float().cpu().numpy()
    return fwd, bwd, y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, nargs="*", default=[32, 64, 128, 256])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES)[:2])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--no-auto", action="store_true", help="skip the chunk_size='auto' row")
    parser.add_argument("--no-triton", action="store_true", help="skip the Triton rows")
    args = parser.parse_args()
    dev = jax.devices()[0]
    print(
        f"# SSD chunk sweep: {jax.default_backend()} ({dev.device_kind}), jax {jax.__version__}, "
        f"python {platform.python_version()}, {datetime.date.today()}, median of {args.repeats}"
    )
    print(
        "| shape | dtype | method | forward ms | fwd+bwd ms | fwd vs Triton | fwd+bwd vs Triton |"
    )
    print("|---|---|---|---|---|---|---|")
    best = {}
    for shape_name in args.shapes:
        for dtype_name in args.dtypes:
            dtype = jnp.dtype(dtype_name)
            x, dt, A, B, C, w = _inputs(SHAPES[shape_name], dtype)
            try:
                if args.no_triton:
                    raise RuntimeError("--no-triton")
                t_fwd, t_bwd, y_triton = _triton(x, dt, A, B, C, w, args.repeats)
            except Exception as err:
                print(f"# Triton not run: {type(err).__name__}: {str(err)[:200]}")
                t_fwd = t_bwd = y_triton = None
            rows = {}
            for chunk in args.chunks if args.no_auto else [*args.chunks, "auto"]:

                def fn(x, dt, A, B, C, c=chunk):
                    return ssd(x, dt, A, B, C, chunk_size=c)

                grad = jax.jit(
                    jax.grad(
                        lambda *a, f=fn: jnp.sum((a[-1] * f(*a[:-1])).astype(jnp.float32)),
                        argnums=range(5),
                    )
                )
                try:
                    f_ms, y = median_ms(jax.jit(fn), x, dt, A, B, C, repeats=args.repeats)
                    b_ms, _ = median_ms(grad, x, dt, A, B, C, w, repeats=args.repeats)
                except Exception as err:
                    print(f"| {shape_name} | {dtype_name} | chunk {chunk} | failed: {err!s:.100} |")
                    continue
                rows[chunk] = b_ms
                vs_f = f"{t_fwd / f_ms:.2f}x" if t_fwd else ""
                vs_b = f"{t_bwd / b_ms:.2f}x" if t_bwd else ""
                print(
                    f"| {shape_name} | {dtype_name} | ours chunk {chunk} | {f_ms:.3f} | {b_ms:.3f} "
                    f"| {vs_f} | {vs_b} |",
                    flush=True,
                )
            if t_fwd:
                y = np.asarray(y.astype(jnp.float32))
                diff = float(np.max(np.abs(y - y_triton)) / np.max(np.abs(y_triton)))
                print(
                    f"| {shape_name} | {dtype_name} | Triton mamba_chunk_scan_combined chunk 256 "
                    f"| {t_fwd:.3f} | {t_bwd:.3f} | 1.00x | 1.00x | (max |ours - Triton| / max |y| "
                    f"{diff:.2e})"
                )
            numeric = {k: v for k, v in rows.items() if k != "auto"}
            if numeric:
                best[(shape_name, dtype_name)] = min(numeric, key=numeric.get)
    for (shape_name, dtype_name), chunk in best.items():
        print(f"# best chunk (fwd+bwd) {dtype_name:>9} {shape_name}: {chunk}")


if __name__ == "__main__":
    main()
