"""A MAP start for SVI (``fit_svi(init="map")``, private machinery).

The posterior mode in the unconstrained space, found by L-BFGS (``optax.lbfgs`` with a
backtracking line search, inside one ``jax.lax.while_loop``) from the point SVI's cold start would
use (``init_to_median`` of prior draws, the same key), then the curvature there (the Hessian
of the potential energy, by central differences of its gradient: ``fd_hessian``). AutoNormal
starts at the mode with, for each coordinate, the scale ``1 / sqrt(H_ii)``: for a Gaussian
posterior this is exactly the mean-field optimum (the minimiser of KL(q || p) over diagonal
Gaussians has precision ``diag(H)``), so SVI starts near where it would otherwise arrive after
thousands of steps and the stopping rule can end it sooner (``docs/default.md``, "Session 9:
a MAP start").

Everything runs in one compiled program that returns the SVI state and a record of the
search: ``MAP_FIELDS`` (converged: the Newton decrement at its end at most ``MAP_DECREMENT``
nats; iterations, gradient norm, potential energy, smallest Hessian diagonal, count of
non-positive diagonals). Sites with more than ``SITE_MAX`` elements (per-step latent
variables) stay at the cold start. A search that ends non-finite leaves the
cold start in place (``used`` 0); ``bs.check`` reports a search that did not converge or a
curvature that was not positive.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree
from numpyro.distributions import biject_to
from numpyro.infer.svi import SVIState
from numpyro.infer.util import potential_energy

__all__ = [
    "INITS",
    "MAP_FIELDS",
    "MAP_MAX_ITER",
    "MAP_GTOL",
    "map_problems",
    "map_record",
    "map_start_state",
]

INITS = ("prior", "map")
MAP_FIELDS = (
    "used",
    "dimensions",
    "converged",
    "iterations",
    "grad_norm",
    "newton_decrement",
    "potential",
    "min_hessian_diag",
    "nonpositive_hessian_diag",
)
# L-BFGS's most iterations and its convergence test: the largest gradient component (in the
# unconstrained space, nats per unit) at most ``MAP_GTOL * (1 + |potential| / dimension)``
MAP_MAX_ITER = 200
MAP_GTOL = 1e-3
# the search counts as converged when the Newton step from its end would lower the potential
# by at most this many nats (``newton_decrement``): a test that float32's rounding of the
# gradient cannot fail the way a gradient-norm test does
MAP_DECREMENT = 0.01
# the starting scales' bounds (unconstrained units): a coordinate the potential barely bends
# along (or bends the wrong way) starts at ``SCALE_MAX``, AutoNormal's own default
SCALE_MIN, SCALE_MAX = 1e-4, 0.1
# sites with more elements than this (per-step latent variables, e.g. the Student-t noise's
# precisions) stay at the cold start and are held there during the search: the joint mode of
# local variables is a poor centre for a mean-field guide (it sits in a spike of the joint
# density; measured on the Student-t candidate it started SVI further from its optimum than
# the prior start did). The search is over the global parameters given them.
SITE_MAX = 32


def lbfgs_mode(fun, x0, max_iter=MAP_MAX_ITER, gtol=MAP_GTOL):
    """Minimise ``fun`` (flat ``x`` -> scalar) from ``x0`` by ``optax.lbfgs`` in a
    ``while_loop``; returns ``(x, value, grad, iterations, converged)``, the value and
    gradient at ``x`` those the line search stored (no evaluation after the loop)."""
    opt = optax.lbfgs(
        linesearch=optax.scale_by_backtracking_linesearch(
            max_backtracking_steps=20, store_grad=True
        )
    )
    value_and_grad = optax.value_and_grad_from_state(fun)

    def tolerance(value):
        return gtol * (1.0 + jnp.abs(value) / x0.size)

    def step(carry):
        x, state = carry
        value, grad = value_and_grad(x, state=state)
        updates, state = opt.update(grad, state, x, value=value, grad=grad, value_fn=fun)
        return optax.apply_updates(x, updates), state

    def keep_going(carry):
        _, state = carry
        count = optax.tree_utils.tree_get(state, "count")
        grad = optax.tree_utils.tree_get(state, "grad")
        value = optax.tree_utils.tree_get(state, "value")
        err = jnp.max(jnp.abs(grad))
        ok = jnp.isfinite(value) & jnp.all(jnp.isfinite(grad))
        return (count == 0) | ((count < max_iter) & (err > tolerance(value)) & ok)

    x, state = jax.lax.while_loop(keep_going, step, (x0, opt.init(x0)))
    value = optax.tree_utils.tree_get(state, "value")
    grad = optax.tree_utils.tree_get(state, "grad")
    count = optax.tree_utils.tree_get(state, "count")
    converged = jnp.isfinite(value) & (jnp.max(jnp.abs(grad)) <= tolerance(value))
    return x, value, grad, count, converged


def fd_hessian(grad_fn, x):
    """The Hessian at ``x`` by central differences of ``grad_fn`` (one vmapped gradient over
    ``2 n`` points, step ``eps ** (1/3) * max(1, |x_i|)``), symmetrised: cheaper to compile
    than ``jax.hessian`` of a Kalman filter (forward over reverse mode), as exact as the
    gradient's rounding allows (``tests/test_map_start.py`` checks it against a
    finite-difference Hessian of statsmodels' likelihood)."""
    n = x.size
    step = jnp.finfo(x.dtype).eps ** (1 / 3) * jnp.maximum(1.0, jnp.abs(x))
    eye = jnp.eye(n, dtype=x.dtype) * step
    grads = jax.vmap(grad_fn)(jnp.concatenate([x + eye, x - eye]))
    hess = (grads[:n] - grads[n:]) / (2 * step[:, None])
    return 0.5 * (hess + hess.T)


