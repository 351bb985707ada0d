"""The sequence mixers a :class:`~bayes_ssm.models.NeuralSSM` block can use (private).

Each mixer maps ``u`` ``(time, channel)`` to ``(time, channel)``, causally (row ``t`` sees rows
``<= t`` only), with its parameters sampled once per draw (a NumPyro fragment under the
caller's scope) and applied by a pure function, so that forecasts can re-run it on a longer
series without sampling again. ``d = width`` channels, ``n = state_size``.

``"s4d"``
    :class:`~bayes_ssm.layers.s4d.StochasticDecayS4D` (``noise="none"``): per-channel diagonal
    complex SSM, FFT convolution. Sites ``half_life`` ``(d,)``, ``C_real``, ``C_imag``
    ``(d, n)``, ``D`` ``(d,)``.
``"selective"``
    The selective scan (Mamba-1, :func:`bayes_ssm.kernels.selective.selective_scan`) with a
    half-life prior on each channel's base step (as
    :class:`~bayes_ssm.layers.selective.StochasticDecaySelective`) and the selection
    ``Δ_{t d} = Δ_d · max(2 sigmoid(u_t · w_d), 1e-6)``, ``B_t = u_t W_B``, ``C_t = u_t W_C``. Sites
    ``half_life`` ``(d,)``, ``context_weight`` ``(d, d)`` ~ ``Normal(0, 1)``,
    ``B_weight``, ``C_weight`` ``(d, n)`` ~ ``Normal(0, 1/√d)``, ``D`` ``(d,)`` ~ ``Normal(0, 1)``.
``"ssd"``
    The SSD (Mamba-2) layer of :class:`~bayes_ssm.layers.decay.StochasticDecaySSD` with one
    head per channel (``head_dim = 1``), run by its chunked algorithm: decay
    ``a_d = 2^{-1/tau_d}``, gated input ``(1 - a_d) u``, shared ``B_t = u_t W_B``,
    ``C_t = u_t W_C``. Sites ``half_life`` ``(d,)``, ``B_weight``, ``C_weight`` ``(d, 1, n)``
    ~ ``Normal(0, 1/√d)``.
``"attention"``
    Causal softmax attention (:func:`bayes_ssm.kernels.attention.softmax_attention`), one
    head, query/key size ``n``, with Bayesian (Gaussian-prior) projection weights:
    ``query_weight``, ``key_weight`` ``(d, 1, n)``, ``value_weight`` ``(d, 1, d)`` ~
    ``Normal(0, 1/√d)``. There is no decay, hence no half-life prior.

The selective and SSD mixers first normalise their input, ``x_t = u_t / sqrt(mean_d u_{td}² +
1e-6)`` (RMSNorm without a gain, as Mamba's blocks do), and run on ``x``: their ``B_t``, ``C_t``
(and the selective step) are linear in the input, so without the norm the mixer is cubic in it
and forecast feedback overflowed (every ILI fold of session 5); with it ``|B_t|``, ``|C_t|`` are
bounded by the weights' norms, the steps by ``2 Δ_d``, and the output by a constant.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

from bayes_ssm.kernels.attention import softmax_attention
from bayes_ssm.kernels.s4d import s4d
from bayes_ssm.kernels.selective import init_selective_A, selective_scan
from bayes_ssm.kernels.ssd import ssd_discrete

__all__ = ["MIXERS", "sample_mixer", "apply_mixer", "rms_norm"]

MIXERS = ("s4d", "selective", "ssd", "attention")
_LOG2 = math.log(2.0)
RMS_EPS = 1e-6


def rms_norm(u):
    """``u / sqrt(mean(u²) + 1e-6)`` over the last (channel) axis (RMSNorm without a gain)."""
    return u * jax.lax.rsqrt(jnp.mean(jnp.square(u), axis=-1, keepdims=True) + RMS_EPS)


def _normal(name, scale, shape):
    return numpyro.sample(name, dist.Normal(0.0, scale).expand(shape).to_event(len(shape)))


def sample_mixer(kind: str, s4d_layer, half_life, step, d: int, n: int, dtype):
    """Sample one mixer's parameters (NumPyro fragment); returns a pytree of arrays."""
    if kind == "s4d":
        params, _ = s4d_layer.sample_params(dtype)
        return params
    s = 1.0 / math.sqrt(d)
    if kind == "selective":
        A = init_selective_A(d, n, dtype=dtype)
        tau = half_life.sample("half_life", shape=(d,), step=step)
        delta = _LOG2 / (tau * jnp.min(-A, axis=-1))
        w = _normal("context_weight", 1.0, (d, d))
        return {
            "A": A,
            "delta": delta,
            "context": w,
            "B": _normal("B_weight", s, (d, n)),
            "C": _normal("C_weight", s, (d, n)),
            "D": _normal("D", 1.0, (d,)),
        }
    if kind == "ssd":
        tau = half_life.sample("half_life", shape=(d,), step=step)
        return {
            "log_a": -_LOG2 / tau,
            "B": _normal("B_weight", s, (d, 1, n)),
            "C": _normal("C_weight", s, (d, 1, n)),
        }
    if kind == "attention":
        return {
            "q": _normal("query_weight", s, (d, 1, n)),
            "k": _normal("key_weight", s, (d, 1, n)),
            "v": _normal("value_weight", s, (d, 1, d)),
        }
    raise ValueError(f"unknown layer {kind!r}; known: {MIXERS}")


def apply_mixer(kind: str, p, u):
    """Run one mixer causally: ``u`` ``(time, channel)`` -> ``(time, channel)``."""
    if kind == "s4d":
        return s4d(p, u, mode="convolution")
    if kind == "selective":
        u = rms_norm(u)  # bounds B_t, C_t (Mamba's pre-norm)
        # the selection 2 sigmoid(.), floored so a saturated gate stays a (tiny) positive step
        steps = p["delta"] * jnp.maximum(2.0 * jax.nn.sigmoid(u @ p["context"]), 1e-6)
        return selective_scan(u, steps, p["A"], u @ p["B"], u @ p["C"], D=p["D"])
    if kind == "ssd":
        u = rms_norm(u)
        log_a = jnp.broadcast_to(p["log_a"], u.shape)  # (t, h = d)
        x = (-jnp.expm1(log_a) * u)[..., None]  # (t, h, 1)
        B = jnp.einsum("thp,hpn->tn", u[..., None], p["B"])[:, None, :]
        C = jnp.einsum("thp,hpn->tn", u[..., None], p["C"])[:, None, :]
        y = ssd_discrete(x, log_a, B, C, method="chunked", chunk_size=64)
        return y[..., 0]
    if kind == "attention":
        q = jnp.einsum("td,dhn->thn", u, p["q"])
        k = jnp.einsum("td,dhn->thn", u, p["k"])
        v = jnp.einsum("td,dhp->thp", u, p["v"])
        return softmax_attention(q, k, v, causal=True)[:, 0, :]
    raise ValueError(f"unknown layer {kind!r}; known: {MIXERS}")
