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

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from bayes_ssm.data.atomic import atomic_path
from bayes_ssm.data.validation import SeriesData
from bayes_ssm.inference import engine as _engine
from bayes_ssm.models.base import model_from_spec

__all__ = ["write", "read", "FORMAT", "FORMAT_VERSION"]

FORMAT = "bayes_ssm.fit"
FORMAT_VERSION = 1
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_ENGINE = "h5netcdf"
#: Largest total size of the arrays in a file that ``load`` reads (bytes).
MAX_LOAD_BYTES = 8 * 2**30
#: Longest JSON spec, deepest nesting in it, and most seasonal states of a model that ``load``
#: accepts; beyond them a file is refused before anything is allocated.
MAX_SPEC_CHARS = 1_000_000
MAX_SPEC_DEPTH = 32
MAX_SEASONAL_STATES = 4096


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
    if isinstance(index, pd.DatetimeIndex):
        naive = index.tz_convert(None) if index.tz is not None else index  # UTC wall times
        if naive.min() < pd.Timestamp.min or naive.max() > pd.Timestamp.max:
            raise ValueError(
                f"cannot save dates outside {pd.Timestamp.min} .. {pd.Timestamp.max} "
                f"(the fit runs from {index[0]} to {index[-1]})"
            )
        time = naive.as_unit("ns").to_numpy()
    elif fit.data.times is not None:  # continuous time on float times
        time = np.asarray(index, dtype=np.float64)
    else:
        time = np.asarray(index, dtype=np.int64)
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
            "index_kind": (
                "datetime"
                if isinstance(index, pd.DatetimeIndex)
                else ("float" if fit.data.times is not None else "range")
            ),
            "index_name": index.name
            if isinstance(index.name, str | int | float | type(None))
            else str(index.name),
            "tz": _zone_name(index),
            "unit": index.unit if isinstance(index, pd.DatetimeIndex) else None,
            "step": int(index.step) if isinstance(index, pd.RangeIndex) else None,
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
    with atomic_path(path) as tmp:
        xr.DataTree.from_dict(tree).to_netcdf(tmp, engine=_ENGINE)


def _zone_name(index) -> str | None:
    """A name that rebuilds the index's time zone exactly (checked), or ``None`` when naive."""
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        return None
    tz = index.tz
    name = getattr(tz, "key", None) or getattr(tz, "zone", None)
    if name is None:
        offset = tz.utcoffset(None)
        if offset is not None:  # a fixed offset: "+05:30"
            minutes = int(offset.total_seconds() // 60)
            name = f"{'+' if minutes >= 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
        else:
            name = str(tz)
    rebuilt = _with_zone(index.tz_convert(None), name)
    if (
        rebuilt is None
        or not rebuilt.equals(index)
        or not (rebuilt.tz_localize(None) == index.tz_localize(None)).all()
    ):
        raise ValueError(
            f"cannot save a fit whose time zone {tz!r} has no name that rebuilds it exactly; "
            "convert the index to a named zone first (e.g. y.tz_convert('Europe/Paris'))"
        )
    return name


def _with_zone(utc_naive: pd.DatetimeIndex, name: str):
    try:
        return utc_naive.tz_localize("UTC").tz_convert(name)
    except Exception:  # an unknown zone name: pytz, zoneinfo and dateutil raise differently
        return None


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
            nbytes = sum(
                int(var.size) * var.dtype.itemsize
                for node in tree.subtree
                for var in node.to_dataset(inherit=False).variables.values()
            )
            if nbytes > MAX_LOAD_BYTES:
                raise ValueError(
                    f"{path} holds {nbytes / 2**30:.3g} GiB of arrays, above the "
                    f"{MAX_LOAD_BYTES / 2**30:.3g} GiB limit (bayes_ssm.io.MAX_LOAD_BYTES)"
                )
            return {node.path: node.to_dataset(inherit=False).load() for node in tree.subtree}
    except ValueError as err:
        if "MAX_LOAD_BYTES" in str(err):
            raise
        raise ValueError(
            f"{path} is truncated or corrupted: it cannot be read as netCDF ({err})"
        ) from err
    except Exception as err:  # the reading boundary: a damaged file fails in any library layer
        raise ValueError(
            f"{path} is truncated or corrupted: it cannot be read as netCDF "
            f"({type(err).__name__}: {err})"
        ) from err


def _depth(value, limit: int, level: int = 0) -> int:
    if level > limit:
        return level
    if isinstance(value, dict):
        return max((_depth(v, limit, level + 1) for v in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(v, limit, level + 1) for v in value), default=level)
    return level


def _parse_spec(path: Path, spec_json) -> dict:
    if not isinstance(spec_json, str):
        raise ValueError(f"{path} is corrupted: its spec is not text")
    if len(spec_json) > MAX_SPEC_CHARS:
        raise ValueError(
            f"{path} is corrupted: its spec has {len(spec_json)} characters (limit "
            f"{MAX_SPEC_CHARS})"
        )
    try:
        spec = json.loads(spec_json)
    except (json.JSONDecodeError, RecursionError) as err:
        raise ValueError(f"{path} is corrupted: its JSON spec does not parse ({err})") from err
    if _depth(spec, MAX_SPEC_DEPTH) > MAX_SPEC_DEPTH:
        raise ValueError(f"{path} is corrupted: its spec nests deeper than {MAX_SPEC_DEPTH}")
    expected = {
        "model": dict,
        "scales": dict,
        "method": str,
        "info": dict,
        "data": dict,
    }
    if not isinstance(spec, dict):
        raise ValueError(f"{path} is corrupted: its spec is not a JSON object")
    for key, kind in expected.items():
        if not isinstance(spec.get(key), kind):
            raise ValueError(
                f"{path} is corrupted: spec[{key!r}] should be a {kind.__name__}; got "
                f"{type(spec.get(key)).__name__}"
            )
    if not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in spec["scales"].values()
    ):
        raise ValueError(f"{path} is corrupted: spec['scales'] must hold numbers")
    meta = spec["data"]
    fields = {
        "name": str,
        "index_kind": str,
        "freq": (str, type(None)),
        "covariate_names": list,
        "tz": (str, type(None)),
        "unit": (str, type(None)),
        "step": (int, type(None)),
    }
    for key, kind in fields.items():
        if key in meta and not isinstance(meta[key], kind):
            raise ValueError(f"{path} is corrupted: spec['data'][{key!r}] has the wrong type")
    if meta.get("index_kind") not in ("datetime", "float", "range"):
        raise ValueError(f"{path} is corrupted: unknown index kind {meta.get('index_kind')!r}")
    states = _seasonal_states(spec["model"])
    if states > MAX_SEASONAL_STATES:
        raise ValueError(
            f"{path}: its model has {states} seasonal states, above the limit of "
            f"{MAX_SEASONAL_STATES} (bayes_ssm.io.MAX_SEASONAL_STATES)"
        )
    return spec


