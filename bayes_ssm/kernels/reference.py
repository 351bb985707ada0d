"""Slow, obviously correct twins of the fast kernels, for tests only.

Each is a plain Python loop over NumPy arrays: no JAX, no cleverness. A fast kernel is
trusted when it agrees with its twin here (values, and gradients by finite differences).
"""

from __future__ import annotations

import numpy as np

__all__ = ["linear_recurrence_ref"]


def linear_recurrence_ref(a, b, h0=None, *, reverse=False, axis=-2):
    """``h_t = a_t * h_{t-1} + b_t`` by a Python loop over time.

    Parameters and returns as :func:`bayes_ssm.kernels.linear_recurrence`, with NumPy arrays.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    shape = np.broadcast_shapes(a.shape, b.shape)
    dtype = np.result_type(a, b) if h0 is None else np.result_type(a, b, np.asarray(h0))
    a = np.moveaxis(np.broadcast_to(a, shape), axis, 0).astype(dtype)
    b = np.moveaxis(np.broadcast_to(b, shape), axis, 0).astype(dtype)
    h = np.zeros(b.shape[1:], dtype) if h0 is None else np.array(h0, dtype=dtype)
    out = np.empty_like(b)
    steps = range(b.shape[0] - 1, -1, -1) if reverse else range(b.shape[0])
    for t in steps:
        h = a[t] * h + b[t]
        out[t] = h
    return np.moveaxis(out, 0, axis)
