"""Parallel-in-time Kalman filter and smoother (``O(B + log T)`` sequential depth).

Filter: blocks of the Särkkä & García-Fernández (2021) elements
-----------------------------------------------------------------
An element for the steps ``s .. t`` describes what they say about the state, as a function of
the unknown state ``x = alpha_{s-1}`` before them, by two Gaussian potentials::

    p(alpha_t | x, y_{s:t})  = N(alpha_t | A x + b, C)          (the "conditional" part)
    p(y_{s:t} | x)          ∝ N_I(x | eta, J)                   (information about x)

Two consecutive elements (earlier ``1``, later ``2``) combine as::

    W = (I + C_1 J_2)^{-1}
    A = A_2 W A_1,                 b = A_2 W (b_1 + C_1 eta_2) + b_2,
    C = A_2 W C_1 A_2' + C_2,      eta = A_1' W' (eta_2 - J_2 b_1) + eta_1,
    J = A_1' W' J_2 A_1 + J_1,

an associative operator. The element of the first block starts from the prior of
``alpha_1`` (``A = 0``), so every prefix that contains it has ``A = 0`` and its ``(b, C)`` are
the filtered moments.

:func:`parallel_filter` does not form one element per step (that costs an inverse per step
and per combine). It splits the series into blocks of ``B`` steps and:

1. builds every block's element by running the filter *from the unknown state* through the
   block, all blocks at once. A scalar observation adds a rank-one term, so each step is a few
   small products and one scalar division (:func:`_absorb_step`)::

       predict   A <- T A,  b <- T b,  C <- T C T' + Q
       update    S = z' C z + h,  K = C z / S,  r = y - d - z' b,  a = A' z
                 A <- (I - K z') A,  b <- b + K r,  C <- (I - K z') C (I - K z')' + h K K'
                 J <- J + a a' / S,  eta <- eta + a r / S

2. scans the ``T / B`` block elements by recursive doubling with the combine above
   (:func:`bayes_ssm.kernels.blocked_scan.recursive_doubling_scan`), the only inverses;
3. runs the ordinary filter through every block, all blocks at once, from the filtered moments
   at the end of the block before: the log-likelihood terms and moments come out of the same
   arithmetic as the sequential filter's.

Measured on an H100 at ``T = 1e6`` (``benchmarks/README.md``): 3.3x faster in float64 and
compiled in 1.5 s (3.8 s with the gradient) against 9.5 s (12.2 s) for one element per step in
a blocked associative scan.

Smoother (Durbin-Koopman form, as two affine scans)
--------------------------------------------------
The backward recursions of :func:`bayes_ssm.kernels.kalman.kalman_smoother`,
``r_{t-1} = L_t' r_t + z_t v_t / F_t`` and ``N_{t-1} = L_t' N_t L_t + z_t z_t' / F_t``,
are affine in ``(r, N)``: the element ``(A_t = L_t', u_t, W_t)`` maps ``(r, N)`` to
``(A r + u, A N A' + W)``, and composing two maps is associative::

    (A_2, u_2, W_2) after (A_1, u_1, W_1) = (A_2 A_1, A_2 u_1 + u_2, A_2 W_1 A_2' + W_2)

so a reverse associative scan gives every ``(r_{t-1}, N_{t-1})`` with no matrix inverse
(Särkkä & García-Fernández's RTS elements need ``P_{t+1|t}^{-1}``, which a singular
``state_cov`` makes ill-conditioned).

References
----------
S. Särkkä and Á. F. García-Fernández (2021), "Temporal parallelization of Bayesian
smoothers", IEEE Transactions on Automatic Control 66(1). dynamax's
``linear_gaussian_ssm/parallel_inference.py`` is a public implementation of the general case.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from bayes_ssm.kernels.blocked_scan import (
    blocked_associative_scan,
    power_of_two_root,
    recursive_doubling_scan,
)
from bayes_ssm.kernels.kalman_common import (
    FilterResult,
    StateSpace,
    _filtered,
    _innovation,
    _observed,
    _outer,
    _per_step,
    _sum_burn,
    _sym,
    _vdot,
)

__all__ = ["parallel_filter", "parallel_smooth_backward"]


def _mT(x):
    return jnp.swapaxes(x, -1, -2)


# Batched over time, real matrix products beat the fused broadcasts that the sequential filter
# uses (whose reverse-mode derivative materialises (time, state, state, state) arrays).
# On a GPU, small batched products are written as broadcast-multiply-sums, not dots: XLA 0.11's
# GPU GEMM fusion crashed (a failed CHECK in triton_tiling_propagation) on the float32 dots of
# this filter, with every matmul variant we tried, and the elementwise form was also faster there
# (H100, T = 1e6, 8 states: 18.9 ms against 44 ms for dots with Triton GEMMs switched off).
# On a CPU, real matrix products win: the broadcast form's reverse-mode derivative materialises
# (time, state, state, state) arrays.
def _mm(A, B):
    if jax.default_backend() == "gpu":
        return jnp.sum(A[..., :, :, None] * B[..., None, :, :], axis=-2)
    if A.ndim == 2 and B.ndim > 2:
        return jnp.einsum("ij,...jk->...ik", A, B)
    if B.ndim == 2 and A.ndim > 2:
        return jnp.einsum("...ij,jk->...ik", A, B)
    return jnp.matmul(A, B)


def _mv(A, x):
    if jax.default_backend() == "gpu":
        return jnp.sum(A * x[..., None, :], axis=-1)
    return jnp.einsum("...ij,...j->...i", A, x)


def _inverse(M):
    """Inverse of a batch of small, well-conditioned matrices (``I + C J``, eigenvalues >= 1)."""
    return jnp.linalg.inv(M)


def _filter_combine(elem1, elem2):
    """Compose step-blocks: ``elem1`` (earlier) then ``elem2`` (later); batched over time."""
    A1, b1, C1, J1, eta1 = elem1
    A2, b2, C2, J2, eta2 = elem2
    n = A1.shape[-1]
    G = _inverse(jnp.eye(n, dtype=A1.dtype) + _mm(C1, J2))  # (I + C1 J2)^{-1}
    M = _mm(A2, G)  # A2 (I + C1 J2)^{-1}
    N = _mm(_mT(A1), _mT(G))  # A1' (I + J2 C1)^{-1}
    A = _mm(M, A1)
    b = _mv(M, b1 + _mv(C1, eta2)) + b2
    C = _sym(_mm(_mm(M, C1), _mT(A2)) + C2)
    eta = _mv(N, eta2 - _mv(J2, b1)) + eta1
    J = _sym(_mm(_mm(N, J2), A1) + J1)
    return A, b, C, J, eta


def _blocked_inputs(ss: StateSpace, y, block: int):
    """Per-step inputs laid out as ``(block, blocks, ...)``, padded at the end with no-op steps.

    Returns ``(z, h, d, y0, observed, skip)``; ``skip`` marks the steps with no prediction: the
    first (whose prior is the initial state) and the padding (which also has no observation, so
    it leaves a block's element and the filtered moments unchanged).
    """
    num_steps = y.shape[0]
    num_blocks = -(-num_steps // block)
    pad = num_blocks * block - num_steps
    observed, y0 = _observed(y)
    index = jnp.arange(num_steps + pad)
    skip = (index == 0) | (index >= num_steps)
    inputs = [*_per_step(ss, num_steps), y0, observed]
    if pad:
        inputs = [jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)]) for x in inputs]
        inputs[-1] = inputs[-1].at[num_steps:].set(False)
    inputs.append(skip)
    return [jnp.swapaxes(x.reshape(num_blocks, block, *x.shape[1:]), 0, 1) for x in inputs]


def _unblock(x, num_steps):
    """``(block, blocks, ...)`` back to ``(time, ...)``."""
    x = jnp.swapaxes(x, 0, 1)
    return x.reshape(-1, *x.shape[2:])[:num_steps]


def _predict(ss: StateSpace, m, P, skip):
    """``(T m, T P T' + Q)``, batched over blocks; unchanged where ``skip``."""
    T, Q = ss.transition, ss.state_cov
    m_p = jnp.where(skip[:, None], m, _mv(T, m))
    P_p = jnp.where(skip[:, None, None], P, _sym(_mm(_mm(T, P), T.T) + Q))
    return m_p, P_p


def _degenerate_floor(ss: StateSpace, S, Az):
    """``S = z' C z + h`` floored at ``sqrt(eps) (a' a) tr(Q) / n`` (``a = A' z``).

    ``S`` is 0 when, given the unknown start ``alpha_{s-1}``, the observation is exactly
    determined: a block's first step when ``h = 0`` and ``z' Q z = 0`` (no observation noise,
    no noise on the observed states; e.g. a local linear trend with only slope noise). The
    element then carried infinite information ``a a' / S`` (the sequential filter is fine: its
    covariance includes the uncertainty of ``alpha_{s-1}``), and the combine produced
    ``inf - inf``: NaN from ``T = 2 B + 1`` (three blocks: the second block's element is the
    first whose combine is used). The floor turns the exact constraint into a very precise
    observation in phases 1-2 only; phase 3 recomputes every output from the block-start
    moments with the exact model. Where ``S`` is above the floor nothing changes.

    Accuracy (``tests/test_kalman_degenerate.py``): values within ~1e-7 of the sequential
    filter, gradients within ~1e-2 relative. The information form stays ill-conditioned when
    ``S`` is tiny but above the floor (variances ~1e-8 of the signal's): gradients there were
    and are unreliable (measured in ``benchmarks/README.md``, "Parallel filter with
    degenerate noise"); use ``method="sequential"`` for such models.
    """
    n = ss.state_cov.shape[-1]
    scale = jnp.trace(ss.state_cov) / n + jnp.finfo(S.dtype).tiny
    floor = jnp.sqrt(jnp.finfo(S.dtype).eps) * _vdot(Az, Az) * scale
    return jnp.maximum(S, floor)


def _absorb_step(ss: StateSpace, elem, inputs):
    """Extend every block's element by one step (predict, then condition on ``y_t``).

    The element ``(A, b, C, J, eta)`` of steps ``s .. t-1`` says
    ``alpha_{t-1} | alpha_{s-1}, y_{s:t-1} ~ N(A alpha_{s-1} + b, C)`` and carries the
    information ``(eta, J)`` those observations give about ``alpha_{s-1}``. One scalar
    observation adds rank one: no inverse (the general combine needs one per step).
    """
    A, b, C, J, eta = elem
    z, h, d, yy, obs, skip = inputs
    T = ss.transition
    A = jnp.where(skip[:, None, None], A, _mm(T, A))
    b, C = _predict(ss, b, C, skip)
    Cz = _mv(C, z)
    Az = _mv(_mT(A), z)  # A' z: how the innovation depends on alpha_{s-1}
    S = _degenerate_floor(ss, _vdot(z, Cz) + h, Az)
    w = jnp.where(obs, 1.0 / jnp.where(obs, S, 1.0), 0.0)
    K = Cz * w[:, None]
    r = yy - d - _vdot(z, b)  # innovation given alpha_{s-1} = 0
    B = jnp.eye(A.shape[-1], dtype=A.dtype) - _outer(K, z)
    return (
        _mm(B, A),
        b + K * r[:, None],
        _sym(_mm(_mm(B, C), _mT(B)) + h[:, None, None] * _outer(K, K)),
        J + w[:, None, None] * _outer(Az, Az),
        eta + Az * (w * r)[:, None],
    )


def _filter_step(ss: StateSpace, carry, inputs, history: bool):
    """One step of the ordinary filter for every block at once; carries filtered moments."""
    z, h, d, yy, obs, skip = inputs
    m_p, P_p = _predict(ss, *carry, skip)
    v, F, Pz, safe_F, ll = _innovation(m_p, P_p, z, h, d, yy, obs)
    K = jnp.where(obs[:, None], Pz / safe_F[:, None], 0.0)
    m_f, P_f = _filtered(m_p, P_p, K, v, z, h)
    if not history:
        return (m_f, P_f), ll
    return (m_f, P_f), (ll, m_p, P_p, m_f, P_f, _vdot(z, m_p) + d, F)


def _remat(step):
    return jax.checkpoint(step, prevent_cse=False)


def kalman_block_size(num_steps: int) -> int:
    """Steps per block of :func:`parallel_filter`: the power of two nearest ``T ** (1/3)``, >= 8.

    Phases 1 and 3 cost ``B`` sequential steps each; phase 2 costs ``(T / B) log2(T / B)``
    inverting combines. Measured on an H100 (``benchmarks/README.md``, block-size sweep): at
    ``T = 1e5`` ``B`` = 32-64 and at ``T = 1e6`` ``B`` = 64-128 ran fastest in both dtypes.

    ``num_steps`` -> ``B`` (int).
    """
    return power_of_two_root(num_steps, 3)


def parallel_filter(
    ss: StateSpace, y, *, burn_in: int = 0, history: bool = True, block_size: int | None = None
):
    """Kalman filter in ``O(B + log(T / B))`` sequential depth; same results as the sequential.

    Three phases over blocks of ``B`` steps (``B`` from :func:`kalman_block_size`):

    1. every block's element (the filter from an unknown state at the block's start) is built by
       a :func:`jax.lax.scan` over the ``B`` positions, all blocks at once, with rank-one
       updates (:func:`_absorb_step`, no inverse);
    2. the ``T / B`` block elements are scanned by recursive doubling with the general combine
       (:func:`_filter_combine`, one ``state x state`` inverse each); the prefix up to block
       ``k`` has ``A = 0`` and gives the filtered moments at the end of block ``k``;
    3. the ordinary filter runs through every block from those moments, all blocks at once,
       and produces the log-likelihood terms and the moments.

    Parameters
    ----------
    ss : StateSpace
        Validated system (see :func:`bayes_ssm.kernels.kalman.validate`).
    y : Array, shape ``(time,)``
        Observations, NaN = missing.
    burn_in : int
        Leading terms left out of ``log_likelihood``.
    history : bool
        Return every step's moments (a :class:`FilterResult`); otherwise
        ``(log_likelihood, log_lik_steps, last_mean, last_cov)``.
    block_size : int, optional
        ``B``; default :func:`kalman_block_size`.

    Returns
    -------
    FilterResult or tuple
    """
    num_steps = y.shape[0]
    block = kalman_block_size(num_steps) if block_size is None else int(block_size)
    inputs = _blocked_inputs(ss, y, block)
    num_blocks = inputs[0].shape[1]
    n, dtype = ss.transition.shape[0], ss.transition.dtype
    first_block = jnp.arange(num_blocks) == 0
    zeros_v, zeros_m = jnp.zeros((num_blocks, n), dtype), jnp.zeros((num_blocks, n, n), dtype)
    eye = jnp.broadcast_to(jnp.eye(n, dtype=dtype), (num_blocks, n, n))
    # Block 0 starts from the prior of alpha_1 (A = 0); the others from the identity element.
    start = (
        jnp.where(first_block[:, None, None], 0.0, eye),
        jnp.where(first_block[:, None], ss.init_mean, 0.0),
        jnp.where(first_block[:, None, None], ss.init_cov, 0.0),
        zeros_m,
        zeros_v,
    )
    absorb = _remat(lambda elem, x: (_absorb_step(ss, elem, x), None))
    totals, _ = lax.scan(absorb, start, inputs)
    _, m_end, P_end, _, _ = recursive_doubling_scan(_filter_combine, totals)
    carry = (
        jnp.where(first_block[:, None], ss.init_mean, jnp.roll(m_end, 1, axis=0)),
        jnp.where(first_block[:, None, None], ss.init_cov, jnp.roll(P_end, 1, axis=0)),
    )
    step = _remat(lambda c, x: _filter_step(ss, c, x, history))
    (m_last, P_last), out = lax.scan(step, carry, inputs)
    if not history:
        ll = _unblock(out, num_steps)
        return _sum_burn(ll, burn_in), ll, m_last[-1], P_last[-1]
    ll, m_p, P_p, m_f, P_f, obs_mean, F = (_unblock(x, num_steps) for x in out)
    return FilterResult(_sum_burn(ll, burn_in), ll, m_p, P_p, m_f, P_f, obs_mean, F)


def _smooth_combine(elem1, elem2):
    """``elem2`` after ``elem1`` for the affine maps ``(r, N) -> (A r + u, A N A' + W)``."""
    A1, u1, W1 = elem1
    A2, u2, W2 = elem2
    return _mm(A2, A1), _mv(A2, u1) + u2, _sym(_mm(_mm(A2, W1), _mT(A2)) + W2)


def parallel_smooth_backward(ss: StateSpace, y, m_p, P_p, *, block_size: int | None = None):
    """Smoothed moments from the predicted ones by two reverse affine associative scans.

    The affine combine needs no inverse, so the generic blocked scan (small blocks,
    ``T^(1/4)``) suits it: a block-specialised version like :func:`parallel_filter`'s, with
    ``T^(1/3)`` blocks, measured 3.8 against 1.7 ms at ``T = 1e5`` and 9.1 against 8.1 ms at
    ``1e6`` on an H100 in float32 (14.1 against 16.0 ms in float64) and was not kept.

    Parameters
    ----------
    ss : StateSpace
    y : Array, shape ``(time,)``
    m_p, P_p : Array, shapes ``(time, state)``, ``(time, state, state)``
        Predicted moments from the filter.
    block_size : int, optional
        Steps per sequential block of the blocked scan (default ``T^(1/4)``).

    Returns
    -------
    (Array, Array)
        Smoothed means ``(time, state)`` and covariances ``(time, state, state)``.
    """
    T = ss.transition
    z, h, d = _per_step(ss, y.shape[0])
    observed, y0 = _observed(y)
    Pz = _mv(P_p, z)
    F = _vdot(z, Pz) + h
    safe_F = jnp.where(observed, F, 1.0)
    v = y0 - _vdot(z, m_p) - d
    K = jnp.where(observed[:, None], Pz / safe_F[:, None], 0.0)
    L = T - _outer(_mv(T, K), z)  # T - (T K) z'
    u = z * jnp.where(observed, v / safe_F, 0.0)[:, None]
    W = jnp.where(observed, 1.0 / safe_F, 0.0)[:, None, None] * _outer(z, z)
    _, r, N = blocked_associative_scan(
        _smooth_combine, (_mT(L), u, W), reverse=True, block_size=block_size
    )
    m_s = m_p + _mv(P_p, r)
    P_s = _sym(P_p - _mm(_mm(P_p, N), P_p))
    return m_s, P_s
