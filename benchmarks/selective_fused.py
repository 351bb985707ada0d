"""Benchmark: the Mamba-1 selective scan, fused Pallas kernel beside its anchors, one run.

Rows at the issue's shape (batch 4, T = 4096, 1024 channels, state 16, float32): forward
(``y``) and forward + backward (gradient of ``sum(w * y)`` w.r.t. ``x, dt, A, B, C``) of

* ``plain lax.associative_scan``: the (b, t, d, n) decays and inputs materialised, one
  ``lax.associative_scan`` over time, the ``C`` contraction (the issue's anchor);
* ``selective_scan`` with ``method="associative"``, ``"fused"`` and ``"auto"``;
* mamba_ssm's ``selective_scan_ref`` (PyTorch, the reference of the CUDA kernel), when
  ``benchmarks/fetch_mamba_triton.sh`` put it on ``PYTHONPATH``;

with XLA's planned memory, the largest difference from ``associative``, and two floors: HBM
traffic (x, dt, B, C read, y written; at the bandwidth measured by ``x * 0.5 + dt`` here)
and the exponentials (b t d n of them; see benchmarks/README.md).

Usage (GPU)::

    PYTHONPATH=_vendor:. python3 benchmarks/selective_fused.py
"""

from __future__ import annotations

import argparse
import datetime
import platform

import jax
import jax.numpy as jnp
import numpy as np
from _timing import median_ms, planned_mb, torch_median_ms
from jax import lax

from bayes_ssm.kernels.selective import init_selective_A, selective_scan


