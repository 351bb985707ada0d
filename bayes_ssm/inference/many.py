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
one compiled program: with ``batch="vmap"`` one ``jax.vmap``-ed SVI program takes one batched
step for all the series of the group; with ``batch="loop"`` the series run one after another
through the single-series program; ``batch="auto"`` picks the one measured faster
(:func:`auto_batch`). Each series keeps its own data scales (so its own default priors), its
own key and its own stopping rule: a series that has converged stops changing while the others
go on, so series ``i`` gets the fit ``fit_svi`` would give with key
``jax.random.split(key, n)[i]`` (``tests/test_many.py`` checks that for the vmapped program).
The result is a :class:`FitCollection`, a mapping from series id to :class:`bayes_ssm.Fit`;
its :meth:`FitCollection.forecast` returns a long frame again.

Covariates per series come from columns of the long frame (``covariates=["x1", "x2"]``), each
series with its own coefficients; future covariates, a long frame ``unique_id, ds, x1, x2`` over
the horizon, go to :meth:`FitCollection.forecast`. Models whose programs need concrete data
scales fall back to one ``fit_svi`` per series.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import jax

from bayes_ssm.data.long_format import as_series_map as _as_series_map
from bayes_ssm.data.types import KeyLike, LongData
from bayes_ssm.inference import engine as _engine
from bayes_ssm.inference.batch_choice import CPU_VMAP_MAX_SERIES, auto_batch, auto_group_size
from bayes_ssm.inference.fit_collection import FitCollection
from bayes_ssm.inference.fitting import svi_settings
from bayes_ssm.inference.many_covariates import series_covariates
from bayes_ssm.inference.many_nuts import nuts_series
from bayes_ssm.inference.many_svi import svi_series

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    import optax

    from bayes_ssm.models.base import TimeSeriesModel

__all__ = ["BATCH_MODES", "CPU_VMAP_MAX_SERIES", "auto_batch", "fit_nuts_many", "fit_svi_many"]

BATCH_MODES = ("auto", "vmap", "loop")


def _plan(
    batch, pooling, backend, data, id_col, time_col, value_col, key, covariates=None, method="svi"
):
    """Both drivers' start: the options checked, the series read (long format or a mapping),
    ``batch="auto"`` resolved (:func:`auto_batch`; on a CPU with a group size,
    :func:`~bayes_ssm.inference.batch_choice.auto_group_size`), their covariates (None, or id
    -> frame) and one key per series: ``(batch, group_size, series, covariates, keys)``."""
    if batch not in BATCH_MODES:
        raise ValueError(f"batch must be one of {BATCH_MODES}; got {batch!r}")
    _check_choice("pooling", pooling, POOLING_MODES)
    _check_choice("backend", backend, BACKENDS)
    series = _as_series_map(data, id_col, time_col, value_col)
    group_size = None
    if batch == "auto":
        platform = jax.default_backend()
        batch = auto_batch(method, platform, len(series))
        group_size = auto_group_size(platform) if batch == "vmap" else None
    covs = series_covariates(data, series, covariates, id_col, time_col, value_col)
    keys = jax.random.split(_engine.as_key(key), len(series))
    return batch, group_size, series, covs, keys


