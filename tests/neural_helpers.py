"""A plain numpy twin of the networks of NeuralSSM and HybridTS (for their tests)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["reference_predictions"]


def _gelu(x):  # jax.nn.gelu's default (tanh) form
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def reference_predictions(p, y, scales, *, width, state_size, num_layers, lags=2, prefix="net"):
    """One-step predictive means and sds by a loop over time with complex numpy states.

    Independent of the kernels: S4D-Lin ``A = -1/2 + i pi k``, step ``Δ = log 2 / (τ / 2)``
    (the slowest mode's envelope halves in ``τ`` steps), zero-order hold, recurrence.
    """
    loc, scale = scales["loc"], scales["scale"]
    band = (scales.get("input_lo", -np.inf), scales.get("input_hi", np.inf))
    z = np.empty(len(y))
    last = 0.0
    for t, v in enumerate(np.asarray(y, float)):  # carry the last observation forward
        last = (v - loc) / scale if not np.isnan(v) else last
        z[t] = np.clip(last, *band)  # the network's input band
    A = -0.5 + 1j * math.pi * np.arange(state_size)
    layers = []
    for i in range(num_layers):
        g = {k.split(".", 2)[2]: np.asarray(v, float) for k, v in p.items()
             if k.startswith(f"{prefix}.layer{i}.")}  # fmt: skip
        dt = math.log(2.0) / (g["half_life"] * 0.5)
        a_bar = np.exp(dt[:, None] * A)
        b_bar = (a_bar - 1.0) / A
        C = g["C_real"] + 1j * g["C_imag"]
        layers.append((a_bar, b_bar, C, g["D"], g["mix"]))
    h = [np.zeros((width, state_size), complex) for _ in range(num_layers)]
    w_in, b_in, w_out = (np.asarray(p[f"{prefix}.{k}"], float) for k in ("w_in", "b_in", "w_out"))
    c = float(p.get("intercept", 0.0))
    preds = [c]
    for t in range(len(y)):
        recent = np.array([z[t - j] if t - j >= 0 else 0.0 for j in range(lags)])
        u = recent @ w_in + b_in
        for i, (a_bar, b_bar, C, D, mix) in enumerate(layers):
            h[i] = a_bar * h[i] + b_bar * u[:, None]
            out = 2.0 * np.sum(C * h[i], axis=-1).real + D * u
            u = u + _gelu(out) @ mix
        preds.append(c + u @ w_out)
    return loc + scale * np.array(preds[:-1]), scale * float(p.get("obs_sd", np.nan))
