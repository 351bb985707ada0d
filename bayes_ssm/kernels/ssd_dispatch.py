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

__all__ = ["use_fused"]

_FALLBACK = "fused='auto' falls back to the XLA chunked form"


def _kernels_work() -> bool:
    """The run-time check: the fused form equals the XLA chunked form on a small problem.

    Without Pallas' Triton backend (:mod:`bayes_ssm.kernels.pallas_gpu`) nothing is tried; a
    kernel that fails to build or disagrees is not used (one warning each way, then the XLA
    chunked form; :mod:`bayes_ssm.kernels.fast_path`).
    """
    from bayes_ssm.kernels.fast_path import fast_path_unavailable, fast_path_works
    from bayes_ssm.kernels.pallas_gpu import MISSING_REASON, triton_pallas_available
    from bayes_ssm.kernels.ssd_algorithms import chunked_form

    if not triton_pallas_available():
        return fast_path_unavailable("ssd_fused", MISSING_REASON, _FALLBACK)

    def check():
        k = jax.random.split(jax.random.key(0), 4)
        x = jax.random.normal(k[0], (1, 100, 1, 2, 16))
        log_a = -jax.random.uniform(k[1], (1, 100, 1, 2), maxval=0.3)
        B, C = (jax.random.normal(kk, (1, 100, 1, 16)) for kk in k[2:])
        fused = lambda *a: ssd_fused.chunked_form_fused(*a, None, 32)[0]  # noqa: E731
        got = jax.jit(fused)(x, log_a, B, C)  # first:
        hi = lax.Precision.HIGHEST  # a kernel that does not build costs no reference
        slow = lambda *a: chunked_form(*a, None, 32, "auto", hi)[0]  # noqa: E731
        return got, jax.jit(slow)(x, log_a, B, C)

    return fast_path_works("ssd_fused", check, tol=2e-2, fallback=_FALLBACK)  # TF32 products


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
    return (jnp.dtype(dtype).name, size) in ssd_fused._FUSED_CONFIG and _kernels_work()
