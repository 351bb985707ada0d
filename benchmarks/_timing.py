"""Shared timing helpers for the GPU kernel benchmarks (median wall time after warm-up)."""

from __future__ import annotations

import statistics
import time

import jax


def median_ms(fn, *args, repeats: int = 20):
    """Median wall time (ms) of ``fn(*args)`` after a compile / warm-up call, and its output."""
    out = jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3, out


def planned_mb(fn, *args):
    """XLA's planned memory (arguments + outputs + temporaries) of ``jax.jit(fn)``, in MB."""
    try:
        m = jax.jit(fn).lower(*args).compile().memory_analysis()
        return (m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes) / 1e6
    except Exception:  # memory analysis is not available on every backend
        return float("nan")


def torch_median_ms(fn, repeats: int = 20):
    """Median time (ms) of a PyTorch CUDA callable, by CUDA events, after a warm-up call."""
    import torch

    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)
