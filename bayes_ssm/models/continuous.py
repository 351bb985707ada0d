"""Continuous-time structural components: transition and noise over a gap ``Delta`` (pure JAX).

In continuous time every component is a linear stochastic differential equation
``d alpha = A alpha dt + dW`` with diffusion ``Q_c``; over a gap ``Delta`` its exact
discretisation is ``alpha(t + Delta) = exp(A Delta) alpha(t) + eta``,
``eta ~ N(0, Q(Delta))``, ``Q(Delta) = int_0^Delta exp(A s) Q_c exp(A s)' ds`` (computed by Van
Loan's matrix exponential in :func:`van_loan`; closed forms below where they exist). Time is
measured in units of the series' step, so ``Delta = 1`` is one step of the discrete model.

local level
    ``d level = sigma_level dW``: ``T = 1``, ``Q = sigma_level^2 Delta`` (the discrete random
    walk at ``Delta = 1``, exactly).
local linear trend (Harvey 1989, section 9.2)
    ``d level = slope dt + sigma_level dW_1``, ``d slope = sigma_slope dW_2``:
    ``T = [[1, Delta], [0, 1]]``, ``Q = [[s_l Delta + s_s Delta^3 / 3, s_s Delta^2 / 2],
    [s_s Delta^2 / 2, s_s Delta]]`` (``s = sigma^2``). NOT the discrete local linear trend at
    ``Delta = 1``: that one has uncorrelated disturbances ``diag(s_l, s_s)``, which no
    continuous-time trend of this form reproduces when ``s_l < s_s / 12`` (its implied
    diffusion is then not positive semi-definite).
damped trend
    the slope is an Ornstein-Uhlenbeck process of rate ``kappa = -log(damping)``
    (Van Loan; not the discrete damped trend at ``Delta = 1`` either).
trigonometric seasonal, period ``s``
    each harmonic pair rotates at angular frequency ``lambda_j = 2 pi j / s``: ``T`` is the
    rotation by ``lambda_j Delta``; with isotropic diffusion ``Q = sigma^2 Delta I`` (rotations
    are orthogonal). Exactly the discrete seasonal at ``Delta = 1``.
AR(1)
    an Ornstein-Uhlenbeck process with ``phi = exp(-kappa)``, ``0 < phi < 1``:
    ``T = phi^Delta``, ``Q = sigma^2 (1 - phi^(2 Delta)) / (1 - phi^2)``; the discrete AR(1) at
    ``Delta = 1`` and the same stationary law ``sigma^2 / (1 - phi^2)``.

Dummy seasonals and AR(p > 1) have no continuous-time form here (refused by the model).

Each function takes ``gaps`` of shape ``(gap,)`` and returns ``(T, Q, L)``, each of shape
``(gap, n, n)``, with ``L L' = Q`` (a closed-form square root: the forecast draws of the
diagonal components equal the discrete model's draw for draw).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import block_diag, expm

__all__ = [
    "van_loan",
    "level_gap",
    "trend_gap",
    "damped_trend_gap",
    "trig_seasonal_gap",
    "ar1_gap",
    "chol2",
    "continuous_system",
    "check_continuous",
]


def van_loan(drift, diffusion, gap):
    """Exact discretisation of ``d x = A x dt + dW``, ``Cov(dW) = Q_c dt``, over ``gap``.

    Van Loan (1978): ``expm([[-A, Q_c], [0, A']] * gap) = [[., F^{-1} Q], [0, F']]`` with
    ``F = exp(A gap)`` and ``Q = int_0^gap exp(A s) Q_c exp(A s)' ds``.

    Parameters
    ----------
    drift : Array, shape ``(n, n)``
        ``A``.
    diffusion : Array, shape ``(n, n)``
        ``Q_c`` (positive semi-definite).
    gap : Array, shape ``()``

    Returns
    -------
    transition : Array, shape ``(n, n)``
        ``exp(A gap)``.
    noise_cov : Array, shape ``(n, n)``
        ``Q(gap)``.
    """
    n = drift.shape[0]
    top = jnp.concatenate([-drift, diffusion], axis=1)
    bottom = jnp.concatenate([jnp.zeros_like(drift), drift.T], axis=1)
    big = expm(jnp.concatenate([top, bottom], axis=0) * gap)
    transition = big[n:, n:].T
    noise_cov = transition @ big[:n, n:]
    return transition, 0.5 * (noise_cov + noise_cov.T)


def chol2(cov):
    """Lower Cholesky factor of a 2x2 PSD matrix in closed form (zeros where it is singular).

    Parameters
    ----------
    cov : Array, shape ``(..., 2, 2)``
    """
    a, b, c = cov[..., 0, 0], cov[..., 1, 0], cov[..., 1, 1]
    l11 = jnp.sqrt(jnp.clip(a, 0.0))
    safe = jnp.where(l11 > 0, l11, 1.0)
    l21 = jnp.where(l11 > 0, b / safe, 0.0)
    l22 = jnp.sqrt(jnp.clip(c - l21**2, 0.0))
    zero = jnp.zeros_like(a)
    return jnp.stack([jnp.stack([l11, zero], -1), jnp.stack([l21, l22], -1)], -2)


def _diag_noise(var, gaps, n):
    """``Q = var * gap * I_n`` and its square root, shape ``(gap, n, n)``."""
    eye = jnp.eye(n, dtype=gaps.dtype)
    q = (var * gaps)[:, None, None] * eye
    return q, jnp.sqrt(var * gaps)[:, None, None] * eye


def level_gap(gaps, level_var):
    """Local level (Brownian motion). Returns ``(T, Q, L)``, each ``(gap, 1, 1)``."""
    transition = jnp.ones((gaps.shape[0], 1, 1), gaps.dtype)
    return (transition, *_diag_noise(level_var, gaps, 1))


def trend_gap(gaps, level_var, slope_var):
    """Local linear trend (integrated Brownian slope). Returns ``(T, Q, L)``, each
    ``(gap, 2, 2)``."""
    one, zero = jnp.ones_like(gaps), jnp.zeros_like(gaps)
    transition = jnp.stack([jnp.stack([one, gaps], -1), jnp.stack([zero, one], -1)], -2)
    q11 = level_var * gaps + slope_var * gaps**3 / 3.0
    q21 = slope_var * gaps**2 / 2.0
    q22 = slope_var * gaps
    cov = jnp.stack([jnp.stack([q11, q21], -1), jnp.stack([q21, q22], -1)], -2)
    return transition, cov, chol2(cov)


def damped_trend_gap(gaps, level_var, slope_var, damping):
    """Level integrating an Ornstein-Uhlenbeck slope of rate ``-log(damping)`` (Van Loan).
    Returns ``(T, Q, L)``, each ``(gap, 2, 2)``."""
    kappa = -jnp.log(damping)
    drift = jnp.array([[0.0, 1.0], [0.0, 0.0]], gaps.dtype).at[1, 1].set(-kappa)
    diffusion = jnp.diag(jnp.stack([level_var, slope_var]).astype(gaps.dtype))
    transition, cov = jax.vmap(lambda g: van_loan(drift, diffusion, g))(gaps)
    return transition, cov, chol2(cov)


def trig_seasonal_gap(gaps, period: float, harmonics: int, var):
    """Trigonometric seasonal: rotations by ``2 pi j gap / period``, ``Q = var gap I``.
    Returns ``(T, Q, L)``, each ``(gap, 2h, 2h)``."""
    lam = 2.0 * np.pi * np.arange(1, harmonics + 1) / float(period)
    angle = gaps[:, None] * jnp.asarray(lam, gaps.dtype)  # (gap, h)
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    pairs = jnp.stack([jnp.stack([cos, sin], -1), jnp.stack([-sin, cos], -1)], -2)
    transition = jax.vmap(lambda p: block_diag(*[p[j] for j in range(harmonics)]))(pairs)
    return (transition, *_diag_noise(var, gaps, 2 * harmonics))


def ar1_gap(gaps, coef, var):
    """AR(1) as an Ornstein-Uhlenbeck process, ``0 < coef < 1``. Returns ``(T, Q, L)``, each
    ``(gap, 1, 1)``."""
    coef = jnp.reshape(coef, ())
    power = coef**gaps
    noise = var * (1.0 - power**2) / (1.0 - coef**2)
    return power[:, None, None], noise[:, None, None], jnp.sqrt(noise)[:, None, None]


def continuous_system(model, variances: dict, gaps):
    """Per-gap transition, noise covariance and its square root of a :class:`StructuralTS`.

    Parameters
    ----------
    model : StructuralTS
        Level, trend (``None``, ``"local_linear"``, ``"damped"``), trigonometric seasonals,
        ``ar_order`` 0 or 1.
    variances : dict
        As for :func:`~bayes_ssm.models.components.structural_system`.
    gaps : Array, shape ``(gap,)``
        Positive time gaps in units of the series' step.

    Returns
    -------
    transitions, noise_covs, noise_roots : Array, each ``(gap, state, state)``
        In the state order of :func:`~bayes_ssm.models.components.structural_system`.
    """
    gaps = jnp.asarray(gaps)
    parts = []
    if model.level:
        if model.trend is None:
            parts.append(level_gap(gaps, variances["level_var"]))
        elif model.trend == "local_linear":
            parts.append(trend_gap(gaps, variances["level_var"], variances["slope_var"]))
        else:
            parts.append(
                damped_trend_gap(
                    gaps, variances["level_var"], variances["slope_var"], variances["damping"]
                )
            )
    for s in model.seasonal:
        if s.kind != "trig":
            raise ValueError(
                f"seasonal {s.name!r} is a dummy seasonal, which has no continuous-time form; "
                "use kind='trig'"
            )
        parts.append(trig_seasonal_gap(gaps, s.period, s.harmonics, variances[f"{s.name}_var"]))
    if model.ar_order:
        if model.ar_order != 1:
            raise ValueError(f"continuous time supports ar_order 0 or 1; got {model.ar_order}")
        parts.append(ar1_gap(gaps, variances["ar_coefs"], variances["ar_var"]))

    def stack(i):
        return jax.vmap(lambda *blocks: block_diag(*blocks))(*[p[i] for p in parts])

    return stack(0), stack(1), stack(2)


def check_continuous(model) -> None:
    """Refuse, with a message, what has no continuous-time form; check the bound times.

    Raises
    ------
    ValueError
        A dummy seasonal, ``ar_order > 1``, the negative binomial law, or observation /
        forecast times that are not finite and strictly increasing.
    """
    dummies = [s.name for s in model.seasonal if s.kind != "trig"]
    if dummies:
        raise ValueError(
            f"continuous time needs trigonometric seasonals; {dummies} are dummy seasonals "
            "(use kind='trig')"
        )
    if model.ar_order > 1:
        raise ValueError(
            f"continuous time supports ar_order 0 or 1 (an Ornstein-Uhlenbeck process); got "
            f"{model.ar_order}"
        )
    if model.likelihood == "negative_binomial":
        raise ValueError(
            "continuous time supports the gaussian and student_t likelihoods; the negative "
            "binomial samples its states on a regular grid (put NaN at the missing steps)"
        )
    for name, on in (
        ("cycle=True", getattr(model, "cycle", False)),
        ("regression_states", getattr(model, "regression_states", None) is not None),
        ("initialization='diffuse'", getattr(model, "initialization", "proper") == "diffuse"),
        ("a model without a level, seasonal or AR", model.state_size == 0),
    ):
        if on:
            raise ValueError(f"{name} is not available in continuous time yet")
    times = model.obs_times
    if times is not None:
        arr = np.asarray(times, dtype=np.float64)
        if arr.size < 2 or not np.all(np.isfinite(arr)) or np.any(np.diff(arr) <= 0):
            raise ValueError("obs_times must be at least 2 finite, strictly increasing times")
        if model.forecast_times is not None:
            fut = np.asarray(model.forecast_times, dtype=np.float64)
            if not np.all(np.isfinite(fut)) or np.any(np.diff(np.r_[arr[-1], fut]) <= 0):
                raise ValueError(
                    "forecast times must be finite, strictly increasing and after the last "
                    f"observation time {arr[-1]}"
                )
    elif model.forecast_times is not None:
        raise ValueError("forecast_times need obs_times")