def _seasonal_states(value) -> int:
    """States of every seasonal component named anywhere in a model spec."""
    if isinstance(value, list):
        return sum(_seasonal_states(v) for v in value)
    if not isinstance(value, dict):
        return 0
    if "period" in value and "kind" in value:
        period, harmonics = value.get("period"), value.get("harmonics")
        if not isinstance(period, int | float) or isinstance(period, bool) or not period > 0:
            raise ValueError(f"a seasonal period in the spec is not a positive number: {period!r}")
        if value["kind"] == "dummy":
            return int(min(period, 1e12))
        if not isinstance(harmonics, int) or isinstance(harmonics, bool):
            raise ValueError(f"a seasonal harmonics count in the spec is not an int: {harmonics!r}")
        return 2 * harmonics
    return sum(_seasonal_states(v) for v in value.values())


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
    try:
        return _fit_from_nodes(path, nodes)
    except ValueError:
        raise
    except Exception as err:  # a crafted or damaged file: one clear error, never a traceback
        raise ValueError(f"{path} is not a valid saved fit ({type(err).__name__}: {err})") from err


def _fit_from_nodes(path: Path, nodes: dict[str, xr.Dataset]) -> dict:
    if "/" not in nodes:
        raise ValueError(f"{path} is a netCDF file but not a saved bayes_ssm fit")
    attrs = nodes["/"].attrs
    if attrs.get("bayes_ssm_format") != FORMAT:
        raise ValueError(f"{path} is a netCDF file but not a saved bayes_ssm fit")
    try:
        version = int(attrs.get("bayes_ssm_format_version", -1))
    except (TypeError, ValueError):
        version = -1
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{path} has fit format version {version}; this bayes_ssm reads {FORMAT_VERSION}"
        )
    spec_json = attrs.get("spec")

    def arrays(group):
        ds = nodes.get(f"/{group}")
        return {} if ds is None else {k: ds[k].to_numpy() for k in ds.data_vars}

    groups = {}
    for group in ("posterior", "sample_stats", "constant_data", "guide_params", "svi_loss"):
        if f"/{group}" in nodes:
            groups[group] = arrays(group)
    obs = nodes.get("/observed_data")
    if obs is None or "y" not in obs or "time" not in obs.coords:
        raise ValueError(f"{path} is corrupted: it has no observed data")
    groups["observed_data"] = {"y": obs["y"].to_numpy(), "time": obs["time"].to_numpy()}
    if not isinstance(spec_json, str) or _checksum(groups, spec_json) != attrs.get("checksum"):
        raise ValueError(
            f"{path} is corrupted: its contents do not match the checksum written with them"
        )
    spec = _parse_spec(path, spec_json)
    meta = spec["data"]
    y = np.asarray(groups["observed_data"]["y"])
    time = groups["observed_data"]["time"]
    if y.ndim != 1 or y.dtype.kind != "f" or y.size < 1 or time.shape != y.shape:
        raise ValueError(f"{path} is corrupted: observed y must be a 1-D float array with its time")
    if meta["index_kind"] == "datetime":
        if time.dtype.kind != "M":
            raise ValueError(f"{path} is corrupted: the time coordinate is not datetimes")
        freq = pd.tseries.frequencies.to_offset(meta["freq"])
        index = pd.DatetimeIndex(time, name=meta["index_name"])
        if meta.get("tz") is not None:
            index = _with_zone(index, meta["tz"])
            if index is None:
                raise ValueError(f"{path}: unknown time zone {meta['tz']!r}")
        if meta.get("unit") is not None:
            index = index.as_unit(meta["unit"])
        index = pd.DatetimeIndex(index, freq=freq)
    elif meta["index_kind"] == "float":  # continuous time on float times
        if time.dtype.kind != "f":
            raise ValueError(f"{path} is corrupted: continuous times are not floats")
        freq = None
        index = pd.Index(np.asarray(time, dtype=np.float64), name=meta["index_name"])
    else:
        if time.dtype.kind not in "iu":
            raise ValueError(f"{path} is corrupted: integer time steps are not integers")
        step = meta.get("step") or 1
        freq = None if meta["freq"] is None else pd.tseries.frequencies.to_offset(meta["freq"])
        index = pd.RangeIndex(int(time[0]), int(time[-1]) + step, step, name=meta["index_name"])
        if len(index) != len(time) or not np.array_equal(index.to_numpy(), time):
            raise ValueError(f"{path} is corrupted: its integer time steps are not regular")
    cov = groups.get("constant_data", {}).get("covariates")
    names = tuple(str(n) for n in meta["covariate_names"])
    if cov is not None and (cov.ndim != 2 or cov.shape != (y.size, len(names))):
        raise ValueError(
            f"{path} is corrupted: covariates have shape {cov.shape}; expected "
            f"{(y.size, len(names))}"
        )
    data = SeriesData(
        y=y, index=index, freq=freq, covariates=cov, covariate_names=names, name=meta["name"]
    )
    model = model_from_spec(spec["model"])
    if getattr(model, "obs_times", None) is not None:  # continuous time: the times come back
        unit = None if model.time_unit is None else pd.Timedelta(model.time_unit, unit="s")
        data = dataclasses.replace(data, times=np.asarray(model.obs_times), time_unit=unit)
    draws = groups.get("posterior", {})
    _check_draws(path, model, data, spec["scales"], draws)
    return dict(
        model=model,
        data=data,
        scales=spec["scales"],
        method=spec["method"],
        draws=draws,
        sample_stats=groups.get("sample_stats", {}),
        info=spec["info"],
        guide_params=groups.get("guide_params", {}),
        svi_loss=groups.get("svi_loss", {}).get("loss"),
    )


