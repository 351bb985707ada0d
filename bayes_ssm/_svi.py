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


_DRIFT_LAG = 4


def _no_progress(mean, var, windows, n, tol) -> bool:
    """True when the loss window ``(mean, var)`` shows no real change from the earlier windows.

    No change means: the relative change from the previous window is below ``tol``, or the
    changes from the previous window and from ``_DRIFT_LAG`` windows back are both below twice
    their Monte-Carlo standard errors (a change smaller than that is noise, not progress). The
    lagged comparison catches a slow drift that hides in the noise between neighbours. With
    only the previous window, the stochastic-volatility model on 1500 GBP/USD returns (a noisy
    ELBO: 1500 latent shocks) stopped at 1750 steps with ``phi`` 0.58; with the lag it runs to
    5250 steps and gives ``phi`` 0.984 (NUTS: 0.990).
    """
    prev_mean, prev_var = windows[-1]
    if abs(mean - prev_mean) < tol * max(abs(prev_mean), 1e-12):
        return True
    for earlier_mean, earlier_var in (windows[-1], windows[-min(_DRIFT_LAG, len(windows))]):
        se = np.sqrt(var / n + earlier_var / n)
        if abs(mean - earlier_mean) >= 2 * se:
            return False
    return True


def run_svi(model, data, scales, key, *, guide, steps, optimizer, tol, check_every, progress):
    y, cov = jnp_data(data)
    mkey = _engine.ModelKey(model)
    static, dyn, state = _engine.call_with_scales(
        model,
        scales,
        lambda st, dy: (st, dy, _svi_init(mkey, guide, optimizer, st, key, y, dy, cov)),
    )
    losses, windows, rel, converged, quiet = [], [], float("nan"), False, 0
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
            mean, var = float(chunk.mean()), float(chunk.var(ddof=1))
            if windows and n == check_every:
                rel = abs(mean - windows[-1][0]) / max(abs(windows[-1][0]), 1e-12)
                bar.set_postfix(loss=f"{mean:.4g}", rel=f"{rel:.1e}")
                quiet = quiet + 1 if _no_progress(mean, var, windows, n, tol) else 0
                if quiet >= 2:  # two windows in a row without real change
                    converged = True
                    break
            windows.append((mean, var))
    finally:
        bar.close()
    return state, np.concatenate(losses), converged, rel, done, (static, dyn)


def finish_svi(model, guide, optimizer, static, dyn, state, key, data, num_samples):
    """Fitted guide parameters and ``num_samples`` posterior draws (``(sample, ...)`` each)."""
    y, cov = jnp_data(data)
    return _svi_finish(
        _engine.ModelKey(model), guide, optimizer, static, num_samples, state, key, y, dyn, cov
    )
