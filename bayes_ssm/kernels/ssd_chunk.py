"""``chunk_size="auto"`` for the chunked SSD: a small table of measured best chunk lengths.

The chunk length ``l`` trades the quadratic in-chunk work (``O(T l)``, matrix products) against
the number of chunk states carried (``T / l`` states of ``(h, p, n)``). Which is faster
depends on the device, the dtype and the state size, so the GPU rule is a table read off a
sweep on the lent H200 (``benchmarks/ssd_chunk_sweep.py``, forward + backward time, tables in
``benchmarks/README.md``). On a CPU (and any backend not in the table) the default is
:data:`DEFAULT_SSD_CHUNK`, unchanged from before ``"auto"`` existed.
"""

from __future__ import annotations

import jax
import numpy as np

__all__ = ["choose_ssd_chunk", "DEFAULT_SSD_CHUNK"]

DEFAULT_SSD_CHUNK = 64

# GPU: (dtype, state size n at most) -> chunk length, first matching row wins. Measured on an
# H200, jax 0.11.2, at b2 L4096 H16 P64 N64 and b8 L4096 H32 P64 N128 (benchmarks/README.md,
# "Kernels on the H200"), forward + backward; earlier H100 sweeps agreed (float32 128,
# bfloat16 64).
_GPU_TABLE = (
    ("float32", 10**9, 128),
    ("bfloat16", 10**9, 64),
    ("float16", 10**9, 64),
    ("float64", 10**9, 64),
)


def choose_ssd_chunk(
    num_steps: int, state_size: int, dtype, backend: str | None = None
) -> int:  # fmt: skip
    """The chunk length that ``chunk_size="auto"`` uses.

    Parameters
    ----------
    num_steps : int
        Length of the time axis ``t``.
    state_size : int
        State size ``n`` of ``B`` and ``C``.
    dtype : dtype
        The computation's dtype (of ``x``, ``B``, ``C``).
    backend : str, optional
        ``"cpu"``, ``"gpu"``, ``"tpu"``; defaults to :func:`jax.default_backend`.

    Returns
    -------
    int
        A power of two, at most the next power of two above ``num_steps``.
    """
    backend = backend or jax.default_backend()
    chunk = DEFAULT_SSD_CHUNK
    if backend == "gpu":
        name = np.dtype(dtype).name
        for row_dtype, max_state, row_chunk in _GPU_TABLE:
            if row_dtype == name and state_size <= max_state:
                chunk = row_chunk
                break
    return int(min(chunk, 1 << max(0, int(num_steps) - 1).bit_length()))
