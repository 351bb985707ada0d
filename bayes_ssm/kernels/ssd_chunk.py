"""``chunk_size="auto"`` for the chunked SSD: a small table of measured chunk lengths.

The chunk length ``l`` trades the quadratic in-chunk work (``O(T l)``, matrix products) against
the number of chunk states carried (``T / l`` states of ``(h, p, n)``). Which is faster
depends on the device, the dtype and the state size, so the GPU rule is a table read off
sweeps on the lent H200 (``benchmarks/ssd_chunk_sweep.py``, forward + backward time, tables in
``benchmarks/README.md``). On a CPU (and any backend not in the table) the default is
:data:`DEFAULT_SSD_CHUNK`, unchanged from before ``"auto"`` existed.
"""

from __future__ import annotations

import jax
import numpy as np

__all__ = ["choose_ssd_chunk", "DEFAULT_SSD_CHUNK"]

DEFAULT_SSD_CHUNK = 64

# GPU: (dtype, state size) -> chunk length, by forward + backward time on an H200 (jax 0.11.2,
# 2026-12-04; benchmarks/README.md, "Kernels on the H200" and "SSD per shape").
# n <= 64, from b2 L4096 H16 P64 N64: float32 64 and 128 within noise (1.32 / 1.35 ms; 32: 1.80,
# 256: 1.58), bfloat16 64 best (1.46; 32: 1.55, 128: 1.49, 256: 1.49); H100 sweeps agreed.
# n > 64, from b8 L4096 H32 P64 N128: 256 in both dtypes (float32 5.73 ms; 128: 6.36-6.40,
# 64: 9.67; bfloat16 5.64; 64: 9.22-9.55). Forward alone is fastest at 32 (n = 64) and 256
# (n = 128). Other dtypes use the default.
_GPU_CHUNK = {("float32", "small"): 128, ("bfloat16", "small"): 64,
              ("float32", "large"): 256, ("bfloat16", "large"): 256}  # fmt: skip
# States up to this size n count as "small" (the b2 shape, n = 64); larger (n = 128) as "large".
_SMALL_STATE = 64


def choose_ssd_chunk(
    num_steps: int, dtype, backend: str | None = None, *, state_size: int | None = None
) -> int:
    """The chunk length that ``chunk_size="auto"`` uses.

    Parameters
    ----------
    num_steps : int
        Length of the time axis ``t``.
    dtype : dtype
        The computation's dtype (of ``x``, ``B``, ``C``).
    backend : str, optional
        ``"cpu"``, ``"gpu"``, ``"tpu"``; defaults to :func:`jax.default_backend`.
    state_size : int, optional
        The state size ``n`` (of ``B``, ``C``); the GPU table has rows for ``n <= 64`` and
        larger states. Unknown: the ``n <= 64`` row.

    Returns
    -------
    int
        A power of two, at most the next power of two above ``num_steps``.
    """
    backend = backend or jax.default_backend()
    chunk = DEFAULT_SSD_CHUNK
    if backend == "gpu":
        size = "small" if state_size is None or state_size <= _SMALL_STATE else "large"
        chunk = _GPU_CHUNK.get((np.dtype(dtype).name, size), DEFAULT_SSD_CHUNK)
    return int(min(chunk, 1 << max(0, int(num_steps) - 1).bit_length()))
