"""Slow, obviously correct twins of the fast kernels, for tests only.

Each is a plain Python loop over NumPy arrays: no JAX, no cleverness. A fast kernel is
trusted when it agrees with its twin here (values, and gradients by finite differences).
"""

from __future__ import annotations

import numpy as np

__all__ = ["linear_recurrence_ref", "kalman_filter_ref"]


def linear_recurrence_ref(a, b, h0=None, *, reverse=False, axis=-2):
    """``h_t = a_t * h_{t-1} + b_t`` by a Python loop over time.

    Parameters and returns as :func:`bayes_ssm.kernels.linear_recurrence`, with NumPy arrays.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    shape = np.broadcast_shapes(a.shape, b.shape)
    dtype = np.result_type(a, b) if h0 is None else np.result_type(a, b, np.asarray(h0))
    a = np.moveaxis(np.broadcast_to(a, shape), axis, 0).astype(dtype)
    b = np.moveaxis(np.broadcast_to(b, shape), axis, 0).astype(dtype)
    h = np.zeros(b.shape[1:], dtype) if h0 is None else np.array(h0, dtype=dtype)
    out = np.empty_like(b)
    steps = range(b.shape[0] - 1, -1, -1) if reverse else range(b.shape[0])
    for t in steps:
        h = a[t] * h + b[t]
        out[t] = h
    return np.moveaxis(out, 0, axis)


def kalman_filter_ref(
    transition, observation, state_cov, obs_var, init_mean, init_cov, y, obs_offset=0.0
):
    """Textbook Kalman filter by a Python loop (covariance form, explicit inverse-free scalar
    innovation). Missing ``y`` (NaN) skips the update.

    Returns a dict with ``log_lik_steps (time,)``, ``predicted_means (time, state)``,
    ``predicted_covs``, ``filtered_means``, ``filtered_covs``, ``pred_obs_mean``,
    ``pred_obs_var``.
    """
    T = np.asarray(transition, float)
    Q = np.asarray(state_cov, float)
    y = np.asarray(y, float)
    num_steps, n = y.shape[0], T.shape[0]
    Z = np.broadcast_to(np.asarray(observation, float), (num_steps, n))
    H = np.broadcast_to(np.asarray(obs_var, float), (num_steps,))
    D = np.broadcast_to(np.asarray(obs_offset, float), (num_steps,))
    a = np.array(init_mean, float)
    P = np.array(init_cov, float)
    out = {
        k: []
        for k in (
            "log_lik_steps",
            "predicted_means",
            "predicted_covs",
            "filtered_means",
            "filtered_covs",
            "pred_obs_mean",
            "pred_obs_var",
        )
    }
    for t in range(num_steps):
        z = Z[t]
        F = z @ P @ z + H[t]
        out["predicted_means"].append(a.copy())
        out["predicted_covs"].append(P.copy())
        out["pred_obs_mean"].append(z @ a + D[t])
        out["pred_obs_var"].append(F)
        if np.isnan(y[t]):
            out["log_lik_steps"].append(0.0)
            af, Pf = a, P
        else:
            v = y[t] - z @ a - D[t]
            K = P @ z / F
            af = a + K * v
            Pf = P - np.outer(K, z @ P)
            out["log_lik_steps"].append(-0.5 * (np.log(2 * np.pi * F) + v * v / F))
        out["filtered_means"].append(af.copy())
        out["filtered_covs"].append(Pf.copy())
        a = T @ af
        P = T @ Pf @ T.T + Q
    return {k: np.array(v) for k, v in out.items()}