def newton_decrement(hess, grad):
    """Half the Newton decrement, ``grad' H^-1 grad / 2``: the potential's fall from ``x`` to
    the mode of its quadratic model, in nats; infinite where ``hess`` is not positive
    definite (its Cholesky factor has a non-finite entry)."""
    chol = jnp.linalg.cholesky(hess)
    half = jax.scipy.linalg.solve_triangular(chol, grad, lower=True)
    dec = 0.5 * jnp.sum(half**2)
    return jnp.where(jnp.all(jnp.isfinite(chol)) & jnp.isfinite(dec), dec, jnp.inf)


def map_start_state(svi, state0, y, kwargs):
    """SVI state ``state0`` (AutoNormal's cold start, from ``svi.init``) moved to the
    posterior mode, with scales from the curvature there.

    Parameters
    ----------
    svi : numpyro.infer.SVI
        Its guide an ``AutoNormal``, initialised (``svi.init``) with ``state0``.
    state0 : SVIState
    y : Array, shape ``(time,)``
    kwargs : dict
        The model program's keyword arguments.

    Returns
    -------
    (SVIState, Array of shape ``(len(MAP_FIELDS),)``)
        ``dimensions`` is the number of coordinates searched (0: every site held, the cold
        start returned unchanged).
    """
    guide, program = svi.guide, svi.model
    raw = svi.optim.get_params(state0.optim_state)  # unconstrained guide parameters
    locs0 = {k[: -len("_auto_loc")]: v for k, v in raw.items() if k.endswith("_auto_loc")}
    names = [n for n, v in locs0.items() if jnp.size(v) <= SITE_MAX]
    held = {n: v for n, v in locs0.items() if n not in names}
    x0, unravel = ravel_pytree({n: locs0[n] for n in names})
    if x0.size == 0:  # nothing small enough to search: the cold start, said so
        record = jnp.zeros(len(MAP_FIELDS), raw[f"{next(iter(locs0))}_auto_loc"].dtype)
        return state0, record

    def fun(x):
        return potential_energy(program, (y,), kwargs, {**held, **unravel(x)})

    x, value, grad, count, _ = lbfgs_mode(fun, x0)
    err = jnp.max(jnp.abs(grad))
    hess = fd_hessian(jax.grad(fun), x)
    diag = jnp.diagonal(hess)
    decrement = newton_decrement(hess, grad)
    converged = decrement <= MAP_DECREMENT
    used = jnp.isfinite(value) & jnp.all(jnp.isfinite(x)) & jnp.all(jnp.isfinite(diag))
    safe = jnp.where(diag > 0, diag, 1.0 / SCALE_MAX**2)
    scale = jnp.clip(1.0 / jnp.sqrt(safe), SCALE_MIN, SCALE_MAX)
    locs, scales = unravel(x), unravel(scale)
    to_scale = biject_to(guide.scale_constraint).inv
    moved = dict(raw)
    for n in names:
        moved[f"{n}_auto_loc"] = jnp.where(used, locs[n], raw[f"{n}_auto_loc"])
        moved[f"{n}_auto_scale"] = jnp.where(used, to_scale(scales[n]), raw[f"{n}_auto_scale"])
    state = SVIState(svi.optim.init(moved), state0.mutable_state, state0.rng_key)
    record = jnp.stack(
        [
            used.astype(x.dtype),
            jnp.asarray(x0.size, x.dtype),
            (converged & used).astype(x.dtype),
            count.astype(x.dtype),
            err.astype(x.dtype),
            decrement.astype(x.dtype),
            value.astype(x.dtype),
            jnp.min(diag).astype(x.dtype),
            jnp.sum(diag <= 0).astype(x.dtype),
        ]
    )
    return state, record


def map_record(values) -> dict:
    """``fit.info["map"]``: the search's record as plain Python numbers."""
    out = dict(zip(MAP_FIELDS, (float(v) for v in values), strict=True))
    for k in ("used", "converged"):
        out[k] = bool(out[k])
    for k in ("dimensions", "iterations", "nonpositive_hessian_diag"):
        out[k] = int(out[k])
    return out


def map_problems(info: dict) -> list[str]:
    """``bs.check``'s sentences about a fit's MAP start (``info["map"]``); none without one."""
    rec = info.get("map")
    if not rec:
        return []
    if not rec.get("dimensions", 1):
        return [
            f"no MAP start: every latent site has more than {SITE_MAX} elements (the search "
            "covers global parameters only); SVI started from the prior start."
        ]
    if not rec["used"]:
        return [
            "the MAP start failed (the search ended at a non-finite potential, point or "
            "curvature): SVI started from the prior start instead. The fit may still be fine "
            "(see the SVI checks); compare with fit_svi(init='prior')."
        ]
    out = []
    if not rec["converged"]:
        out.append(
            f"the MAP search did not converge: after {rec['iterations']} L-BFGS iterations "
            f"a Newton step would still lower the potential by {rec['newton_decrement']:.2g} "
            f"nats (largest gradient component {rec['grad_norm']:.2g}); SVI started from "
            "where it stopped. Compare with fit_svi(init='prior')."
        )
    if rec["nonpositive_hessian_diag"]:
        out.append(
            f"the MAP start is not a mode: the potential's curvature is not positive along "
            f"{rec['nonpositive_hessian_diag']} coordinate(s) (smallest Hessian diagonal "
            f"{rec['min_hessian_diag']:.2g}); those started at scale {SCALE_MAX}. Compare "
            "with fit_svi(init='prior')."
        )
    return out
