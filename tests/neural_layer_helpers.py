"""A plain numpy twin of NeuralSSM's network for every ``layer`` and ``direction``.

Written from the maths (loops over time, no kernels): the S4D twin is the one of
``tests/neural_helpers.py``; the selective, SSD and attention mixers are below.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["reference_means"]


def _gelu(x):  # jax.nn.gelu's default (tanh) form; huge |x| saturate the tanh (no overflow)
    x3 = np.clip(x, -1e6, 1e6) ** 3
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x3)))


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # = 1 / (1 + exp(-x)), without overflow


def _rms(u):  # RMSNorm over the channels, no gain
    return u / np.sqrt(np.mean(u**2, axis=-1, keepdims=True) + 1e-6)


def _s4d(g, u):
    T, d = u.shape
    n = g["C_real"].shape[1]
    A = -0.5 + 1j * math.pi * np.arange(n)
    dt = math.log(2.0) / (g["half_life"] * 0.5)
    a_bar = np.exp(dt[:, None] * A)
    b_bar = (a_bar - 1.0) / A
    C = g["C_real"] + 1j * g["C_imag"]
    h = np.zeros((d, n), complex)
    out = np.empty_like(u)
    for t in range(T):
        h = a_bar * h + b_bar * u[t][:, None]
        out[t] = 2.0 * np.sum(C * h, axis=-1).real + g["D"] * u[t]
    return out


def _selective(g, u):
    T, d = u.shape
    n = g["B_weight"].shape[1]
    A = -np.arange(1, n + 1, dtype=float)  # S4D-Real; the slowest rate is 1
    base = math.log(2.0) / g["half_life"]
    h = np.zeros((d, n))
    out = np.empty_like(u)
    for t in range(T):
        step = base * np.maximum(2.0 * _sigmoid(u[t] @ g["context_weight"]), 1e-6)  # (d,)
        B, C = u[t] @ g["B_weight"], u[t] @ g["C_weight"]  # (n,)
        h = np.exp(step[:, None] * A) * h + step[:, None] * B[None, :] * u[t][:, None]
        out[t] = h @ C + g["D"] * u[t]
    return out


def _ssd(g, u):
    T, d = u.shape
    a = 2.0 ** (-1.0 / g["half_life"])  # (d,)
    WB, WC = g["B_weight"][:, 0, :], g["C_weight"][:, 0, :]  # (d, n)
    h = np.zeros((d, WB.shape[1]))
    out = np.empty_like(u)
    for t in range(T):
        h = a[:, None] * h + ((1.0 - a) * u[t])[:, None] * (u[t] @ WB)[None, :]
        out[t] = h @ (u[t] @ WC)
    return out


def _attention(g, u):
    q = u @ g["query_weight"][:, 0, :]
    k = u @ g["key_weight"][:, 0, :]
    v = u @ g["value_weight"][:, 0, :]
    out = np.empty((u.shape[0], v.shape[1]))
    for t in range(u.shape[0]):
        logits = k[: t + 1] @ q[t] / math.sqrt(q.shape[1])
        w = np.exp(logits - logits.max())
        out[t] = (w / w.sum()) @ v[: t + 1]
    return out


_MIXERS = {"s4d": _s4d, "selective": _selective, "ssd": _ssd, "attention": _attention}


def _features(p, prefix, z, layer, num_layers):
    w_in, b_in = p[f"{prefix}.w_in"], p[f"{prefix}.b_in"]
    lags = w_in.shape[0]
    Z = np.stack([np.concatenate([np.zeros(j), z[: len(z) - j]]) for j in range(lags)], axis=-1)
    u = Z @ w_in + b_in
    for i in range(num_layers):
        head = f"{prefix}.layer{i}."
        g = {k[len(head) :]: v for k, v in p.items() if k.startswith(head)}
        x = _rms(u) if layer in ("selective", "ssd") else u  # their RMSNorm of the input
        u = u + _gelu(_MIXERS[layer](g, x)) @ g["mix"]
    return u


def _carry(v):
    out, last = np.empty(len(v)), 0.0
    for t, x in enumerate(v):
        last = x if not np.isnan(x) else last
        out[t] = last
    return out


def reference_means(p, y, scales, *, layer, num_layers, bidirectional=False):
    """In-sample predictive means of ``y`` and the sd, from the sampled sites ``p``."""
    p = {k: np.asarray(v, float) for k, v in p.items()}
    loc, scale = scales["loc"], scales["scale"]
    y = np.asarray(y, float)
    band = (scales.get("input_lo", -np.inf), scales.get("input_hi", np.inf))
    z = np.clip((_carry(y) - loc) / scale, *band)  # the network's input band
    c = float(p["intercept"])
    u = _features(p, "net", z, layer, num_layers)
    pred = np.concatenate([[c], c + u[:-1] @ p["net.w_out"]])
    if bidirectional:
        zb = np.clip((_carry(y[::-1]) - loc) / scale, *band)  # reversed, gaps carried back
        b = _features(p, "net.back", zb, layer, num_layers)[::-1]
        pred = pred + np.concatenate([b[1:] @ p["net.back.w_out"], [0.0]])
    return loc + scale * pred, scale * float(p["obs_sd"])
