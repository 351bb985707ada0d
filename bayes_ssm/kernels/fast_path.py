"""Run-time checks that a Pallas GPU kernel compiles and computes the right numbers here.

``method="auto"`` picks a Pallas kernel only when :func:`fast_path_works` says so. The first
call per kernel and process compiles a small instance, runs it and compares it with the
pure-JAX path; if the kernel cannot be built (a JAX without the private Triton hook, a JAX
that dropped the Triton lowering, a compiler error) or disagrees, ``auto`` falls back to the
associative scan (the SSD kernels: to the XLA chunked form) and one :class:`RuntimeWarning`
says why. Later calls reuse the verdict. :func:`fast_path_unavailable` is the same verdict
without a check, for a kernel that cannot even be tried (a JAX without the Triton backend or the
private hook, :mod:`bayes_ssm.kernels.pallas_gpu`).
"""

from __future__ import annotations

import concurrent.futures
import warnings
from collections.abc import Callable

import numpy as np

__all__ = ["fast_path_works", "fast_path_unavailable", "reset_fast_path_checks"]

_VERDICTS: dict[str, bool] = {}


_ASSOCIATIVE = "method='auto' falls back to lax.associative_scan"


def fast_path_works(
    name: str,
    check: Callable[[], tuple[np.ndarray, np.ndarray]],
    tol: float = 1e-3,
    fallback: str = _ASSOCIATIVE,
) -> bool:
    """Whether kernel ``name`` works here, by running ``check`` once per process.

    Parameters
    ----------
    name : str
        Cache key and the kernel's name in the warning.
    check : callable
        Returns ``(fast, reference)`` arrays for one small problem; raising counts as failure.
    tol : float
        ``rtol = atol`` of the comparison (default 1e-3; wider for bfloat16 outputs).
    fallback : str
        What ``auto`` does instead, for the warning.

    Returns
    -------
    bool
        True when ``check`` ran and ``fast`` matches ``reference`` (``rtol = atol = tol``).
    """
    if name in _VERDICTS:
        return _VERDICTS[name]
    try:
        # In a fresh thread: JAX's trace state is per thread, so the check runs eagerly even
        # when the caller is being traced under jit.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            fast, reference = pool.submit(
                lambda: tuple(np.asarray(x, np.float64) for x in check())
            ).result()
        ok = bool(np.allclose(fast, reference, rtol=tol, atol=tol))
        reason = "" if ok else "its result differs from the pure-JAX form"
    except Exception as err:  # any failure to build or run the kernel means: do not use it
        ok, reason = False, f"{type(err).__name__}: {str(err)[:200]}"
    if not ok:
        _warn(name, reason, fallback)
    _VERDICTS[name] = ok
    return ok


def fast_path_unavailable(name: str, reason: str, fallback: str = _ASSOCIATIVE) -> bool:
    """``False``, after one :class:`RuntimeWarning` per process and ``name``: ``auto`` cannot use
    kernel ``name`` here (``reason``) and does ``fallback`` instead."""
    key = f"{name} (unavailable)"
    if key not in _VERDICTS:
        _warn(name, reason, fallback)
        _VERDICTS[key] = False
    return False


def _warn(name, reason, fallback):
    warnings.warn(
        f"bayes_ssm: the Pallas kernel {name!r} does not work here ({reason}); {fallback}",
        RuntimeWarning,
        stacklevel=4,
    )


def reset_fast_path_checks() -> None:
    """Forget every verdict (tests)."""
    _VERDICTS.clear()
