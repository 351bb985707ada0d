"""Input checks shared by the SSM and attention kernels (static shapes and dtypes only).

Every check here runs on shapes and dtypes, which are static under :func:`jax.jit`, so a
kernel raises the same clear ``ValueError`` whether it is called eagerly or traced. Value
checks (a step ``dt > 0``) run only on concrete arrays; under a trace they are skipped.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = []


def as_float(name, x):
    """``x`` as a floating (or complex) JAX array; ``ValueError`` for integers and booleans."""
    x = jnp.asarray(x)
    if not (jnp.issubdtype(x.dtype, jnp.floating) or jnp.issubdtype(x.dtype, jnp.complexfloating)):
        raise ValueError(
            f"{name} must have a floating dtype, got {x.dtype} (shape {x.shape}); "
            f"cast it, e.g. {name}.astype(jnp.float32)"
        )
    return x


def check_ndim(name, x, min_ndim, layout):
    if x.ndim < min_ndim:
        raise ValueError(f"{name} must have shape {layout}; got shape {x.shape}")


def check_axis(name, x, axis, expected, what):
    if x.shape[axis] != expected:
        raise ValueError(
            f"{name} must have {what} = {expected} on axis {axis}; got shape {x.shape}"
        )


def broadcast_to(name, x, shape, layout):
    """Broadcast ``x`` to ``shape`` or raise a ``ValueError`` naming both shapes."""
    try:
        if jnp.broadcast_shapes(x.shape, shape) != tuple(shape):
            raise ValueError
    except ValueError:
        raise ValueError(
            f"{name} must broadcast to {layout} = {tuple(shape)}; got shape {x.shape}"
        ) from None
    return jnp.broadcast_to(x, shape)


def positive_int(name, value):
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_positive(name, x):
    """Raise if a concrete ``x`` has a non-positive or non-finite entry (skipped under a trace)."""
    if isinstance(x, jax.core.Tracer):
        return
    values = np.asarray(x)
    if values.size and not (np.all(np.isfinite(values)) and np.all(values > 0)):
        bad = values[~(np.isfinite(values) & (values > 0))].ravel()[:3]
        raise ValueError(
            f"{name} must be positive and finite everywhere (a step size); got values such as "
            f"{bad.tolist()} (shape {values.shape})"
        )


def split_heads(x, num_heads, *, name="x"):
    """``(..., d) -> (..., h, p)`` with ``p = d / h``; ``ValueError`` unless ``h`` divides ``d``.

    Parameters
    ----------
    x : Array, shape ``(..., d)``
    num_heads : int
        ``h``; must divide the width ``d``.

    Returns
    -------
    Array, shape ``(..., h, d // h)``
    """
    num_heads = positive_int("num_heads", num_heads)
    x = jnp.asarray(x)
    if x.ndim < 1:
        raise ValueError(f"{name} must have a channel axis; got a scalar")
    width = x.shape[-1]
    if width % num_heads:
        raise ValueError(
            f"num_heads={num_heads} does not divide the width d={width} of {name} "
            f"(shape {x.shape}); choose a divisor of {width}"
        )
    return x.reshape(*x.shape[:-1], num_heads, width // num_heads)


def merge_heads(x):
    """``(..., h, p) -> (..., h * p)``: the inverse of :func:`split_heads`."""
    return x.reshape(*x.shape[:-2], x.shape[-2] * x.shape[-1])


def result_dtype(*arrays):
    return jnp.result_type(*[a.dtype for a in arrays if a is not None])
