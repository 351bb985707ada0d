"""The compiled SVI loop behind :func:`bayes_ssm.fit_svi` (private).

The model (through :class:`bayes_ssm.inference.engine.ModelKey`), the guide kind, the optimizer
and, when
the model needs them concrete, the data scales are static arguments of ``jax.jit``: many fits of
same-shape data (backtests, calibration studies) compile once.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from numpyro import handlers
from numpyro.infer import SVI, autoguide, init_to_median
from numpyro.optim import optax_to_numpyro

from bayes_ssm.inference import engine as _engine
from bayes_ssm.inference._elbo import OrderedTraceELBO
from bayes_ssm.inference.progress import progress_bar
from bayes_ssm.inference.svi_stop import StopRule
from bayes_ssm.inference.threads import locked_jit

__all__ = [
    "GUIDES",
    "StopRule",
    "run_svi",
    "finish_svi",
    "run_svi_many",
    "finish_svi_many",
    "jnp_data",
]

GUIDES = {
    "normal": autoguide.AutoNormal,
    "multivariate_normal": autoguide.AutoMultivariateNormal,
    "low_rank": autoguide.AutoLowRankMultivariateNormal,
    "delta": autoguide.AutoDelta,
}


def jnp_data(data):
    """``(y, covariates)`` as JAX arrays (covariates None when there are none)."""
    cov = None if data.covariates is None else jnp.asarray(data.covariates)
    return jnp.asarray(data.y), cov


def _make_svi(model, guide_kind, optimizer, *, program=None):
    program = model.model if program is None else program
    guide = GUIDES[guide_kind](program, init_loc_fn=init_to_median(num_samples=15))
    return SVI(program, guide, optax_to_numpyro(optimizer), OrderedTraceELBO())


def _is_latent(site) -> bool:
    return site["type"] == "sample" and not site.get("is_observed", False)


def latent_program(program):
    """``program`` with every site but its latent sample sites hidden (its likelihood factor,
    observed and deterministic sites): what SVI's initialisation needs to build the guide's
    parameters and the optimiser state.

    NumPyro's ``svi.init`` checks its starting point in a ``while_loop`` that evaluates the
    potential energy *and its gradient*; under ``jit`` that compiles the model's gradient (a
    Kalman filter's, for a structural model) once more, only to test that it is finite. Without
    the likelihood the check runs on the prior alone and the filter is dead code that XLA
    drops: the initialisation compiles in a fraction of the time. The state is the same
    (the starting locations come from ``init_to_median``'s prior draws, the same keys are
    split; ``tests/test_svi_init.py``) whenever the likelihood is finite at the starting point;
    where it is not, NumPyro would have redrawn the start and SVI's first window now reports a
    non-finite loss instead (``StopRule`` raises a clear error).
    """
    return handlers.block(program, hide_fn=lambda site: not _is_latent(site))


def _kwargs(static_scales, dyn_scales, cov):
    return _engine.model_kwargs(_engine.resolve_scales(static_scales, dyn_scales), cov)


_STATIC = ("mkey", "guide_kind", "optimizer", "static_scales")


@locked_jit(static_argnames=_STATIC)
def _svi_init(mkey, guide_kind, optimizer, static_scales, key, y, dyn_scales, cov):
    kwargs = _kwargs(static_scales, dyn_scales, cov)
    program = latent_program(mkey.model.model)
    return _make_svi(mkey.model, guide_kind, optimizer, program=program).init(key, y, **kwargs)


@locked_jit(static_argnames=_STATIC)
def _svi_init_map(mkey, guide_kind, optimizer, static_scales, key, y, dyn_scales, cov):
    """:func:`_svi_init`'s state moved to the posterior mode (``fit_svi(init="map")``), and
    the search's record (:mod:`bayes_ssm.inference.map_start`)."""
    from bayes_ssm.inference.map_start import map_start_state

    kwargs = _kwargs(static_scales, dyn_scales, cov)
    program = latent_program(mkey.model.model)
    state0 = _make_svi(mkey.model, guide_kind, optimizer, program=program).init(key, y, **kwargs)
    svi = _make_svi(mkey.model, guide_kind, optimizer)
    svi.init(jax.random.PRNGKey(0), y, **kwargs)  # the full program: its guide and potential
    return map_start_state(svi, state0, y, kwargs)


