"""Bayesian attention modules: softmax and linear attention whose weights have a posterior.

Following Fan et al. (2020), the attention weights become a latent variable ``S[h, t, s] > 0``
(unnormalised) with

* a **contextual Gamma prior** in the model, ``S ~ Gamma(alpha, beta)`` with
  ``alpha[h, t, s] = beta * softmax_s(g_h(key_s))`` for a small network ``g`` of the keys
  (``contextual_prior=False``: ``alpha = beta / (number of keys visible from t)``);
* a **Weibull (or log-normal) variational posterior** in the guide, centred on the deterministic
  attention ``w = attention_weights(q, k)``: ``S ~ Weibull(k, w / Γ(1 + 1/k))`` (mean ``w``),
  reparameterised, so SVI learns the projections through the ELBO
  ``E_q[log p(y | W)] - KL(q(S) || p(S))``.

Either way the layer uses the renormalised ``W = S / Σ_s S`` to mix the values. With the
posterior's variance collapsed (``concentration = inf`` for the Weibull, ``sigma = 0`` for the
log-normal) the guide's draw is ``w`` itself and the layer is the deterministic attention kernel
(:func:`bayes_ssm.kernels.attention.softmax_attention` or ``linear_attention``).

Noise on all ``T x T`` weights costs ``O(T²)`` (as softmax attention already does); for linear
attention this gives up the linear-time recurrence. For a random *memory* at linear cost use
:class:`bayes_ssm.layers.decay.StochasticDecaySSD`.

Deterministic parameters are ``numpyro.param`` sites (point estimates, as in the paper), shared
by model and guide through their names. Site names under the caller's scope are API:

``"query_weight"``, ``"key_weight"`` ``(channel, head, key_dim)``; ``"value_weight"``
``(channel, head, head_dim)``; with ``contextual_prior``: ``"prior_w1"`` ``(head, key_dim,
hidden)``, ``"prior_b1"`` ``(head, hidden)``, ``"prior_w2"`` ``(head, hidden)`` (params);
``"weights"`` ``(*batch, head, time, time)`` (the latent ``S``; when causal, the entries above
the diagonal are placeholders, masked out of the density and of the output).

To use the layer in a larger model fitted by SVI, give the ``"weights"`` site this layer's
:meth:`BayesianAttention.guide` (e.g. as one part of an ``AutoGuideList`` whose autoguide
blocks that site); the other sites may take any guide.

References
----------
Xinjie Fan, Shujian Zhang, Bo Chen, Mingyuan Zhou. "Bayesian Attention Modules". NeurIPS 2020.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro.distributions.distribution import validation_enabled
from numpyro.distributions.kl import kl_divergence
from numpyro.distributions.util import promote_shapes

from bayes_ssm.kernels import stochastic_attention as sa

__all__ = ["BayesianAttention", "MeanWeibull", "MeanLogNormal"]

_TINY = 1e-30


class MeanWeibull(dist.Weibull):
    """``Weibull(k, mean / Γ(1 + 1/k))``: a Weibull given by its mean; sampled by the kernel's
    reparameterisation ``S = λ (-log(1 - u))^{1/k}`` (so ``k = inf`` returns ``mean``)."""

    def __init__(self, mean, concentration, *, validate_args=None):
        self.mean_, concentration = promote_shapes(mean, concentration)
        super().__init__(sa.weibull_scale(mean, concentration), concentration,
                         validate_args=validate_args)  # fmt: skip

    def sample(self, key, sample_shape=()):
        shape = sample_shape + self.batch_shape
        dtype = jnp.result_type(float)
        # u = 0 (probability 2^-23 per entry in float32, so a few times per draw of a large
        # T x T map) would give S = 0 and a log-density of -inf: draw u in [tiny, 1).
        u = jax.random.uniform(key, shape, dtype, minval=jnp.finfo(dtype).tiny, maxval=1.0)
        return sa.weibull_reparam(self.mean_, self.concentration, u)


class MeanLogNormal(dist.LogNormal):
    """``LogNormal(log(mean) - sigma²/2, sigma)``: mean ``mean``; ``sigma = 0`` returns ``mean``."""

    def __init__(self, mean, sigma, *, validate_args=None):
        self.mean_, self.sigma_ = promote_shapes(mean, sigma)
        # sigma = 0 (the collapsed layer) is a valid point mass for our sampler, which numpyro's
        # argument check for LogNormal would refuse: validate only when asked to.
        with validation_enabled(bool(validate_args)):
            super().__init__(sa.lognormal_loc(mean, sigma), sigma, validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        z = jax.random.normal(key, sample_shape + self.batch_shape)
        return sa.lognormal_reparam(self.mean_, self.sigma_, z)


# Closed-form KLs for TraceMeanField_ELBO: numpyro already has KL(Weibull, Gamma) (which covers
# MeanWeibull); the log-normal one is added for our own class only, so numpyro's behaviour for
# its own distributions is unchanged.
def _kl_lognormal_gamma(p, q):
    return sa.lognormal_gamma_kl(p.loc, p.scale, q.concentration, q.rate)


kl_divergence.add((MeanLogNormal, dist.Gamma), _kl_lognormal_gamma)


def _check(cond, msg):
    if not cond:
        raise ValueError(msg)


def _is_pos_int(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


@dataclass(frozen=True)
class BayesianAttention:
    """Softmax or linear attention with random weights (Bayesian Attention Modules).

    Parameters
    ----------
    num_heads : int
        ``h``.
    head_dim : int
        ``p``, value size per head (output ``(*batch, time, head, head_dim)``).
    key_dim : int, optional
        ``n``, query/key size per head (default ``head_dim``).
    kind : {"softmax", "linear"}
        The deterministic attention the layer wraps.
    posterior : {"weibull", "lognormal"}
        Family of the variational posterior of the weights.
    concentration : float
        Weibull shape ``k > 0`` of the posterior (larger is tighter; ``inf`` collapses it).
    sigma : float
        Log-normal ``sigma >= 0`` of the posterior (``0`` collapses it).
    prior_rate : float
        Gamma rate ``beta > 0`` of the prior (larger holds the weights closer to the prior mean).
    contextual_prior : bool
        Prior mean of the weights from a one-hidden-layer network of the keys (else uniform
        over the visible keys).
    prior_hidden : int
        Width of that network.
    causal : bool
        Each step attends only to itself and the past.

    Examples
    --------
    >>> import jax.numpy as jnp, numpyro
    >>> from numpyro.handlers import scope, seed
    >>> layer = BayesianAttention(num_heads=2, head_dim=3)
    >>> x = jnp.ones((5, 4))
    >>> y = seed(scope(layer, prefix="attn"), 0)(x)
    >>> y.shape
    (5, 2, 3)
    """

    num_heads: int
    head_dim: int
    key_dim: int | None = None
    kind: Literal["softmax", "linear"] = "softmax"
    posterior: Literal["weibull", "lognormal"] = "weibull"
    concentration: float = 10.0
    sigma: float = 0.3
    prior_rate: float = 1.0
    contextual_prior: bool = True
    prior_hidden: int = 8
    causal: bool = True

    def __post_init__(self):
        for name in ("num_heads", "head_dim", "prior_hidden"):
            value = getattr(self, name)
            _check(_is_pos_int(value), f"{name} must be a positive int; got {value!r}")
        _check(self.key_dim is None or _is_pos_int(self.key_dim),
               f"key_dim must be a positive int; got {self.key_dim!r}")  # fmt: skip
        _check(self.kind in ("softmax", "linear"),
               f"kind must be 'softmax' or 'linear'; got {self.kind!r}")  # fmt: skip
        _check(self.posterior in ("weibull", "lognormal"),
               f"posterior must be 'weibull' or 'lognormal'; got {self.posterior!r}")  # fmt: skip
        k = self.concentration
        _check(isinstance(k, int | float) and not isinstance(k, bool) and k > 0,
               f"concentration k of the Weibull posterior must be > 0; got {k!r}")  # fmt: skip
        s = self.sigma
        _check(isinstance(s, int | float) and math.isfinite(s) and s >= 0,
               f"sigma of the log-normal posterior must be finite and >= 0; got {s!r}")  # fmt: skip
        b = self.prior_rate
        _check(isinstance(b, int | float) and math.isfinite(b) and b > 0,
               f"prior_rate (Gamma beta) must be finite and > 0; got {b!r}")  # fmt: skip

    @property
    def _n(self) -> int:
        return self.key_dim or self.head_dim

    # ---------------------------------------------------------------- shared pieces

    def _param(self, name, shape, scale):
        return numpyro.param(name, lambda key: scale * jax.random.normal(key, shape))

    def projections(self, x):
        """Projections ``q, k`` ``(*batch, time, head, key_dim)``, ``v`` ``(..., head_dim)``."""
        x = self._check_x(x)
        d, h, n, p = x.shape[-1], self.num_heads, self._n, self.head_dim
        s = 1.0 / math.sqrt(d)
        wq = self._param("query_weight", (d, h, n), s)
        wk = self._param("key_weight", (d, h, n), s)
        wv = self._param("value_weight", (d, h, p), s)
        q = jnp.einsum("...d,dhn->...hn", x, wq)
        k = jnp.einsum("...d,dhn->...hn", x, wk)
        v = jnp.einsum("...d,dhp->...hp", x, wv)
        return q, k, v

    def attention(self, x):
        """Deterministic weights ``w`` ``(*batch, head, time, time)``, mask, keys and values."""
        q, k, v = self.projections(x)
        w, mask = sa.attention_weights(q, k, kind=self.kind, causal=self.causal)
        return w, mask, k, v

    def prior(self, k, mask):
        """The contextual Gamma prior of ``S``: ``Gamma(alpha, beta)``, masked, as one event."""
        h, n, hid = self.num_heads, self._n, self.prior_hidden
        t = k.shape[-3]
        if self.contextual_prior:
            w1 = self._param("prior_w1", (h, n, hid), 1.0 / math.sqrt(n))
            b1 = numpyro.param("prior_b1", jnp.zeros((h, hid)))
            w2 = self._param("prior_w2", (h, hid), 1.0 / math.sqrt(hid))
            hidden = jnp.tanh(jnp.einsum("...shn,hnj->...hsj", k, w1) + b1[:, None, :])
            logits = jnp.einsum("...hsj,hj->...hs", hidden, w2)[..., None, :]  # (..., h, 1, s)
        else:
            logits = jnp.zeros(k.shape[:-3] + (h, 1, t), k.dtype)
        alpha = sa.contextual_gamma_shape(logits, self.prior_rate, mask=mask)
        alpha = jnp.maximum(jnp.where(mask, alpha, 1.0), _TINY)
        return self._event(dist.Gamma(alpha, self.prior_rate), mask)

    def variational(self, w, mask):
        """The posterior family of ``S`` centred on ``w``, masked, as one event."""
        mean = jnp.maximum(jnp.where(mask, w, 1.0), _TINY)
        if self.posterior == "weibull":
            d = MeanWeibull(mean, float(self.concentration))
        else:
            d = MeanLogNormal(mean, float(self.sigma))
        return self._event(d, mask)

    @staticmethod
    def _event(d, mask):
        d = d.mask(jnp.broadcast_to(mask, d.batch_shape))
        return d.to_event(len(d.batch_shape))

    def _mix(self, s, mask, v):
        W = sa.normalize_weights(jnp.where(mask, s, 0.0))
        return jnp.einsum("...hts,...shp->...thp", W, v)

    # ---------------------------------------------------------------- fragments

    def __call__(self, x):
        """Model fragment: sample ``S`` from its prior, mix the values.

        Parameters
        ----------
        x : Array, shape ``(*batch, time, channel)``

        Returns
        -------
        Array, shape ``(*batch, time, head, head_dim)``
        """
        _, mask, k, v = self.attention(x)
        s = numpyro.sample("weights", self.prior(k, mask))
        return self._mix(s, mask, v)

    def guide(self, x):
        """Guide fragment: sample ``S`` from the posterior centred on the attention ``w``.

        Same parameters and site names as :meth:`__call__`; returns the layer's output for this
        draw, so a guide for a stack of layers calls each layer's ``guide`` in turn.
        """
        w, mask, _, v = self.attention(x)
        s = numpyro.sample("weights", self.variational(w, mask))
        return self._mix(s, mask, v)

    def kl(self, x):
        """Closed-form ``KL(q(S) || p(S))`` summed over the visible weights, shape ``batch``."""
        w, mask, k, _ = self.attention(x)
        return kl_divergence(self.variational(w, mask), self.prior(k, mask))

    def _check_x(self, x):
        x = jnp.asarray(x)
        if x.ndim < 2 or x.shape[-1] < 1 or x.shape[-2] < 1:
            raise ValueError(f"x must have shape (*batch, time, channel); got {x.shape}")
        return x
