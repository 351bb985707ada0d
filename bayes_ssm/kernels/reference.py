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


# --------------------------------------------------------------------------------------------
# Structured SSM and attention twins (branch ssm). Plain loops; shapes as the fast kernels.
# --------------------------------------------------------------------------------------------

__all__ += [
    "ssd_ref",
    "selective_scan_ref",
    "s4d_ref",
    "linear_attention_ref",
    "softmax_attention_ref",
]


def ssd_ref(x, dt, A, B, C, D=None, h0=None, *, bidirectional=False):
    """SSD by a loop over time (causal) or over all pairs ``(t, s)`` (bidirectional).

    ``x (*batch, t, h, p)``, ``dt (*batch, t, h)``, ``A (h,)``, ``B, C (*batch, t, g, n)``.
    Causal: ``H_t = exp(dt_t A) H_{t-1} + dt_t x_t B_tᵀ``, ``y_t = H_t C_t + D x_t``.
    Bidirectional adds ``Σ_{s>t} exp(A Σ_{k=t+1..s} dt_k) (C_t·B_s) dt_s x_s``.
    """
    x = np.asarray(x)
    dtype = np.result_type(x, np.asarray(B), np.asarray(dt))
    batch = np.broadcast_shapes(x.shape[:-3], np.shape(B)[:-3])
    x = np.broadcast_to(x, (*batch, *x.shape[-3:])).astype(dtype)
    T, H, P = x.shape[-3:]
    dt = np.broadcast_to(np.asarray(dt, dtype), (*batch, T, H))
    B = np.broadcast_to(np.asarray(B, dtype), (*batch, *np.shape(B)[-3:]))
    C = np.broadcast_to(np.asarray(C, dtype), (*batch, *np.shape(C)[-3:]))
    A = np.broadcast_to(np.asarray(A, dtype), (H,))
    G, N = B.shape[-2:]
    y = np.zeros(x.shape, dtype)
    for idx in np.ndindex(*batch):
        for h in range(H):
            g = h // (H // G)
            if not bidirectional:
                state = (
                    np.zeros((P, N), dtype)
                    if h0 is None
                    else np.array(np.broadcast_to(h0, (*batch, H, P, N))[idx][h], dtype)
                )
                for t in range(T):
                    a = np.exp(dt[idx][t, h] * A[h])
                    state = a * state + dt[idx][t, h] * np.outer(x[idx][t, h], B[idx][t, g])
                    y[idx][t, h] = state @ C[idx][t, g]
            else:
                for t in range(T):
                    for s in range(T):
                        lo, hi = (s, t) if s <= t else (t, s)
                        decay = np.exp(A[h] * dt[idx][lo + 1 : hi + 1, h].sum())
                        w = decay * (C[idx][t, g] @ B[idx][s, g]) * dt[idx][s, h]
                        y[idx][t, h] += w * x[idx][s, h]
    if D is not None:
        y = y + np.asarray(D, dtype)[:, None] * x
    return y


def selective_scan_ref(x, dt, A, B, C, D=None, z=None):
    """Mamba-1 selective scan by a loop over time (``selective_scan_ref`` of state-spaces/mamba).

    ``x, dt, z (*batch, t, d)``, ``A (d, n)``, ``B, C (*batch, t, n)``, ``D (d,)``:
    ``h_t = exp(dt_t A) h_{t-1} + dt_t B_t x_t``, ``y_t = h_t C_t + D x_t``, ``y *= silu(z)``.
    """
    x = np.asarray(x)
    A = np.asarray(A)
    dtype = np.result_type(x, A, np.asarray(B), np.asarray(dt))
    T, Dm = x.shape[-2:]
    N = A.shape[-1]
    batch = x.shape[:-2]
    dt = np.broadcast_to(np.asarray(dt), x.shape)
    B = np.broadcast_to(np.asarray(B), (*batch, T, N))
    C = np.broadcast_to(np.asarray(C), (*batch, T, N))
    y = np.zeros(x.shape, dtype)
    for idx in np.ndindex(*batch):
        h = np.zeros((Dm, N), dtype)
        for t in range(T):
            h = np.exp(dt[idx][t][:, None] * A) * h + (dt[idx][t] * x[idx][t])[:, None] * B[idx][t]
            y[idx][t] = (h @ C[idx][t]).real if np.iscomplexobj(h) else h @ C[idx][t]
    if D is not None:
        y = y + np.asarray(D) * x
    if z is not None:
        z = np.asarray(z)
        y = y * z / (1 + np.exp(-z))
    return y


