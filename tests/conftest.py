"""Shared test helpers. Float64 is switched on locally (never at import)."""

from __future__ import annotations

import contextlib

import jax
import numpy as np
import pytest


@contextlib.contextmanager
def maybe_x64(dtype):
    """Enable float64 inside the block when ``dtype`` is a 64-bit (or complex128) type."""
    if np.dtype(dtype) in (np.float64, np.complex128):
        with jax.enable_x64(True):
            yield
    else:
        yield


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def gpu_available() -> bool:
    return any(d.platform == "gpu" for d in jax.devices())


# Every GPU test carries ``@pytest.mark.gpu`` (``pytest -m gpu`` selects them all); the hook
# below skips them on a machine without a GPU. ``requires_gpu`` is the same marker.
requires_gpu = pytest.mark.gpu


def pytest_collection_modifyitems(config, items):
    gpu_items = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu_items or gpu_available():
        return
    skip = pytest.mark.skip(reason="needs a GPU (pytest -m gpu through the device tool)")
    for item in gpu_items:
        item.add_marker(skip)


@pytest.fixture(autouse=True)
def _no_cli_compile_cache(monkeypatch):
    """The CLI turns JAX's persistent compilation cache on by default (a global setting of the
    process): tests that call ``bayes_ssm.cli.main`` in-process must not, unless they ask."""
    monkeypatch.setenv("BAYES_SSM_COMPILE_CACHE", "off")


@pytest.fixture(scope="session")
def level_fit():
    """A local-level fit on weekly data (SVI, 300 steps, 100 draws)."""
    from robust_helpers import series

    import bayes_ssm as bs
    from bayes_ssm.models import StructuralTS

    return bs.fit_svi(StructuralTS(), series(), key=0, steps=300, num_samples=100, progress=False)
