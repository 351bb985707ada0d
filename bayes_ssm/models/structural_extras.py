"""StructuralTS components beyond :mod:`.components`: a stochastic cycle, regression
coefficients as states, the irregular-only model, and exact diffuse initialisation.

The state equations are statsmodels' ``UnobservedComponents`` ones (Durbin and Koopman 2012,
section 3.2; Harvey 1989), so that the log-likelihoods agree with statsmodels and with the KFAS
reference values (``tests/test_kfas_reference.py``):

stochastic cycle (``cycle``, 2 states)
    ``[c, c*]_{t+1} = rho [[cos lambda, sin lambda], [-sin lambda, cos lambda]] [c, c*]_t +
    kappa``, ``kappa ~ N(0, sigma_cycle^2 I_2)``; ``c`` is observed. ``lambda`` is the frequency
    (period ``2 pi / lambda``), ``rho`` the damping (``rho < 1``: stationary, with law
    ``N(0, sigma_cycle^2 / (1 - rho^2) I_2)``).
regression coefficients as states (``regression_states``)
    ``beta_{t+1} = beta_t + xi_t``, observed through the covariates ``x_t`` (a time-varying
    observation row): ``xi_t = 0`` for ``"constant"`` (statsmodels' ``mle_regression=False``:
    the coefficients are integrated out by the Kalman filter instead of sampled), or
    ``xi_t ~ N(0, diag(sigma_beta^2))`` for ``"random_walk"`` (time-varying coefficients).
irregular only (``level=False`` and no other state)
    ``y_t = d_t + eps_t``; a single null state (transition, loading, noise and initial
    variance 0) keeps the Kalman kernels' shapes.

Order of the state vector: :func:`~.components.structural_system`'s (level, trend, seasonals,
AR), then the cycle, then the regression coefficients. (statsmodels puts the cycle before the AR
states; the likelihood does not depend on the order.)
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro
from jax.scipy.linalg import block_diag

from bayes_ssm.models.components import Block, System, stack_blocks, structural_system
from bayes_ssm.models.structural_priors import resolve_prior

__all__ = [
    "INITIALIZATIONS",
    "check_options",
    "REGRESSION_STATES",
    "cycle_block",
    "regression_block",
    "null_block",
    "full_system",
    "has_base_states",
    "sample_extra_parameters",
    "extra_variances",
]

INITIALIZATIONS = ("proper", "diffuse")
REGRESSION_STATES = (None, "constant", "random_walk")


def check_options(model) -> None:
    """Check (and normalise) the options of :class:`StructuralTS` that this module serves."""
    if not isinstance(model.cycle, bool | np.bool_):
        raise ValueError(f"cycle must be True or False; got {model.cycle!r}")
    object.__setattr__(model, "cycle", bool(model.cycle))
    if model.regression_states not in REGRESSION_STATES:
        raise ValueError(
            f"regression_states must be one of {REGRESSION_STATES}; got {model.regression_states!r}"
        )
    if model.regression_states is not None and model.regression is False:
        raise ValueError("regression_states needs regression=True or None, not False")
    if model.initialization not in INITIALIZATIONS:
        raise ValueError(
            f"initialization must be one of {INITIALIZATIONS}; got {model.initialization!r}"
        )
    if model.likelihood == "negative_binomial":
        if model.state_size == 0:
            raise ValueError(
                "the negative binomial model needs a state component: set level, seasonal "
                "or ar_order"
            )
        for name, on in (
            ("cycle=True", model.cycle),
            ("regression_states", model.regression_states is not None),
            ("initialization='diffuse'", model.initialization == "diffuse"),
        ):
            if on:
                raise ValueError(f"{name} is for the Gaussian and Student-t likelihoods")


def cycle_block(frequency, damping, var) -> Block:
    """Stochastic (damped) cycle: two states rotating by ``frequency`` per step.

    Parameters
    ----------
    frequency : Array, shape ``()``
        ``lambda`` in radians per step, in ``(0, pi)``.
    damping : Array, shape ``()``
        ``rho`` in ``(0, 1]``.
    var : Array, shape ``()``
        Variance of the disturbance of both states.
    """
    var = jnp.asarray(var)
    dtype = jnp.result_type(var, frequency, damping)
    lam, rho = jnp.asarray(frequency, dtype), jnp.asarray(damping, dtype)
    c, s = jnp.cos(lam), jnp.sin(lam)
    transition = rho * jnp.stack([jnp.stack([c, s]), jnp.stack([-s, c])])
    observation = jnp.array([1.0, 0.0], dtype)
    return Block(transition, observation, jnp.broadcast_to(var, (2,)).astype(dtype))


def regression_block(num_covariates: int, var=None, dtype=jnp.float32) -> Block:
    """Regression coefficients as states: identity transition, noise ``var`` (or none).

    The loading is 0 here: the covariates enter as the time-varying observation rows that
    :func:`full_system` returns.

    Parameters
    ----------
    num_covariates : int
    var : Array, shape ``(covariate,)``, optional
        Random-walk variances; ``None``: time-invariant coefficients.
    """
    k = int(num_covariates)
    if var is not None:
        dtype = jnp.asarray(var).dtype
    noise = jnp.zeros((k,), dtype) if var is None else jnp.broadcast_to(var, (k,)).astype(dtype)
    return Block(jnp.eye(k, dtype=dtype), jnp.zeros((k,), dtype), noise)


def null_block(dtype) -> Block:
    """One inert state (the irregular-only model)."""
    zero = jnp.zeros((1,), dtype)
    return Block(jnp.zeros((1, 1), dtype), zero, zero)


def has_base_states(model) -> bool:
    """Whether :func:`~.components.structural_system` has anything to build."""
    return bool(model.level or model.seasonal or model.ar_order)


def full_system(model, variances: dict, scales: dict | None = None, covariates=None, *,
                diffuse=None):  # fmt: skip
    """The whole state space of a :class:`StructuralTS`, new components included.

    Parameters
    ----------
    model : StructuralTS
    variances : dict
        As :func:`~.components.structural_system`, plus ``cycle_var``, ``cycle_frequency``,
        ``cycle_damping`` (``model.cycle``) and ``beta_var`` (covariate,) (random-walk
        regression states).
    scales : dict, optional
        Data scales for the proper initial state (cycle: its stationary law; regression
        coefficients: ``N(0, (y_scale / x_scale_j)^2)``, the ``beta`` prior).
    covariates : Array, shape ``(time, covariate)``, optional
        Needed when ``model.regression_states`` is set.
    diffuse : float, optional
        Approximate diffuse start (variance ``diffuse`` on every non-stationary state; the
        cycle counts as non-stationary, as in statsmodels). ``0.0`` gives ``P_star`` of the
        exact diffuse start.

    Returns
    -------
    (System, Array)
        The system (``observation`` is ``(time, state)`` with regression states, else
        ``(state,)``) and ``P_inf``, the diagonal ``(state, state)`` mask of the states that an
        exact diffuse start makes diffuse (every state but AR and the null state).
    """
    dtype = jnp.result_type(*[jnp.asarray(v) for v in variances.values()])
    if has_base_states(model):
        base = structural_system(model, variances, scales, diffuse=diffuse)
        blocks = [Block(base.transition, base.observation, base.noise_var)]
        means, covs, spans = [base.init_mean], [base.init_cov], list(base.spans)
        diffuse_mask = [
            np.r_[np.ones(base.init_mean.shape[0] - model.ar_order), np.zeros(model.ar_order)]
        ]
    else:
        blocks, means, covs, spans, diffuse_mask = [], [], [], [], []
    start = sum(int(b.size) for b in blocks)
    if model.cycle:
        block = cycle_block(
            variances["cycle_frequency"], variances["cycle_damping"], variances["cycle_var"]
        )
        if diffuse is not None:
            cov = diffuse * jnp.eye(2, dtype=dtype)
        else:
            rho = variances["cycle_damping"]
            cov = variances["cycle_var"] / (1.0 - rho**2) * jnp.eye(2, dtype=dtype)
        blocks.append(block)
        means.append(jnp.zeros(2, dtype))
        covs.append(cov)
        spans.append(("cycle", start, start + 2))
        diffuse_mask.append(np.ones(2))
        start += 2
    num_reg = 0
    if model.regression_states is not None:
        if covariates is None:
            raise ValueError("regression_states needs covariates of shape (time, covariate)")
        num_reg = int(np.shape(covariates)[1])
        var = variances.get("beta_var") if model.regression_states == "random_walk" else None
        blocks.append(regression_block(num_reg, var, dtype))
        means.append(jnp.zeros(num_reg, dtype))
        if diffuse is not None:
            prior_var = jnp.full((num_reg,), diffuse, dtype)
        else:
            xs = jnp.asarray([scales.get(f"x_scale_{j}", 1.0) for j in range(num_reg)], dtype)
            prior_var = (scales["y_scale"] / xs) ** 2
        covs.append(jnp.diag(prior_var))
        spans.append(("regression", start, start + num_reg))
        diffuse_mask.append(np.ones(num_reg))
        start += num_reg
    if not blocks:  # irregular only
        blocks.append(null_block(dtype))
        means.append(jnp.zeros(1, dtype))
        covs.append(jnp.zeros((1, 1), dtype))
        diffuse_mask.append(np.zeros(1))
    system = stack_blocks(blocks)
    observation = system.observation.astype(dtype)
    if num_reg:
        x = jnp.asarray(covariates, dtype)
        observation = jnp.broadcast_to(observation, (x.shape[0], observation.shape[0]))
        observation = observation.at[:, start - num_reg : start].set(x)
    out = System(
        system.transition.astype(dtype),
        observation,
        system.noise_var.astype(dtype),
        jnp.concatenate(means).astype(dtype),
        block_diag(*covs).astype(dtype),
        tuple(spans),
    )
    return out, jnp.diag(jnp.asarray(np.concatenate(diffuse_mask), dtype))


def sample_extra_parameters(model, scales: dict, num_covariates: int) -> dict:
    """Sample the sites of the new components (``sigma_cycle``, ``cycle_frequency``,
    ``cycle_damping``, ``sigma_beta``); ``{}`` for a model without them."""
    overrides = model.prior_overrides
    params = {}
    if model.cycle:
        for name in ("sigma_cycle", "cycle_frequency", "cycle_damping"):
            params[name] = numpyro.sample(name, resolve_prior(name, overrides, scales))
    if model.regression_states == "random_walk" and num_covariates:
        prior = resolve_prior("sigma_beta", overrides, scales, size=num_covariates)
        params["sigma_beta"] = numpyro.sample("sigma_beta", prior)
    return params


def extra_variances(model, params: dict) -> dict:
    """The new sites -> the inputs of :func:`full_system`."""
    out = {}
    if model.cycle:
        out["cycle_var"] = params["sigma_cycle"] ** 2
        out["cycle_frequency"] = params["cycle_frequency"]
        out["cycle_damping"] = params["cycle_damping"]
    if "sigma_beta" in params:
        out["beta_var"] = params["sigma_beta"] ** 2
    return out