def _plain(x, dt, A, B, C):
    decay = jnp.exp(dt[..., None] * A)
    u = (dt * x)[..., None] * B[..., None, :]

    def combine(left, right):
        return left[0] * right[0], right[0] * left[1] + right[1]

    _, h = lax.associative_scan(combine, (decay, u), axis=1)
    return jnp.einsum("btdn,btn->btd", h, C)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=4, default=[4, 4096, 1024, 16])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument(
        "--tiles",
        nargs="*",
        default=[],
        help="extra fused tiles [s]LxBDxWARPS[:{s|t}BDxWARPS][f] (s: by_state kernel; after ':' "
        "the backward kernel and tile; f: forward only)",
    )
    parser.add_argument(
        "--bwd-tiles", nargs="*", default=[], help="backward tiles BDxWARPS (default forward)"
    )
    parser.add_argument("--skip", nargs="*", default=[], help="methods to leave out (substrings)")
    parser.add_argument("--no-mamba", action="store_true", help="skip mamba_ssm's reference")
    args = parser.parse_args()
    b, T, d, n = args.shape
    dev = jax.devices()[0]
    print(
        f"# selective scan: {jax.default_backend()} ({dev.device_kind}), jax {jax.__version__}, "
        f"python {platform.python_version()}, {datetime.date.today()}, b{b} L{T} D{d} N{n} "
        f"float32, median of {args.repeats}"
    )
    keys = jax.random.split(jax.random.key(0), 5)
    x = jax.random.normal(keys[0], (b, T, d))
    dt = jax.random.uniform(keys[1], (b, T, d), minval=0.001, maxval=0.1)
    B = jax.random.normal(keys[2], (b, T, n))
    C = jax.random.normal(keys[3], (b, T, n))
    w = jax.random.normal(keys[4], (b, T, d))
    A = init_selective_A(d, n)
    copy_ms, _ = median_ms(jax.jit(lambda x, dt: x * 0.5 + dt), x, dt, repeats=args.repeats)
    bandwidth = 3 * x.nbytes / (copy_ms * 1e-3)
    hbm_floor = (2 * x.nbytes + B.nbytes + C.nbytes + x.nbytes) / bandwidth * 1e3
    print(
        f"# measured bandwidth (x*0.5+dt, 3 arrays): {bandwidth / 1e9:.0f} GB/s; HBM floor of "
        f"the fused forward {hbm_floor:.3f} ms; exp count {b * T * d * n / 1e6:.0f} M"
    )
    fns = {
        "plain lax.associative_scan": _plain,
        "selective_scan associative": lambda *a: selective_scan(*a, method="associative"),
        "selective_scan fused": lambda *a: selective_scan(*a, method="fused"),
        "selective_scan auto": lambda *a: selective_scan(*a, method="auto"),
    }
    from bayes_ssm.kernels.selective_fused import selective_scan_fused

    forward_only = set()

    def parse(spec):  # "[s|t]AxBx..." -> (kernel, tuple)
        kernel = "by_state" if spec.startswith("s") else "tile3d"
        return kernel, tuple(int(v) for v in spec.lstrip("st").split("x"))

    for tile in args.tiles:
        # [s]LxBDxWARPS[:{s|t}BDxWARPS][f]: "s" the by_state kernel, after ":" the backward
        # kernel and tile; suffix "f" forward only.
        fwd, _, bwd = tile.rstrip("f").partition(":")
        kernel, t = parse(fwd)
        bkernel, bt = parse(bwd) if bwd else (None, None)
        name = f"fused {tile.rstrip('f')}"
        fns[name] = lambda *a, t=t, k=kernel, bk=bkernel, bt=bt: selective_scan_fused(
            *a, tile=t, forward_kernel=k, backward_kernel=bk, backward_tile=bt
        )[0]
        if tile.endswith("f"):
            forward_only.add(name)
    for tile in args.bwd_tiles:
        t = tuple(int(v) for v in tile.split("x"))
        fns[f"fused backward tile {tile}"] = lambda *a, t=t: selective_scan_fused(
            *a, backward_tile=t
        )[0]
    fns = {k: v for k, v in fns.items() if not any(s in k for s in args.skip)}
    print(
        "| method | forward ms | fwd+bwd ms | MB fwd | MB fwd+bwd | max diff vs first row "
        "| grad max rel diff |"
    )
    print("|---|---|---|---|---|---|---|")
    ref = ref_grad = None
    for name, fn in fns.items():
        try:
            fwd_ms, y = median_ms(jax.jit(fn), x, dt, A, B, C, repeats=args.repeats)
            bwd_ms = mb_f = mb_b = float("nan")
            g = None
            if name not in forward_only:
                mb_f = planned_mb(fn, x, dt, A, B, C)
                grad = jax.jit(
                    jax.grad(lambda *a, f=fn: jnp.sum(a[-1] * f(*a[:-1])), argnums=range(5))
                )
                bwd_ms, g = median_ms(grad, x, dt, A, B, C, w, repeats=args.repeats)
                mb_b = planned_mb(grad, x, dt, A, B, C, w)
        except Exception as err:
            print(f"| {name} | failed: {type(err).__name__}: {str(err)[:300]} |", flush=True)
            continue
        if ref is None:  # the first row is the reference of the others
            ref = y
        diff = float(jnp.max(jnp.abs(y - ref))) if ref is not None else float("nan")
        gdiff = float("nan")
        if g is not None and ref_grad is None:
            ref_grad = g
        elif g is not None:  # per input: max |difference| / max |reference|
            gdiff = max(
                float(jnp.max(jnp.abs(u - v)) / jnp.max(jnp.abs(v)))
                for u, v in zip(g, ref_grad, strict=True)
            )
        print(
            f"| {name} | {fwd_ms:.3f} | {bwd_ms:.3f} | {mb_f:.0f} | {mb_b:.0f} | {diff:.2e} "
            f"| {gdiff:.2e} |",
            flush=True,
        )
    if args.no_mamba:
        return
    try:
        import torch
        from mamba_ssm.ops.selective_scan_interface import selective_scan_ref

        tt = lambda v: torch.from_numpy(np.asarray(v)).cuda()  # noqa: E731
        # mamba_ssm's layout: u, delta (b, d, t); A (d, n); B, C (b, n, t).
        u, delta = tt(x).transpose(1, 2).contiguous(), tt(dt).transpose(1, 2).contiguous()
        Bt, Ct = tt(B).transpose(1, 2).contiguous(), tt(C).transpose(1, 2).contiguous()
        At = tt(A)
        with torch.no_grad():
            ms = torch_median_ms(lambda: selective_scan_ref(u, delta, At, Bt, Ct), repeats=3)
            y_ref = selective_scan_ref(u, delta, At, Bt, Ct).transpose(1, 2).cpu().numpy()
        diff = float(np.max(np.abs(y_ref - np.asarray(ref))))
        print(f"| mamba_ssm selective_scan_ref (PyTorch) | {ms:.3f} | | | | {diff:.2e} |")
    except Exception as err:
        print(f"# mamba_ssm selective_scan_ref not run: {type(err).__name__}: {str(err)[:200]}")


if __name__ == "__main__":
    main()
