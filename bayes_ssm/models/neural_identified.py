"""An identified parameterisation of the S4D network, for NUTS (issue 15).

The network of :mod:`bayes_ssm.models._neural_net` (``layer="s4d"``) computes the same function
for many weight settings. Write ``u`` for its residual stream, ``d`` channels wide. Two exact
symmetries leave both the likelihood and the (i.i.d., zero-mean) priors unchanged:

- **permutation** of the ``d`` stream channels: permute the columns of ``w_in``, ``b_in``, each
  layer's ``half_life``, ``C``, ``D``, the rows and columns of each ``mix`` and ``w_out``
  (``w_scale``); every channel of every layer has the same ``A`` (S4D-Lin), so the layer is
  permutation-equivariant;
- **sign** of a channel ``j``: negate ``w_in[:, j]``, ``b_in[j]``, ``C[j]`` and ``D[j]`` of every
  layer, the column ``mix[:, j]`` of every layer and ``w_out[j]`` (``w_scale[j]``): the S4D layer
  is linear in its input and in ``(C, D)``, so ``S4D(u_j)`` and the GELU's input are unchanged,
  the stream channel ``u_j`` changes sign and ``w_out[j]`` undoes it.

So the posterior has ``d! 2^d`` copies of every mode, which chains started apart visit
separately. With ``NeuralSSM(identifiable=True)`` the network is computed on one copy:

- layer 0's half-lives are **sorted**: site ``"layer0.half_life_raw"`` ``(d,)`` has the
  ``half_life`` prior (i.i.d.) and channel ``j`` gets the ``j``-th smallest value
  (deterministic site ``"layer0.half_life"``);
- the weight on the latest value, ``w_in[0, j]``, is **positive**: site ``"w_in_lead"``
  ``(d,)`` ~ ``Normal(0, prior_scale)`` enters as ``|w_in_lead|``; ``"w_in_rest"``
  ``(lag - 1, d)`` ~ ``Normal(0, prior_scale)``; deterministic site ``"w_in"`` ``(lag, d)``.

Every other site and prior is unchanged, so the network's weights have the law of the
original prior folded onto the region ``tau_1 < ... < tau_d``, ``w_in[0] > 0`` (``d! 2^d`` times
it there: sorted i.i.d. half-lives, half-normal lead weights), and almost every weight setting
of the plain network has exactly one image there (:func:`identify`) with the same outputs: the
two forms are the **same Bayesian model** (same function class, same posterior predictive).
The fold is done by ``sort`` and ``abs`` rather than by constrained coordinates (an ordered or
log transform): the sampler can cross ``tau_i = tau_j`` and ``w_in_lead = 0`` freely (the sampled
coordinates keep a reflection symmetry that no output reads; ``NeuralSSM.unread_sites`` names
them so ``bs.check`` skips them), where a log transform makes a lead weight near zero a far-off
region of flat density. Read a fit's network weights with :func:`network_values`.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.handlers import scope

from bayes_ssm.models import _neural_net as net
from bayes_ssm.models._neural_mixers import sample_mixer

__all__ = ["sample_identified_weights", "sample_network_weights", "identify", "network_values"]

_LOG2 = math.log(2.0)


def _first_s4d_layer(net_spec, dtype):
    """Layer 0's S4D parameters with ordered half-lives (a NumPyro fragment)."""
    layer = net.layer_of(net_spec)
    d, n = net_spec.width, net_spec.state_size
    base = layer.base_params(dtype)
    raw = net_spec.half_life.sample("half_life_raw", shape=(d,), step=layer.step)
    tau = numpyro.deterministic("half_life", jnp.sort(raw))
    rate = jnp.min(jnp.exp(base.log_A_real), axis=-1)  # the slowest mode's |Re A|, (d,)
    s = math.sqrt(0.5)
    c_re = numpyro.sample("C_real", dist.Normal(0.0, s).expand((d, n)).to_event(2))
    c_im = numpyro.sample("C_imag", dist.Normal(0.0, s).expand((d, n)).to_event(2))
    D = numpyro.sample("D", dist.Normal(0.0, 1.0).expand((d,)).to_event(1))
    return base._replace(
        log_dt=jnp.log(_LOG2 / (tau * rate)),
        C=(c_re + 1j * c_im).astype(base.C.dtype),
        D=D,
    )


def sample_identified_weights(net_spec, dtype) -> net.Weights:
    """Sample the network on one copy of its symmetries (sites: the module docstring).

    Parameters
    ----------
    net_spec : NeuralSSM
        Hyperparameters (``layer="s4d"``).
    dtype : dtype
        Real dtype of the weights.

    Returns
    -------
    Weights
        As :func:`bayes_ssm.models._neural_net.sample_weights`.
    """
    d, s = net_spec.width, float(net_spec.prior_scale)
    p = int(net_spec.input_lags)
    lead = numpyro.sample("w_in_lead", dist.Normal(0.0, s).expand((d,)).to_event(1))
    w_in = jnp.abs(lead)[None].astype(dtype)
    if p > 1:
        rest = numpyro.sample("w_in_rest", dist.Normal(0.0, s).expand((p - 1, d)).to_event(2))
        w_in = jnp.concatenate([w_in, rest.astype(dtype)])
    w_in = numpyro.deterministic("w_in", w_in)
    b_in = numpyro.sample("b_in", dist.Normal(0.0, s).expand((d,)).to_event(1))
    layer = net.layer_of(net_spec)
    params, mixes = [], []
    for i in range(net_spec.num_layers):
        with scope(prefix=f"layer{i}", divider="."):
            if i == 0:
                prm = _first_s4d_layer(net_spec, dtype)
            else:
                prm = sample_mixer("s4d", layer, net_spec.half_life, layer.step, d,
                                   net_spec.state_size, dtype)  # fmt: skip
            m = numpyro.sample("mix", dist.Normal(0.0, s / math.sqrt(d)).expand((d, d)).to_event(2))
        params.append(prm)
        mixes.append(m)
    return net.Weights(w_in, b_in, tuple(params), tuple(mixes))


