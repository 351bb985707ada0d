"""Sampled state paths of the count model: non-centred and centred coordinates (private).

The negative-binomial :class:`~bayes_ssm.models.structural.StructuralTS` samples its states
``alpha_t`` (``t = 1..T``) from the linear-Gaussian state equation

.. math::

    \\alpha_1 = a_1 + L z_0, \\qquad \\alpha_{t+1} = T \\alpha_t + \\eta_t, \\qquad
    \\eta_t \\sim N(0, \\operatorname{diag}(q)),

with noise on the states ``idx`` only (``q > 0`` there). Both parameterisations keep
``state_init_z`` (state,) for ``z_0`` and differ in the coordinates of the path:

``"noncentred"``
    site ``state_z`` (time - 1, noise): ``eta_t = sqrt(q) * z_t``, ``z_t ~ N(0, I)``. Good when
    the data say little about each state (small counts, short series): the prior dominates and
    ``z`` is nearly isotropic. Poor when they pin the path down: the level is a (double, with a
    trend) cumulative sum of ``z``, so the posterior of ``z`` is highly correlated.
``"centred"``
    site ``state_path`` (time - 1, noise): the noisy states ``alpha_{t+1}[idx]`` themselves,
    with prior density ``prod_t N(alpha_{t+1}[idx] - (T alpha_t)[idx]; 0, q)``
    (:class:`CentredStatePath`). Each count informs its own coordinate, so the posterior
    Hessian is banded; but components whose disturbance sd is near zero (a stable seasonal, a
    slowly moving slope) form funnels with their sd, where NUTS gets stuck.
``"mixed"``
    the level centred (site ``state_path``, (time - 1, 1)), every other noisy state
    non-centred (``state_z``, (time - 1, noise - 1)): the level is what the counts pin down,
    the slope and seasonal are what they say little about step by step. The default
    (``"auto"``) for long or large-count series.
``"mixed_rms"``
    as ``"mixed"``, but the level sd is sampled as a ratio to the root mean square of the
    current centred level innovations: site ``sigma_level_ratio`` ``r``, with
    ``sigma_level = r * rms(eta)`` a deterministic site (:class:`RmsRatio`). In ``"mixed"``
    the sd and the ``T - 1`` centred innovations form a funnel: given the path, ``log sigma``
    is pinned to ``log rms(eta)`` within ``1 / sqrt(2 (T - 1))``, so NUTS can move the sd only
    as fast as the whole path. Given the path, ``r`` is near 1 with that same spread whatever
    the path, and the path's own density is the prior with the sd integrated out; the
    model is unchanged: the map ``(r, path) -> (sigma, path)`` has log-Jacobian
    ``log rms(eta)``, and in NUTS' unconstrained coordinates (``log r`` vs ``log sigma``) it
    is a shift, so the potential energies of mapped points are equal.
``"trend_rms"``
    the level and the slope centred, both sds sampled as ratios (``sigma_level_ratio``,
    ``sigma_slope_ratio``); the rest non-centred. With a centred level and a non-centred
    slope (``"mixed"``), one slope innovation moves every later slope, so with a small level
    sd it is coupled to the whole centred level path; centring the slope too removes that
    coupling, and the ratio removes the slope-sd funnel that plain ``"centred"`` has.

The map ``z -> state_path`` is triangular with diagonal ``sqrt(q)``; the two log joint
densities of one point differ by ``(time - 1) * sum(log sqrt(q))``, the log-Jacobian
(``tests/test_structural_counts.py`` checks it).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax import lax
from numpyro.infer import init_to_median

from bayes_ssm.models._state_path_densities import (
    CentredStatePath,
    MarginalCentredPath,
    ratio_sds,
    state_path,
    states_from_centred_path,
)

__all__ = [
    "STATE_PARAMETERIZATIONS",
    "resolve_parameterization",
    "RMS_PARAMETERIZATIONS",
    "init_to_median_path",
    "path_guess",
    "sample_states",
    "centred_states",
]

STATE_PARAMETERIZATIONS = ("auto", "noncentred", "centred", "mixed", "mixed_rms", "trend_rms")
# the ones that sample the centred states' sds as ratios to their innovations' rms
RMS_PARAMETERIZATIONS = ("mixed_rms", "trend_rms")

# "auto": non-centred for series shorter than this without a trend.
_SHORT = 200


def resolve_parameterization(model, num_steps: int) -> str:
    """The concrete parameterisation (``"noncentred"``, ``"centred"`` or ``"mixed"``).

    ``"auto"`` picks ``"noncentred"`` for a model without a level, or for a series shorter than
    200 steps without a trend, where the data say little about each state and the (at most
    single) cumulative sums stay short; ``"mixed"`` (centred level, the rest non-centred)
    otherwise. It depends only on static structure (the model and the series length, never on
    the data values, which may be traced), so a forecast or a reloaded fit resolves it the
    same way as the fit.
    """
    choice = model.state_parameterization
    if choice != "auto":
        return choice
    if not model.level or (int(num_steps) < _SHORT and model.trend is None):
        return "noncentred"
    return "mixed"


def init_to_median_path(site=None, num_samples: int = 15):
    """NumPyro init strategy: :func:`numpyro.infer.init_to_median`, except that the state-path
    sites start where their distribution's ``init_value`` says (a rough path from the counts,
    :func:`path_guess`). Neither a flat path (``state_z = 0``) nor the median of a few prior
    paths is near the data on a long, trending series; NUTS started there drives the
    concentration towards 0 and stays stuck."""
    if site is None:
        return partial(init_to_median_path, num_samples=num_samples)
    init = getattr(site.get("fn"), "init_value", None)
    if site["type"] == "sample" and not site["is_observed"] and site["value"] is None:
        if init is not None:
            return init
    return init_to_median(site, num_samples=num_samples)


def _smooth(x, weight: float = 0.15):
    """Two-sided exponential smoothing that skips NaN: shape ``(time,)`` -> ``(time,)``."""
    start = jnp.nanmean(x)
    start = jnp.where(jnp.isnan(start), 0.0, start)

    def step(s, xt):
        s = jnp.where(jnp.isnan(xt), s, s + weight * (xt - s))
        return s, s

    _, fwd = lax.scan(step, start, x)
    _, bwd = lax.scan(step, start, x[::-1])
    return 0.5 * (fwd + bwd[::-1])


def path_guess(y, offset, num_states: int, level: bool, trend: bool):
    """A rough state path from the counts, where NUTS starts (not part of the model).

    The level is a two-sided exponential smoothing of ``log(y + 0.5) - offset`` (NaN skipped),
    the slope the smoothed differences of that level, every other state zero.

    Returns
    -------
    Array, shape ``(time, state)``
    """
    guess = jnp.zeros((y.shape[0], num_states), y.dtype)
    if not level:
        return guess
    lvl = _smooth(jnp.log(y + 0.5) - offset)
    guess = guess.at[:, 0].set(lvl)
    if trend:
        guess = guess.at[:, 1].set(_smooth(jnp.gradient(lvl)))
    return guess


def sample_states(
    system,
    idx,
    num_steps: int,
    dtype,
    parameterization: str,
    guess=None,
    level: bool = True,
    trend: bool = False,
    sd_priors=None,
):
    """Sample the state path at sites ``state_init_z`` and ``state_z`` / ``state_path``.

    Parameters
    ----------
    system : components.System
    idx : ndarray of int, shape ``(noise,)``
        The states with noise.
    num_steps : int
    dtype : floating dtype
    parameterization : {"noncentred", "centred", "mixed"}
    guess : Array, shape ``(time, state)``, optional
        Where :func:`init_to_median_path` starts NUTS (:func:`path_guess`); in both coordinate
        systems the same path (its noisy states). No effect on the density.
    level : bool
        Whether state 0 is a level (centred under ``"mixed"`` and ``"mixed_rms"``).
    trend : bool
        Whether state 1 is a slope (centred under ``"trend_rms"``).
    sd_priors : dict, optional
        ``{sd site: prior}`` of the centred states, in their order; needed by ``"mixed_rms"``
        and ``"trend_rms"``, which sample those sds here (sites ``<sd site>_ratio``; their
        entries of ``system.noise_var`` are then not used).

    Returns
    -------
    states : Array, shape ``(time, state)``
    sds : dict
        ``{sd site: value}`` of the sds sampled here (empty unless ``*_rms``).
    """
    n = system.init_mean.shape[0]
    chol = jnp.linalg.cholesky(system.init_cov)
    prior_z0 = dist.Normal(jnp.zeros(n, dtype), 1.0).to_event(1)
    if guess is not None:
        prior_z0.init_value = jax.scipy.linalg.solve_triangular(
            chol, guess[0] - system.init_mean, lower=True
        )
    z0 = numpyro.sample("state_init_z", prior_z0)
    alpha1 = system.init_mean + chol @ z0
    cidx, nidx = centred_states(parameterization, idx, level, trend)
    shocks = None
    if nidx.size:
        sd = jnp.sqrt(system.noise_var[nidx])
        prior = dist.Normal(jnp.zeros((num_steps - 1, nidx.size), dtype), 1.0).to_event(2)
        if guess is not None:
            prior.init_value = (guess[1:] - guess[:-1] @ system.transition.T)[:, nidx] / sd
        z = numpyro.sample("state_z", prior)
        shocks = jnp.zeros((num_steps - 1, n), dtype).at[:, nidx].set(z * sd)
    if not cidx.size:
        return state_path(system.transition, alpha1, shocks), {}
    if parameterization in RMS_PARAMETERIZATIONS:
        if sd_priors is None or len(sd_priors) != cidx.size:
            raise ValueError(
                f"state_parameterization={parameterization!r} needs one sd prior per centred "
                f"state ({cidx.size}); got {None if sd_priors is None else list(sd_priors)}"
            )
        prior = MarginalCentredPath(
            system.transition, alpha1, sd_priors.values(), cidx, num_steps, shocks
        )
        ones = jnp.ones(cidx.size, dtype)
        flat = CentredStatePath(system.transition, alpha1, ones, cidx, num_steps, shocks)
        prior.init_value = flat.mean if guess is None else guess[1:, cidx]
        path = numpyro.sample("state_path", prior)
        return ratio_sds(system.transition, alpha1, path, cidx, shocks, sd_priors)
    sd = jnp.sqrt(system.noise_var[cidx])
    prior = CentredStatePath(system.transition, alpha1, sd, cidx, num_steps, shocks)
    prior.init_value = prior.mean if guess is None else guess[1:, cidx]
    path = numpyro.sample("state_path", prior)
    states, _ = states_from_centred_path(system.transition, alpha1, path, cidx, shocks)
    return states, {}


def centred_states(parameterization: str, idx, level: bool, trend: bool = False):
    """Split the noisy states ``idx`` into centred and non-centred ones (static).

    ``"centred"``: all; ``"noncentred"``: none; ``"mixed"`` and ``"mixed_rms"``: the level
    (state 0) when the model has one; ``"trend_rms"``: the level and the slope (state 1) when
    the model has them.
    """
    idx = np.asarray(idx)
    if parameterization == "centred":
        return idx, idx[:0]
    if parameterization == "noncentred":
        return idx[:0], idx
    if parameterization == "trend_rms":
        keep = [0, 1] if level and trend else [0] if level else []
        centred = idx[np.isin(idx, keep)]
        return centred, idx[~np.isin(idx, keep)]
    if parameterization in ("mixed", "mixed_rms"):
        centred = idx[:1] if level and idx.size and idx[0] == 0 else idx[:0]
        return centred, idx[centred.size :]
    raise ValueError(
        f"state_parameterization must be one of {STATE_PARAMETERIZATIONS}; got {parameterization!r}"
    )
