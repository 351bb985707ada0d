"""NUTS across many series in one compiled program (private; used by ``fit_nuts_many``).

NumPyro's functional NUTS (``numpyro.infer.hmc.hmc`` with a ``potential_fn_gen``) gives a pure
``init_kernel`` / ``sample_kernel`` pair. One chain of one series is a ``lax.scan`` of
``sample_kernel`` (warm-up, then kept draws); ``jax.vmap`` runs every (series, chain) pair in
one program. Each pair has its own potential (its own data and data scales), its own step size
and mass matrix adapted by its own warm-up, and its own key, so each series gets a NUTS run of
its own posterior: the same algorithm as a ``fit_nuts`` call, not a pooled one. Under ``vmap``
the tree-building ``while_loop`` runs until the deepest tree of the batch is done and the
finished rows keep their state (``lax.select``), which costs time on a batch with uneven trees
but not correctness.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from numpyro import handlers
from numpyro.distributions.transforms import biject_to
from numpyro.infer import init_to_sample
from numpyro.infer.hmc import hmc
from numpyro.infer.util import constrain_fn, find_valid_initial_params, potential_energy

from bayes_ssm.inference import engine as _engine

__all__ = ["run_nuts_many"]

_STATIC = (
    "mkey",
    "num_warmup",
    "num_samples",
    "target_accept",
    "max_tree_depth",
    "dense_mass",
)


@partial(jax.jit, static_argnames=_STATIC)
def _nuts_chains(
    mkey,
    keys,
    y,
    dyn_scales,
    num_warmup,
    num_samples,
    target_accept,
    max_tree_depth,
    dense_mass,
    cov=None,
):
    model = mkey.model.model

    def potential_gen(y, dyn, cov):
        kwargs = _engine.model_kwargs(dyn, cov)
        return lambda z: potential_energy(model, (y,), kwargs, z)

    init_kernel, sample_kernel = hmc(potential_fn_gen=potential_gen, algo="NUTS")

    def chain(key, y, dyn, cov):
        k_init, k_run = jax.random.split(key)
        kwargs = _engine.model_kwargs(dyn, cov)
        (init, _, _), _ = find_valid_initial_params(
            k_init,
            model,
            init_strategy=init_to_sample,
            model_args=(y,),
            model_kwargs=kwargs,
            prototype_params=_prototype(model, y, kwargs),
        )
        state = init_kernel(
            init,
            num_warmup,
            target_accept_prob=target_accept,
            max_tree_depth=max_tree_depth,
            dense_mass=dense_mass,
            model_args=(y, dyn, cov),
            rng_key=k_run,
        )

        def step(state, _):
            return sample_kernel(state, model_args=(y, dyn, cov)), None

        def keep(state, _):
            state = sample_kernel(state, model_args=(y, dyn, cov))
            stats = (
                state.diverging,
                state.energy,
                state.num_steps,
                state.accept_prob,
                state.adapt_state.step_size,
            )
            return state, (state.z, stats)

        state, _ = jax.lax.scan(step, state, None, length=num_warmup)
        _, (z, stats) = jax.lax.scan(keep, state, None, length=num_samples)
        values = jax.vmap(lambda zi: constrain_fn(model, (y,), kwargs, zi))(z)
        return values, stats

    return jax.vmap(chain)(keys, y, dyn_scales, cov)


def _prototype(model, y, kwargs):
    """Unconstrained values of the latent sites (their shapes) from one prior trace."""
    with handlers.trace() as tr, handlers.seed(rng_seed=0):
        model(y, **kwargs)
    return {
        name: biject_to(site["fn"].support).inv(site["value"])
        for name, site in tr.items()
        if site["type"] == "sample" and not site["is_observed"]
    }


def run_nuts_many(
    model,
    y,
    scales,
    keys,
    *,
    num_warmup,
    num_samples,
    target_accept,
    max_tree_depth,
    dense_mass,
    cov=None,
):
    """NUTS for a batch of chains, each with its own series, scales and key.

    Parameters
    ----------
    model : TimeSeriesModel
        Its program must accept traced data scales.
    y : ndarray, shape ``(row, time)``
        One row per chain (a series repeated once per chain).
    scales : dict of str to ndarray, each shape ``(row,)``
    keys : Array, shape ``(row, 2)``
        One key per chain.
    cov : ndarray, shape ``(row, time, covariate)``, optional
        Each chain's covariates (its series').

    Returns
    -------
    (draws, stats)
        ``draws``: site -> array ``(row, draw, ...)``; ``stats``: ``diverging``, ``energy``,
        ``num_steps``, ``accept_prob``, ``step_size``, each ``(row, draw)``.
    """
    dyn = {k: jnp.asarray(v) for k, v in scales.items()}
    values, stats = _nuts_chains(
        _engine.ModelKey(model),
        jnp.asarray(keys),
        jnp.asarray(y),
        dyn,
        num_warmup,
        num_samples,
        float(target_accept),
        int(max_tree_depth),
        bool(dense_mass),
        None if cov is None else jnp.asarray(cov),
    )
    names = ("diverging", "energy", "num_steps", "accept_prob", "step_size")
    return values, dict(zip(names, stats, strict=True))
