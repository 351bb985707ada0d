"""Probe: does this JAX still lower our Pallas kernels through Triton, and does Mosaic GPU work?

Prints, for the installed JAX on this GPU:

1. whether the private Triton scan hook that our kernels use exists
   (:func:`bayes_ssm.kernels.tile_scan.triton_scan_available`) and the warnings a Triton-backend
   ``pallas_call`` raises (the deprecation of the Triton lowering);
2. whether ``pl.pallas_call`` takes Mosaic GPU's compiler params (session 5: a bare
   ``AssertionError``: ``pallas_call`` registers no lowering rule for them; Mosaic GPU's entry
   point is ``plgpu.kernel``);
3. whether a Mosaic GPU kernel (``plgpu.kernel`` + ``plgpu.emit_pipeline``) of the recurrence's
   per-tile pass compiles and agrees with the associative scan: one program per ``(L, BD)``
   tile of ``h_t = a_t h_{t-1} + b_t``,
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


def _kernel_out_kw():
    """``plgpu.kernel``'s output argument: ``out_type`` (jax 0.12) or ``out_shape`` (older)."""
    import inspect

    from jax.experimental.pallas import mosaic_gpu as plgpu

    params = inspect.signature(plgpu.kernel).parameters
    return "out_type" if "out_type" in params else "out_shape"


def _mosaic_pallas_call_add(x):
    """``pl.pallas_call`` with Mosaic GPU compiler params (session 5's route: bare AssertionError,
    since ``pallas_call`` registers no lowering rule for Mosaic GPU's params)."""
    from jax.experimental.pallas import mosaic_gpu as plgpu

    def kernel(x_ref, o_ref):
        o_ref[...] = x_ref[...] + 1.0

    return pl.pallas_call(
        kernel, out_shape=jax.ShapeDtypeStruct(x.shape, x.dtype),
        compiler_params=plgpu.CompilerParams(),
    )(x)  # fmt: skip


def _mosaic_finish(a, b, starts, chunk, block, interpret=None):
    """The recurrence's per-tile pass as a Mosaic GPU kernel: ``plgpu.kernel`` (one block per
    ``(L, BD)`` tile) and ``plgpu.emit_pipeline`` copying the tile to shared memory; a loop over
    the tile's rows from the carried-in state. ``interpret``: ``plgpu.InterpretGPUParams()``
    runs it in Mosaic GPU's interpreter (checked on the CPU with jax 0.12)."""
    from jax.experimental.pallas import mosaic_gpu as plgpu

    steps, channels = a.shape
    per_row = channels // block

    def body(a_g, b_g, s_g, h_g):
        i = lax.axis_index("tiles")
        where = lambda j: (i // per_row, i % per_row)  # noqa: E731, ARG005

        def tile(_, a_s, b_s, s_s, h_s):
            def step(t, h):
                h = a_s[t] * h + b_s[t]
                h_s[t] = h
                return h

            lax.fori_loop(0, chunk, step, s_s[0])

        spec = pl.BlockSpec((chunk, block), where)
        plgpu.emit_pipeline(
            tile, grid=(1,), in_specs=[spec, spec, pl.BlockSpec((1, block), where)],
            out_specs=[spec],
        )(a_g, b_g, s_g, h_g)  # fmt: skip

    extra = {} if interpret is None else {"interpret": interpret}
    out = {_kernel_out_kw(): jax.ShapeDtypeStruct((steps, channels), a.dtype)}
    grid = (steps // chunk * per_row,)
    return plgpu.kernel(body, grid=grid, grid_names=("tiles",), **out, **extra)(a, b, starts)


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
    print(f"roof a*0.5+b {roof:.3f} ms", flush=True)
    try:
        jax.block_until_ready(_mosaic_pallas_call_add(jnp.zeros(256)))
        print("pl.pallas_call with Mosaic GPU params: compiles")
    except Exception as err:
        msg = " ".join(f"{type(err).__name__}: {err}".split())[:300]
        print(f"pl.pallas_call with Mosaic GPU params: fails ({msg})")
    from jax.experimental.pallas import mosaic_gpu as plgpu

    names = [n for n in dir(plgpu) if not n.startswith("_")]
    print(
        f"mosaic_gpu exports {len(names)} names: kernel={'kernel' in names}, "
        f"emit_pipeline={'emit_pipeline' in names}; plgpu.kernel output kw: {_kernel_out_kw()}"
    )
    print(
        "| Mosaic GPU finish pass, plgpu.kernel + emit_pipeline (L, BD) | compiles "
        "| max abs diff | ms | of roof |"
    )
    print("|---|---|---|---|---|")
    for chunk, block in ((64, 128), (64, 256), (32, 128), (128, 128)):
        starts = jnp.concatenate([jnp.zeros((1, channels)), want[chunk - 1 :: chunk][:-1]])
        fn = jax.jit(functools.partial(_mosaic_finish, chunk=chunk, block=block))
        label = f"{chunk}, {block}"
        try:
            ms, got = median_ms(fn, a, b, starts)
        except Exception as err:
            msg = " ".join(f"{type(err).__name__}: {err}".split())[:400]
            print(f"| {label} | no: {msg} | | | |", flush=True)
            continue
        diff = float(jnp.max(jnp.abs(got - want)))
        print(f"| {label} | yes | {diff:.2e} | {ms:.3f} | {roof / ms:.2f} |", flush=True)
    ours, _ = median_ms(jax.jit(linear_recurrence_pallas), a, b)  # last: the Mosaic rows first
    print(f"Triton-backend lookback kernel {ours:.3f} ms ({roof / ours:.2f} of roof)")


if __name__ == "__main__":
    main()
