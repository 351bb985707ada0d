"""The one place that imports Pallas' Triton GPU backend, so that its removal cannot break us.

JAX 0.11 deprecates the Triton lowering of ``pallas_call`` for Mosaic GPU. When a JAX release
drops ``jax.experimental.pallas.triton``, importing :mod:`bayes_ssm` must still work and every
``auto`` path must fall back to its pure-JAX form with one warning. So the kernels import
``plgpu`` from here: the real module when it exists, else a stand-in whose every attribute
raises :class:`ImportError` when *used* (at trace time, inside the run-time checks of
:mod:`bayes_ssm.kernels.fast_path`, which then fall back). :func:`triton_pallas_available`
says which; the ``auto`` dispatchers ask it before they try a kernel.
"""

from __future__ import annotations

__all__ = ["plgpu", "triton_pallas_available", "MISSING_REASON"]

MISSING_REASON = "this JAX has no Pallas Triton backend (jax.experimental.pallas.triton)"


class _MissingBackend:
    """Stands in for ``jax.experimental.pallas.triton`` in a JAX without it."""

    def __getattr__(self, name):
        def missing(*args, **kwargs):
            raise ImportError(f"plgpu.{name}: {MISSING_REASON}")

        return missing


try:
    from jax.experimental.pallas import triton as plgpu

    _AVAILABLE = True
except ImportError:  # pragma: no cover - a JAX without the Triton backend
    plgpu = _MissingBackend()
    _AVAILABLE = False


def triton_pallas_available() -> bool:
    """Whether this JAX has Pallas' Triton GPU backend (``jax.experimental.pallas.triton``)."""
    return _AVAILABLE
