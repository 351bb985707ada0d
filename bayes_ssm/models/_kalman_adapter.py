"""The three Kalman operations StructuralTS needs, in one place (PROVISIONAL local filter).

To be replaced by ``bayes_ssm.kernels.kalman`` once that branch lands; the signatures below are
what the model uses.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jax import lax

__all__ = ["StateSpace", "filter_final", "filter_full", "smoothed_means"]


class StateSpace(NamedTuple):
    transition: jnp.ndarray  # (state, state)
    observation: jnp.ndarray  # (state,)
    state_cov: jnp.ndarray  # (state, state)
    obs_var: jnp.ndarray  # () or (time,)
    init_mean: jnp.ndarray  # (state,)
    init_cov: jnp.ndarray  # (state, state)
    obs_offset: jnp.ndarray  # () or (time,)


def _scan(ss: StateSpace, y):
    T = y.shape[0]
    obs_var = jnp.broadcast_to(ss.obs_var, (T,))
    offset = jnp.broadcast_to(ss.obs_offset, (T,))
    Z = ss.observation

    def step(carry, inp):
        m, P = carry
        yt, h, d = inp
        missing = jnp.isnan(yt)
        f = Z @ m + d
        PZ = P @ Z
        F = Z @ PZ + h
        v = jnp.where(missing, 0.0, yt - f)
        K = PZ / F
        ll = jnp.where(missing, 0.0, -0.5 * (jnp.log(2 * jnp.pi * F) + v * v / F))
        m_f = m + K * v
        IKZ = jnp.eye(m.shape[0], dtype=m.dtype) - jnp.outer(K, Z)
        P_f = IKZ @ P @ IKZ.T + h * jnp.outer(K, K)
        m_f = jnp.where(missing, m, m_f)
        P_f = jnp.where(missing, P, P_f)
        m_n = ss.transition @ m_f
        P_n = ss.transition @ P_f @ ss.transition.T + ss.state_cov
        P_n = 0.5 * (P_n + P_n.T)
        return (m_n, P_n), (ll, f, F, m_f, P_f, m, P)

    _, out = lax.scan(step, (ss.init_mean, ss.init_cov), (y, obs_var, offset))
    return out


def filter_final(ss: StateSpace, y, method: str = "auto"):
    """``(log_lik_steps (time,), final filtered mean (state,), final filtered cov)``."""
    ll, _, _, m_f, P_f, _, _ = _scan(ss, y)
    return ll, m_f[-1], P_f[-1]


def filter_full(ss: StateSpace, y, method: str = "auto"):
    """``(log_lik_steps (time,), pred_obs_mean (time,))``."""
    ll, f, _, _, _, _, _ = _scan(ss, y)
    return ll, f


def smoothed_means(ss: StateSpace, y, method: str = "auto"):
    """RTS smoothed state means, shape ``(time, state)``."""
    _, _, _, m_f, P_f, m_p, P_p = _scan(ss, y)
    A = ss.transition

    def back(m_next, inp):
        mf, Pf, mp_next, Pp_next = inp
        G = jnp.linalg.solve(Pp_next, A @ Pf).T
        m_s = mf + G @ (m_next - mp_next)
        return m_s, m_s

    _, ms = lax.scan(back, m_f[-1], (m_f[:-1], P_f[:-1], m_p[1:], P_p[1:]), reverse=True)
    return jnp.concatenate([ms, m_f[-1:]], axis=0)
