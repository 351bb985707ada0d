"""Independent NUTS fits of many series (private): a loop of ``fit_nuts``, or
(``batch="vmap"``) every chain of every series in one NUTS program.

Series are grouped by length (or padded to one length with ``pad=True``); each group runs as
one :func:`bayes_ssm.inference._nuts_many.run_nuts_many` call over ``series x chains`` rows,
optionally with the row axis split over several devices. Series ``i`` with key ``k``:
``k_init, k_mcmc = split(k)`` as in ``fit_nuts``; chain ``c`` starts from
``split(k_mcmc, num_chains)[c]`` (a prior draw, then its own warm-up).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from bayes_ssm.inference import engine as _engine
from bayes_ssm.inference._many_common import (
    FIT_ERRORS,
    failure_text,
    pad_end,
    paddable,
    prepare_each,
    series_sharding,
    split_groups,
    stack_covariates,
)
from bayes_ssm.inference._nuts_many import run_nuts_many
from bayes_ssm.inference._nuts_records import nuts_info, nuts_sample_stats
from bayes_ssm.inference.fit import Fit
from bayes_ssm.inference.fitting import _positive_int, fit_nuts

__all__ = ["nuts_series", "nuts_series_vmap"]


def _settings(
    num_chains=4,
    num_warmup=1000,
    num_samples=1000,
    target_accept=0.8,
    max_tree_depth=10,
    dense_mass=False,
    chain_method="vectorized",
    init="prior",
):
    if init != "prior":
        raise ValueError(f"batch='vmap' NUTS starts from prior draws only; got init={init!r}")
    if not (isinstance(target_accept, float) and 0 < target_accept < 1):
        raise ValueError(f"target_accept must be a float in (0, 1); got {target_accept!r}")
    return dict(
        num_chains=_positive_int(num_chains, "num_chains"),
        num_warmup=_positive_int(num_warmup, "num_warmup", 0),
        num_samples=_positive_int(num_samples, "num_samples"),
        target_accept=float(target_accept),
        max_tree_depth=_positive_int(max_tree_depth, "max_tree_depth"),
        dense_mass=bool(dense_mass),
    )


def nuts_series_vmap(
    model, series, keys, *, freq=None, pad=False, devices="auto", covariates=None,
    group_size=None, **nuts,
):  # fmt: skip
    """Independent NUTS fits of ``series`` in vmapped programs; ``(fits, failures, info)``.

    Parameters
    ----------
    model : TimeSeriesModel
    series : mapping of str to pandas.Series
    keys : Array, shape ``(series, 2)``
    freq, pad
        As :func:`bayes_ssm.fit_nuts_many`.
    devices : "auto", None or sequence of jax.Device
        Devices over which the ``series x chains`` row axis is split.
    covariates : mapping of str to pandas.DataFrame, optional
        Each series' covariates (its own coefficients).
    group_size : int, optional
        At most this many series per vmapped program (each program of a length group has
        that many, the last filled with inert copies: one compiled program); None: one
        program per length group.
    **nuts
        ``num_chains``, ``num_warmup``, ``num_samples``, ``target_accept``,
        ``max_tree_depth``, ``dense_mass`` as :func:`bayes_ssm.fit_nuts`.
    """
    opts = _settings(**nuts)
    chains = opts["num_chains"]
    sharding, num_devices = series_sharding(devices)
    covariates = covariates or {}
    prepared = prepare_each(model, series, covariates, freq)
    ids = list(prepared)
    pad = bool(pad) and paddable(model, prepared)
    groups: dict[int, list[int]] = {}
    for i, ident in enumerate(ids):
        groups.setdefault(0 if pad else prepared[ident][0].num_steps, []).append(i)
    run_keys = jax.vmap(lambda k: jax.random.split(jax.random.split(k)[1], chains))(
        jnp.asarray(keys)
    )  # (series, chain, 2)
    fits, failures = {}, {}
    for members in split_groups(groups.values(), group_size):
        data0, scales0 = prepared[ids[members[0]]]
        latent = _engine.latent_sites(model, data0.y, scales0, data0.covariates)
        if not latent:
            raise ValueError(f"model {model.kind!r} has no latent sites to sample")
        rows = [i for i in members for _ in range(chains)]
        if group_size is not None:  # inert copies fill the last group to the common width
            rows += [rows[-1]] * ((group_size - len(members)) * chains)
        rows += [rows[-1]] * (-len(rows) % num_devices)  # inert copies fill the last device
        length = max(prepared[ids[i]][0].num_steps for i in members)
        y = np.stack([pad_end(prepared[ids[i]][0].y, length) for i in rows])
        cov = stack_covariates([prepared[ids[i]][0] for i in rows], length)
        scales = {k: np.array([prepared[ids[i]][1][k] for i in rows]) for k in scales0}
        row_keys = run_keys[jnp.asarray(members)].reshape(-1, *run_keys.shape[2:])
        row_keys = jnp.concatenate([row_keys, row_keys[-1:].repeat(len(rows) - len(row_keys), 0)])
        if sharding is not None:
            y, row_keys = (jax.device_put(jnp.asarray(a), sharding) for a in (y, row_keys))
            cov = None if cov is None else jax.device_put(jnp.asarray(cov), sharding)
            scales = {k: jax.device_put(jnp.asarray(v), sharding) for k, v in scales.items()}
        start = time.perf_counter()
        values, stats = run_nuts_many(
            model,
            y,
            scales,
            row_keys,
            num_warmup=opts["num_warmup"],
            num_samples=opts["num_samples"],
            target_accept=opts["target_accept"],
            max_tree_depth=opts["max_tree_depth"],
            dense_mass=opts["dense_mass"],
            cov=cov,
        )
        values = {k: np.asarray(values[k]) for k in latent}
        stats = {k: np.asarray(v) for k, v in stats.items()}
        elapsed = time.perf_counter() - start
        for j, i in enumerate(members):
            block = slice(j * chains, (j + 1) * chains)
            draws = {k: v[block] for k, v in values.items()}
            if not all(np.all(np.isfinite(v)) for v in draws.values()):
                failures[ids[i]] = failure_text(FloatingPointError("NUTS draws are not finite"))
                continue
            fits[ids[i]] = _nuts_fit(model, *prepared[ids[i]], draws, stats, block, opts, elapsed)
    info = {
        "groups": [[ids[i] for i in m] for m in split_groups(groups.values(), group_size)],
        "batch": "vmap",
        "devices": num_devices,
        "padded": pad,
    }
    return fits, failures, info


def _nuts_fit(model, data, scales, draws, stats, block, opts, elapsed) -> Fit:
    sample_stats = nuts_sample_stats(
        *(stats[k][block] for k in ("diverging", "energy", "num_steps", "accept_prob")),
        stats["step_size"][block],
    )
    info = nuts_info(
        seed=None,
        num_chains=opts["num_chains"],
        num_warmup=opts["num_warmup"],
        num_samples=opts["num_samples"],
        target_accept=opts["target_accept"],
        max_tree_depth=opts["max_tree_depth"],
        dense_mass=opts["dense_mass"],
        chain_method="vmap_series",
        init="prior",
        elapsed_s=elapsed,
    )
    return Fit(
        model=model,
        data=data,
        scales=scales,
        method="nuts",
        draws=draws,
        sample_stats=sample_stats,
        info=info,
    )


def nuts_series(
    model, series, keys, *, freq=None, batch="loop", devices=None, pad=False, progress=False,
    covariates=None, group_size=None, **nuts,
):  # fmt: skip
    """Independent NUTS fits of ``series``, series ``i`` with ``keys[i]``; returns
    ``(fits, failures, info)`` as :func:`bayes_ssm.inference.many_svi.svi_series`
    (``group_size``: as :func:`nuts_series_vmap`)."""
    if batch == "vmap" and nuts.get("init", "prior") == "prior":
        return nuts_series_vmap(
            model, series, keys, freq=freq, pad=pad, devices=devices, covariates=covariates,
            group_size=group_size, **nuts,
        )  # fmt: skip
    covariates = covariates or {}
    fits, failures, groups = {}, {}, {}
    for k, (ident, y) in zip(keys, series.items(), strict=True):
        try:
            fits[ident] = fit_nuts(
                model, y, key=k, covariates=covariates.get(ident), freq=freq, progress=progress,
                **nuts,
            )  # fmt: skip
        except ValueError as err:
            raise ValueError(f"series {ident!r}: {err}") from err
        except FIT_ERRORS as err:
            failures[ident] = failure_text(err)
            continue
        groups.setdefault(fits[ident].data.num_steps, []).append(ident)
    return fits, failures, {"groups": list(groups.values()), "batch": "loop", "devices": 1}