def _abstract_latent_shapes(model, y, scales, covariates) -> dict[str, tuple[int, ...]]:
    """``_engine.latent_shapes`` traced abstractly (``jax.eval_shape``): no array is computed,
    so a crafted model cannot make ``load`` allocate or run anything."""
    import jax
    import jax.numpy as jnp

    shapes: dict[str, tuple[int, ...]] = {}

    def trace(y_abstract):
        shapes.update(_engine.latent_shapes(model, y_abstract, scales, covariates))
        return jnp.zeros(())

    # the default float of this process (float64 under jax_enable_x64), as a real fit sees it
    dtype = jax.dtypes.canonicalize_dtype(np.float64)
    jax.eval_shape(trace, jax.ShapeDtypeStruct(np.shape(y), dtype))
    return shapes


def _check_draws(path, model, data, scales, draws) -> None:
    """The draws must be exactly the model's latent sites, with the model's shapes."""
    expected = _abstract_latent_shapes(model, data.y, dict(scales), data.covariates)
    missing, extra = sorted(set(expected) - set(draws)), sorted(set(draws) - set(expected))
    if missing or extra:
        raise ValueError(
            f"{path} does not match its model: posterior sites missing {missing}, unknown "
            f"{extra} (the model samples {sorted(expected)})"
        )
    bad = {
        k: (tuple(v.shape), expected[k])
        for k, v in draws.items()
        if v.ndim < 2 or tuple(v.shape[2:]) != expected[k] or v.dtype.kind not in "fi"
    }
    if bad:
        raise ValueError(
            f"{path} does not match its model: posterior sites with the wrong shape or type "
            f"(got (chain, draw, ...) vs expected event shape): {bad}"
        )
