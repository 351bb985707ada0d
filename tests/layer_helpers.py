"""Helpers for the Bayesian-layer tests: run NumPyro fragments compiled once, or abstractly.

Eager NumPyro runs compile every primitive separately, which dominates small tests; these
helpers jit one whole fragment (reused across draws of the same shapes) or only evaluate its
shapes (``jax.eval_shape``: nothing is compiled).
"""

from __future__ import annotations

import jax
from numpyro.handlers import scope, seed, substitute, trace

__all__ = ["tracer", "replayer", "site_shapes", "run_trace"]


def tracer(fn, *, prefix="layer", **kwargs):
    """Jitted ``(key, *args) -> {site: value}`` of one seeded run of ``fn`` under ``prefix``."""

    @jax.jit
    def go(key, *args):
        tr = trace(seed(scope(fn, prefix=prefix), key)).get_trace(*args, **kwargs)
        return {k: v["value"] for k, v in tr.items() if v["type"] in ("sample", "param")}

    return go


def replayer(fn, *, prefix="layer", **kwargs):
    """Jitted ``(values, *args) -> fn(*args)`` with the sites in ``values`` substituted."""

    @jax.jit
    def go(values, *args):
        return substitute(seed(scope(fn, prefix=prefix), 0), data=values)(*args, **kwargs)

    return go


def site_shapes(fn, *args, prefix="layer", **kwargs):
    """``{site: (type, shape)}`` and ``{site: distribution class}`` of one run, abstractly."""
    meta = {}

    def run(*args):
        tr = trace(seed(scope(fn, prefix=prefix), 0)).get_trace(*args, **kwargs)
        for k, v in tr.items():
            meta[k] = (v["type"], v.get("fn"))
        return {k: v["value"] for k, v in tr.items()}

    shapes = jax.eval_shape(run, *args)
    sites = {k: (meta[k][0], tuple(shapes[k].shape)) for k in shapes}
    dists = {k: meta[k][1] for k in shapes}
    return sites, dists


def run_trace(fn, *args, rng=0, data=None, **kwargs):
    """``{site: {"type", "value"}}`` of one seeded run of ``fn`` (optionally with ``data``
    substituted), computed in one jitted call (``kwargs`` are static)."""
    types = {}

    @jax.jit
    def go(key, data, *args):
        f = fn if data is None else substitute(fn, data=data)
        tr = trace(seed(f, key)).get_trace(*args, **kwargs)
        types.update({k: v["type"] for k, v in tr.items()})
        return {k: v["value"] for k, v in tr.items()}

    values = go(jax.random.PRNGKey(rng), data, *args)
    return {k: {"type": types[k], "value": v} for k, v in values.items()}