@locked_jit(static_argnames=_STATIC + ("num_steps",))
def _svi_steps(mkey, guide_kind, optimizer, static_scales, num_steps, state, y, dyn_scales, cov):
    kwargs = _kwargs(static_scales, dyn_scales, cov)
    svi = _make_svi(mkey.model, guide_kind, optimizer)
    svi.init(jax.random.PRNGKey(0), y, **kwargs)  # sets svi.constrain_fn; the result is unused

    def flat(s):
        leaves = jax.tree_util.tree_leaves(svi.optim.get_params(s.optim_state))
        return jnp.concatenate([jnp.ravel(v) for v in leaves])

    def body(carry, _):
        s, path = carry
        new, loss = svi.update(s, y, **kwargs)
        return (new, path + jnp.sum(jnp.abs(flat(new) - flat(s)))), loss

    start = flat(state)
    (state, path), losses = jax.lax.scan(
        body, (state, jnp.zeros((), start.dtype)), None, length=num_steps
    )
    net = jnp.sum(jnp.abs(flat(state) - start))
    return state, losses, jnp.stack([net, path])


@locked_jit(static_argnames=_STATIC + ("num_samples",))
def _svi_finish(
    mkey, guide_kind, optimizer, static_scales, num_samples, state, key, y, dyn_scales, cov
):
    kwargs = _kwargs(static_scales, dyn_scales, cov)
    svi = _make_svi(mkey.model, guide_kind, optimizer)
    svi.init(jax.random.PRNGKey(0), y, **kwargs)
    params = svi.get_params(state)
    draws = svi.guide.sample_posterior(key, params, y, sample_shape=(num_samples,), **kwargs)
    return params, draws


def run_svi(
    model,
    data,
    scales,
    key,
    *,
    guide,
    steps,
    optimizer,
    tol,
    check_every,
    progress,
    min_change=0.0,
    init="prior",
):
    """SVI of one series; returns ``(state, rule, (static, dyn), map_record)``; the
    record (``MAP_FIELDS`` values) is None unless ``init="map"``."""
    y, cov = jnp_data(data)
    mkey = _engine.ModelKey(model)
    start = _svi_init_map if init == "map" else _svi_init
    static, dyn, state = _engine.call_with_scales(
        model,
        scales,
        lambda st, dy: (st, dy, start(mkey, guide, optimizer, st, key, y, dy, cov)),
    )
    record = None
    if init == "map":
        state, record = state[0], np.asarray(state[1])
    rule = StopRule(tol, check_every, min_change=min_change)
    bar = progress_bar(total=steps, desc=f"SVI ({guide})", progress=progress)
    try:
        while rule.done < steps:
            n = min(check_every, steps - rule.done)
            state, chunk, moved = _svi_steps(mkey, guide, optimizer, static, n, state, y, dyn, cov)
            stop = rule.update(np.asarray(chunk), np.asarray(moved))
            bar.update(n)
            bar.set_postfix(loss=f"{rule.windows[-1][0]:.4g}", rel=f"{rule.rel:.1e}")
            if stop:
                break
    finally:
        bar.close()
    return state, rule, (static, dyn), record


# ----------------------------------------------------------------- many series, one program
# The single-series programs above, vmapped over a leading series axis. A series that has
# converged keeps its state (``active`` False) while the others go on, so every series follows
# exactly the steps ``fit_svi`` would take with the same key.


@locked_jit(static_argnames=("mkey", "guide_kind", "optimizer"))
def _svi_init_many(mkey, guide_kind, optimizer, keys, y, dyn_scales, cov=None):
    def one(key, y, dyn, cov):
        program = latent_program(mkey.model.model)
        svi = _make_svi(mkey.model, guide_kind, optimizer, program=program)
        return svi.init(key, y, **_kwargs(None, dyn, cov))

    return jax.vmap(one)(keys, y, dyn_scales, cov)


@locked_jit(static_argnames=("mkey", "guide_kind", "optimizer"))
def _svi_init_many_map(mkey, guide_kind, optimizer, keys, y, dyn_scales, cov=None):
    """Batched :func:`_svi_init_map`: ``(state, records)``, records ``(row, field)``."""

    def one(key, y, dyn, cov):
        return _svi_init_map.__wrapped__(mkey, guide_kind, optimizer, None, key, y, dyn, cov)

    return jax.vmap(one)(keys, y, dyn_scales, cov)


@locked_jit(static_argnames=("mkey", "guide_kind", "optimizer", "num_steps"))
def _svi_steps_many(mkey, guide_kind, optimizer, num_steps, state, y, dyn_scales, active, cov=None):
    def one(state, y, dyn, active, cov):
        new, losses, moved = _svi_steps.__wrapped__(
            mkey, guide_kind, optimizer, None, num_steps, state, y, dyn, cov
        )
        kept = jax.tree_util.tree_map(lambda a, b: jnp.where(active, a, b), new, state)
        return kept, losses, moved

    return jax.vmap(one)(state, y, dyn_scales, active, cov)


