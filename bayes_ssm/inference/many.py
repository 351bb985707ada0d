"""Many series, one compiled program: :func:`fit_svi_many` on long-format data.

Analysts rarely have one series: flu by state, admissions by hospital, returns by asset. The
long format (Nixtla's convention, also pandas' ``melt``) holds them in one frame, one row per
series and timestamp::

    unique_id   ds           y
    "CA"        2024-01-06   3.1
    "CA"        2024-01-13   2.9
    "NY"        2024-01-06   4.0
    ...

The long format is awkward for a loop of :func:`bayes_ssm.fit_svi` calls, and on an
accelerator such a loop wastes the device. :func:`fit_svi_many` validates every series at the
usual boundary (``bayes_ssm.data.validation``), groups the series by length, and fits each group
through
one compiled program: with ``batch="vmap"`` (the default off the CPU) one ``jax.vmap``-ed SVI
program takes one batched step for all the series of the group; with ``batch="loop"`` (the
default on a CPU, where it is faster) the series run one after another through the
single-series program. Each series keeps its own data scales (so its own default priors), its
own key and its own stopping rule: a series that has converged stops changing while the others
go on, so series ``i`` gets the fit ``fit_svi`` would give with key
``jax.random.split(key, n)[i]`` (``tests/test_many.py`` checks that for the vmapped program).
The result is a :class:`~bayes_ssm.inference.fit_collection.FitCollection`, a mapping from
series id to :class:`bayes_ssm.Fit`; its ``forecast`` returns a long frame again. The long
format is read by :mod:`bayes_ssm.data.long_format`.

Covariates are not supported yet (each series would need its own future covariates); models
whose programs need concrete data scales fall back to one ``fit_svi`` per series.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from bayes_ssm.data.long_format import as_series_map as _as_series_map
from bayes_ssm.data.types import KeyLike, LongData
from bayes_ssm.inference import engine as _engine
from bayes_ssm.inference.fit_collection import FitCollection
from bayes_ssm.inference.fitting import _prepare, fit_nuts, fit_svi, svi_fit, svi_settings
from bayes_ssm.inference.svi import finish_svi_many, run_svi_many

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    import optax

    from bayes_ssm.models.base import TimeSeriesModel

__all__ = ["BATCH_MODES", "fit_nuts_many", "fit_svi_many"]

BATCH_MODES = ("auto", "vmap", "loop")


def _series_sharding(devices):
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


def _key_list(key) -> list[int]:
    """A key's raw data as a JSON-friendly list (for ``fit.info``)."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return np.asarray(key).ravel().tolist()


