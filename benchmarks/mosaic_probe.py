"""Probe: does this JAX still lower our Pallas kernels through Triton, and does Mosaic GPU work?

Prints, for the installed JAX on this GPU:

1. whether the private Triton scan hook that our kernels use exists
   (:func:`bayes_ssm.kernels.tile_scan.triton_scan_available`) and the warnings a Triton-backend
   ``pallas_call`` raises (the deprecation of the Triton lowering);
2. whether a Mosaic GPU ``pallas_call`` of the recurrence's per-tile pass compiles and agrees
   with the associative scan: one program per ``(L, BD)`` tile of ``h_t = a_t h_{t-1} + b_t``,
   a loop over the tile's rows from a given carried-in state (the "finish" pass of the
   three-pass kernel; the carried-in states are computed by XLA and not timed), and its time
   beside the bandwidth roof (``a * 0.5 + b``) at T = 2^20, D = 256 float32: the same bytes
   as the single-pass kernel (``a``, ``b`` read, ``h`` written).

Usage (GPU)::

    PYTHONPATH=. python3 benchmarks/mosaic_probe.py
"""

from __future__ import annotations

import datetime
import functools
import warnings

import jax
import jax.numpy as jnp
from _timing import median_ms
from jax import lax
from jax.experimental import pallas as pl

from bayes_ssm.kernels import linear_recurrence
from bayes_ssm.kernels.recurrence_pallas import linear_recurrence_pallas
from bayes_ssm.kernels.tile_scan import triton_scan_available


def _mosaic_finish(a, b, starts, chunk, block, unroll):
    from jax.experimental.pallas import mosaic_gpu as plmgpu

    steps, channels = a.shape

    def kernel(a_ref, b_ref, s_ref, h_ref):
        def body(t, h):
            h = a_ref[t] * h + b_ref[t]
            h_ref[t] = h
            return h

        if unroll:
            h = s_ref[0]
            for t in range(chunk):
                h = body(t, h)
        else:
            lax.fori_loop(0, chunk, body, s_ref[0])

    tile = pl.BlockSpec((chunk, block), lambda i, j: (i, j))
    return pl.pallas_call(
        kernel,
        out_shape=jax.ShapeDtypeStruct((steps, channels), a.dtype),
        grid=(steps // chunk, channels // block),
        in_specs=[tile, tile, pl.BlockSpec((1, block), lambda i, j: (i, j))],
        out_specs=tile,
        compiler_params=plmgpu.CompilerParams(),
    )(a, b, starts)


def main() -> None:
    print(f"# Mosaic GPU probe: jax {jax.__version__}, {jax.devices()[0].device_kind}, "
          f"{datetime.date.today()}")  # fmt: skip
    print(f"triton_scan_available (private hook): {triton_scan_available()}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x = jnp.ones((64, 32), jnp.float32)
        jax.block_until_ready(linear_recurrence_pallas(x * 0.5, x))
    for w in caught:
        print(f"warning from a Triton-backend pallas_call: {w.category.__name__}: {w.message}")
    if not caught:
        print("no warning from a Triton-backend pallas_call")

    steps, channels = 2**20, 256
    k1, k2 = jax.random.split(jax.random.key(0))
    a = jax.random.uniform(k1, (steps, channels), minval=0.9, maxval=1.0)
    b = jax.random.normal(k2, (steps, channels))
    want = linear_recurrence(a, b, method="associative")
    roof, _ = median_ms(jax.jit(lambda a, b: a * 0.5 + b), a, b)
    ours, _ = median_ms(jax.jit(linear_recurrence_pallas), a, b)
    print(f"roof a*0.5+b {roof:.3f} ms; Triton-backend lookback kernel {ours:.3f} ms "
          f"({roof / ours:.2f} of roof)")  # fmt: skip
    print("| Mosaic GPU finish pass (L, BD, loop) | compiles | max abs diff | ms | of roof |")
    print("|---|---|---|---|---|")
    for chunk, block, unroll in ((64, 128, False), (64, 256, False), (32, 128, True),
                                 (128, 128, False)):  # fmt: skip
        starts = jnp.concatenate([jnp.zeros((1, channels)), want[chunk - 1 :: chunk][:-1]])
        fn = jax.jit(functools.partial(_mosaic_finish, chunk=chunk, block=block, unroll=unroll))
        label = f"{chunk}, {block}, {'unrolled' if unroll else 'fori_loop'}"
        try:
            ms, got = median_ms(fn, a, b, starts)
        except Exception as err:
            msg = " ".join(f"{type(err).__name__}: {err}".split())[:400]
            print(f"| {label} | no: {msg} | | | |", flush=True)
            continue
        diff = float(jnp.max(jnp.abs(got - want)))
        print(f"| {label} | yes | {diff:.2e} | {ms:.3f} | {roof / ms:.2f} |", flush=True)


if __name__ == "__main__":
    main()
