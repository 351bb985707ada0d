"""Densities over the sampled state paths of the count model (private).

The coordinates are described in :mod:`bayes_ssm.models._state_paths`, which chooses them and
samples the states; this module holds the maps and densities it samples through:
:func:`state_path` (non-centred shocks -> states), :func:`states_from_centred_path` (centred
coordinates -> states and innovations), :class:`CentredStatePath` (the prior of the centred
path), :class:`MarginalCentredPath` and :class:`RmsRatio` (the path with its sds integrated out,
and the sds as ratios to the path's root mean square innovation) and :func:`ratio_sds`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax import lax

__all__ = [
    "state_path",
    "states_from_centred_path",
    "CentredStatePath",
    "MarginalCentredPath",
    "RmsRatio",
    "ratio_sds",
]


@jax.jit
def state_path(transition, alpha1, eta):
    """``alpha_1`` and ``alpha_{t+1} = T alpha_t + eta_t``: shape ``(time, state)``."""

    def step(state, e):
        nxt = transition @ state + e
        return nxt, nxt

    _, rest = lax.scan(step, alpha1, eta)
    return jnp.concatenate([alpha1[None], rest])


def states_from_centred_path(transition, alpha1, path, cidx, shocks=None):
    """States ``(time, state)`` and centred innovations ``(time - 1, centred)``.

    ``path`` (time - 1, centred) holds ``alpha_{t+1}[cidx]``; ``shocks`` (time - 1, state) the
    non-centred innovations ``sd * z`` of the other noisy states (zero elsewhere; ``None``: none);
    the noiseless states follow the transition. When every state is centred this is vectorised;
    otherwise one scan.
    """
    n = alpha1.shape[0]
    if cidx.size == n:
        states = jnp.concatenate([alpha1[None], path])
        eta = path - states[:-1] @ transition.T
        return states, eta
    if shocks is None:
        shocks = jnp.zeros((path.shape[0], n), path.dtype)

    def step(state, inputs):
        x, e = inputs
        pred = transition @ state + e
        nxt = pred.at[cidx].set(x)
        return nxt, (nxt, x - pred[cidx])

    _, (rest, eta) = lax.scan(step, alpha1, (path, shocks))
    return jnp.concatenate([alpha1[None], rest]), eta


class CentredStatePath(dist.Distribution):
    """Prior of the centred states ``alpha_{2..T}[cidx]`` given ``alpha_1`` and the non-centred
    innovations of the other states.

    Parameters
    ----------
    transition : Array, shape ``(state, state)``
    alpha1 : Array, shape ``(state,)``
    noise_sd : Array, shape ``(centred,)``
        ``sqrt(q[cidx])``, all positive.
    cidx : ndarray of int, shape ``(centred,)``
        The centred states (static; all have noise).
    num_steps : int
        ``T``; the event shape is ``(T - 1, centred)``.
    shocks : Array, shape ``(time - 1, state)``, optional
        ``sd * z`` of the non-centred noisy states (zero at the others); ``None`` for none.
    """

    support = dist.constraints.real
    reparametrized_params = ["transition", "alpha1", "noise_sd", "shocks"]

    def __init__(
        self, transition, alpha1, noise_sd, cidx, num_steps, shocks=None, *, validate_args=None
    ):
        self.transition, self.alpha1, self.noise_sd = transition, alpha1, noise_sd
        self.cidx = np.asarray(cidx)
        self.num_steps = int(num_steps)
        self.shocks = shocks
        event = (self.num_steps - 1, self.cidx.size)
        super().__init__(batch_shape=(), event_shape=event, validate_args=validate_args)

    def _path(self, z):
        n = self.alpha1.shape[0]
        eta = jnp.zeros((self.num_steps - 1, n), self.alpha1.dtype)
        if self.shocks is not None:
            eta = eta + self.shocks
        eta = eta.at[:, self.cidx].set(z * self.noise_sd)
        return state_path(self.transition, self.alpha1, eta)[1:, self.cidx]

    @property
    def mean(self):
        """The path with zero centred innovations, shape ``(time - 1, centred)``."""
        return self._path(jnp.zeros(self.event_shape, self.alpha1.dtype))

    def sample(self, key, sample_shape=()):
        def one(k):
            return self._path(jax.random.normal(k, self.event_shape, self.alpha1.dtype))

        if not sample_shape:
            return one(key)
        keys = jax.random.split(key, int(np.prod(sample_shape)))
        return jax.vmap(one)(keys).reshape(sample_shape + self.event_shape)

    def log_prob(self, value):
        _, eta = states_from_centred_path(
            self.transition, self.alpha1, value, self.cidx, self.shocks
        )
        return jnp.sum(dist.Normal(0.0, self.noise_sd).log_prob(eta))


class MarginalCentredPath(dist.Distribution):
    """Centred states with their sds integrated out (``"mixed_rms"``, ``"trend_rms"``).

    ``sample`` draws each ``sigma`` from its prior and then :class:`CentredStatePath` with that sd:
    an exact draw from the marginal prior of the path. ``log_prob`` is 0: the joint density of
    the path and the sd ratios sits on the ratios' sites (:class:`RmsRatio`, one per centred
    state), whose densities given the path are unnormalised; the sum over the sites is the
    model's joint density.

    Parameters
    ----------
    transition, alpha1, cidx, num_steps, shocks
        As in :class:`CentredStatePath`.
    sd_priors : sequence of Distribution
        Priors of the disturbance sds of the centred states ``cidx`` (scalar, positive), in
        that order.
    """

    support = dist.constraints.real

    def __init__(
        self, transition, alpha1, sd_priors, cidx, num_steps, shocks=None, *, validate_args=None
    ):
        self.transition, self.alpha1, self.sd_priors = transition, alpha1, tuple(sd_priors)
        self.cidx = np.asarray(cidx)
        self.num_steps = int(num_steps)
        self.shocks = shocks
        event = (self.num_steps - 1, self.cidx.size)
        super().__init__(batch_shape=(), event_shape=event, validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        def one(k):
            *ks, k2 = jax.random.split(k, len(self.sd_priors) + 1)
            sd = jnp.stack([p.sample(ki) for p, ki in zip(self.sd_priors, ks, strict=True)])
            sd = sd.astype(self.alpha1.dtype)
            path = CentredStatePath(
                self.transition, self.alpha1, sd, self.cidx, self.num_steps, self.shocks
            )
            return path.sample(k2)

        if not sample_shape:
            return one(key)
        keys = jax.random.split(key, int(np.prod(sample_shape)))
        return jax.vmap(one)(keys).reshape(sample_shape + self.event_shape)

    def log_prob(self, value):
        return jnp.zeros(value.shape[: value.ndim - 2], value.dtype)


class RmsRatio(dist.Distribution):
    """Site ``sigma_level_ratio``: ``r = sigma / rms(eta)`` given the centred innovations.

    ``log_prob(r)`` is the joint log density of ``(r, path)`` (with :class:`MarginalCentredPath`
    carrying 0): ``log p_sigma(r m) + log m + sum_t log N(eta_t; 0, (r m)^2)``, ``m =
    rms(eta)``; the ``log m`` is the Jacobian of ``r -> sigma = r m``. As a function of ``r``
    alone it is proportional to the conditional law of ``r`` given the path (unnormalised).

    ``sample`` draws from ``r^-n exp(-n / (2 r^2))`` (``1 / r^2 ~ Gamma((n - 1) / 2, n / 2)``,
    ``n`` innovations), the conditional under a flat prior on ``sigma``: starting points for
    ``init_to_median`` and SVI guides only (the exact conditional also has the factor
    ``p_sigma(r m)``, nearly flat over ``r``'s spread ``1 / sqrt(2 n)``).

    Parameters
    ----------
    eta : Array, shape ``(time - 1,)``
        The centred innovations of the path.
    sd_prior : Distribution
        Prior of ``sigma`` (scalar, positive).
    """

    support = dist.constraints.positive

    def __init__(self, eta, sd_prior, *, validate_args=None):
        self.eta, self.sd_prior = eta, sd_prior
        self.rms = jnp.sqrt(jnp.mean(eta**2))
        super().__init__(batch_shape=(), event_shape=(), validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        n = self.eta.size
        u = jax.random.gamma(key, 0.5 * (n - 1), sample_shape, self.eta.dtype) / (0.5 * n)
        return 1.0 / jnp.sqrt(u)

    def log_prob(self, value):
        sd = value * self.rms
        gauss = jnp.sum(dist.Normal(0.0, sd[..., None]).log_prob(self.eta), -1)
        return self.sd_prior.log_prob(sd) + jnp.log(self.rms) + gauss


def ratio_sds(transition, alpha1, path, cidx, shocks, sd_priors: dict):
    """Sample ``<sd site>_ratio`` per centred state given the path; returns ``(states, sds)``.

    ``states`` (time, state) as :func:`states_from_centred_path` builds them; ``sds`` maps each
    sd site of ``sd_priors`` (one per centred state, in the order of ``cidx``) to ``r * rms(eta)``,
    also recorded at that (deterministic) site.
    """
    states, eta = states_from_centred_path(transition, alpha1, path, cidx, shocks)
    sds = {}
    for j, (site, sd_prior) in enumerate(sd_priors.items()):
        prior = RmsRatio(eta[:, j], sd_prior)
        prior.init_value = jnp.ones((), eta.dtype)
        ratio = numpyro.sample(f"{site}_ratio", prior)
        sds[site] = numpyro.deterministic(site, ratio * prior.rms)
    return states, sds