def s4d_ref(x, A, B, C, dt, D=None):
    """S4D by a loop over time with zero-order hold at each step's own ``dt``.

    ``x (*batch, t, d)``, ``A, B, C (d, n)`` complex, ``dt`` broadcastable to ``(*batch, t, d)``:
    ``h_t = e^{dt_t A} h_{t-1} + (e^{dt_t A} - 1)/A · B x_t``, ``y_t = 2 Re(C·h_t) + D x_t``.
    """
    x = np.asarray(x)
    A, B, C = (np.asarray(z, np.complex128) for z in (A, B, C))
    dt = np.broadcast_to(np.asarray(dt, np.float64), x.shape)
    y = np.zeros(x.shape, np.float64)
    for idx in np.ndindex(*x.shape[:-2]):
        h = np.zeros(A.shape, np.complex128)
        for t in range(x.shape[-2]):
            step = dt[idx][t][:, None]
            h = np.exp(step * A) * h + (np.exp(step * A) - 1) / A * B * x[idx][t][:, None]
            y[idx][t] = 2 * np.sum(C * h, axis=-1).real
    if D is not None:
        y = y + np.asarray(D) * x
    return y.astype(x.dtype)


def linear_attention_ref(phi_q, phi_k, v, *, causal=True, normalize=True):
    """``y_t = Σ_s w_ts v_s`` with ``w_ts = φ(q_t)·φ(k_s)`` (``s <= t`` when causal), by loops.

    ``phi_q, phi_k (*batch, t, h, n)``, ``v (*batch, t, h, p)``; row-normalised when asked.
    """
    phi_q, phi_k, v = (np.asarray(z) for z in (phi_q, phi_k, v))
    T = v.shape[-3]
    y = np.zeros(v.shape, np.result_type(phi_q, v))
    for idx in np.ndindex(*v.shape[:-3]):
        for t in range(T):
            stop = t + 1 if causal else T
            w = np.einsum("hn,shn->sh", phi_q[idx][t], phi_k[idx][:stop])
            num = np.einsum("sh,shp->hp", w, v[idx][:stop])
            y[idx][t] = num / w.sum(0)[:, None] if normalize else num
    return y


def softmax_attention_ref(q, k, v, *, causal=True, scale=None):
    """Softmax attention by loops: ``y_t = Σ_s softmax_s(scale q_t·k_s) v_s``."""
    q, k, v = (np.asarray(z) for z in (q, k, v))
    scale = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
    T = v.shape[-3]
    y = np.zeros(v.shape, np.result_type(q, v))
    for idx in np.ndindex(*v.shape[:-3]):
        for t in range(T):
            stop = t + 1 if causal else T
            logits = scale * np.einsum("hn,shn->sh", q[idx][t], k[idx][:stop])
            w = np.exp(logits - logits.max(0))
            w = w / w.sum(0)
            y[idx][t] = np.einsum("sh,shp->hp", w, v[idx][:stop])
    return y


def kalman_filter_ref(
    transition, observation, state_cov, obs_var, init_mean, init_cov, y, obs_offset=0.0
):
    """Textbook Kalman filter by a Python loop (covariance form, explicit inverse-free scalar
    innovation). Missing ``y`` (NaN) skips the update.

    Returns a dict with ``log_lik_steps (time,)``, ``predicted_means (time, state)``,
    ``predicted_covs``, ``filtered_means``, ``filtered_covs``, ``predicted_obs_means``,
    ``predicted_obs_vars``.
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
            "predicted_obs_means",
            "predicted_obs_vars",
        )
    }
    for t in range(num_steps):
        z = Z[t]
        F = z @ P @ z + H[t]
        out["predicted_means"].append(a.copy())
        out["predicted_covs"].append(P.copy())
        out["predicted_obs_means"].append(z @ a + D[t])
        out["predicted_obs_vars"].append(F)
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
