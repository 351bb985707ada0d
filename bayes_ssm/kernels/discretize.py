"""Discretisation of a diagonal continuous-time system ``h'(τ) = A h(τ) + B u(τ)``.

A step of length ``Δ`` (``dt``) maps the continuous system to ``h_t = Ā_t h_{t-1} + B̄_t u_t``.
Every function takes ``dt`` as an array, so a per-step ``Δ_t`` (irregular sampling, or a
random step drawn by a Bayesian layer) is discretised with its own gap.

Zero-order hold (ZOH, the input held constant over the step), for diagonal ``A``:

.. math:: \\bar A = e^{Δ A}, \\qquad \\bar B = A^{-1}(e^{Δ A} - 1) B

computed as ``expm1(Δ A) / A`` (and ``Δ`` where ``A = 0``), so it is exact for small steps.

The simplified (Euler) rule for ``B`` that Mamba uses (``selective_scan_ref`` of
state-spaces/mamba, and the ``x * dt`` of Mamba-2's SSD) keeps ZOH for ``A`` and takes

.. math:: \\bar B = Δ B.

In log space the ZOH decay is simply ``log Ā = Δ A``, which is what the chunked kernels use.
"""

from __future__ import annotations

import jax.numpy as jnp

__all__ = ["zoh_log_decay", "zoh_decay", "zoh_input", "euler_input", "discretize_zoh"]


def zoh_log_decay(A, dt):
    """``log Ā = Δ A`` (broadcast elementwise): the log of the ZOH decay.

    Parameters
    ----------
    A : Array
        Diagonal of the continuous state matrix (real or complex; real part ``< 0`` for a
        stable system).
    dt : Array
        Step sizes ``Δ > 0``, broadcastable against ``A``.
    """
    return jnp.asarray(A) * jnp.asarray(dt)


def zoh_decay(A, dt):
    """``Ā = exp(Δ A)`` (broadcast elementwise)."""
    return jnp.exp(zoh_log_decay(A, dt))


def zoh_input(A, dt):
    """The ZOH input factor ``(exp(Δ A) - 1) / A`` (``= Δ`` where ``A = 0``), elementwise.

    Multiply by ``B`` to get ``B̄``. Real or complex ``A``.
    """
    A = jnp.asarray(A)
    dt = jnp.asarray(dt)
    dtA = A * dt
    is_zero = A == 0
    safe_A = jnp.where(is_zero, jnp.ones_like(A), A)
    factor = jnp.expm1(dtA) / safe_A
    return jnp.where(is_zero, jnp.broadcast_to(dt, factor.shape).astype(factor.dtype), factor)


def euler_input(dt, B):
    """The simplified rule ``B̄ = Δ B`` (Mamba's ``deltaB``), elementwise."""
    return jnp.asarray(dt) * jnp.asarray(B)


def discretize_zoh(A, B, dt):
    """Zero-order hold for diagonal ``A``: returns ``(Ā, B̄)`` with ``B̄ = (e^{ΔA}-1)/A · B``.

    Parameters
    ----------
    A : Array, shape ``(..., n)``
        Diagonal of the continuous state matrix.
    B : Array, broadcastable with ``A``
    dt : Array, broadcastable with ``A``
        Step sizes, e.g. ``(t, d, 1)`` against ``A`` of shape ``(d, n)`` for per-step steps.

    Returns
    -------
    (Array, Array)
        ``Ā`` and ``B̄``, shape ``broadcast(A, B, dt)``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> a_bar, b_bar = discretize_zoh(jnp.array([-1.0]), jnp.array([1.0]), 0.5)
    >>> bool(jnp.allclose(a_bar, jnp.exp(-0.5))), bool(jnp.allclose(b_bar, 1 - jnp.exp(-0.5)))
    (True, True)
    """
    return zoh_decay(A, dt), zoh_input(A, dt) * jnp.asarray(B)
