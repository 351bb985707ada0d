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

__all__ = [
    "STATE_PARAMETERIZATIONS",
    "resolve_parameterization",
    "CentredStatePath",
    "MarginalCentredPath",
    "RmsRatio",
    "RMS_PARAMETERIZATIONS",
    "ratio_sds",
    "init_to_median_path",
    "path_guess",
    "state_path",
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


@jax.jit
def state_path(transition, alpha1, eta):
    """``alpha_1`` and ``alpha_{t+1} = T alpha_t + eta_t``: shape ``(time, state)``."""

    def step(state, e):
        nxt = transition @ state + e
        return nxt, nxt

    _, rest = lax.scan(step, alpha1, eta)
    return jnp.concatenate([alpha1[None], rest])


def _centred_states(transition, alpha1, path, cidx, shocks=None):
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
        _, eta = _centred_states(self.transition, self.alpha1, value, self.cidx, self.shocks)
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

    ``states`` (time, state) as :func:`_centred_states` builds them; ``sds`` maps each sd site
    of ``sd_priors`` (one per centred state, in the order of ``cidx``) to ``r * rms(eta)``,
    also recorded at that (deterministic) site.
    """
    states, eta = _centred_states(transition, alpha1, path, cidx, shocks)
    sds = {}
    for j, (site, sd_prior) in enumerate(sd_priors.items()):
        prior = RmsRatio(eta[:, j], sd_prior)
        prior.init_value = jnp.ones((), eta.dtype)
        ratio = numpyro.sample(f"{site}_ratio", prior)
        sds[site] = numpyro.deterministic(site, ratio * prior.rms)
    return states, sds


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
    states, _ = _centred_states(system.transition, alpha1, path, cidx, shocks)
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
