"""When ``ssd(fused="auto")`` runs the fused SSD kernels (:mod:`bayes_ssm.kernels.ssd_fused`).

On a GPU, for a supported shape in a (dtype, state size) row measured faster than the XLA
chunked form (``ssd_fused._FUSED_CONFIG``), once a run-time check passed: the fused form equals
the XLA form on a small problem (:mod:`bayes_ssm.kernels.fast_path`). Without Pallas' Triton
backend, or when the kernels fail to build or disagree, ``auto`` runs the XLA chunked form after
one warning. On a CPU: never (the XLA form, bit for bit as before).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from bayes_ssm.kernels import ssd_fused
from bayes_ssm.kernels.ssd_fused import fused_shape_supported

__all__ = ["use_fused", "check_problem"]

_FALLBACK = "fused='auto' falls back to the XLA chunked form"


def check_problem(dtype, size: str, interpret: bool = False):
    """The run-time check's problem for the row ``(dtype, size)``: ``(fused, reference)`` outputs.

    ``x (1, 300, 1, 2, 16)`` and ``B, C`` with ``n = 16`` (``size="small"``) or 128
    (``"large"``) in ``dtype``, at the chunk length ``chunk_size="auto"`` takes on a GPU for that
    row, so the check compiles the tile and the step-2+3 form ``ssd`` will run; the reference is
    the XLA chunked form in float32 at ``HIGHEST`` precision on the same (rounded) values. Both
    are divided by the reference's largest magnitude.
    """
    from bayes_ssm.kernels.ssd_algorithms import chunked_form
    from bayes_ssm.kernels.ssd_chunk import choose_ssd_chunk

    n = 16 if size == "small" else 128
    chunk = choose_ssd_chunk(300, dtype, "gpu", state_size=n)
    k = jax.random.split(jax.random.key(0), 4)
    x = jax.random.normal(k[0], (1, 300, 1, 2, 16)).astype(dtype)
    log_a = -jax.random.uniform(k[1], (1, 300, 1, 2), maxval=0.3)
    B, C = (jax.random.normal(kk, (1, 300, 1, n)).astype(dtype) for kk in k[2:])
    fused = lambda *a: ssd_fused.chunked_form_fused(*a, None, chunk, interpret=interpret)[0]  # noqa: E731
    got = jax.jit(fused)(x, log_a, B, C)  # first: a kernel that does not build costs no reference
    wide = [v.astype(jnp.float32) for v in (x, log_a, B, C)]
    slow = lambda *a: chunked_form(*a, None, chunk, "auto", lax.Precision.HIGHEST)[0]  # noqa: E731
    want = jax.jit(slow)(*wide)
    scale = jnp.max(jnp.abs(want))  # compared relative to the largest output: bfloat16 outputs
    return got.astype(jnp.float32) / scale, want / scale  # round near 1e-2 of it, not of each


def _kernels_work(dtype, size: str) -> bool:
    """The run-time check for the row ``(dtype, size)`` (:func:`check_problem`), once a process.

    Without Pallas' Triton backend (:mod:`bayes_ssm.kernels.pallas_gpu`) nothing is tried; a
    kernel that fails to build or disagrees is not used (one warning each way, then the XLA
    chunked form; :mod:`bayes_ssm.kernels.fast_path`).
    """
    from bayes_ssm.kernels.fast_path import fast_path_unavailable, fast_path_works
    from bayes_ssm.kernels.pallas_gpu import MISSING_REASON, triton_pallas_available

    name = f"ssd_fused[{jnp.dtype(dtype).name},{size}]"
    if not triton_pallas_available():
        return fast_path_unavailable("ssd_fused", MISSING_REASON, _FALLBACK)
    check = lambda: check_problem(dtype, size)  # noqa: E731
    return fast_path_works(name, check, tol=2e-2, fallback=_FALLBACK)  # of the largest output


def use_fused(fused, dtype, chunk: int, head_dim: int, state: int) -> bool:
    """Whether ``ssd``'s chunked form runs the fused kernels.

    ``fused=True``: always (Pallas' interpreter off the GPU: slow, for tests), and the shape
    must be supported; ``False``: never; ``"auto"``: on a GPU, for a supported shape in a
    (dtype, state size) row measured faster, once the run-time check passed.
    """
    if fused not in (True, False, "auto"):
        raise ValueError(f"fused must be True, False or 'auto'; got {fused!r}")
    supported = fused_shape_supported(chunk, head_dim, state)
    if fused is True:
        if not supported:
            raise ValueError(
                "fused=True needs the chunk length, head size p and state size n to be powers "
                f"of two in [16, 128] (chunk may be larger); got chunk {chunk}, p {head_dim}, "
                f"n {state}"
            )
        return True
    if fused is False or not supported or jax.default_backend() != "gpu":
        return False
    size = "small" if state <= 64 else "large"
    return (jnp.dtype(dtype).name, size) in ssd_fused._FUSED_CONFIG and _kernels_work(dtype, size)