def fit_svi_many(
    model: TimeSeriesModel,
    data: LongData,
    *,
    key: KeyLike,
    id_col: str = "unique_id",
    time_col: str = "ds",
    value_col: str = "y",
    covariates: Sequence[str] | Mapping[str, Any] | None = None,
    freq: str | None = None,
    guide: str = "normal",
    steps: int = 10_000,
    optimizer: optax.GradientTransformation | None = None,
    learning_rate: float = 0.01,
    tol: float = 1e-4,
    check_every: int = 250,
    num_samples: int = 1000,
    batch: str = "auto",
    devices: str | Sequence[jax.Device] | None = "auto",
    pad: bool = False,
    pooling: str = "none",
    backend: str = "local",
    scheduler: Any = None,
    progress: bool = True,
) -> FitCollection:
    """Fit one model to many series by SVI, each group of equal-length series in one program.

    Parameters
    ----------
    model : TimeSeriesModel
        The same model (hyperparameters) for every series; priors still scale to each series.
    data : pandas.DataFrame (long format) or mapping of str to pandas.Series
        Long format: columns ``id_col``, ``time_col``, ``value_col``
        (:func:`bayes_ssm.data.long_format.split_long`).
    key : int or jax.random key
        Keyword-only. Series ``i`` (in sorted order of id; a mapping's own order) is fitted with
        ``jax.random.split(key, n)[i]``, exactly as ``fit_svi(..., key=that)`` would.
    id_col, time_col, value_col : str
        Column names of the long frame.
    covariates : sequence of str, or mapping of str to pandas.DataFrame, optional
        With a long frame: the names of its covariate columns (``unique_id, ds, y, x1, x2``:
        ``covariates=["x1", "x2"]``). With a mapping of series: a mapping of the same ids to
        covariate frames ``(time, covariate)`` indexed like each series. Every series gets its
        own regression coefficients (as ``fit_svi(..., covariates=...)`` per series); forecasts
        need the future covariates (:meth:`FitCollection.forecast`). Covariates must be known
        (no NaN) on every training date of every series. With ``pooling="partial"`` the
        coefficients are drawn from a population (standardised effects with a learned mean and
        spread per covariate; :mod:`bayes_ssm.inference.pooling`).
    freq, guide, steps, optimizer, learning_rate, tol, check_every, num_samples, progress
        As :func:`bayes_ssm.fit_svi`; the stopping rule applies to each series on its own.
    batch : {"auto", "vmap", "loop"}
        ``"vmap"``: each group of equal-length series runs as one vmapped program.
        ``"loop"``: the series run one after another through the single-series program (also
        compiled once per length). ``"auto"``: the one measured faster (:func:`auto_batch`):
        ``"loop"`` for one series, else ``"vmap"``: off the CPU one program per length group,
        on a CPU programs of at most 10 series each (one compiled program; a vmapped program
        of 30 or more series was slower than the loop there, one of 2-10 faster). Both give
        the same fits (the loop bit for bit with ``fit_svi``, the vmapped program up to float
        rounding).
    devices : "auto", None or sequence of jax.Device
        With ``batch="vmap"``, the devices over which the series axis is split (each device
        fits its share; a group is padded with inert copies of its last series to a multiple
        of the device count). ``"auto"``: every local device of the default backend; None: the
        default device only. Ignored by ``batch="loop"``.
    pad : bool
        With ``batch="vmap"``: series of unequal lengths (and start dates) run in ONE program,
        each padded at its end with missing values to the longest length. The Kalman
        likelihood skips missing steps, so a padded series' fit is its unpadded fit (up to
        float rounding; ``tests/test_many.py``). Only for models whose latent sites do not
        grow with the length (the Gaussian and Student-t structural models).
    pooling : {"none", "partial"}
        ``"none"``: independent fits. ``"partial"``: one hierarchical model over all series
        (:func:`bayes_ssm.inference.pooling.fit_svi_pooled`): the log noise scales (and, with
        covariates, the standardised regression coefficients) share a population mean and
        spread learned from every series.
    backend : {"local", "dask"}
        ``"dask"``: groups of series are fitted on the workers of a ``dask.distributed``
        cluster (:mod:`bayes_ssm.inference.dask_backend`); the fits equal the local ones.
    scheduler : str or distributed.Client, optional
        With ``backend="dask"``: a scheduler address (``"tcp://host:8786"``) or a client;
        None starts a ``LocalCluster`` for the call.

    Returns
    -------
    FitCollection
        A series whose fit fails numerically (a non-finite loss) is left out of the mapping
        and reported in :attr:`FitCollection.failures` and :meth:`FitCollection.summary`; the
        other series keep their fits (a ``RuntimeWarning`` names the failed ones).

    Raises
    ------
    ValueError
        Bad long-format data, or a series that fails validation (the message names it).
    """
    settings = dict(
        freq=freq,
        guide=guide,
        steps=steps,
        optimizer=optimizer,
        learning_rate=learning_rate,
        tol=tol,
        check_every=check_every,
        num_samples=num_samples,
    )
    svi_settings(guide, steps, check_every, num_samples, tol, optimizer, learning_rate)
    batch, group_size, series, covs, keys = _plan(
        batch, pooling, backend, data, id_col, time_col, value_col, key, covariates
    )
    settings["covariates"] = covs
    start = time.perf_counter()
    if pooling == "partial":
        if backend != "local":
            raise ValueError("pooling='partial' fits all series jointly; use backend='local'")
        from bayes_ssm.inference.pooling import fit_svi_pooled

        fits, failures, info = fit_svi_pooled(
            model, series, _engine.as_key(key), progress=progress, **settings
        )
    elif backend == "dask":
        from bayes_ssm.inference.dask_backend import map_series

        fits, failures, info = map_series(
            svi_series,
            model,
            series,
            keys,
            scheduler=scheduler,
            batch=batch,
            devices=devices,
            pad=pad,
            group_size=group_size,
            **settings,
        )
    else:
        fits, failures, info = svi_series(
            model, series, keys, batch=batch, devices=devices, pad=pad, progress=progress,
            group_size=group_size, **settings,
        )  # fmt: skip
    info.update(pooling=pooling, backend=backend, elapsed_s=time.perf_counter() - start)
    return _collection(series, fits, failures, info)


