"""Benchmark: where the chunked SSD spends its time, the XLA form against the fused kernels.

For each shape and dtype, at one chunk length (``chunk_size="auto"``'s unless ``--chunk``):

* :func:`bayes_ssm.kernels.ssd` forward and forward + backward with the XLA chunked form
  (``fused=False``) and with the fused Pallas kernels (``fused=True``,
  :mod:`bayes_ssm.kernels.ssd_fused`);
* the steps one by one (forward) on precomputed inputs, each kernel beside its pure-JAX twin:
  steps 2 + 3 (chunk states and the carry across chunks: the state-passing kernel; its twin;
  the twin's step 2 alone and its step 3 per scan method) and steps 1 + 4 (the masked in-chunk
  product and the carried-in states' outputs);
* the official Mamba-2 Triton kernel (``mamba_chunk_scan_combined``, chunk 256) on the same
  inputs, when ``benchmarks/fetch_mamba_triton.sh`` put it on ``PYTHONPATH``;
* the HBM floor of the forward: ``x, B, C`` read and ``y`` written once (plus ``dt``), at the
  bandwidth of ``x * 0.5 + w`` measured in the same run.

Usage (GPU)::

    PYTHONPATH=_vendor:. python3 benchmarks/ssd_profile.py
"""

from __future__ import annotations

import argparse
import datetime
import platform
from functools import partial

import jax
import jax.numpy as jnp
from _timing import median_ms
from ssd_chunk_sweep import SHAPES, _inputs, _triton

from bayes_ssm.kernels.recurrence import linear_recurrence
from bayes_ssm.kernels.ssd import choose_ssd_chunk, ssd
from bayes_ssm.kernels.ssd_carry import chunk_carry
from bayes_ssm.kernels.ssd_fused import chunk_scan, chunk_scan_reference
from bayes_ssm.kernels.ssd_state_passing import (
    chunk_state,
    chunk_state_reference,
    state_passing,
    state_passing_reference,
)


def _grad_fn(fn):
    loss = lambda *a: jnp.sum((a[-1] * fn(*a[:-1])).astype(jnp.float32))  # noqa: E731
    return jax.jit(jax.value_and_grad(loss, argnums=range(5)))  # the loss too: no DCE


