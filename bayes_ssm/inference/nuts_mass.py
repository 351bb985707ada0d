"""The NUTS mass matrix :func:`bayes_ssm.fit_nuts` adapts: ``dense_mass="auto"``.

A structural model has a handful of global parameters (variances, damping, AR coefficients,
noise harmonics) whose posteriors are correlated (a level variance trades against an
observation variance); a diagonal mass matrix makes NUTS take many small leapfrog steps along
those ridges. A dense matrix over them costs ``O(d^2)`` per step for ``d`` values, nothing
next to a Kalman filter over hundreds of steps. Per-step latent sites (the Student-t
precisions, the negative-binomial state path) and large weight arrays are left diagonal: their
covariance cannot be estimated from a few hundred warm-up draws.

Measured on the full ILINet (1,436 weeks, 2 chains, ``benchmarks/nuts_ilinet.py``): the
default's seasonal-noise level candidate took 33 leapfrog steps per draw with a diagonal matrix
(500 + 500 draws, worst r_hat 1.011) and 9.5 with a dense one (300 + 400 draws, r_hat 1.007);
the constant-noise level 9.3 and 6.2 (r_hat 1.009 and 1.005).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["mass_structure", "GLOBAL_SITE_MAX", "DENSE_MAX"]

GLOBAL_SITE_MAX = 64  # a site with more values is per-step (or a weight array): diagonal
DENSE_MAX = 200  # the most values in the one dense block


def mass_structure(shapes: Mapping[str, tuple[int, ...]], dense_mass: bool | str = "auto") -> bool:
    """NumPyro's ``dense_mass`` argument for a program with these latent sites.

    Parameters
    ----------
    shapes : mapping of str to tuple of int
        Latent site name -> shape (``engine.latent_shapes``), in program order.
    dense_mass : bool or "auto"
        ``True`` / ``False`` are returned as they are. ``"auto"``: dense when every site has
        at most :data:`GLOBAL_SITE_MAX` values and all hold at most :data:`DENSE_MAX`
        together (a program of global parameters only), diagonal otherwise.

    Returns
    -------
    bool
        ``True`` (dense) or ``False`` (diagonal).
    """
    if isinstance(dense_mass, bool):
        return dense_mass
    if dense_mass != "auto":
        raise ValueError(f"dense_mass must be True, False or 'auto'; got {dense_mass!r}")
    sizes = [int(np.prod(shape, dtype=int)) for shape in shapes.values()]
    return bool(sizes) and max(sizes) <= GLOBAL_SITE_MAX and sum(sizes) <= DENSE_MAX
