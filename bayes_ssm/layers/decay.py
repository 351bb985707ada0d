"""Stochastic decay: Bayesian attention on the memory of an SSD layer, at linear cost.

An SSD (Mamba-2) head applies the masked attention ``y = (L ∘ C Bᵀ) x̄`` whose mask
``L[t, s] = prod_{k=s+1..t} a_k`` is 1-semiseparable, which is what lets the scan and chunked
algorithms run in ``O(T)``. Putting noise on the ``T x T`` entries of ``C Bᵀ`` (as Bayesian
attention does for softmax attention) would destroy that structure. This layer puts the
randomness on the decay instead: per step ``t`` and head ``h``

.. math::

    \\log a_{t h} = -\\log 2 \\cdot \\frac{\\Delta_{t h}}{\\tau_h}, \\qquad
    \\Delta_{t h} = \\mathrm{dt}_t \\, \\varepsilon_{t h},

with ``tau_h`` the head's half-life in steps (prior :class:`bayes_ssm.priors.HalfLife`), ``dt_t``
the (known) gap between observations and ``eps`` a positive random multiplier of mean one
(log-normal, or Gamma with an optional contextual mean that depends on the input at step ``t``).
Each draw of ``(tau, eps)`` gives a random mask ``L`` that is still 1-semiseparable, so every
draw is computed exactly by the scan or chunked kernel, and the implied attention map has a
posterior.

With ``noise_scale = 0`` the layer is the deterministic SSD kernel
:func:`bayes_ssm.kernels.ssd.ssd` with rate ``A_h = -log 2 / tau_h`` and step ``dt``.

Site names (under the caller's :func:`numpyro.handlers.scope`) are API:

``"half_life"``  ``(head,)``
    Half-life of each head's memory, in steps (prior ``HalfLife``).
``"step_noise"``  ``(*batch, time, head)``; ``"future_step_noise"`` ``(*batch, horizon, head)``
    ``noise="lognormal"``: standard normal ``z`` (non-centred; ``eps = exp(sigma z - sigma²/2)``).
    ``noise="gamma"``: the multiplier ``eps`` itself, ``Gamma(kappa, kappa / m)``,
    ``kappa = 1 / noise_scale²``. Absent when ``noise="none"``.
``"context_weight"``  ``(head, head_dim)``
    ``contextual=True``: weights of the contextual mean ``m_{t h} = 2 sigmoid(x_t · w_h)``.
``"B_weight"``, ``"C_weight"``  ``(head, head_dim, state)``
    Only when ``B`` / ``C`` are not passed: input and output projections, ``Normal(0, 1/√(h p))``.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, field
from typing import Literal

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

from bayes_ssm.kernels.ssd import SSD_METHODS, ssd_discrete
from bayes_ssm.layers import _memory
from bayes_ssm.priors import HalfLife

__all__ = ["StochasticDecaySSD"]

_LOG2 = math.log(2.0)
_GATES = ("one_minus_decay", "euler")


@dataclass(frozen=True)
class StochasticDecaySSD:
    """An SSD layer whose per-step, per-head decay is random, with a prior on its half-life.

    Parameters
    ----------
    num_heads : int
        ``h``; each head has its own half-life.
    head_dim : int
        ``p``, channels per head.
    state_dim : int
        ``n``, size of ``B_t`` and ``C_t`` (shared by all heads: one group).
    half_life : HalfLife
        Prior on each head's half-life (median in steps or calendar units).
    noise : {"lognormal", "gamma", "none"}
        Distribution of the per-step multiplier ``eps`` of the step size.
    noise_scale : float
        ``sigma`` of ``log eps`` (log-normal) or the coefficient of variation ``1/√kappa`` of
        ``eps`` (Gamma). ``0`` (log-normal only) collapses the layer onto the deterministic SSD.
    contextual : bool
        Let the mean of ``eps`` depend on the input: ``m_{t h} = 2 sigmoid(x_t · w_h)`` with
        ``w ~ Normal(0, context_scale)`` (causal: step ``t`` sees only ``x_t``).
    context_scale : float
        Prior scale of the contextual weights.
    input_gate : {"one_minus_decay", "euler"}
        ``x̄_t = (1 - a_t) x_t`` (an exponentially weighted average whose weights sum to at most
        one, the readable default) or Mamba-2's Euler rule ``x̄_t = Δ_t x_t``.
    step : datetime.timedelta, optional
        Sampling interval of the series, needed when ``half_life`` is in calendar units.
    method : {"chunked", "scan", "quadratic"}
        SSD algorithm (all exact; see :mod:`bayes_ssm.kernels.ssd`).
    chunk_size : int
        Chunk length for ``method="chunked"``.

    Examples
    --------
    >>> import jax.numpy as jnp, numpyro
    >>> layer = StochasticDecaySSD(num_heads=2, head_dim=1, half_life=HalfLife(steps=4))
    >>> def model(x):
    ...     with numpyro.handlers.scope(prefix="ssd"):
    ...         return layer(x, B=jnp.ones((10, 1, 1)), C=jnp.ones((10, 1, 1)))
    >>> y = numpyro.handlers.seed(model, 0)(jnp.ones((10, 2, 1)))
    >>> y.shape
    (10, 2, 1)
    """

    num_heads: int
    head_dim: int = 1
    state_dim: int = 1
    half_life: HalfLife = field(default_factory=lambda: HalfLife(steps=8.0))
    noise: Literal["lognormal", "gamma", "none"] = "lognormal"
    noise_scale: float = 0.25
    contextual: bool = False
    context_scale: float = 1.0
    input_gate: Literal["one_minus_decay", "euler"] = "one_minus_decay"
    step: _dt.timedelta | None = None
    method: str = "chunked"
    chunk_size: int = 64

    def __post_init__(self):
        for name in ("num_heads", "head_dim", "state_dim", "chunk_size"):
            _memory.positive_int(getattr(self, name), name)
        _memory.validate_memory(self)
        if self.input_gate not in _GATES:
            raise ValueError(f"input_gate must be one of {_GATES}; got {self.input_gate!r}")
        if self.method not in SSD_METHODS:
            raise ValueError(f"method must be one of {SSD_METHODS}; got {self.method!r}")

    # ---------------------------------------------------------------- pieces (NumPyro fragments)

    def log_decay(self, x, *, dt=None, horizon: int = 0):
        """Sample the priors and return the per-step log decays and steps.

        Parameters
        ----------
        x : Array, shape ``(*batch, time, head, head_dim)``
        dt : Array, broadcastable to ``(*batch, time)``, optional
            Gaps between observations in steps (default 1).
        horizon : int
            Also draw the decays of ``horizon`` future steps (gap 1; a contextual mean is 1 there,
            since the future input is unknown), at site ``"future_step_noise"``.

        Returns
        -------
        log_a : Array, shape ``(*batch, time + horizon, head)``
            ``log a_{t h} = -log 2 · Δ_{t h} / tau_h`` (negative).
        delta : Array, shape ``(*batch, time + horizon, head)``
            The random steps ``Δ = dt · eps``.
        """
        x = self._check_x(x)
        shape = x.shape[:-1]  # (*batch, t, h)
        tau = _memory.sample_half_life(self, self.num_heads)
        w = _memory.sample_context_weight(self, (self.num_heads, self.head_dim))
        mean = 1.0 if w is None else _memory.contextual_mean(jnp.einsum("...hp,hp->...h", x, w))
        delta = _memory.step_multiplier(self, "step_noise", shape, mean, x.dtype)
        if dt is not None:
            delta = jnp.asarray(dt, x.dtype)[..., None] * delta
        if horizon:
            future = (*shape[:-2], int(horizon), self.num_heads)
            delta_f = _memory.step_multiplier(self, "future_step_noise", future, 1.0, x.dtype)
            delta = jnp.concatenate([delta, delta_f], axis=-2)
        log_a = -_LOG2 * delta / tau
        return log_a, delta

    def projections(self, x):
        """Sample ``B`` and ``C`` projections of ``x``: each ``(*batch, time, 1, state)``."""
        x = self._check_x(x)
        s = 1.0 / math.sqrt(self.num_heads * self.head_dim)
        shape = (self.num_heads, self.head_dim, self.state_dim)
        wb = numpyro.sample("B_weight", dist.Normal(0.0, s).expand(shape).to_event(3))
        wc = numpyro.sample("C_weight", dist.Normal(0.0, s).expand(shape).to_event(3))
        B = jnp.einsum("...hp,hpn->...n", x, wb)[..., None, :]
        C = jnp.einsum("...hp,hpn->...n", x, wc)[..., None, :]
        return B, C

    def gate(self, log_a, delta):
        """Input scaling per step and head: ``1 - a_t`` or ``Δ_t``, shape of ``log_a``."""
        if self.input_gate == "one_minus_decay":
            return -jnp.expm1(log_a)
        return delta

    # ---------------------------------------------------------------- the layer

    def apply(self, x, log_a, delta, B, C, *, h0=None, return_final_state=False):
        """The deterministic part: gate the input and run the SSD kernel (no sampling).

        ``x (*batch, time, head, head_dim)``, ``log_a`` and ``delta`` ``(*batch, time, head)``,
        ``B, C (*batch, time, 1, state)``, ``h0 (*batch, head, head_dim, state)``.
        """
        xin = x * self.gate(log_a, delta)[..., None]
        return ssd_discrete(
            xin,
            log_a,
            B,
            C,
            h0=h0,
            method=self.method,
            chunk_size=self.chunk_size,
            return_final_state=return_final_state,
        )

    def __call__(self, x, *, B=None, C=None, dt=None, return_final_state=False):
        """Run the layer (a NumPyro fragment: call it inside a model, under a scope).

        Parameters
        ----------
        x : Array, shape ``(*batch, time, head, head_dim)``
        B, C : Array, shape ``(*batch, time, 1, state)``, optional
            Given, they are used as they are; omitted, they are sampled projections of ``x``.
        dt : Array, broadcastable to ``(*batch, time)``, optional
            Gaps between observations (irregular sampling), in steps.
        return_final_state : bool
            Also return the state after the last step, ``(*batch, head, head_dim, state)``.

        Returns
        -------
        y : Array, shape ``(*batch, time, head, head_dim)``
        """
        x = self._check_x(x)
        log_a, delta = self.log_decay(x, dt=dt)
        if B is None or C is None:
            B_, C_ = self.projections(x)
            B = B_ if B is None else B
            C = C_ if C is None else C
        return self.apply(x, log_a, delta, B, C, return_final_state=return_final_state)

    def _check_x(self, x):
        x = jnp.asarray(x)
        if x.ndim < 3 or x.shape[-2:] != (self.num_heads, self.head_dim):
            raise ValueError(
                "x must have shape (*batch, time, head, head_dim) = (..., T, "
                f"{self.num_heads}, {self.head_dim}); got {x.shape}"
            )
        return x
