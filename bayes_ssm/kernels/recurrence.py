"""The diagonal linear recurrence ``h_t = a_t * h_{t-1} + b_t``, computed three ways.

Every state-space layer in bayes_ssm reduces to this recurrence, elementwise over
channels (a diagonal transition). Three algorithms give the same numbers:

``sequential``
    One :func:`jax.lax.scan` over time: ``T`` dependent steps, ``O(T)`` work. Fastest on a
    CPU, where a step costs a few nanoseconds per channel; hopeless on a GPU for long series
    (each step is a kernel launch, about 18 us on an H100).

``associative``
    :func:`jax.lax.associative_scan` over the pairs ``(a_t, b_t)`` with the operator

    .. math:: (a_1, b_1) \\circ (a_2, b_2) = (a_1 a_2,\\; a_2 b_1 + b_2),

    which is associative, so the prefix "products" are computed in ``O(log T)`` depth
    (Blelloch). ``O(T)`` work with a larger constant; the GPU path for long series.

``chunked``
    The matmul form of Mamba-2's SSD: cut time into chunks of ``L`` steps. Inside a chunk
    the output is a masked matrix product ``h_local = M b`` with the lower-triangular
    decay matrix ``M[t, s] = prod_{k=s+1..t} a_k``, computed in log space by segment sums
    (never by dividing cumulative products, which overflows when decays are small). One
    short recurrence of length ``T / L`` then carries the state across chunk boundaries,
    and a last elementwise pass adds ``A[t] * h_{chunk start}``. Memory ``O(T L)`` per
    channel. Signs and zeros of real ``a`` are handled by a parity count and ``-inf`` log
    magnitudes; complex ``a`` uses the complex logarithm.

The slow, obviously correct twin is :func:`bayes_ssm.kernels.reference.linear_recurrence_ref`.

Dimension vocabulary: ``time`` is the recurrence axis (``axis``); axes before it are
``batch`` axes, axes after it are ``channel`` axes; all are elementwise.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["linear_recurrence", "choose_method", "Method", "DEFAULT_CHUNK_SIZE"]

Method = Literal["auto", "sequential", "associative", "chunked", "pallas"]
_METHODS = ("auto", "sequential", "associative", "chunked", "pallas")
DEFAULT_CHUNK_SIZE = 32
# Measured in benchmarks/README.md ("scan" tables): on a CPU, lax.scan beats the associative
# scan at every length we tried (2.8-9.5x); on an H100 the associative scan wins from T = 1,000
# (26x) up (600x at T = 1e5).
_GPU_SEQUENTIAL_MAX_T = 8
_CPU_UNROLL = 8
# The Pallas (Triton) single-pass kernel beat the associative scan at every length measured on
# the H100 from T = 2^14 (1.34x) to 2^20 (2.34x); below 2^14 it has not been timed.
_GPU_PALLAS_MIN_T = 16_384


def choose_method(num_steps: int, backend: str | None = None, dtype=None) -> str:
    """The algorithm that ``method="auto"`` runs for a series of ``num_steps`` steps.

    The rule follows the measurements recorded in ``benchmarks/README.md``:

    * CPU: ``"sequential"`` (``lax.scan`` unrolled 8 steps) at every length: a CPU step costs
      nanoseconds, and the associative scan does about twice the memory traffic.
    * GPU with a real float32 / float64 (or bfloat16 / float16, scanned in float32) ``dtype``
      and ``num_steps >= 16384``: ``"pallas"``, the single-pass Triton kernel (1.3-2.3x
      faster than ``"associative"`` on an H100; bfloat16 1.7-1.8x on an H200 at T = 2^20,
      where the bfloat16 associative scan also rounds every step), provided it compiles and
      agrees with ``"associative"`` on a small problem here (checked once per process,
      :mod:`bayes_ssm.kernels.fast_path`; else a warning and ``"associative"``).
    * GPU / TPU otherwise: ``"sequential"`` only for ``num_steps <= 8``; else ``"associative"``,
      whose ``O(log T)`` depth avoids one dependent step per time point (H100, D = 256:
      ``lax.scan`` costs ~2.2 us a step, so already at T = 1,000 it is 26x slower).

    Parameters
    ----------
    num_steps : int
        Length of the time axis.
    backend : str, optional
        ``"cpu"``, ``"gpu"`` or ``"tpu"``; defaults to :func:`jax.default_backend`.
    dtype : dtype, optional
        The computation's dtype (``"pallas"`` is only chosen for real floating dtypes;
        bfloat16 / float16 are scanned in float32).

    Returns
    -------
    str
        ``"sequential"``, ``"associative"`` or ``"pallas"``.
    """
    backend = backend or jax.default_backend()
    if backend == "cpu" or num_steps <= _GPU_SEQUENTIAL_MAX_T:
        return "sequential"
    if dtype is not None and num_steps >= _GPU_PALLAS_MIN_T:
        from bayes_ssm.kernels.recurrence_pallas import pallas_supported
        from bayes_ssm.kernels.tile_scan import triton_scan_available

        if backend == "gpu" and not triton_scan_available():  # one warning, then associative
            from bayes_ssm.kernels.fast_path import fast_path_unavailable

            fast_path_unavailable("linear_recurrence_pallas", "no Triton scan hook in this JAX")
        elif pallas_supported(dtype, backend) and _pallas_works(dtype):
            return "pallas"
    return "associative"


def _pallas_works(dtype) -> bool:
    """The Pallas kernel compiles and agrees with ``associative`` here (checked once)."""
    from bayes_ssm.kernels.fast_path import fast_path_works
    from bayes_ssm.kernels.recurrence_pallas import linear_recurrence_pallas

    narrow = jnp.dtype(dtype).itemsize < 4  # bfloat16 / float16 storage, float32 scans

    def check():
        rng = np.random.default_rng(0)
        a = jnp.asarray(rng.uniform(0.5, 1.0, (300, 40)), dtype)  # several chunks and blocks
        b = jnp.asarray(rng.normal(size=(300, 40)), dtype)
        ref_dtype = jnp.float32 if narrow else dtype  # the reference scans in float32 too
        ref = _associative(a.astype(ref_dtype), b.astype(ref_dtype), jnp.zeros(40, ref_dtype))
        return linear_recurrence_pallas(a, b), ref

    name = f"linear_recurrence_pallas[{np.dtype(dtype).name}]"
    return fast_path_works(name, check, tol=2e-2 if narrow else 1e-3)


def _check_inputs(a, b, h0, axis, method, chunk_size):
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if chunk_size is not None and (not isinstance(chunk_size, int | np.integer) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    a = jnp.asarray(a)
    b = jnp.asarray(b)
    for name, x in (("a", a), ("b", b)):
        if not (
            jnp.issubdtype(x.dtype, jnp.floating) or jnp.issubdtype(x.dtype, jnp.complexfloating)
        ):
            raise ValueError(
                f"{name} must have a floating or complex dtype, got {x.dtype} (shape {x.shape}); "
                f"cast it, e.g. {name}.astype(jnp.float32)"
            )
    if b.ndim == 0:
        raise ValueError("b must have a time axis; got a scalar")
    try:
        shape = jnp.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(
            f"a and b must broadcast to one shape; got a.shape={a.shape}, b.shape={b.shape}"
        ) from None
    ndim = len(shape)
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis={axis} is out of range for inputs of shape {shape}")
    axis = axis % ndim
    if shape[axis] == 0:
        raise ValueError(f"the time axis (axis={axis}) of a{a.shape} / b{b.shape} is empty")
    dtype = jnp.result_type(a.dtype, b.dtype)
    if h0 is not None:
        h0 = jnp.asarray(h0)
        if not (
            jnp.issubdtype(h0.dtype, jnp.floating) or jnp.issubdtype(h0.dtype, jnp.complexfloating)
        ):
            raise ValueError(f"h0 must have a floating or complex dtype, got {h0.dtype}")
        state_shape = shape[:axis] + shape[axis + 1 :]
        try:
            if jnp.broadcast_shapes(h0.shape, state_shape) != state_shape:
                raise ValueError
        except ValueError:
            raise ValueError(
                f"h0 must broadcast to the state shape {state_shape} (the inputs' shape {shape} "
                f"without the time axis {axis}); got h0.shape={h0.shape}"
            ) from None
        dtype = jnp.result_type(dtype, h0.dtype)
    return a, b, h0, axis, shape, dtype


def linear_recurrence(
    a,
    b,
    h0=None,
    *,
    method: Method = "auto",
    chunk_size: int | None = None,
    reverse: bool = False,
    axis: int = -2,
):
    """Compute ``h_t = a_t * h_{t-1} + b_t`` for every step ``t`` along ``axis``.

    Parameters
    ----------
    a : Array, shape ``(*batch, time, *channel)`` or broadcastable to ``b``
        Per-step, per-channel decay (the diagonal of the transition). Real or complex.
    b : Array, shape ``(*batch, time, *channel)``
        Per-step input.
    h0 : Array, shape ``(*batch, *channel)``, optional
        State before the first step (after the last one when ``reverse``); zero by default.
    method : {"auto", "sequential", "associative", "chunked", "pallas"}
        Algorithm; all give the same result up to rounding. ``"auto"`` follows
        :func:`choose_method`. ``"pallas"`` is the single-pass GPU kernel of
        :mod:`bayes_ssm.kernels.recurrence_pallas` (real floating dtypes; on a CPU it runs
        in Pallas' slow interpreter, for testing).
    chunk_size : int, optional
        Chunk length for ``"chunked"`` (default 32). Need not divide the length.
    reverse : bool
        Run from the last step to the first: ``h_t = a_t * h_{t+1} + b_t``, with ``h0``
        the state after the last step. For bidirectional (non-causal) layers.
    axis : int
        The time axis (default ``-2``: ``(..., time, channel)``). Use ``axis=-1`` for a
        plain ``(time,)`` series.

    Returns
    -------
    Array, shape ``broadcast(a, b).shape``
        All states ``h_1 .. h_T``, dtype the promotion of ``a``, ``b`` and ``h0``.

    Raises
    ------
    ValueError
        Shapes that do not broadcast, an empty time axis, integer or boolean dtypes, an
        unknown method or a ``chunk_size < 1``. Checks are on static shapes and dtypes, so
        they also run under :func:`jax.jit`.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from bayes_ssm.kernels import linear_recurrence
    >>> linear_recurrence(jnp.full(4, 0.5), jnp.ones(4), axis=-1)
    Array([1.   , 1.5  , 1.75 , 1.875], dtype=float32)
    """
    a, b, h0, axis, shape, dtype = _check_inputs(a, b, h0, axis, method, chunk_size)
    num_steps = shape[axis]
    if method == "auto":
        method = choose_method(num_steps, dtype=dtype)
    # Work with time first: (time, *rest), rest = batch axes then channel axes.
    a = jnp.moveaxis(jnp.broadcast_to(a, shape).astype(dtype), axis, 0)
    b = jnp.moveaxis(jnp.broadcast_to(b, shape).astype(dtype), axis, 0)
    state_shape = b.shape[1:]
    h0 = jnp.zeros(state_shape, dtype) if h0 is None else jnp.broadcast_to(h0, state_shape)
    h0 = h0.astype(dtype)
    if method == "pallas":
        return jnp.moveaxis(_pallas(a, b, h0, dtype, chunk_size, reverse), 0, axis)
    if reverse:
        a, b = a[::-1], b[::-1]
    if method == "sequential":
        h = _sequential(a, b, h0)
    elif method == "associative":
        h = _associative(a, b, h0)
    else:
        h = _chunked(a, b, h0, chunk_size or DEFAULT_CHUNK_SIZE)
    if reverse:
        h = h[::-1]
    return jnp.moveaxis(h, 0, axis)


def _pallas(a, b, h0, dtype, chunk_size, reverse):
    from bayes_ssm.kernels.recurrence_pallas import linear_recurrence_pallas

    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(
            f"method='pallas' supports float32, float64, bfloat16 and float16; got {dtype}"
        )
    num_steps = a.shape[0]  # (time, *rest) -> (time, channel): a free reshape
    h = linear_recurrence_pallas(
        a.reshape(num_steps, -1),
        b.reshape(num_steps, -1),
        h0.reshape(-1),
        reverse=reverse,
        chunk_size=chunk_size,
        interpret=jax.default_backend() != "gpu",
    )
    return h.reshape(b.shape)


def _sequential(a, b, h0):
    def step(h, ab):
        a_t, b_t = ab
        h = a_t * h + b_t
        return h, h

    unroll = min(_CPU_UNROLL, a.shape[0])
    _, h = lax.scan(step, h0, (a, b), unroll=unroll)
    return h


def _combine(left, right):
    """(a1, b1) ∘ (a2, b2) = (a1 a2, a2 b1 + b2): apply ``left`` first, then ``right``."""
    a1, b1 = left
    a2, b2 = right
    return a1 * a2, a2 * b1 + b2


def _associative(a, b, h0):
    # Fold the initial state into the first input: h_1 = a_1 h0 + b_1.
    b = b.at[0].add(a[0] * h0)
    _, h = lax.associative_scan(_combine, (a, b), axis=0)
    return h


def _segment_sum(x):
    """``out[..., t, s] = sum_{k=s+1..t} x[..., k]`` for ``s <= t``, ``-inf`` above the diagonal.

    ``x`` has shape ``(..., l)``, the result ``(..., l, l)``. Computed by a masked cumulative sum
    (no subtraction of cumulative sums), as Mamba-2's ``segsum``: exact for ``-inf`` entries and
    free of cancellation, at ``O(l^2)`` cumulative-sum work. Used by the SSD kernels.
    """
    length = x.shape[-1]
    strictly_lower = jnp.tril(jnp.ones((length, length), bool), k=-1)
    lower = jnp.tril(jnp.ones((length, length), bool), k=0)
    xx = jnp.where(strictly_lower, x[..., :, None], 0)  # [..., k, s]: x_k where k > s
    seg = jnp.cumsum(xx, axis=-2)  # [..., t, s] = sum_{s < k <= t} x_k
    return jnp.where(lower, seg, -jnp.inf)


def _decay_matrix(a_chunks):
    """``M[..., t, s] = prod_{k=s+1..t} a[..., k]`` (lower triangular), in log space.

    ``a_chunks`` has shape ``(..., l)``; the result ``(..., l, l)``. With ``c = cumsum(log a)``
    the log of an entry is ``c_t - c_s``: a difference of two sums over one short chunk, so the
    cancellation error is bounded by ``l * max|log a| * eps`` and never compounds across chunks.
    Exact zeros and (for real ``a``) negative signs are counted separately with the same
    cumulative-sum trick (counts are small integers, so their differences are exact): an entry
    whose segment holds a zero is 0, and the sign is the parity of the negatives. Complex ``a``
    uses the complex logarithm (its phase carries the sign). The argument of ``exp`` is masked
    *before* the exponential, so neither values nor gradients meet ``inf``.

    Gradients with respect to an ``a_k`` that is exactly 0 are not propagated through the
    segments it zeroes (use ``"sequential"`` or ``"associative"`` if that case matters).
    """
    length = a_chunks.shape[-1]
    lower = jnp.tril(jnp.ones((length, length), bool))
    is_zero = a_chunks == 0
    safe = jnp.where(is_zero, jnp.ones_like(a_chunks), a_chunks)
    is_complex = jnp.issubdtype(a_chunks.dtype, jnp.complexfloating)
    log_a = jnp.log(safe) if is_complex else jnp.log(jnp.abs(safe))

    def pairwise_difference(x):  # [..., t, s] = sum_{k=s+1..t} x_k  (for s <= t)
        cum = jnp.cumsum(x, axis=-1)
        return cum[..., :, None] - cum[..., None, :]

    log_m = jnp.where(lower, pairwise_difference(log_a), -jnp.inf)
    decay = jnp.exp(log_m)
    zeros_in_segment = pairwise_difference(is_zero.astype(jnp.int32))
    decay = jnp.where(zeros_in_segment > 0, jnp.zeros_like(decay), decay)
    if not is_complex:
        negatives = pairwise_difference((a_chunks < 0).astype(jnp.int32))
        decay = jnp.where(negatives % 2 == 1, -decay, decay)
    return decay


def _chunked(a, b, h0, chunk_size):
    num_steps = a.shape[0]
    state_shape = a.shape[1:]
    length = min(chunk_size, num_steps)
    num_chunks = -(-num_steps // length)
    pad = num_chunks * length - num_steps
    if pad:
        # Padding at the end never reaches earlier outputs: decay 1, input 0.
        a = jnp.concatenate([a, jnp.ones((pad, *state_shape), a.dtype)])
        b = jnp.concatenate([b, jnp.zeros((pad, *state_shape), b.dtype)])
    # (chunk, L, *rest) -> (*rest, chunk, L): the decay matrix wants the step axis last.
    a_c = jnp.moveaxis(a.reshape(num_chunks, length, *state_shape), (0, 1), (-2, -1))
    b_c = jnp.moveaxis(b.reshape(num_chunks, length, *state_shape), (0, 1), (-2, -1))
    decay = _decay_matrix(a_c)  # (*rest, chunk, L, L): decay[..., t, s]
    # 1. Inside each chunk, from a zero state: h_local[t] = sum_s M[t, s] b[s].
    h_local = jnp.einsum("...ts,...s->...t", decay, b_c)
    # 2. Decay from the chunk start to each step: A[t] = prod_{k=0..t} a_k = a_0 * M[t, 0].
    from_start = decay[..., :, 0] * a_c[..., :1]
    # 3. Carry the state across chunk boundaries: one recurrence of length num_chunks.
    chunk_decay = jnp.moveaxis(from_start[..., -1], -1, 0)  # (chunk, *rest)
    chunk_input = jnp.moveaxis(h_local[..., -1], -1, 0)
    across = _sequential if choose_method(num_chunks) == "sequential" else _associative
    chunk_end = across(chunk_decay, chunk_input, h0)  # state after each chunk
    chunk_start = jnp.concatenate([h0[None], chunk_end[:-1]])  # state before each chunk
    # 4. Add the carried-in state: h[t] = h_local[t] + A[t] * h_start.
    h = h_local + from_start * jnp.moveaxis(chunk_start, 0, -1)[..., None]
    h = jnp.moveaxis(h, (-2, -1), (0, 1)).reshape(num_chunks * length, *state_shape)
    return h[:num_steps]