@locked_jit(static_argnames=("mkey", "guide_kind", "optimizer", "num_samples"))
def _svi_finish_many(
    mkey, guide_kind, optimizer, num_samples, state, keys, y, dyn_scales, cov=None
):
    def one(state, key, y, dyn, cov):
        return _svi_finish.__wrapped__(
            mkey, guide_kind, optimizer, None, num_samples, state, key, y, dyn, cov
        )

    return jax.vmap(one)(state, keys, y, dyn_scales, cov)


def _placer(sharding):
    """``jnp.asarray``, or a ``device_put`` that spreads the series axis over devices."""
    if sharding is None:
        return jnp.asarray
    return lambda x: jax.device_put(jnp.asarray(x), sharding)


def run_svi_many(
    model,
    y,
    scales,
    keys,
    *,
    labels,
    guide,
    steps,
    optimizer,
    tol,
    check_every,
    progress,
    sharding=None,
    cov=None,
    min_change=0.0,
    init="prior",
):
    """SVI for a batch of same-length series in one compiled program.

    Parameters
    ----------
    model : TimeSeriesModel
        Its program must accept traced data scales (``_engine.call_with_scales``).
    y : ndarray, shape ``(row, time)``
        The series, then any padding rows (copies, never updated) after ``len(labels)``.
    scales : dict of str to ndarray, each shape ``(row,)``
    keys : Array, shape ``(row, 2)`` or ``(row,)`` typed keys
        One fitting key per row.
    labels : sequence of str
        Names of the real series (the first ``len(labels)`` rows), for errors.
    sharding : jax.sharding.Sharding, optional
        Places every batched input (and so the computation) with the row axis split over
        devices; the row count must be a multiple of the device count.
    cov : ndarray, shape ``(row, time, covariate)``, optional
        Each row's covariates.
    min_change : float
        As :class:`StopRule`'s.
    init : {"prior", "map"}
        As ``fit_svi``'s; with ``"map"`` each rule's ``map`` attribute holds its series'
        search record (``map_start.map_record``).

    Returns
    -------
    (state, list of StopRule)
        The batched SVI state and each real series' convergence record.
    """
    mkey = _engine.ModelKey(model)
    put = _placer(sharding)
    y, keys = put(y), put(keys)
    cov = None if cov is None else put(cov)
    dyn = {k: put(v) for k, v in scales.items()}
    rules = [StopRule(tol, check_every, f"series {label!r}", min_change) for label in labels]
    if init == "map":
        from bayes_ssm.inference.map_start import map_record

        state, records = _svi_init_many_map(mkey, guide, optimizer, keys, y, dyn, cov)
        for rule, record in zip(rules, np.asarray(records), strict=False):
            rule.map = map_record(record)
    else:
        state = _svi_init_many(mkey, guide, optimizer, keys, y, dyn, cov)
    active = np.zeros(y.shape[0], bool)
    active[: len(rules)] = True
    bar = progress_bar(total=steps, desc=f"SVI ({guide}), {len(rules)} series", progress=progress)
    total = 0
    try:
        while total < steps and active.any():
            n = min(check_every, steps - total)
            state, chunk, moved = _svi_steps_many(
                mkey, guide, optimizer, n, state, y, dyn, put(active), cov
            )
            chunk, moved = np.asarray(chunk), np.asarray(moved)
            for i in np.flatnonzero(active):
                try:
                    if rules[i].update(chunk[i], moved[i]):
                        active[i] = False
                except FloatingPointError as err:  # this series failed; the others go on
                    rules[i].error = f"{type(err).__name__}: {err}"
                    active[i] = False
            total += n
            bar.update(n)
            bar.set_postfix(running=int(active.sum()))
    finally:
        bar.close()
    return state, rules


def finish_svi_many(
    model, guide, optimizer, state, keys, y, scales, num_samples, sharding=None, cov=None
):
    """Batched :func:`finish_svi`: guide parameters and draws with a leading row axis."""
    put = _placer(sharding)
    dyn = {k: put(v) for k, v in scales.items()}
    cov = None if cov is None else put(cov)
    return _svi_finish_many(
        _engine.ModelKey(model), guide, optimizer, num_samples, state, put(keys), put(y), dyn, cov
    )


def finish_svi(model, guide, optimizer, static, dyn, state, key, data, num_samples):
    """Fitted guide parameters and ``num_samples`` posterior draws (``(sample, ...)`` each)."""
    y, cov = jnp_data(data)
    return _svi_finish(
        _engine.ModelKey(model), guide, optimizer, static, num_samples, state, key, y, dyn, cov
    )
