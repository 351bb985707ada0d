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
    Hessian is banded and far better conditioned on long, informative series.

The map ``z -> state_path`` is triangular with diagonal ``sqrt(q)``; the two log joint
densities of one point differ by ``(time - 1) * sum(log sqrt(q))``, the log-Jacobian
(``tests/test_structural_counts.py`` checks it).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax import lax

__all__ = [
    "STATE_PARAMETERIZATIONS",
    "resolve_parameterization",
    "CentredStatePath",
    "state_path",
    "sample_states",
]

STATE_PARAMETERIZATIONS = ("auto", "noncentred", "centred")

# "auto": non-centred only for short series of small counts (mean below this, T below _SHORT).
_SMALL_COUNT = 5.0
_SHORT = 200


def resolve_parameterization(model, scales: dict) -> str:
    """The concrete parameterisation (``"noncentred"`` or ``"centred"``) of ``model``.

    ``"auto"`` picks ``"noncentred"`` for a short series (``num_steps < 200``) of small counts
    (``expm1(y_loc) < 5``, i.e. the geometric-mean-like level of the counts below 5) without
    a trend, where the data say little about each state; ``"centred"`` otherwise. It depends only
    on the stored data scales, so a reloaded fit resolves it the same way.
    """
    choice = model.state_parameterization
    if choice != "auto":
        return choice
    level = float(np.expm1(scales["y_loc"]))
    short = scales.get("num_steps", np.inf) < _SHORT
    if short and level < _SMALL_COUNT and model.trend is None:
        return "noncentred"
    return "centred"


@jax.jit
def state_path(transition, alpha1, eta):
    """``alpha_1`` and ``alpha_{t+1} = T alpha_t + eta_t``: shape ``(time, state)``."""

    def step(state, e):
        nxt = transition @ state + e
        return nxt, nxt

    _, rest = lax.scan(step, alpha1, eta)
    return jnp.concatenate([alpha1[None], rest])


def _centred_states(transition, alpha1, path, idx):
    """States ``(time, state)`` and innovations ``(time - 1, noise)`` of a centred path.

    ``path`` (time - 1, noise) holds ``alpha_{t+1}[idx]``; the noiseless states follow the
    transition. Without noiseless states (level, trend, trigonometric seasonals) this is
    vectorised; otherwise one scan.
    """
    n = alpha1.shape[0]
    if idx.size == n:
        states = jnp.concatenate([alpha1[None], path])
        eta = path - states[:-1] @ transition.T
        return states, eta

    def step(state, x):
        pred = transition @ state
        nxt = pred.at[idx].set(x)
        return nxt, (nxt, x - pred[idx])

    _, (rest, eta) = lax.scan(step, alpha1, path)
    return jnp.concatenate([alpha1[None], rest]), eta


class CentredStatePath(dist.Distribution):
    """Prior of the noisy states ``alpha_{2..T}[idx]`` given ``alpha_1`` (centred coordinates).

    Parameters
    ----------
    transition : Array, shape ``(state, state)``
    alpha1 : Array, shape ``(state,)``
    noise_sd : Array, shape ``(noise,)``
        ``sqrt(q[idx])``, all positive.
    idx : ndarray of int, shape ``(noise,)``
        The states with noise (static).
    num_steps : int
        ``T``; the event shape is ``(T - 1, noise)``.
    """

    support = dist.constraints.real
    reparametrized_params = ["transition", "alpha1", "noise_sd"]

    def __init__(self, transition, alpha1, noise_sd, idx, num_steps, *, validate_args=None):
        self.transition, self.alpha1, self.noise_sd = transition, alpha1, noise_sd
        self.idx = np.asarray(idx)
        self.num_steps = int(num_steps)
        event = (self.num_steps - 1, self.idx.size)
        super().__init__(batch_shape=(), event_shape=event, validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        n = self.alpha1.shape[0]

        def one(k):
            z = jax.random.normal(k, self.event_shape, self.alpha1.dtype)
            eta = jnp.zeros((self.num_steps - 1, n), z.dtype).at[:, self.idx].set(z * self.noise_sd)
            return state_path(self.transition, self.alpha1, eta)[1:, self.idx]

        if not sample_shape:
            return one(key)
        keys = jax.random.split(key, int(np.prod(sample_shape)))
        return jax.vmap(one)(keys).reshape(sample_shape + self.event_shape)

    def log_prob(self, value):
        _, eta = _centred_states(self.transition, self.alpha1, value, self.idx)
        return jnp.sum(dist.Normal(0.0, self.noise_sd).log_prob(eta))


def sample_states(system, idx, num_steps: int, dtype, parameterization: str):
    """Sample the state path at sites ``state_init_z`` and ``state_z`` / ``state_path``.

    Parameters
    ----------
    system : components.System
    idx : ndarray of int, shape ``(noise,)``
        The states with noise.
    num_steps : int
    dtype : floating dtype
    parameterization : {"noncentred", "centred"}

    Returns
    -------
    Array, shape ``(time, state)``
    """
    n = system.init_mean.shape[0]
    z0 = numpyro.sample("state_init_z", dist.Normal(jnp.zeros(n, dtype), 1.0).to_event(1))
    alpha1 = system.init_mean + jnp.linalg.cholesky(system.init_cov) @ z0
    sd = jnp.sqrt(system.noise_var[idx])
    if parameterization == "noncentred":
        z = numpyro.sample(
            "state_z", dist.Normal(jnp.zeros((num_steps - 1, idx.size), dtype), 1.0).to_event(2)
        )
        full = jnp.zeros((num_steps - 1, n), dtype).at[:, idx].set(z * sd)
        return state_path(system.transition, alpha1, full)
    if parameterization == "centred":
        path = numpyro.sample(
            "state_path", CentredStatePath(system.transition, alpha1, sd, idx, num_steps)
        )
        states, _ = _centred_states(system.transition, alpha1, path, idx)
        return states
    raise ValueError(
        f"state_parameterization must be one of {STATE_PARAMETERIZATIONS}; got {parameterization!r}"
    )
