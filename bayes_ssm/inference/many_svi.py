"""Independent SVI fits of many series (private): vmapped per length group, or a loop."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from bayes_ssm.inference import engine as _engine
from bayes_ssm.inference._many_common import (
    FIT_ERRORS,
    failure_text,
    key_list,
    pad_end,
    paddable,
    prepare_each,
    series_sharding,
    split_groups,
    stack_covariates,
)
from bayes_ssm.inference.fitting import fit_svi, svi_fit, svi_settings
from bayes_ssm.inference.schedules import resolve_schedule
from bayes_ssm.inference.svi import finish_svi_many, run_svi_many

__all__ = ["svi_series"]


def svi_series(
    model,
    series,
    keys,
    *,
    freq,
    guide,
    steps,
    optimizer,
    learning_rate,
    tol,
    check_every,
    num_samples,
    batch="loop",
    devices=None,
    pad=False,
    progress=False,
    covariates=None,
    group_size=None,
):
    """Independent SVI fits of ``series`` (mapping id -> Series), series ``i`` with ``keys[i]``;
    ``covariates``: None or a mapping id -> covariate frame (each series its own coefficients);
    ``group_size``: with ``batch="vmap"``, at most this many series per vmapped program (every
    program of a length group has that many rows, the last filled with inert copies, so one
    compiled program serves them all), or None for one program per length group.

    Returns
    -------
    (fits, failures, info)
        ``fits``: id -> Fit; ``failures``: id -> error text for the series whose fit failed
        numerically; ``info``: ``groups``, ``batch``, ``devices``.
    """
    # the model's own step-size schedule, as fit_svi (and the loop below) uses it
    schedule = resolve_schedule(model, None) if optimizer is None else "user"
    steps, check_every, num_samples, optimizer = svi_settings(
        guide, steps, check_every, num_samples, tol, optimizer, learning_rate, schedule
    )
    sharding, num_devices = series_sharding(devices) if batch == "vmap" else (None, 1)
    covariates = covariates or {}
    prepared = prepare_each(model, series, covariates, freq)
    ids = list(prepared)
    keys = jnp.asarray(keys)
    fit_keys, draw_keys = jax.vmap(jax.random.split, out_axes=1)(keys)
    groups: dict[int, list[int]] = {}
    pad = bool(pad) and batch == "vmap" and paddable(model, prepared)
    for i, ident in enumerate(ids):
        groups.setdefault(0 if pad else prepared[ident][0].num_steps, []).append(i)

    fits, failures, vectorised = {}, {}, batch == "vmap"
    settings = dict(guide=guide, steps=steps, optimizer=optimizer, tol=tol)
    width = group_size if vectorised else None
    for members in split_groups(groups.values(), width):
        datas = [prepared[ids[i]][0] for i in members]
        scales = [prepared[ids[i]][1] for i in members]
        latent = _engine.latent_sites(model, datas[0].y, scales[0], datas[0].covariates)
        if not latent:
            raise ValueError(f"model {model.kind!r} has no latent sites to fit")
        # padding rows (copies of the last series, never updated) fill the last device
        rows = members + [members[-1]] * (-len(members) % num_devices)
        if width is not None:
            rows += [members[-1]] * (-(-width // num_devices) * num_devices - len(rows))
        length = max(prepared[ids[i]][0].num_steps for i in rows)
        y = np.stack([pad_end(prepared[ids[i]][0].y, length) for i in rows])
        cov = stack_covariates([prepared[ids[i]][0] for i in rows], length)
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
                    cov=cov,
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
                try:
                    fits[ids[i]] = fit_svi(
                        model,
                        series[ids[i]],
                        key=keys[i],
                        covariates=covariates.get(ids[i]),
                        freq=freq,
                        check_every=check_every,
                        num_samples=num_samples,
                        learning_rate=learning_rate,
                        progress=progress,
                        **settings,
                    )
                except FIT_ERRORS as err:
                    failures[ids[i]] = failure_text(err)
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
            cov=cov,
        )
        elapsed = time.perf_counter() - group_start
        for j, (i, rule) in enumerate(zip(members, rules, strict=True)):
            if rule.error is not None:
                failures[ids[i]] = rule.error
                continue
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
                    "series_key": key_list(keys[i]),
                    "guide": guide,
                    **rule.info(losses, max_steps=steps, check_every=check_every),
                    "learning_rate": float(learning_rate),
                    "schedule": schedule,
                    "num_samples": num_samples,
                    "elapsed_s": elapsed,
                    "batch_size": len(members),
                },
            )
    info = {
        "groups": [[ids[i] for i in m] for m in split_groups(groups.values(), width)],
        "batch": batch if vectorised else "loop",
        "devices": num_devices if vectorised else 1,
        "padded": pad,
    }
    return fits, failures, info
