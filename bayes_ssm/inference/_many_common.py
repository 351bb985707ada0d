"""Helpers shared by the many-series drivers (private): device sharding of the series axis,
end-padding, failure records."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from bayes_ssm.inference import engine as _engine
from bayes_ssm.inference.fitting import _prepare

__all__ = [
    "FIT_ERRORS",
    "failure_text",
    "pad_end",
    "paddable",
    "series_sharding",
    "key_list",
    "split_groups",
    "stack_covariates",
]


def prepare_each(model, series, covariates, freq) -> dict:
    """``{id: (SeriesData, scales)}`` for every series (``covariates``: id -> covariates, or
    None); a series that fails validation raises a ValueError that names it."""
    covariates = covariates or {}
    prepared = {}
    for ident, y in series.items():
        try:
            prepared[ident] = _prepare(model, y, covariates.get(ident), freq)
        except ValueError as err:
            raise ValueError(f"series {ident!r}: {err}") from err
    return prepared


def split_groups(groups, size=None) -> list[list[int]]:
    """Each group (a list of series indices) cut into consecutive pieces of at most ``size``
    (None: the groups as they are)."""
    groups = [list(g) for g in groups]
    if size is None:
        return groups
    return [g[i : i + size] for g in groups for i in range(0, len(g), size)]


def series_sharding(devices):
    """``(sharding or None, device count)`` for the series axis of the vmapped program."""
    if devices is None:
        return None, 1
    message = f"devices must be 'auto', None or a list of jax devices; got {devices!r}"
    if isinstance(devices, str):
        if devices != "auto":
            raise ValueError(message)
        devices = jax.local_devices()
    try:
        devices = list(devices)
    except TypeError as err:
        raise ValueError(message) from err
    if not devices or not all(isinstance(d, jax.Device) for d in devices):
        raise ValueError(message)
    if len(devices) == 1:
        return None, 1
    mesh = jax.sharding.Mesh(np.array(devices), ("series",))
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("series")), len(devices)


def key_list(key) -> list[int]:
    """A key's raw data as a JSON-friendly list (for ``fit.info``)."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return np.asarray(key).ravel().tolist()


# Numerical failures of one series' fit; bad input still raises ValueError.
FIT_ERRORS = (FloatingPointError, np.linalg.LinAlgError)


def failure_text(err) -> str:
    return f"{type(err).__name__}: {err}"


def pad_end(y, length):
    """``y`` with NaN (missing) appended up to ``length`` steps."""
    return np.concatenate([y, np.full(length - y.shape[0], np.nan, y.dtype)])


def stack_covariates(datas, length):
    """The covariates of ``datas`` (``SeriesData`` each) as ``(row, length, covariate)``, each
    padded at its end with zeros (the padded steps have missing ``y``: they add nothing), or
    None when the series have none."""
    if datas[0].covariates is None:
        return None
    width = datas[0].covariates.shape[1]
    out = np.zeros((len(datas), length, width))
    for row, data in enumerate(datas):
        out[row, : data.num_steps] = data.covariates
    return out


def paddable(model, prepared) -> bool:
    """Whether series of other lengths can share one padded program: a Gaussian Kalman
    likelihood (missing steps add nothing) and latent sites whose shapes do not grow with the
    length."""
    if getattr(model, "likelihood", None) != "gaussian":
        return False
    by_length = sorted(prepared.values(), key=lambda p: p[0].num_steps)
    shapes = [
        _engine.latent_shapes(model, d.y, s, d.covariates) for d, s in (by_length[0], by_length[-1])
    ]
    return shapes[0] == shapes[1]
