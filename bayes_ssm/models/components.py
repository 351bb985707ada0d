"""System matrices of the structural components (pure JAX, no sampling).

Each component is a block of the state vector with its own transition, observation (loading)
vector and diagonal state-noise variances. :func:`stack_blocks` assembles blocks into one
block-diagonal linear-Gaussian state space

.. math::

    y_t = Z \\alpha_t + d_t + \\varepsilon_t, \\qquad \\varepsilon_t \\sim N(0, H_t),

    \\alpha_{t+1} = T \\alpha_t + \\eta_t, \\qquad \\eta_t \\sim N(0, \\operatorname{diag}(q)),

    \\alpha_1 \\sim N(a_1, P_1).

The state equations are written exactly as statsmodels' ``UnobservedComponents`` writes them
(Durbin and Koopman 2012, section 3.2), state order included, so that the log-likelihoods agree
to rounding (``tests/test_structural_statsmodels.py``):

level / trend (``level``, ``slope``)
    ``level_{t+1} = level_t + slope_t + eta``, ``slope_{t+1} = phi * slope_t + zeta``; ``phi = 1``
    is the local linear trend, ``phi < 1`` the damped trend (Gardner and McKenzie).
dummy seasonal, period ``s``
    ``s - 1`` states; ``gamma_{t+1} = -sum_{j=1}^{s-1} gamma_{t+1-j} + omega`` (noise on the first
    state only).
trigonometric seasonal, period ``s`` (real allowed, e.g. 365.25), ``h`` harmonics
    ``2h`` states, a rotation by ``lambda_j = 2 pi j / s`` per harmonic,
    ``[[cos, sin], [-sin, cos]]``, noise of the same variance on all ``2h`` states; the first
    state of each pair is observed.
AR(p)
    companion form, ``x_{t+1} = phi_1 x_t + ... + phi_p x_{t-p+1} + noise``, started from its
    stationary distribution.

Dimension vocabulary: ``state`` (``n``) is the latent state size, ``time`` the series axis.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import block_diag

from bayes_ssm.kernels import StateSpace

__all__ = [
    "Block",
    "level_trend_block",
    "dummy_seasonal_block",
    "trig_seasonal_block",
    "ar_block",
    "stack_blocks",
    "stationary_cov",
    "pacf_to_ar",
    "System",
    "structural_system",
    "noise_mask",
]


class Block(NamedTuple):
    """One component's slice of the state space.

    Attributes
    ----------
    transition : Array, shape ``(n, n)``
    observation : Array, shape ``(n,)``
        Loading of the block's states on the observation.
    noise_var : Array, shape ``(n,)``
        Diagonal of the block's state-noise covariance (zeros where a state has no noise).
    """

    transition: jnp.ndarray
    observation: jnp.ndarray
    noise_var: jnp.ndarray

    @property
    def size(self) -> int:
        return int(self.observation.shape[0])


def level_trend_block(level_var, slope_var=None, damping=None) -> Block:
    """Local level (``slope_var is None``), local linear trend, or damped trend.

    Parameters
    ----------
    level_var : Array, shape ``()``
        Variance of the level disturbance.
    slope_var : Array, shape ``()``, optional
        Variance of the slope disturbance; ``None`` gives the local level (one state).
    damping : Array, shape ``()``, optional
        ``phi`` in ``slope_{t+1} = phi * slope_t + zeta``; ``None`` means 1 (local linear trend).

    Returns
    -------
    Block
        With states ``(level,)`` or ``(level, slope)``.
    """
    level_var = jnp.asarray(level_var)
    if slope_var is None:
        return Block(
            jnp.ones((1, 1), level_var.dtype), jnp.ones((1,), level_var.dtype), level_var[None]
        )
    slope_var = jnp.asarray(slope_var)
    dtype = jnp.result_type(level_var, slope_var)
    phi = jnp.ones((), dtype) if damping is None else jnp.asarray(damping, dtype)
    transition = jnp.array([[1.0, 1.0], [0.0, 0.0]], dtype).at[1, 1].set(phi)
    observation = jnp.array([1.0, 0.0], dtype)
    return Block(transition, observation, jnp.stack([level_var, slope_var]).astype(dtype))


def dummy_seasonal_block(period: int, var) -> Block:
    """Dummy-variable seasonal of integer ``period`` (``period - 1`` states).

    Parameters
    ----------
    period : int
        Season length ``s >= 2``.
    var : Array, shape ``()``
        Variance of the seasonal disturbance (enters the first state only).
    """
    period = int(period)
    if period < 2:
        raise ValueError(f"a dummy seasonal needs period >= 2; got {period}")
    n = period - 1
    var = jnp.asarray(var)
    transition = np.zeros((n, n))
    transition[0, :] = -1.0
    transition[np.arange(1, n), np.arange(n - 1)] = 1.0
    observation = np.zeros(n)
    observation[0] = 1.0
    noise = jnp.zeros((n,), var.dtype).at[0].set(var)
    return Block(jnp.asarray(transition, var.dtype), jnp.asarray(observation, var.dtype), noise)


def trig_seasonal_block(period: float, harmonics: int, var) -> Block:
    """Trigonometric (frequency-domain) seasonal: ``harmonics`` rotating pairs of states.

    Parameters
    ----------
    period : float
        Season length ``s >= 2``; need not be an integer (365.25 days, 52.18 weeks).
    harmonics : int
        Number of harmonics ``h``, ``1 <= h <= s / 2``.
    var : Array, shape ``()``
        Variance of the disturbance of every one of the ``2h`` states.
    """
    if period < 2:
        raise ValueError(f"a seasonal needs period >= 2; got {period}")
    if not 1 <= harmonics <= period / 2:
        raise ValueError(f"harmonics must be in [1, period / 2 = {period / 2}]; got {harmonics}")
    var = jnp.asarray(var)
    lam = 2.0 * np.pi * np.arange(1, harmonics + 1) / float(period)
    cos, sin = np.cos(lam), np.sin(lam)
    blocks = [np.array([[c, s], [-s, c]]) for c, s in zip(cos, sin, strict=True)]
    transition = np.zeros((2 * harmonics, 2 * harmonics))
    for j, b in enumerate(blocks):
        transition[2 * j : 2 * j + 2, 2 * j : 2 * j + 2] = b
    observation = np.tile([1.0, 0.0], harmonics)
    noise = jnp.broadcast_to(var, (2 * harmonics,))
    return Block(jnp.asarray(transition, var.dtype), jnp.asarray(observation, var.dtype), noise)


def ar_block(coefs, var) -> Block:
    """AR(p) in companion form (``p`` states; noise on the first).

    Parameters
    ----------
    coefs : Array, shape ``(p,)``
        ``phi_1 .. phi_p`` (assumed stationary; see :func:`pacf_to_ar`).
    var : Array, shape ``()``
        Innovation variance.
    """
    coefs = jnp.asarray(coefs)
    var = jnp.asarray(var, coefs.dtype)
    p = coefs.shape[0]
    shift = np.zeros((p, p))
    shift[np.arange(1, p), np.arange(p - 1)] = 1.0
    transition = jnp.asarray(shift, coefs.dtype).at[0, :].set(coefs)
    observation = jnp.zeros((p,), coefs.dtype).at[0].set(1.0)
    noise = jnp.zeros((p,), coefs.dtype).at[0].set(var)
    return Block(transition, observation, noise)


def pacf_to_ar(pacf):
    """Map partial autocorrelations in ``(-1, 1)`` to stationary AR coefficients.

    The Durbin-Levinson recursion (Barndorff-Nielsen and Schou 1973; Monahan 1984): a bijection
    between ``(-1, 1)^p`` and the stationary region, so a prior on the partial autocorrelations is
    a prior on stationary AR(p) models.

    Parameters
    ----------
    pacf : Array, shape ``(p,)``

    Returns
    -------
    Array, shape ``(p,)``
    """
    pacf = jnp.asarray(pacf)
    p = pacf.shape[0]
    phi = pacf[:1]
    for k in range(1, p):
        r = pacf[k]
        phi = jnp.concatenate([phi - r * phi[::-1], r[None]])
    return phi


def stationary_cov(transition, noise_cov):
    """Solve the discrete Lyapunov equation ``P = T P T' + Q`` (small state sizes).

    Parameters
    ----------
    transition : Array, shape ``(n, n)``, spectral radius < 1
    noise_cov : Array, shape ``(n, n)``

    Returns
    -------
    Array, shape ``(n, n)``
    """
    n = transition.shape[0]
    lhs = jnp.eye(n * n, dtype=transition.dtype) - jnp.kron(transition, transition)
    vec = jnp.linalg.solve(lhs, noise_cov.reshape(-1))
    p = vec.reshape(n, n)
    return 0.5 * (p + p.T)


def stack_blocks(blocks: list[Block]) -> Block:
    """Block-diagonal assembly of components, in the given order.

    Returns
    -------
    Block
        ``transition (n, n)``, ``observation (n,)``, ``noise_var (n,)`` with ``n`` the total
        state size.
    """
    if not blocks:
        raise ValueError("a structural model needs at least one state component")
    transition = block_diag(*[b.transition for b in blocks])
    observation = jnp.concatenate([b.observation for b in blocks])
    noise_var = jnp.concatenate([b.noise_var for b in blocks])
    return Block(transition, observation, noise_var)


class System(NamedTuple):
    """The assembled structural state space (without observation noise and offset).

    Attributes
    ----------
    transition : Array, shape ``(n, n)``
    observation : Array, shape ``(n,)``
    noise_var : Array, shape ``(n,)``
    init_mean : Array, shape ``(n,)``
    init_cov : Array, shape ``(n, n)``
    spans : tuple of (str, int, int)
        ``(component name, first state, stop)`` of each additive component.
    """

    transition: jnp.ndarray
    observation: jnp.ndarray
    noise_var: jnp.ndarray
    init_mean: jnp.ndarray
    init_cov: jnp.ndarray
    spans: tuple

    def state_space(self, obs_var, obs_offset=0.0) -> StateSpace:
        """The Kalman kernels' :class:`~bayes_ssm.kernels.StateSpace` of this system.

        Parameters
        ----------
        obs_var : Array, shape ``()`` or ``(time,)``
            Observation-noise variance (per step for the Student-t scale mixture).
        obs_offset : Array, shape ``()`` or ``(time,)``
            Added to the observation (the regression term).
        """
        return StateSpace(
            self.transition,
            self.observation,
            jnp.diag(self.noise_var),
            obs_var,
            self.init_mean,
            self.init_cov,
            obs_offset,
        )


def structural_system(model, variances: dict, scales: dict | None = None, *, diffuse=None):
    """Assemble the state space of a :class:`StructuralTS` at given parameter values.

    Parameters
    ----------
    model : StructuralTS
        Supplies the component structure (level, trend, seasonal, ar_order).
    variances : dict
        ``level_var``, ``slope_var``, ``damping`` (damped trend), ``<seasonal name>_var`` per
        seasonal, ``ar_coefs`` (p,), ``ar_var`` - arrays of one floating dtype.
    scales : dict, optional
        Data scales for the proper default initial state (see :mod:`.priors`): level
        ``N(y_loc, (3 y_scale)^2)``, slope ``N(0, (2 dy_scale)^2)``, seasonal ``N(0, y_scale^2)``.
    diffuse : float, optional
        Instead, statsmodels' approximate-diffuse start: mean 0, variance ``diffuse`` for every
        non-stationary state. AR states always start from their stationary law.

    Returns
    -------
    System
    """
    blocks, spans, init_means, init_covs = [], [], [], []
    dtype = jnp.result_type(*[jnp.asarray(v) for v in variances.values()])
    start = 0

    def add(name, block, mean, cov):
        nonlocal start
        blocks.append(block)
        init_means.append(jnp.asarray(mean, dtype))
        init_covs.append(jnp.asarray(cov, dtype))
        if name is not None:
            spans.append((name, start, start + block.size))
        start += block.size

    def prior_var(key, factor):
        if diffuse is not None:
            return diffuse
        return (factor * scales[key]) ** 2

    if model.level:
        if model.trend is None:
            block = level_trend_block(variances["level_var"])
            mean = [0.0 if diffuse is not None else scales["y_loc"]]
            cov = jnp.diag(jnp.array([prior_var("y_scale", 3.0)], dtype))
        else:
            damping = variances.get("damping") if model.trend == "damped" else None
            block = level_trend_block(variances["level_var"], variances["slope_var"], damping)
            mean = [0.0 if diffuse is not None else scales["y_loc"], 0.0]
            cov = jnp.diag(
                jnp.array([prior_var("y_scale", 3.0), prior_var("dy_scale", 2.0)], dtype)
            )
        add("level", block, mean, cov)
    for s in model.seasonal:
        var = variances[f"{s.name}_var"]
        if s.kind == "dummy":
            block = dummy_seasonal_block(s.period, var)
        else:
            block = trig_seasonal_block(s.period, s.harmonics, var)
        n = block.size
        add(s.name, block, jnp.zeros(n), prior_var("y_scale", 1.0) * jnp.eye(n))
    if model.ar_order:
        block = ar_block(variances["ar_coefs"], variances["ar_var"])
        cov = stationary_cov(block.transition, jnp.diag(block.noise_var))
        add("ar", block, jnp.zeros(model.ar_order), cov)
    system = stack_blocks(blocks)
    return System(
        system.transition.astype(dtype),
        system.observation.astype(dtype),
        system.noise_var.astype(dtype),
        jnp.concatenate(init_means),
        block_diag(*init_covs),
        tuple(spans),
    )


def noise_mask(model) -> np.ndarray:
    """Boolean mask (state,) of the states that receive a disturbance (static structure)."""
    mask = []
    if model.level:
        mask += [True] * (1 + int(model.trend is not None))
    for s in model.seasonal:
        mask += [True] + [s.kind == "trig"] * (s.num_states - 1)
    if model.ar_order:
        mask += [True] + [False] * (model.ar_order - 1)
    return np.array(mask, dtype=bool)
