"""Attention kernels: softmax attention (quadratic reference) and linear attention by recurrence.

Linear attention replaces ``exp(q·k)`` by a feature-map inner product ``φ(q)·φ(k)``:

.. math::

    y_t = \\frac{\\sum_{s \\le t} (φ(q_t)^\\top φ(k_s)) v_s}{\\sum_{s \\le t} φ(q_t)^\\top φ(k_s)}
        = \\frac{φ(q_t)^\\top S_t}{φ(q_t)^\\top z_t}, \\qquad
    S_t = S_{t-1} + φ(k_t) v_t^\\top, \\quad z_t = z_{t-1} + φ(k_t),

the diagonal linear recurrence with decay 1: an SSM whose state is the running sum of
``φ(k) vᵀ`` (``B = φ(k)``, ``C = φ(q)``, ``x = v``). Three algorithms: ``"recurrent"``
(:func:`bayes_ssm.kernels.linear_recurrence` on the ``(t, h, n, p)`` states), ``"chunked"``
(the SSD chunked algorithm with ``log a = 0``), ``"quadratic"`` (the masked ``(t, s)``
weight matrix). The denominator is carried as one extra value channel of ones.

Feature maps: ``"elu"`` (``elu(x) + 1``, Katharopoulos et al. 2020) and Performer's positive
random features (FAVOR+, Choromanski et al. 2021): for ``w_i ~ N(0, I)``
(orthogonalised in blocks),

.. math:: φ(x) = m^{-1/2} \\exp(w_i^\\top x - \\|x\\|^2 / 2)_{i=1..m},
   \\qquad E[φ(q)^\\top φ(k)] = \\exp(q^\\top k),

so ``favor_attention`` is an unbiased-kernel approximation of softmax attention whose error
shrinks like ``m^{-1/2}``.

Shapes: ``q, k`` ``(*batch, t, h, n)`` (``n`` the key/feature size, the SSM state),
``v`` ``(*batch, t, h, p)``; outputs ``(*batch, t, h, p)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from bayes_ssm.kernels import _checks
from bayes_ssm.kernels.recurrence import linear_recurrence
from bayes_ssm.kernels.ssd import ssd_discrete

__all__ = [
    "softmax_attention",
    "linear_attention",
    "favor_attention",
    "favor_features",
    "init_favor_projection",
    "elu_feature_map",
    "LINEAR_ATTENTION_METHODS",
]

LINEAR_ATTENTION_METHODS = ("recurrent", "chunked", "quadratic")


def _check_qkv(q, k, v):
    q, k, v = (_checks.as_float(name, z) for name, z in (("q", q), ("k", k), ("v", v)))
    for name, z, layout in (("q", q, "n"), ("k", k, "n"), ("v", v, "p")):
        _checks.check_ndim(name, z, 3, f"(*batch, t, h, {layout})")
    if q.shape[-3:] != k.shape[-3:]:
        raise ValueError(f"q and k must share (t, h, n); got q {q.shape}, k {k.shape}")
    if v.shape[-3:-1] != q.shape[-3:-1]:
        raise ValueError(f"v must share (t, h) with q; got q {q.shape}, v {v.shape}")
    if q.shape[-3] == 0:
        raise ValueError(f"q has an empty time axis (shape {q.shape})")
    try:
        batch = jnp.broadcast_shapes(q.shape[:-3], k.shape[:-3], v.shape[:-3])
    except ValueError:
        raise ValueError(f"batch axes of q {q.shape}, k {k.shape}, v {v.shape} differ") from None
    dtype = _checks.result_dtype(q, k, v)
    q, k, v = (jnp.broadcast_to(z, (*batch, *z.shape[-3:])).astype(dtype) for z in (q, k, v))
    return q, k, v


def softmax_attention(q, k, v, *, causal: bool = True, scale: float | None = None):
    """Softmax attention ``y_t = Σ_s softmax_s(scale · q_t·k_s) v_s`` (``s <= t`` when causal).

    The quadratic reference: ``O(t²)`` time and memory for the ``(h, t, s)`` weights.

    Parameters
    ----------
    q, k : Array, shape ``(*batch, t, h, n)``
    v : Array, shape ``(*batch, t, h, p)``
    causal : bool
    scale : float, optional
        Default ``1 / sqrt(n)``.

    Returns
    -------
    Array, shape ``(*batch, t, h, p)``
    """
    q, k, v = _check_qkv(q, k, v)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    logits = jnp.einsum("...thn,...shn->...hts", q, k) * scale
    if causal:
        t = q.shape[-3]
        mask = jnp.tril(jnp.ones((t, t), bool))
        logits = jnp.where(mask, logits, -jnp.inf)
    weights = jax.nn.softmax(logits, axis=-1)
    return jnp.einsum("...hts,...shp->...thp", weights, v)


def elu_feature_map(x):
    """``φ(x) = elu(x) + 1`` (positive), elementwise."""
    return jax.nn.elu(x) + 1


def _linear_attention_core(phi_q, phi_k, v, method, causal, normalize, chunk_size, scan_method):
    """``y = Σ_s w_ts v_s`` with ``w_ts = φ(q_t)·φ(k_s)``; inputs already feature-mapped."""
    if normalize:
        v = jnp.concatenate([v, jnp.ones_like(v[..., :1])], axis=-1)  # last channel: z_t
    if method == "quadratic":
        w = jnp.einsum("...thn,...shn->...hts", phi_q, phi_k)
        if causal:
            t = v.shape[-3]
            w = jnp.where(jnp.tril(jnp.ones((t, t), bool)), w, 0)
        out = jnp.einsum("...hts,...shp->...thp", w, v)
    elif method == "chunked":
        # SSD with decay 1, one group per head; non-causal = forward + strict backward.
        out = ssd_discrete(
            v,
            None,
            phi_k,
            phi_q,
            method="chunked",
            chunk_size=chunk_size,
            bidirectional=not causal,
            scan_method=scan_method,
        )
    elif causal:
        # The recurrence S_t = 1 * S_{t-1} + φ(k_t) v_tᵀ over time (axis -4 of (t, h, n, p)).
        b = jnp.einsum("...thn,...thp->...thnp", phi_k, v)
        states = linear_recurrence(jnp.ones((), v.dtype), b, method=scan_method, axis=-4)
        out = jnp.einsum("...thn,...thnp->...thp", phi_q, states)
    else:
        state = jnp.einsum("...thn,...thp->...hnp", phi_k, v)
        out = jnp.einsum("...thn,...hnp->...thp", phi_q, state)
    if not normalize:
        return out
    num, den = out[..., :-1], out[..., -1:]
    return num / jnp.where(den == 0, jnp.ones_like(den), den)


def _check_method(method, chunk_size):
    if method not in LINEAR_ATTENTION_METHODS:
        raise ValueError(f"method must be one of {LINEAR_ATTENTION_METHODS}, got {method!r}")
    _checks.positive_int("chunk_size", chunk_size)


def linear_attention(
    q,
    k,
    v,
    *,
    feature_map: str | Callable = "elu",
    method: str = "recurrent",
    causal: bool = True,
    normalize: bool = True,
    chunk_size: int = 64,
    scan_method: str = "auto",
):
    """Linear attention ``y_t = φ(q_t)ᵀ S_t / φ(q_t)ᵀ z_t`` computed by the SSM recurrence.

    Parameters
    ----------
    q, k : Array, shape ``(*batch, t, h, n)``
    v : Array, shape ``(*batch, t, h, p)``
    feature_map : {"elu", "identity"} or callable
        ``φ``, applied to ``q`` and ``k`` along the last axis (a callable may change ``n``).
    method : {"recurrent", "chunked", "quadratic"}
        All give the same result up to rounding.
    causal : bool
        Sum over ``s <= t`` (default) or over all ``s``.
    normalize : bool
        Divide by ``φ(q_t)ᵀ z_t`` (default); ``False`` returns the numerator only.
    chunk_size : int
        Chunk length for ``"chunked"``.
    scan_method : str
        ``method`` of :func:`linear_recurrence` for ``"recurrent"`` and ``"chunked"``.

    Returns
    -------
    Array, shape ``(*batch, t, h, p)``

    Examples
    --------
    >>> import jax
    >>> q, k, v = jax.random.normal(jax.random.key(0), (3, 8, 2, 4))
    >>> a = linear_attention(q, k, v)
    >>> b = linear_attention(q, k, v, method="quadratic")
    >>> bool(jax.numpy.allclose(a, b, atol=1e-5))
    True
    """
    _check_method(method, chunk_size)
    q, k, v = _check_qkv(q, k, v)
    if feature_map == "elu":
        phi = elu_feature_map
    elif feature_map == "identity":
        phi = lambda x: x  # noqa: E731
    elif callable(feature_map):
        phi = feature_map
    else:
        raise ValueError(
            f"feature_map must be 'elu', 'identity' or a callable, got {feature_map!r}"
        )
    return _linear_attention_core(
        phi(q), phi(k), v, method, causal, normalize, chunk_size, scan_method
    )


def init_favor_projection(key, num_features: int, dim: int, *, orthogonal: bool = True, dtype=None):
    """Random projection ``W`` (``(m, n)``) for FAVOR+ positive random features.

    Parameters
    ----------
    key : jax.random key
        Explicit randomness (the projection is a draw; fix the key to fix it).
    num_features : int
        ``m``, the number of random features.
    dim : int
        ``n``, the query/key size.
    orthogonal : bool
        Orthogonal random features: rows orthogonal within blocks of ``n`` (from the QR
        decomposition of Gaussian matrices) and rescaled by independent chi(``n``) norms, so
        each row is still marginally ``N(0, I)`` (lower variance than i.i.d. rows).
    dtype : dtype, optional
        Default float32 (float64 when x64 is enabled).

    Returns
    -------
    Array, shape ``(m, n)``
    """
    num_features = _checks.positive_int("num_features", num_features)
    dim = _checks.positive_int("dim", dim)
    dtype = dtype or jnp.zeros(()).dtype
    if not orthogonal:
        return jax.random.normal(key, (num_features, dim), dtype)
    num_blocks = -(-num_features // dim)
    block_key, norm_key = jax.random.split(key)
    gaussian = jax.random.normal(block_key, (num_blocks, dim, dim), dtype)
    q, r = jnp.linalg.qr(gaussian)  # (blocks, n, n), orthonormal columns
    # Signs of diag(R) make Q Haar-distributed (without them the rows are biased).
    q = q * jnp.sign(jnp.diagonal(r, axis1=-2, axis2=-1))[..., None, :]
    rows = jnp.swapaxes(q, -1, -2).reshape(num_blocks * dim, dim)[:num_features]
    norms = jnp.linalg.norm(jax.random.normal(norm_key, (num_features, dim), dtype), axis=-1)
    return rows * norms[:, None]


def favor_features(x, projection, *, is_query: bool):
    """Positive random features ``φ(x) = m^{-1/2} exp(W x - |x|²/2 - c)``.

    The constant ``c`` stabilises the exponent and cancels in normalised attention: for
    queries the maximum over features of each row, for keys the maximum over time and
    features (one constant per head, so the ratio is unchanged). It carries no gradient.

    Parameters
    ----------
    x : Array, shape ``(*batch, t, h, n)``
        Queries or keys, already scaled (``n^{-1/4}`` each for softmax's ``1/sqrt(n)``).
    projection : Array, shape ``(m, n)`` or ``(h, m, n)``
    is_query : bool

    Returns
    -------
    Array, shape ``(*batch, t, h, m)``
    """
    projection = jnp.asarray(projection, x.dtype)
    if projection.ndim == 2:
        wx = jnp.einsum("...thn,mn->...thm", x, projection)
    else:
        wx = jnp.einsum("...thn,hmn->...thm", x, projection)
    exponent = wx - 0.5 * jnp.sum(x * x, axis=-1, keepdims=True)
    if is_query:
        stab = jnp.max(exponent, axis=-1, keepdims=True)
    else:
        stab = jnp.max(exponent, axis=(-3, -1), keepdims=True)
    stab = jax.lax.stop_gradient(stab)
    return jnp.exp(exponent - stab) / math.sqrt(projection.shape[-2])


def favor_attention(
    q,
    k,
    v,
    *,
    key=None,
    projection=None,
    num_features: int = 64,
    orthogonal: bool = True,
    scale: float | None = None,
    method: str = "recurrent",
    causal: bool = True,
    chunk_size: int = 64,
    scan_method: str = "auto",
):
    """Performer (FAVOR+) attention: linear attention that approximates softmax attention.

    Parameters
    ----------
    q, k : Array, shape ``(*batch, t, h, n)``
    v : Array, shape ``(*batch, t, h, p)``
    key : jax.random key, optional
        Draws the projection (``init_favor_projection(key, num_features, n)``) when
        ``projection`` is not given. One of ``key`` or ``projection`` is required.
    projection : Array, shape ``(m, n)`` or ``(h, m, n)``, optional
    num_features : int
        ``m`` when drawing the projection.
    orthogonal : bool
        Orthogonal random features when drawing.
    scale : float, optional
        Softmax temperature, default ``1 / sqrt(n)``.
    method, causal, chunk_size, scan_method
        As in :func:`linear_attention`.

    Returns
    -------
    Array, shape ``(*batch, t, h, p)``
    """
    _check_method(method, chunk_size)
    q, k, v = _check_qkv(q, k, v)
    if projection is None:
        if key is None:
            raise ValueError("favor_attention needs a random `key` or a fixed `projection`")
        projection = init_favor_projection(
            key, num_features, q.shape[-1], orthogonal=orthogonal, dtype=q.dtype
        )
    projection = _checks.as_float("projection", projection)
    if projection.shape[-1] != q.shape[-1] or projection.ndim not in (2, 3):
        raise ValueError(
            f"projection must have shape (m, n) or (h, m, n) with n = {q.shape[-1]}; "
            f"got {projection.shape}"
        )
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    root = math.sqrt(scale)
    phi_q = favor_features(q * root, projection, is_query=True)
    phi_k = favor_features(k * root, projection, is_query=False)
    return _linear_attention_core(phi_q, phi_k, v, method, causal, True, chunk_size, scan_method)