def fit_svi_many(
    model: TimeSeriesModel,
    data: LongData,
    *,
    key: KeyLike,
    id_col: str = "unique_id",
    time_col: str = "ds",
    value_col: str = "y",
    freq: str | None = None,
    guide: str = "normal",
    steps: int = 10_000,
    optimizer: optax.GradientTransformation | None = None,
    learning_rate: float = 0.01,
    tol: float = 1e-4,
    check_every: int = 250,
    num_samples: int = 1000,
    batch: str = "auto",
    devices: str | Sequence[jax.Device] = "auto",
    progress: bool = True,
) -> FitCollection:
    """Fit one model to many series by SVI, each group of equal-length series in one program.

    Parameters
    ----------
    model : TimeSeriesModel
        The same model (hyperparameters) for every series; priors still scale to each series.
    data : pandas.DataFrame (long format) or mapping of str to pandas.Series
        Long format: columns ``id_col``, ``time_col``, ``value_col`` (see :func:`split_long`).
    key : int or jax.random key
        Keyword-only. Series ``i`` (in sorted order of id; a mapping's own order) is fitted with
        ``jax.random.split(key, n)[i]``, exactly as ``fit_svi(..., key=that)`` would.
    id_col, time_col, value_col : str
        Column names of the long frame.
    freq, guide, steps, optimizer, learning_rate, tol, check_every, num_samples, progress
        As :func:`bayes_ssm.fit_svi`; the stopping rule applies to each series on its own.
    batch : {"auto", "vmap", "loop"}
        ``"vmap"``: each group of equal-length series runs as one vmapped program.
        ``"loop"``: the series run one after another through the single-series program (also
        compiled once per length). ``"auto"``: ``"loop"`` on a CPU, ``"vmap"`` elsewhere. Both
        give the same fits; on a CPU the loop is faster (XLA's CPU backend runs the batched
        small products of the Kalman filter ~3x slower per series than the single-series fused
        loop; ``benchmarks/README.md``, "Many series").
    devices : "auto", None or sequence of jax.Device
        With ``batch="vmap"``, the devices over which the series axis is split (each device
        fits its share; a group is padded with inert copies of its last series to a multiple
        of the device count). ``"auto"``: every local device of the default backend; None: the
        default device only. Ignored by ``batch="loop"``.

    Returns
    -------
    FitCollection

    Raises
    ------
    ValueError
        Bad long-format data, or a series that fails validation (the message names it).
    """
    steps, check_every, num_samples, optimizer = svi_settings(
        guide, steps, check_every, num_samples, tol, optimizer, learning_rate
    )
    if batch not in BATCH_MODES:
        raise ValueError(f"batch must be one of {BATCH_MODES}; got {batch!r}")
    if batch == "auto":
        batch = "loop" if jax.default_backend() == "cpu" else "vmap"
    sharding, num_devices = _series_sharding(devices) if batch == "vmap" else (None, 1)
    series = _as_series_map(data, id_col, time_col, value_col)
    prepared = {}
    for ident, y in series.items():
        try:
            prepared[ident] = _prepare(model, y, None, freq)
        except ValueError as err:
            raise ValueError(f"series {ident!r}: {err}") from err
    ids = list(prepared)
    keys = jax.random.split(_engine.as_key(key), len(ids))
    fit_keys, draw_keys = jax.vmap(jax.random.split, out_axes=1)(keys)
    groups: dict[int, list[int]] = {}
    for i, ident in enumerate(ids):
        groups.setdefault(prepared[ident][0].num_steps, []).append(i)

    start = time.perf_counter()
    fits, vectorised = {}, batch == "vmap"
    settings = dict(guide=guide, steps=steps, optimizer=optimizer, tol=tol)
    for members in groups.values():
        datas = [prepared[ids[i]][0] for i in members]
        scales = [prepared[ids[i]][1] for i in members]
        latent = _engine.latent_sites(model, datas[0].y, scales[0])
        if not latent:
            raise ValueError(f"model {model.kind!r} has no latent sites to fit")
        # padding rows (copies of the last series, never updated) fill the last device
        rows = members + [members[-1]] * (-len(members) % num_devices)
        y = np.stack([prepared[ids[i]][0].y for i in rows])
        batch_scales = {k: np.array([prepared[ids[i]][1][k] for i in rows]) for k in scales[0]}
        group_start = time.perf_counter()
        index = jnp.asarray(rows)
        batched = batch == "vmap" and model.kind not in _engine._STATIC_SCALE_KINDS
        if batched:
            try:
                state, rules = run_svi_many(
                    model,
                    y,
                    batch_scales,
                    fit_keys[index],
                    labels=[ids[i] for i in members],
                    check_every=check_every,
                    progress=progress,
                    sharding=sharding,
                    **settings,
                )
            except _engine._TRACE_ERRORS:
                _engine._STATIC_SCALE_KINDS.add(model.kind)
                batched = False
        if not batched:
            # By choice, or because the program needs concrete scales: one fit per series.
            vectorised = False
            for i in members:
                fits[ids[i]] = fit_svi(
                    model,
                    series[ids[i]],
                    key=keys[i],
                    freq=freq,
                    check_every=check_every,
                    num_samples=num_samples,
                    learning_rate=learning_rate,
                    progress=progress,
                    **settings,
                )
            continue
        params, draws = finish_svi_many(
            model,
            guide,
            optimizer,
            state,
            draw_keys[index],
            y,
            batch_scales,
            num_samples,
            sharding=sharding,
        )
        elapsed = time.perf_counter() - group_start
        for j, (i, rule) in enumerate(zip(members, rules, strict=True)):
            losses = np.concatenate(rule.losses)
            fits[ids[i]] = svi_fit(
                model,
                datas[j],
                scales[j],
                {k: np.asarray(v[j]) for k, v in params.items()},
                {k: np.asarray(draws[k][j]) for k in latent},
                latent,
                losses,
                info={
                    "seed": None,
                    "series_key": _key_list(keys[i]),
                    "guide": guide,
                    "steps": rule.done,
                    "max_steps": steps,
                    "converged": bool(rule.converged),
                    "rel_elbo_change": float(rule.rel),
                    "tol": float(tol),
                    "final_loss": float(losses[-check_every:].mean()),
                    "learning_rate": float(learning_rate),
                    "num_samples": num_samples,
                    "elapsed_s": elapsed,
                    "batch_size": len(members),
                },
            )
    info = {
        "groups": [[ids[i] for i in members] for members in groups.values()],
        "batch": batch if vectorised else "loop",
        "devices": num_devices if vectorised else 1,
        "elapsed_s": time.perf_counter() - start,
    }
    return FitCollection({ident: fits[ident] for ident in ids}, info)


def fit_nuts_many(
    model: TimeSeriesModel,
    data: LongData,
    *,
    key: KeyLike,
    id_col: str = "unique_id",
    time_col: str = "ds",
    value_col: str = "y",
    freq: str | None = None,
    progress: bool = False,
    **nuts_kwargs: Any,
) -> FitCollection:
    """Fit one model to many series by NUTS, one :func:`bayes_ssm.fit_nuts` per series.

    A loop, not one vmapped program: NUTS trees of different series grow to different depths,
    so a batch would run every step as deep as its deepest series. Series of one length reuse
    the programs ``fit_nuts`` caches (measured on the CPU with 100 draws of a 40-step series:
    7.0 s for the first series, 2.4-3.0 s for the next ones).

    Parameters
    ----------
    model, data, key, id_col, time_col, value_col, freq
        As :func:`fit_svi_many`; series ``i`` (sorted ids) gets ``jax.random.split(key, n)[i]``.
    progress : bool
        NumPyro's progress bars (off by default: one per series).
    **nuts_kwargs
        Passed to :func:`bayes_ssm.fit_nuts` (``num_chains``, ``num_warmup``, ...).

    Returns
    -------
    FitCollection
    """
    series = _as_series_map(data, id_col, time_col, value_col)
    keys = jax.random.split(_engine.as_key(key), len(series))
    start = time.perf_counter()
    fits, groups = {}, {}
    for k, (ident, y) in zip(keys, series.items(), strict=True):
        try:
            fits[ident] = fit_nuts(model, y, key=k, freq=freq, progress=progress, **nuts_kwargs)
        except ValueError as err:
            raise ValueError(f"series {ident!r}: {err}") from err
        groups.setdefault(fits[ident].data.num_steps, []).append(ident)
    info = {
        "groups": list(groups.values()),
        "batch": "loop",
        "devices": 1,
        "method": "nuts",
        "elapsed_s": time.perf_counter() - start,
    }
    return FitCollection(fits, info)
