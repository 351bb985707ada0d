"""The default forecaster on many backtest folds at once (``AutoTS(fold_batch="vmap")``).

A rolling-origin backtest fits :func:`~bayes_ssm.auto_fit` at every origin. With the default
window (the last ``fit_last`` steps, 400 for weekly data) every fold longer than that fits a
window of the same length, so each candidate's SVI runs of all folds can be one vmapped
program (:func:`bayes_ssm.inference.svi.run_svi_many`: a fold that has converged keeps its
state while the others go on, so each fold follows the steps ``fit_svi`` would take with the
same key). PSIS-LOO, ``bs.check``, the stacking and the forecasts then run per fold as in
:func:`~bayes_ssm.auto_fit`.

Each fold's candidate ``i`` gets the key ``auto_fit`` would give it (``fold_in(key, i)``, split
into a fitting and a drawing key as in ``fit_svi``), so the batched folds equal the per-fold
loop up to floating-point rounding of the vmapped program (``tests/test_auto_folds.py``).
Folds whose candidates differ (a season found in one fold and not in another, another
transform) or whose windows differ in length (after ``pad_to``) form separate batches; a
candidate that cannot run with traced data scales, NUTS, or irregular times falls back to
:func:`~bayes_ssm.auto_fit` per fold.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from bayes_ssm.inference import engine as _engine
from bayes_ssm.inference.auto_settings import AUTO_SVI
from bayes_ssm.inference.candidate_stacking import stack_candidates
from bayes_ssm.inference.fitting import _prepare_timed, check_init, svi_fit, svi_settings
from bayes_ssm.inference.padding import padded_data, padded_length, validate_pad_to
from bayes_ssm.inference.pointwise import keep_pointwise_log_lik
from bayes_ssm.inference.svi import (
    finish_svi_many,
    run_svi_many,
)
from bayes_ssm.inference.threads import map_in_threads, resolve_workers

__all__ = ["auto_fit_folds"]

_SVI_DEFAULTS = {
    "guide": "normal",
    "steps": 10_000,
    "optimizer": None,
    "learning_rate": 0.01,
    "schedule": AUTO_SVI["schedule"],
    "tol": 1e-4,
    "check_every": 250,
    "num_samples": 1000,
}


def auto_fit_folds(trains, keys, *, options: dict, prepare, fit_alone, pad_to=None) -> list:
    """:func:`~bayes_ssm.auto_fit` of every fold's training series, each candidate's folds in
    one vmapped SVI program.

    Parameters
    ----------
    trains : sequence of pandas.Series
        Each fold's training data.
    keys : sequence of int
        Each fold's key (as ``auto_fit(key=...)``).
    options : dict
        ``auto_fit``'s options: ``transform``, ``method`` (must be ``"svi"``), ``fit_last``,
        ``freq``, ``fit_kwargs``, ``recalibrate``, ``workers``, ``candidates``.
        ``workers``: threads over the candidate batches.
    prepare, fit_alone : callable
        :func:`bayes_ssm.inference.auto.prepare_window` and :func:`~bayes_ssm.auto_fit`
        (passed in: this module does not import ``auto``, which imports it).
    pad_to : int, optional
        As ``auto_fit(pad_to=...)``.

    Returns
    -------
    list
        Per fold, its :class:`~bayes_ssm.inference.stacked_fit.StackedFit`, or the exception
        its fit raised (a numerical failure of one fold does not stop the others).
    """
    if options.get("method", "svi") != "svi":
        raise ValueError("fold batches need method='svi'")
    pad_to = validate_pad_to(pad_to)
    fit_kwargs = dict(options.get("fit_kwargs") or {})
    unknown = set(fit_kwargs) - set(_SVI_DEFAULTS) - {"progress", "pad_to", "min_change", "init"}
    if unknown:
        raise ValueError(f"fit_kwargs not supported by fold batches: {sorted(unknown)}")
    settings = {**_SVI_DEFAULTS, **{k: v for k, v in fit_kwargs.items() if k in _SVI_DEFAULTS}}
    steps, check_every, num_samples, optimizer = svi_settings(**settings)
    run_kw = dict(guide=settings["guide"], steps=steps, optimizer=optimizer, tol=settings["tol"])
    run_kw["min_change"] = float(fit_kwargs.get("min_change", AUTO_SVI["min_change"]))
    run_kw["init"] = check_init(fit_kwargs.get("init", AUTO_SVI["init"]), settings["guide"])

    start = time.perf_counter()
    folds = []  # per fold: (full, window, transform, candidates)
    jobs: dict = {}  # (ModelKey, run length) -> [(fold, i, name, model, data, scales, ...)]
    loop_folds = []
    for f, (train, seed) in enumerate(zip(trains, keys, strict=True)):
        full, window, tf, z, candidates, kw = prepare(
            train,
            options.get("transform", "auto"),
            options.get("candidates"),
            "svi",
            options.get("fit_last"),
            options.get("freq"),
            fit_kwargs,
            False,
            pad_to,
            options.get("recalibrate", True),
        )
        folds.append((full, window, tf, candidates))
        base = _engine.as_key(int(seed))
        entries = []
        for i, (name, model) in enumerate(candidates.items()):
            bound, data, scales = _prepare_timed(model, z, None, full.freq)
            if data.times is not None or model.kind in _engine._STATIC_SCALE_KINDS:
                entries = None
                break
            padded = padded_length(bound, data, scales, kw.get("pad_to"))
            run_y = padded_data(data, padded).y
            entries.append((i, name, bound, data, scales, padded, run_y, base))
        if entries is None:
            loop_folds.append(f)
            continue
        for entry in entries:
            jobs.setdefault((_engine.ModelKey(entry[2]), entry[6].shape[0]), []).append((f, *entry))

    def run_batch(members):
        model = members[0][3]
        keys_i = jnp.stack([jax.random.fold_in(m[8], m[1]) for m in members])
        fit_keys, draw_keys = jax.vmap(jax.random.split, out_axes=1)(keys_i)
        y = np.stack([m[7] for m in members])
        scales = {k: np.array([m[5][k] for m in members]) for k in members[0][5]}
        latent = _engine.latent_sites(model, members[0][4].y, members[0][5])
        batch_start = time.perf_counter()
        try:
            state, rules = run_svi_many(
                model, y, scales, fit_keys, labels=[f"fold {m[0]}" for m in members],
                check_every=check_every, progress=False, **run_kw,
            )  # fmt: skip
        except _engine._TRACE_ERRORS:  # needs concrete scales: these folds run one by one
            _engine._STATIC_SCALE_KINDS.add(model.kind)
            return None
        params, draws = finish_svi_many(
            model, run_kw["guide"], optimizer, state, draw_keys, y, scales, num_samples
        )
        elapsed = time.perf_counter() - batch_start
        out = []
        for j, (m, rule) in enumerate(zip(members, rules, strict=True)):
            if rule.error is not None:
                out.append(FloatingPointError(rule.error))
                continue
            losses = np.concatenate(rule.losses)
            fit = svi_fit(
                model, m[4], m[5],
                {k: np.asarray(v[j]) for k, v in params.items()},
                {k: np.asarray(draws[k][j]) for k in latent},
                latent, losses,
                info={
                    "seed": None, "guide": run_kw["guide"],
                    **rule.info(losses, max_steps=steps, check_every=check_every),
                    "learning_rate": float(settings["learning_rate"]),
                    "schedule": settings["schedule"] if fit_kwargs.get("optimizer") is None
                    else "user",
                    "num_samples": num_samples, "padded_to": m[6], "init": run_kw["init"],
                    **({"map": rule.map} if hasattr(rule, "map") else {}),
                    "elapsed_s": elapsed, "batch_size": len(members),
                },
            )  # fmt: skip
            keep_pointwise_log_lik(fit, {k: v[j] for k, v in draws.items() if k == "log_lik"})
            out.append(fit)
        return out

    batches = list(jobs.values())
    workers = resolve_workers(options.get("workers"), max(len(batches), 1))
    results = map_in_threads(run_batch, batches, workers)
    fitted: dict = {}  # fold -> {candidate index: Fit or error}
    for members, fits in zip(batches, results, strict=True):
        if fits is None:
            loop_folds.extend(m[0] for m in members)
            continue
        for m, fit in zip(members, fits, strict=True):
            fitted.setdefault(m[0], {})[m[1]] = (m[2], fit)
    out = []
    for f, (full, window, tf, candidates) in enumerate(folds):
        if f in loop_folds or len(fitted.get(f, ())) < len(candidates):
            try:
                out.append(fit_alone(trains[f], key=int(keys[f]), pad_to=pad_to, **options))
            except (FloatingPointError, np.linalg.LinAlgError) as err:
                out.append(err)
            continue
        named = [fitted[f][i] for i in range(len(candidates))]
        failed = [fit for _, fit in named if isinstance(fit, Exception)]
        if failed:
            out.append(failed[0])
            continue
        out.append(
            stack_candidates(
                dict(named), tf, window, full.freq, options.get("recalibrate", True), start,
                options.get("workers"),
            )
        )  # fmt: skip
    return out
