"""Run-time checks that a Pallas GPU kernel compiles and computes the right numbers here.

``method="auto"`` picks a Pallas kernel only when :func:`fast_path_works` says so. The first
call per kernel and process compiles a small instance, runs it and compares it with the
pure-JAX path; if the kernel cannot be built (a JAX without the private Triton hook, a JAX
that dropped the Triton lowering, a compiler error) or disagrees, ``auto`` falls back to the
associative scan and one :class:`RuntimeWarning` says why. Later calls reuse the verdict.
"""

from __future__ import annotations

import concurrent.futures
import warnings
from collections.abc import Callable

import numpy as np

__all__ = ["fast_path_works", "reset_fast_path_checks"]

_VERDICTS: dict[str, bool] = {}


def fast_path_works(
    name: str, check: Callable[[], tuple[np.ndarray, np.ndarray]], tol: float = 1e-3
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
        reason = "" if ok else "its result differs from the associative scan"
    except Exception as err:  # any failure to build or run the kernel means: do not use it
        ok, reason = False, f"{type(err).__name__}: {str(err)[:200]}"
    if not ok:
        warnings.warn(
            f"bayes_ssm: the Pallas kernel {name!r} does not work here ({reason}); "
            "method='auto' falls back to lax.associative_scan",
            RuntimeWarning,
            stacklevel=3,
        )
    _VERDICTS[name] = ok
    return ok


def reset_fast_path_checks() -> None:
    """Forget every verdict (tests)."""
    _VERDICTS.clear()
