"""In-sample ``h``-step predictive laws of :class:`~bayes_ssm.models.HeavyLevelTS` for the
PIT recalibration (:mod:`bayes_ssm.inference.recalibration`).

At origin ``t`` the filtered state conditions on the posterior draw's level precisions of the
steps up to ``t`` (as the Student-t observation noise's in-sample PIT conditions on its
``obs_precision``). The level shocks of the steps ``t+1..t+h`` get *fresh* precisions from
their prior ``Gamma(nu/2, nu/2)``: the posterior's precisions of those steps have seen
``y_{t+1..t+h}``. Given the fresh precisions ``lambda_j`` the ``h``-step law is Gaussian with
variance ``V_h + sigma_level^2 sum_{j=1}^{h} g_{h-j}^2 / lambda_j`` (``V_h``: the variance from
the filtered state and the other, Gaussian, noises; ``g_k = Z T^k e_level``); its CDF and
density are averaged over :data:`NUM_PRECISION_DRAWS` draws of the ``lambda``'s, a fixed
Monte-Carlo rule (the same draws for every origin, so the result is deterministic).
"""

from __future__ import annotations

from functools import partial

import numpy as np

__all__ = ["is_heavy_level", "heavy_level_moments", "level_sums", "NUM_PRECISION_DRAWS"]

NUM_PRECISION_DRAWS = 64
_FN = {}


def is_heavy_level(model) -> bool:
    return getattr(model, "kind", None) == "structural_heavy_level"


def heavy_level_moments(model, params, scales, y, horizon: int):
    """Filtered moments at each draw given its level precisions, in the layout of
    :func:`bayes_ssm.inference.recalibration.candidate_pit`.

    ``params`` holds ``(draw, ...)`` arrays including ``level_precision`` ``(draw, time - 1)``.

    Returns
    -------
    tuple of numpy.ndarray
        ``filt_means (draw, time, state)``, ``filt_covs (draw, time, state, state)``,
        ``transition (draw, state, state)``, ``observation (draw, state)``, ``q (draw, time +
        horizon + 1, state)`` with the *level* column set to 0 (its shocks are added by
        :func:`level_sums`), ``r (draw, time + horizon + 1)``, ``level_var (draw,)``.
    """
    import jax
    import jax.numpy as jnp

    from bayes_ssm.models._heavy_level_program import PRECISION_SITE, conditional_filter

    if "fn" not in _FN:

        @partial(jax.jit, static_argnums=(0,))
        def moments(model, params, scales, y):
            def one(p):
                res, system, _ = conditional_filter(model, p, scales, y, p[PRECISION_SITE])
                return (
                    res.filt_means,
                    res.filt_covs,
                    system.transition,
                    system.observation,
                    system.noise_var,
                    p["sigma_obs"] ** 2,
                )

            return jax.vmap(one)(params)

        _FN["fn"] = moments
    out = _FN["fn"](model, params, dict(scales), jnp.asarray(y))
    m, p, tm, z, noise_var, r = (np.array(a, float) for a in out)
    d, num_steps = m.shape[0], m.shape[1]
    level_var = noise_var[:, 0].copy()
    noise_var[:, 0] = 0.0
    q = np.broadcast_to(noise_var[:, None, :], (d, num_steps + horizon + 1, noise_var.shape[1]))
    r = np.broadcast_to(r[:, None], (d, num_steps + horizon + 1))
    return m, p, tm, z, q, r, level_var


def level_sums(transition, observation, nu, horizon: int, rng) -> np.ndarray:
    """``sum_{j=1}^{h} g_{h-j}^2 / lambda_j`` for ``h = 1..horizon`` at
    :data:`NUM_PRECISION_DRAWS` draws of ``lambda_j ~ Gamma(nu/2, nu/2)``, one parameter draw.

    Returns
    -------
    numpy.ndarray, shape ``(horizon, NUM_PRECISION_DRAWS)``
    """
    g = np.empty(horizon)
    reach = np.zeros(transition.shape[0])
    reach[0] = 1.0  # a level shock: e_level
    for k in range(horizon):
        g[k] = observation @ reach
        reach = transition @ reach
    lam = rng.gamma(0.5 * nu, 2.0 / nu, size=(NUM_PRECISION_DRAWS, horizon))
    out = np.empty((horizon, NUM_PRECISION_DRAWS))
    for h in range(1, horizon + 1):
        out[h - 1] = (g[h - 1 :: -1] ** 2 / lam[:, :h]).sum(axis=1)
    return out
