"""Benchmark: where the chunked SSD spends its time, before and after the fused form.

For each shape and dtype, at one chunk length (``chunk_size="auto"``'s unless ``--chunk``):

* ``ssd`` forward and forward + backward with the reference chunked form
  (``ssd_algorithms.chunked_form``, the form before this change) and with the fused form
  (``ssd_chunked_fast.chunked_form_fast``, what ``ssd`` runs now), both through the public
  :func:`bayes_ssm.kernels.ssd` (the form swapped in for the "before" rows);
* the fused form's four steps timed one by one on precomputed inputs (step 3 with each scan
  method), so the step that dominates shows;
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

import jax
import jax.numpy as jnp
from _timing import median_ms
from ssd_chunk_sweep import SHAPES, _inputs, _triton

import bayes_ssm.kernels.ssd as ssd_module
from bayes_ssm.kernels.ssd import choose_ssd_chunk, ssd
from bayes_ssm.kernels.ssd_algorithms import chunked_form
from bayes_ssm.kernels.ssd_chunked_fast import (
    carry_states,
    chunk_states,
    chunked_form_fast,
    diagonal_blocks,
    off_diagonal,
)


def _grad_fn(fn):
    loss = lambda *a: jnp.sum((a[-1] * fn(*a[:-1])).astype(jnp.float32))  # noqa: E731
    return jax.jit(jax.grad(loss, argnums=range(5)))


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
            fn = lambda x, dt, A, B, C, c=chunk: ssd(x, dt, A, B, C, chunk_size=c)  # noqa: E731
            for label, form in (("before (reference form)", chunked_form),
                                ("now (fused form)", chunked_form_fast)):  # fmt: skip
                ssd_module.chunked_form_fast = form  # the form ssd runs
                try:
                    f_ms, _ = median_ms(jax.jit(fn), x, dt, A, B, C, repeats=args.repeats)
                    b_ms, _ = median_ms(_grad_fn(fn), x, dt, A, B, C, w, repeats=args.repeats)
                    _row(shape_name, dtype_name, f"ssd chunk {chunk}, {label}", f_ms, b_ms, triton)
                except Exception as err:
                    _row(shape_name, dtype_name, label, f"failed: {str(err)[:150]}")
                finally:
                    ssd_module.chunked_form_fast = chunked_form_fast
            if triton:
                _row(shape_name, dtype_name, "Triton mamba_chunk_scan_combined (chunk 256)",
                     triton[0], triton[1], triton)  # fmt: skip
            # The fused form's steps, one by one (forward), on the grouped, chunked inputs.
            c = T // chunk
            X = (dt[..., None] * x.astype(jnp.float32)).astype(dtype).reshape(b, c, chunk, 1, H, P)
            Bc, Cc = B.reshape(b, c, chunk, 1, N), C.reshape(b, c, chunk, 1, N)
            cs = jnp.cumsum((dt * A).reshape(b, c, chunk, 1, H), axis=2)
            Y_diag = jax.jit(diagonal_blocks)(X, Bc, Cc, cs)
            states = jax.jit(chunk_states)(X, Bc, cs)
            starts, _ = carry_states(states, cs, None)
            steps = {
                "step 1 diagonal blocks (C B^T o L) X": (diagonal_blocks, X, Bc, Cc, cs),
                "step 2 chunk states B^T (decay X)": (chunk_states, X, Bc, cs),
                "step 4 off-diagonal C start + sum": (
                    off_diagonal,
                    Y_diag,
                    Cc,
                    starts.astype(dtype),
                    cs,
                ),  # fmt: skip
            }
            for method in ("auto", "sequential", "associative", "pallas"):
                steps[f"step 3 carry across chunks ({method})"] = (
                    lambda s, cs, m=method: carry_states(s, cs, None, m)[0],
                    states,
                    cs,
                )
            for name, (f, *inputs) in steps.items():
                try:
                    ms, _ = median_ms(jax.jit(f), *inputs, repeats=args.repeats)
                    _row(shape_name, dtype_name, name, ms)
                except Exception as err:
                    _row(shape_name, dtype_name, name, f"failed: {str(err)[:150]}")
            del x, dt, B, C, w, X, Bc, Cc, Y_diag, states, starts


if __name__ == "__main__":
    main()
