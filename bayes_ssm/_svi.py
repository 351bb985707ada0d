"""The compiled SVI loop behind :func:`bayes_ssm.fit_svi` (private).

The model (through :class:`bayes_ssm._engine.ModelKey`), the guide kind, the optimizer and, when
the model needs them concrete, the data scales are static arguments of ``jax.jit``: many fits of
same-shape data (backtests, calibration studies) compile once.
"""

from __future__ import annotations

import sys
from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from numpyro.infer import SVI, Trace_ELBO, autoguide, init_to_median
from numpyro.optim import optax_to_numpyro
from tqdm.auto import tqdm

from bayes_ssm import _engine

__all__ = ["GUIDES", "default_optimizer", "run_svi", "finish_svi", "jnp_data", "show_progress"]

GUIDES = {
    "normal": autoguide.AutoNormal,
    "multivariate_normal": autoguide.AutoMultivariateNormal,
    "low_rank": autoguide.AutoLowRankMultivariateNormal,
    "delta": autoguide.AutoDelta,
}


def show_progress(progress: bool) -> bool:
    return bool(progress) and sys.stderr.isatty()


def jnp_data(data):
    """``(y, covariates)`` as JAX arrays (covariates None when there are none)."""
    cov = None if data.covariates is None else jnp.asarray(data.covariates)
    return jnp.asarray(data.y), cov


@lru_cache(maxsize=32)
def default_optimizer(learning_rate: float):
    return optax.adam(learning_rate)


def _make_svi(model, guide_kind, optimizer):
    guide = GUIDES[guide_kind](model.model, init_loc_fn=init_to_median(num_samples=15))
    return SVI(model.model, guide, optax_to_numpyro(optimizer), Trace_ELBO())


def _kwargs(static_scales, dyn_scales, cov):
    return _engine.model_kwargs(_engine.resolve_scales(static_scales, dyn_scales), cov)


_STATIC = ("mkey", "guide_kind", "optimizer", "static_scales")


@partial(jax.jit, static_argnames=_STATIC)
def _svi_init(mkey, guide_kind, optimizer, static_scales, key, y, dyn_scales, cov):
    kwargs = _kwargs(static_scales, dyn_scales, cov)
    return _make_svi(mkey.model, guide_kind, optimizer).init(key, y, **kwargs)


@partial(jax.jit, static_argnames=_STATIC + ("num_steps",))
def _svi_steps(mkey, guide_kind, optimizer, static_scales, num_steps, state, y, dyn_scales, cov):
    kwargs = _kwargs(static_scales, dyn_scales, cov)
    svi = _make_svi(mkey.model, guide_kind, optimizer)
    svi.init(jax.random.PRNGKey(0), y, **kwargs)  # sets svi.constrain_fn; the result is unused

    def body(s, _):
        return svi.update(s, y, **kwargs)

    return jax.lax.scan(body, state, None, length=num_steps)


@partial(jax.jit, static_argnames=_STATIC + ("num_samples",))
def _svi_finish(
    mkey, guide_kind, optimizer, static_scales, num_samples, state, key, y, dyn_scales, cov
):
    kwargs = _kwargs(static_scales, dyn_scales, cov)
    svi = _make_svi(mkey.model, guide_kind, optimizer)
    svi.init(jax.random.PRNGKey(0), y, **kwargs)
    params = svi.get_params(state)
    draws = svi.guide.sample_posterior(key, params, y, sample_shape=(num_samples,), **kwargs)
    return params, draws


def run_svi(model, data, scales, key, *, guide, steps, optimizer, tol, check_every, progress):
    y, cov = jnp_data(data)
    mkey = _engine.ModelKey(model)
    static, dyn, state = _engine.call_with_scales(
        model,
        scales,
        lambda st, dy: (st, dy, _svi_init(mkey, guide, optimizer, st, key, y, dy, cov)),
    )
    losses, prev, rel, converged, quiet = [], None, float("nan"), False, 0
    bar = tqdm(total=steps, desc=f"SVI ({guide})", disable=not show_progress(progress))
    done = 0
    try:
        while done < steps:
            n = min(check_every, steps - done)
            state, chunk = _svi_steps(mkey, guide, optimizer, static, n, state, y, dyn, cov)
            chunk = np.asarray(chunk)
            if not np.all(np.isfinite(chunk)):
                bad = done + int(np.flatnonzero(~np.isfinite(chunk))[0])
                raise FloatingPointError(
                    f"SVI loss became {chunk[bad - done]} at step {bad}; try a smaller "
                    "learning_rate, another guide, or check the data scale"
                )
            losses.append(chunk)
            done += n
            bar.update(n)
            mean = float(chunk.mean())
            if prev is not None and n == check_every:
                # relative ELBO change between consecutive windows, with a Monte-Carlo floor:
                # a change smaller than twice its standard error is noise, not progress.
                se = float(np.sqrt(chunk.var(ddof=1) / n + prev[1] / n))
                delta = abs(mean - prev[0])
                rel = delta / max(abs(prev[0]), 1e-12)
                bar.set_postfix(loss=f"{mean:.4g}", rel=f"{rel:.1e}")
                quiet = quiet + 1 if (rel < tol or delta < 2 * se) else 0
                if quiet >= 2:  # two windows in a row without real change
                    converged = True
                    break
            prev = (mean, float(chunk.var(ddof=1)))
    finally:
        bar.close()
    return state, np.concatenate(losses), converged, rel, done, (static, dyn)


def finish_svi(model, guide, optimizer, static, dyn, state, key, data, num_samples):
    """Fitted guide parameters and ``num_samples`` posterior draws (``(sample, ...)`` each)."""
    y, cov = jnp_data(data)
    return _svi_finish(
        _engine.ModelKey(model), guide, optimizer, static, num_samples, state, key, y, dyn, cov
    )
