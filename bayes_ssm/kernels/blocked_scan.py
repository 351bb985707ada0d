"""Blocked associative scan: sequential inside blocks, recursive across them.

:func:`jax.lax.associative_scan` unrolls about ``2 log2(T)`` levels of the combine function into
the compiled program. For a cheap combine (a scalar product) that costs nothing; for the Kalman
filter's combine (an 8x8 inverse and a dozen small matrix products per level) it is most of the
compile time: ~40 copies at ``T = 1e6``, 5-16 s to compile, and twice that with a gradient.

:func:`blocked_associative_scan` computes the same inclusive scan with three compiled copies of
the combine function, whatever ``T``:

1. split the ``T`` elements into ``ceil(T / B)`` blocks of ``B`` and scan every block
   *sequentially*, all blocks at once (one :func:`jax.lax.scan` of ``B - 1`` steps whose body
   is the combine function batched over the blocks);
2. scan the ``T / B`` block totals by recursive doubling (Hillis-Steele): ``log2(T / B)`` steps
   of one loop whose body composes every total with the one ``2**k`` places before it (fixed
   shapes, so one compiled body; ``(T / B) log2(T / B)`` combines, cheap on the short array);
3. fold each block's exclusive prefix into its local results with one batched combine.

The work is about ``2 T + (T / B) log2(T / B)`` combines (Blelloch's scan, which
:func:`jax.lax.associative_scan` implements, does ``2 T``) and the depth is
``B - 1 + log2(T / B)`` loop steps instead of ``2 log2 T`` unrolled levels. Measured for the
Kalman filter (``benchmarks/README.md``): compile time falls from 5-35 s to 1-4 s, and the
run time on an H100 at ``T = 1e6`` stays within ~1.3x of the unrolled scan. The tail of the last
block is padded by repeating the last element (a valid element, so no NaN reaches the
gradient) and cut off.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax

__all__ = [
    "blocked_associative_scan",
    "default_block_size",
    "power_of_two_root",
    "recursive_doubling_scan",
]


def default_block_size(num_steps: int) -> int:
    """Block size ``B``: the power of two nearest ``num_steps ** (1/4)``, at least 8.

    ``B - 1`` sequential steps inside the blocks and ``log2(T / B)`` doubling steps across them
    stay small together (H100, Kalman filter at ``T = 1e6``: ``B = 32`` ran fastest of 8-64).

    Parameters
    ----------
    num_steps : int

    Returns
    -------
    int
    """
    return power_of_two_root(num_steps, 4)


def power_of_two_root(num_steps: int, root: int, minimum: int = 8) -> int:
    """The power of two nearest ``num_steps ** (1 / root)``, at least ``minimum``."""
    return max(minimum, 2 ** round(math.log2(max(num_steps, 1)) / root))


def blocked_associative_scan(
    fn: Callable, elems, *, reverse: bool = False, block_size: int | None = None
):
    """Inclusive scan of ``elems`` along axis 0 with the associative ``fn``; blocked.

    Same contract and results (up to rounding) as ``jax.lax.associative_scan(fn, elems,
    reverse=reverse)``: ``fn(earlier, later)`` takes two pytrees of arrays with one leading
    batch axis each and returns their composition, also batched.

    Parameters
    ----------
    fn : callable
        Associative, batched combine function.
    elems : pytree of Array, each with leading axis ``(time, ...)``
        Elements to scan.
    reverse : bool
        Scan from the end (as :func:`jax.lax.associative_scan`'s ``reverse``).
    block_size : int, optional
        Elements per sequential block (>= 2); default :func:`default_block_size`.

    Returns
    -------
    pytree of Array
        Inclusive prefixes, same structure and shapes as ``elems``.
    """
    leaves, treedef = jax.tree_util.tree_flatten(elems)
    if not leaves:
        raise ValueError("blocked_associative_scan: elems has no arrays")
    num_steps = leaves[0].shape[0]
    if any(leaf.shape[:1] != (num_steps,) for leaf in leaves):
        raise ValueError("blocked_associative_scan: every array needs the same leading length")
    block = default_block_size(num_steps) if block_size is None else int(block_size)
    if block < 2:
        raise ValueError(f"blocked_associative_scan: block_size must be >= 2, got {block}")

    def combine(a, b):
        out = fn(jax.tree_util.tree_unflatten(treedef, a), jax.tree_util.tree_unflatten(treedef, b))
        return jax.tree_util.tree_leaves(out)

    if reverse:
        leaves = [jnp.flip(x, 0) for x in leaves]
    out = _scan(combine, leaves, block)
    if reverse:
        out = [jnp.flip(x, 0) for x in out]
    return jax.tree_util.tree_unflatten(treedef, out)


def _sequential(combine, leaves):
    """Inclusive scan along axis 0 by a :func:`jax.lax.scan`; the other axes are batch."""
    if leaves[0].shape[0] == 1:
        return leaves

    def step(carry, x):
        new = combine(carry, x)
        return new, new

    first = [x[0] for x in leaves]
    _, rest = lax.scan(step, first, [x[1:] for x in leaves])
    return [jnp.concatenate([f[None], r]) for f, r in zip(first, rest, strict=True)]


def recursive_doubling_scan(fn: Callable, elems):
    """Inclusive scan of ``elems`` along axis 0 by recursive doubling (see :func:`_doubling`).

    ``fn`` as in :func:`blocked_associative_scan`. ``n log2 n`` combines in one compiled loop
    body: for short arrays of expensive elements (block totals).

    Parameters
    ----------
    fn : callable
    elems : pytree of Array, each with leading axis ``(n, ...)``

    Returns
    -------
    pytree of Array
    """
    leaves, treedef = jax.tree_util.tree_flatten(elems)

    def combine(a, b):
        out = fn(jax.tree_util.tree_unflatten(treedef, a), jax.tree_util.tree_unflatten(treedef, b))
        return jax.tree_util.tree_leaves(out)

    return jax.tree_util.tree_unflatten(treedef, _doubling(combine, leaves))


def _doubling(combine, leaves):
    """Inclusive scan by recursive doubling (Hillis-Steele) in one loop of ``ceil(log2 n)`` steps.

    Step ``k`` composes every element with the one ``2**k`` before it; the shapes never change,
    so the loop body (one batched combine) is compiled once. It does ``n log2 n`` combines, which
    is cheap on the short array of block totals.
    """
    num_steps = leaves[0].shape[0]
    index = jnp.arange(num_steps)

    def body(k, xs):
        shift = jnp.left_shift(1, k)
        earlier = [jnp.roll(x, shift, axis=0) for x in xs]  # x[i - shift] (wrapped for i < shift)
        new = combine(earlier, xs)
        keep = index < shift
        return [
            jnp.where(keep.reshape(-1, *(1,) * (x.ndim - 1)), x, nw)
            for x, nw in zip(xs, new, strict=True)
        ]

    return lax.fori_loop(0, max(1, math.ceil(math.log2(num_steps))), body, leaves)


def _scan(combine, leaves, block):
    num_steps = leaves[0].shape[0]
    if num_steps <= block:
        return _sequential(combine, leaves)
    num_blocks = math.ceil(num_steps / block)
    pad = num_blocks * block - num_steps
    if pad:
        leaves = [jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)]) for x in leaves]
    # (blocks * block, ...) -> (block, blocks, ...): lax.scan runs over the block position.
    blocked = [jnp.swapaxes(x.reshape(num_blocks, block, *x.shape[1:]), 0, 1) for x in leaves]
    local = _sequential(combine, blocked)  # (block, blocks, ...)
    totals = [x[-1] for x in local]  # (blocks, ...)
    prefix = _doubling(combine, totals)  # inclusive prefixes of the block totals
    # Block j > 0 gets prefix[j - 1] folded in front of each of its local results.
    tail = [x[:, 1:] for x in local]
    head = [jnp.broadcast_to(p[:-1][None], t.shape) for p, t in zip(prefix, tail, strict=True)]
    folded = combine(
        [h.reshape(-1, *h.shape[2:]) for h in head], [t.reshape(-1, *t.shape[2:]) for t in tail]
    )
    folded = [f.reshape(t.shape) for f, t in zip(folded, tail, strict=True)]
    joined = [jnp.concatenate([x[:, :1], f], axis=1) for x, f in zip(local, folded, strict=True)]
    out = [jnp.swapaxes(x, 0, 1).reshape(num_blocks * block, *x.shape[2:]) for x in joined]
    return [x[:num_steps] for x in out]