def sample_network_weights(net_spec, dtype) -> net.Weights:
    """The network's weights in the form ``net_spec.identifiable`` asks for."""
    if getattr(net_spec, "identifiable", False):
        return sample_identified_weights(net_spec, dtype)
    return net.sample_weights(net_spec, dtype)


def _take(x, perm, axis):
    """``x`` permuted along ``axis`` (negative) by ``perm`` ``(*batch, d)``, batched."""
    batch = perm.shape[:-1]
    post = -axis - 1
    pre = x.ndim - len(batch) - 1 - post
    idx = perm.reshape(batch + (1,) * pre + perm.shape[-1:] + (1,) * post)
    return np.take_along_axis(x, np.broadcast_to(idx, x.shape), axis=axis)


def identify(values: dict, *, num_layers: int, prefix: str = "net.") -> dict:
    """Map weights of the unidentified network to the identified form, same outputs.

    Sorts the channels by layer 0's half-life and flips the sign of every channel whose
    ``w_in[0, j]`` is negative (module docstring), batched over leading axes.

    Parameters
    ----------
    values : dict of str to array
        Site values of the unidentified model (``prefix + "w_in"`` ``(..., lag, d)``,
        ``"b_in"``, ``"layer<l>.half_life"``, ``"C_real"``, ``"C_imag"``, ``"D"``, ``"mix"``,
        ``"w_out"``, optionally ``"w_scale"``); other entries are passed through.
    num_layers : int
    prefix : str
        The network's scope (``"net."`` for NeuralSSM, ``"neural."`` for HybridTS).

    Returns
    -------
    dict
        Site values of the identified model (``"w_in_lead"`` ``(..., d)`` (positive),
        ``"w_in_rest"`` ``(..., lag - 1, d)`` if ``lag > 1``, ``"layer0.half_life_raw"``
        (increasing), the rest as given, permuted and sign-flipped).
    """
    out = {k: np.asarray(v) for k, v in values.items()}
    perm = np.argsort(out[prefix + "layer0.half_life"], axis=-1, kind="stable")  # (..., d)
    w_in = _take(out.pop(prefix + "w_in"), perm, -1)
    sign = np.where(w_in[..., 0, :] < 0, -1.0, 1.0)  # (..., d)
    w_in = w_in * sign[..., None, :]
    out[prefix + "w_in_lead"] = w_in[..., 0, :]
    if w_in.shape[-2] > 1:
        out[prefix + "w_in_rest"] = w_in[..., 1:, :]
    per_channel = {"b_in": -1, "w_out": -1, "w_scale": -1}
    for i in range(num_layers):
        per_channel.update({f"layer{i}.C_real": -2, f"layer{i}.C_imag": -2, f"layer{i}.D": -1})
        name = prefix + f"layer{i}.half_life"
        out[name] = _take(out[name], perm, -1)
        if i == 0:
            out[name + "_raw"] = out.pop(name)
        mix = _take(_take(out[prefix + f"layer{i}.mix"], perm, -1), perm, -2)
        out[prefix + f"layer{i}.mix"] = mix * sign[..., None, :]
    for site, axis in per_channel.items():
        if prefix + site in out:
            x = _take(out[prefix + site], perm, axis)
            out[prefix + site] = x * (sign if axis == -1 else sign[..., None])
    return out


def network_values(draws: dict, *, prefix: str = "net.") -> dict:
    """The network weights a fit of the identified form computes with, from its draws.

    ``"w_in"`` ``(..., lag, d)`` (``|w_in_lead|`` on top of ``w_in_rest``) and
    ``"layer0.half_life"`` (sorted ``half_life_raw``) replace the sampled coordinates; the other
    network sites are passed through. Only these are comparable between chains (the sampled
    ``w_in_lead`` and ``half_life_raw`` keep a reflection symmetry no output reads).

    Parameters
    ----------
    draws : dict of str to array
        Draws ``(chain, draw, ...)`` (or any leading axes) of the identified model.
    prefix : str
        The network's scope.

    Returns
    -------
    dict of str to numpy.ndarray
    """
    out = {k: np.asarray(v) for k, v in draws.items() if k.startswith(prefix)}
    lead = np.abs(out.pop(prefix + "w_in_lead"))[..., None, :]
    rest = out.pop(prefix + "w_in_rest", None)
    out[prefix + "w_in"] = lead if rest is None else np.concatenate([lead, rest], axis=-2)
    raw = out.pop(prefix + "layer0.half_life_raw")
    out[prefix + "layer0.half_life"] = np.sort(raw, axis=-1)
    return out