POOLING_MODES = ("none", "partial")
BACKENDS = ("local", "dask")


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}; got {value!r}")


def _collection(series, fits, failures, info) -> FitCollection:
    """Fits in the order of ``series``; a warning names the series whose fit failed."""
    if failures:
        import warnings

        names = ", ".join(repr(k) for k in list(failures)[:5])
        more = f" and {len(failures) - 5} more" if len(failures) > 5 else ""
        warnings.warn(
            f"{len(failures)} of {len(series)} series failed to fit ({names}{more}); the others "
            "are kept. See FitCollection.failures / summary().",
            RuntimeWarning,
            stacklevel=3,
        )
    ordered = {ident: fits[ident] for ident in series if ident in fits}
    failed = {ident: failures[ident] for ident in series if ident in failures}
    return FitCollection(ordered, info, failures=failed)


def fit_nuts_many(
    model: TimeSeriesModel,
    data: LongData,
    *,
    key: KeyLike,
    id_col: str = "unique_id",
    time_col: str = "ds",
    value_col: str = "y",
    covariates: Sequence[str] | Mapping[str, Any] | None = None,
    freq: str | None = None,
    batch: str = "auto",
    devices: str | Sequence[jax.Device] | None = "auto",
    pad: bool = False,
    pooling: str = "none",
    backend: str = "local",
    scheduler: Any = None,
    progress: bool = False,
    **nuts_kwargs: Any,
) -> FitCollection:
    """Fit one model to many series by NUTS: a loop of :func:`bayes_ssm.fit_nuts`, or every
    chain of every series in one vmapped program.

    Parameters
    ----------
    model, data, key, id_col, time_col, value_col, covariates, freq
        As :func:`fit_svi_many`; series ``i`` (sorted ids) gets ``jax.random.split(key, n)[i]``.
    batch : {"auto", "vmap", "loop"}
        ``"loop"``: one ``fit_nuts`` per series (series of one length reuse its compiled
        programs). ``"vmap"``: the chains of a group of equal-length series advance together
        in one program (:mod:`bayes_ssm.inference._nuts_many`), each with its own potential,
        step size, mass matrix and warm-up, i.e. an independent NUTS run per series
        (``init="prior"`` only; not bit-equal to the loop, whose key use differs, but the same
        posterior within Monte-Carlo error, ``tests/test_many_nuts.py``). ``"auto"``:
        :func:`auto_batch` (``"vmap"``, on a CPU in programs of at most 10 series; ``"loop"``
        for one series or ``init`` other than ``"prior"``).
    devices : "auto", None or sequence of jax.Device
        With ``batch="vmap"``, the devices over which the ``series x chains`` rows are split
        (as in :func:`fit_svi_many`).
    pad : bool
        With ``batch="vmap"``, series of unequal lengths share one program, padded at the
        end with missing values (as in :func:`fit_svi_many`).
    pooling : {"none", "partial"}
        ``"partial"``: one NUTS run of the hierarchical model over all series
        (:func:`bayes_ssm.inference.pooling.fit_nuts_pooled`).
    backend, scheduler
        As :func:`fit_svi_many`.
    progress : bool
        NumPyro's progress bars in the loop (off by default: one per series).
    **nuts_kwargs
        Passed to :func:`bayes_ssm.fit_nuts` (``num_chains``, ``num_warmup``, ...).

    Returns
    -------
    FitCollection
        ``summary()`` has per-series divergences, largest r-hat and smallest ESS. A series
        whose fit fails numerically is reported in ``failures``; the others are kept.
    """
    batch, group_size, series, covs, keys = _plan(
        batch, pooling, backend, data, id_col, time_col, value_col, key, covariates, "nuts"
    )
    start = time.perf_counter()
    if pooling == "partial":
        if backend != "local":
            raise ValueError("pooling='partial' fits all series jointly; use backend='local'")
        from bayes_ssm.inference.pooling import fit_nuts_pooled

        fits, failures, info = fit_nuts_pooled(
            model, series, _engine.as_key(key), freq=freq, covariates=covs, **nuts_kwargs
        )
    elif backend == "dask":
        from bayes_ssm.inference.dask_backend import map_series

        fits, failures, info = map_series(
            nuts_series, model, series, keys, scheduler=scheduler, freq=freq, batch=batch,
            devices=devices, pad=pad, covariates=covs, group_size=group_size, **nuts_kwargs,
        )  # fmt: skip
    else:
        fits, failures, info = nuts_series(
            model, series, keys, freq=freq, batch=batch, devices=devices, pad=pad,
            progress=progress, covariates=covs, group_size=group_size, **nuts_kwargs,
        )  # fmt: skip
    info.update(
        method="nuts", pooling=pooling, backend=backend, elapsed_s=time.perf_counter() - start
    )
    return _collection(series, fits, failures, info)
