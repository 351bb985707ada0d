"""The saved-fit file: one netCDF-4 file (xarray ``DataTree``, h5netcdf), no pickle.

This module reads and writes the file; it never imports :class:`~bayes_ssm.inference.fit.Fit`
(``Fit.save`` calls :func:`write`, and :mod:`bayes_ssm.inference.io` builds the ``Fit`` from what
:func:`read` returns), so ``fit`` and ``io`` import each other through no cycle.

Layout of a saved fit::

    /                 attrs: bayes_ssm_format, bayes_ssm_format_version, spec (JSON), checksum
    /posterior        latent sites, dims (chain, draw, <site>_dim_0, ...)
    /sample_stats     NUTS statistics, dims (chain, draw)
    /observed_data    y (time,) with the time coordinate (NaN where missing)
    /constant_data    covariates (time, covariate), when the model uses them
    /guide_params     SVI guide parameters
    /svi_loss         loss (step,)

The JSON ``spec`` holds the model spec (``model.spec()``), the data scales, the method, the run
info and the index metadata (frequency, name). ``checksum`` is a SHA-256 over every array and
the spec, so a file corrupted after it was written is refused on load. Writes go to a temporary
file in the same folder, are flushed to disk, then renamed over the target (atomic on POSIX).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from bayes_ssm.data.validation import SeriesData
from bayes_ssm.models.base import model_from_spec

__all__ = ["write", "read", "FORMAT", "FORMAT_VERSION"]

FORMAT = "bayes_ssm.fit"
FORMAT_VERSION = 1
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_ENGINE = "h5netcdf"


def _dataset(arrays, sample_dims=()) -> xr.Dataset:
    variables = {}
    for name, arr in arrays.items():
        arr = np.asarray(arr)
        event = [f"{name}_dim_{i}" for i in range(arr.ndim - len(sample_dims))]
        variables[name] = (list(sample_dims) + event, arr)
    return xr.Dataset(variables)


def _checksum(groups: dict[str, dict[str, np.ndarray]], spec_json: str) -> str:
    h = hashlib.sha256(spec_json.encode())
    for group in sorted(groups):
        for name in sorted(groups[group]):
            arr = np.ascontiguousarray(groups[group][name])
            if arr.dtype.kind == "M":
                arr = arr.astype("datetime64[ns]").view(np.int64)
            h.update(f"{group}/{name}:{arr.dtype.str}:{arr.shape}".encode())
            h.update(arr.tobytes())
    return h.hexdigest()


def _array_groups(fit) -> dict[str, dict[str, np.ndarray]]:
    index = fit.data.index
    time = (
        index.to_numpy().astype("datetime64[ns]")
        if isinstance(index, pd.DatetimeIndex)
        else np.asarray(index, dtype=np.int64)
    )
    groups = {
        "posterior": dict(fit.draws),
        "observed_data": {"y": fit.data.y, "time": time},
    }
    if fit.sample_stats:
        groups["sample_stats"] = dict(fit.sample_stats)
    if fit.data.covariates is not None:
        groups["constant_data"] = {"covariates": fit.data.covariates}
    if fit.guide_params:
        groups["guide_params"] = dict(fit.guide_params)
    if fit.svi_loss is not None:
        groups["svi_loss"] = {"loss": fit.svi_loss}
    return groups


def _spec(fit) -> dict:
    index = fit.data.index
    return {
        "model": fit.model.spec(),
        "scales": dict(fit.scales),
        "method": fit.method,
        "info": dict(fit.info),
        "data": {
            "name": fit.data.name,
            "index_kind": "datetime" if isinstance(index, pd.DatetimeIndex) else "range",
            "index_name": index.name,
            "freq": None if fit.data.freq is None else fit.data.freq.freqstr,
            "covariate_names": list(fit.data.covariate_names),
        },
    }


def write(fit, path) -> None:
    """Write ``fit`` (a :class:`~bayes_ssm.inference.fit.Fit`) to ``path`` as netCDF-4, atomically.

    Parameters
    ----------
    fit : Fit
    path : str or os.PathLike
        Target file (conventionally ``*.nc``); replaced if it exists.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise ValueError(f"cannot save to {path}: folder {path.parent} does not exist")
    groups = _array_groups(fit)
    spec_json = json.dumps(_spec(fit), sort_keys=True)
    tree = {
        "/": xr.Dataset(
            attrs={
                "bayes_ssm_format": FORMAT,
                "bayes_ssm_format_version": FORMAT_VERSION,
                "spec": spec_json,
                "checksum": _checksum(groups, spec_json),
            }
        )
    }
    for group, arrays in groups.items():
        sample_dims = ("chain", "draw") if group in ("posterior", "sample_stats") else ()
        if group == "observed_data":
            ds = xr.Dataset({"y": (["time"], arrays["y"])}, coords={"time": arrays["time"]})
        elif group == "constant_data":
            ds = xr.Dataset({"covariates": (["time", "covariate"], arrays["covariates"])})
        else:
            ds = _dataset(arrays, sample_dims)
        tree[f"/{group}"] = ds
    tmp = str(path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        xr.DataTree.from_dict(tree).to_netcdf(tmp, engine=_ENGINE)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _read_tree(path: Path) -> dict[str, xr.Dataset]:
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head != _HDF5_MAGIC:
        raise ValueError(
            f"{path} is not a saved bayes_ssm fit: it is not a netCDF-4/HDF5 file "
            f"(first bytes {head!r})"
        )
    try:
        with xr.open_datatree(path, engine=_ENGINE) as tree:
            return {node.path: node.to_dataset(inherit=False).load() for node in tree.subtree}
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as err:
        raise ValueError(
            f"{path} is truncated or corrupted: it cannot be read as netCDF ({err})"
        ) from err


def read(path) -> dict:
    """Read a fit written by :func:`write`: the keyword arguments of ``Fit(...)``.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    dict
        ``model``, ``data``, ``scales``, ``method``, ``draws``, ``sample_stats``, ``info``,
        ``guide_params`` and ``svi_loss`` of the saved fit.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        The file is not a bayes_ssm fit, is truncated or corrupted, or was written by a newer
        format version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no saved fit at {path}")
    nodes = _read_tree(path)
    attrs = nodes["/"].attrs
    if attrs.get("bayes_ssm_format") != FORMAT:
        raise ValueError(f"{path} is a netCDF file but not a saved bayes_ssm fit")
    version = int(attrs.get("bayes_ssm_format_version", -1))
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{path} has fit format version {version}; this bayes_ssm reads {FORMAT_VERSION}"
        )
    spec_json = attrs.get("spec")
    try:
        spec = json.loads(spec_json)
    except (TypeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is corrupted: its JSON spec does not parse ({err})") from err

    def arrays(group):
        ds = nodes.get(f"/{group}")
        return {} if ds is None else {k: ds[k].to_numpy() for k in ds.data_vars}

    groups = {}
    for group in ("posterior", "sample_stats", "constant_data", "guide_params", "svi_loss"):
        if f"/{group}" in nodes:
            groups[group] = arrays(group)
    obs = nodes.get("/observed_data")
    if obs is None or "y" not in obs:
        raise ValueError(f"{path} is corrupted: it has no observed data")
    groups["observed_data"] = {"y": obs["y"].to_numpy(), "time": obs["time"].to_numpy()}
    if _checksum(groups, spec_json) != attrs.get("checksum"):
        raise ValueError(
            f"{path} is corrupted: its contents do not match the checksum written with them"
        )
    meta = spec["data"]
    time = groups["observed_data"]["time"]
    if meta["index_kind"] == "datetime":
        freq = pd.tseries.frequencies.to_offset(meta["freq"])
        index = pd.DatetimeIndex(time, freq=freq, name=meta["index_name"])
    else:
        freq = None if meta["freq"] is None else pd.tseries.frequencies.to_offset(meta["freq"])
        index = pd.RangeIndex(int(time[0]), int(time[-1]) + 1, name=meta["index_name"])
    cov = groups.get("constant_data", {}).get("covariates")
    data = SeriesData(
        y=groups["observed_data"]["y"],
        index=index,
        freq=freq,
        covariates=cov,
        covariate_names=tuple(meta["covariate_names"]),
        name=meta["name"],
    )
    return dict(
        model=model_from_spec(spec["model"]),
        data=data,
        scales=spec["scales"],
        method=spec["method"],
        draws=groups["posterior"],
        sample_stats=groups.get("sample_stats", {}),
        info=spec["info"],
        guide_params=groups.get("guide_params", {}),
        svi_loss=groups.get("svi_loss", {}).get("loss"),
    )