def _row(shape, dtype, name, fwd, both="", triton=None):
    vs_f = f"{triton[0] / fwd:.2f}x" if triton and isinstance(fwd, float) else ""
    vs_b = f"{triton[1] / both:.2f}x" if triton and isinstance(both, float) else ""
    f = f"{fwd:.3f}" if isinstance(fwd, float) else fwd
    b = f"{both:.3f}" if isinstance(both, float) else both
    print(f"| {shape} | {dtype} | {name} | {f} | {b} | {vs_f} | {vs_b} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES)[:2])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--chunk", type=int, default=None, help="default: chunk_size='auto'")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--no-triton", action="store_true")
    parser.add_argument(
        "--steps-only", action="store_true", help="only the steps (no whole-layer rows)"
    )
    args = parser.parse_args()
    dev = jax.devices()[0]
    print(
        f"# SSD profile: {jax.default_backend()} ({dev.device_kind}), jax {jax.__version__}, "
        f"python {platform.python_version()}, {datetime.date.today()}, median of {args.repeats}"
    )
    print("| shape | dtype | what | forward ms | fwd+bwd ms | fwd vs Triton | fwd+bwd vs Triton |")
    print("|---|---|---|---|---|---|---|")
    for shape_name in args.shapes:
        b, T, H, P, N = SHAPES[shape_name]
        for dtype_name in args.dtypes:
            dtype = jnp.dtype(dtype_name)
            x, dt, A, B, C, w = _inputs(SHAPES[shape_name], dtype)
            chunk = args.chunk or choose_ssd_chunk(T, dtype, state_size=N)
            triton = None
            if not args.no_triton:
                try:
                    t_f, t_b, _ = _triton(x, dt, A, B, C, w, args.repeats)
                    triton = (t_f, t_b)
                except Exception as err:
                    print(f"# Triton not run: {type(err).__name__}: {str(err)[:200]}")
            copy_ms, _ = median_ms(jax.jit(lambda x, w: x * 0.5 + w), x, w, repeats=args.repeats)
            bandwidth = 3 * x.nbytes / (copy_ms * 1e-3)
            floor = (2 * x.nbytes + B.nbytes + C.nbytes + dt.nbytes) / bandwidth * 1e3
            _row(shape_name, dtype_name, f"HBM floor of the forward ({bandwidth / 1e9:.0f} GB/s)",
                 floor, "", triton)  # fmt: skip
            whole = (("XLA chunked form", False), ("fused kernels", True))
            whole = () if args.steps_only else whole
            for label, fused in whole:
                fn = lambda *a, c=chunk, f=fused: ssd(*a, chunk_size=c, fused=f)  # noqa: E731
                try:
                    f_ms, _ = median_ms(jax.jit(fn), x, dt, A, B, C, repeats=args.repeats)
                    b_ms, _ = median_ms(_grad_fn(fn), x, dt, A, B, C, w, repeats=args.repeats)
                    _row(shape_name, dtype_name, f"ssd chunk {chunk}, {label}", f_ms, b_ms, triton)
                except Exception as err:
                    _row(shape_name, dtype_name, label, f"failed: {str(err)[:150]}")
            if triton:
                _row(shape_name, dtype_name, "Triton mamba_chunk_scan_combined (chunk 256)",
                     triton[0], triton[1], triton)  # fmt: skip
            # The steps, one by one (forward): x (b, T, h, p), cs (b, h, T), states (b, c, h, p, n).
            c, ip = T // chunk, jax.default_backend() != "gpu"
            xd = (dt[..., None] * x.astype(jnp.float32)).astype(dtype)
            cs = jnp.cumsum((dt * A).reshape(b, c, chunk, H), axis=2)
            cs = jnp.moveaxis(cs, 3, 1).reshape(b, H, T)
            Bg, Cg = B.reshape(b, T, 1, N), C.reshape(b, T, 1, N)
            states = jax.jit(partial(chunk_state_reference, chunk=chunk))(xd, Bg, cs)
            h0 = jnp.zeros((b, H, P, N), jnp.float32)
            decay = jnp.exp(cs.reshape(b, H, c, chunk)[..., -1]).transpose(0, 2, 1)[..., None, None]
            starts = jnp.concatenate(
                [jnp.zeros_like(states[:, :1]), states[:, :-1]], axis=1
            ).astype(dtype)  # values do not matter for the timing
            steps = {
                "steps 2+3 state passing, kernel": (
                    partial(state_passing, chunk=chunk, interpret=ip), xd, Bg, cs, h0
                ),
                "steps 2+3 state passing, XLA twin": (
                    partial(state_passing_reference, chunk=chunk), xd, Bg, cs, h0
                ),
                "step 2 chunk states, kernel": (
                    partial(chunk_state, chunk=chunk, interpret=ip), xd, Bg, cs
                ),
                "step 2 chunk states, XLA twin": (
                    partial(chunk_state_reference, chunk=chunk), xd, Bg, cs
                ),
                "steps 1+4 chunk scan, kernel": (
                    partial(chunk_scan, chunk=chunk, interpret=ip), xd, Bg, Cg, cs, starts
                ),
                "steps 1+4 chunk scan, XLA twin": (
                    partial(chunk_scan_reference, chunk=chunk), xd, Bg, Cg, cs, starts
                ),
            }  # fmt: skip
            steps["step 3 carry across chunks (carry kernel, +starts)"] = (
                partial(chunk_carry, interpret=ip),
                states,
                jnp.exp(cs.reshape(b, H, c, chunk)[..., -1]),
                h0,
            )
            for method in ("auto", "sequential", "associative", "pallas"):
                steps[f"step 3 carry across chunks ({method})"] = (
                    lambda d, s, m=method: linear_recurrence(d, s, method=m, axis=1),
                    decay,
                    states,
                )
            for name, (f, *inputs) in steps.items():
                try:
                    ms, _ = median_ms(jax.jit(f), *inputs, repeats=args.repeats)
                    _row(shape_name, dtype_name, name, ms)
                except Exception as err:
                    _row(shape_name, dtype_name, name, f"failed: {str(err)[:150]}")
            del x, dt, B, C, w, xd, states, starts


if __name__ == "__main__":
    main()
