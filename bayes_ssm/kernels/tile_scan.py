"""An in-register scan of affine maps for Pallas kernels: Triton's ``tt.scan`` on a GPU.

The associative operator of ``h_t = a_t h_{t-1} + b_t``,

.. math:: (a_1, b_1) \\circ (a_2, b_2) = (a_1 a_2,\\; a_2 b_1 + b_2),

scanned along axis 0 of a register tile of any rank. It is a JAX primitive lowered to
Triton's scan through a private hook of JAX's Pallas Triton lowering (checked with jax 0.11.2
and 0.12); everywhere else (Pallas' interpreter, plain XLA) it is
:func:`jax.lax.associative_scan`. :func:`triton_scan_available` says whether the hook exists.
"""

from __future__ import annotations

from jax import lax

__all__ = ["combine", "tile_scan", "triton_scan_available"]


def combine(left, right):
    """(a1, b1) ∘ (a2, b2) = (a1 a2, a2 b1 + b2): apply ``left`` first, then ``right``."""
    a1, b1 = left
    a2, b2 = right
    return a1 * a2, a2 * b1 + b2


def _tile_scan_impl(a, b):
    return lax.associative_scan(combine, (a, b), axis=0)


try:  # jax.extend is the public home of Primitive; fall back for older versions.
    from jax.extend.core import Primitive as _Primitive
except ImportError:  # pragma: no cover
    from jax.core import Primitive as _Primitive

_tile_scan_p = _Primitive("bayes_ssm_tile_scan")
_tile_scan_p.multiple_results = True
_tile_scan_p.def_impl(lambda a, b: _tile_scan_impl(a, b))
_tile_scan_p.def_abstract_eval(lambda a, b: (a, b))


def _register_lowerings():
    from jax.interpreters import mlir

    mlir.register_lowering(_tile_scan_p, mlir.lower_fun(_tile_scan_impl, multiple_results=True))
    try:  # private JAX API (checked with jax 0.11.2 and 0.12): see triton_scan_available
        from jax._src.pallas.triton import lowering as triton_lowering

        scan_lowering = triton_lowering._associative_scan_lowering
    except (ImportError, AttributeError):  # pragma: no cover - a JAX without it
        return False

    @triton_lowering.register_lowering(_tile_scan_p)
    def _tile_scan_triton(ctx, a, b):
        # Triton's scan calls the combine region with (earlier, later), like combine; its
        # `reverse` flag is not used (wrong for non-commutative operators, triton#4362).
        return scan_lowering(combine, ctx, (a, b), (0,))

    return True


_TRITON_SCAN = _register_lowerings()


def triton_scan_available() -> bool:
    """Whether this JAX exposes the (private) Triton lowering hook that :func:`tile_scan` uses."""
    return _TRITON_SCAN


def tile_scan(a, b):
    """Inclusive scan of ``(a, b)`` along axis 0 of a tile ``(L, ...)``: ``(A_t, H_t)``.

    ``A_t = a_1 ... a_t`` and ``H_t`` the state reached at row ``t`` from a zero state.
    """
    return _tile_scan_p.bind(a, b)
