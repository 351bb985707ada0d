"""Compiled read-outs of a model: posterior predictive sites under ``Predictive``, cached by jit.

The model object enters jit as a static argument through :class:`ModelKey` (hashed by its JSON
spec), so repeated forecasts, ``update`` and many small fits of the same model and data shape
compile once. Scales and data are dynamic arguments.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
from numpyro import handlers
from numpyro.infer import Predictive

from bayes_ssm.inference.threads import locked_jit

__all__ = [
    "ModelKey",
    "as_key",
    "latent_shapes",
    "latent_sites",
    "predict",
    "model_kwargs",
    "trace_site_names",
    "call_with_scales",
    "resolve_scales",
]


class ModelKey:
    """Hashable wrapper of a model for ``jax.jit`` static arguments (equality by spec)."""

    __slots__ = ("model", "_token")

    def __init__(self, model):
        self.model = model
        self._token = (type(model), json.dumps(model.spec(), sort_keys=True, default=str))

    def __hash__(self):
        return hash(self._token)

    def stable_key(self) -> list:
        """The same token, the same in every process (:mod:`~bayes_ssm.inference.program_store`)."""
        return [f"{self._token[0].__module__}.{self._token[0].__qualname__}", self._token[1]]

    def __eq__(self, other):
        return isinstance(other, ModelKey) and self._token == other._token


def as_key(key) -> jax.Array:
    """An int seed or a JAX PRNG key -> a JAX PRNG key; anything else is a ``ValueError``."""
    if isinstance(key, bool):
        raise ValueError(f"key must be an int seed or a jax.random key; got {key!r}")
    if isinstance(key, int | np.integer):
        return jax.random.PRNGKey(int(key))
    if isinstance(key, jax.Array | np.ndarray):
        if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
            return key
        if key.shape == (2,) and key.dtype == jnp.uint32:
            return jnp.asarray(key)
    raise ValueError(
        f"key must be an int seed or a jax.random key (e.g. jax.random.key(0)); got {key!r}"
    )


# Model kinds whose programs need concrete (Python float) scales, e.g. because they build numpy
# arrays from them. Found on first use; their compiled programs are then keyed on the scales.
_STATIC_SCALE_KINDS: set[str] = set()
_TRACE_ERRORS = (
    jax.errors.ConcretizationTypeError,
    jax.errors.TracerArrayConversionError,
    jax.errors.TracerBoolConversionError,
    jax.errors.TracerIntegerConversionError,
)


class StaticScales:
    """Hashable data scales, for models whose programs need them as Python floats."""

    __slots__ = ("items",)

    def __init__(self, scales):
        self.items = tuple(sorted((str(k), float(v)) for k, v in scales.items()))

    def __hash__(self):
        return hash(self.items)

    def stable_key(self) -> list:
        """The scales by value (:mod:`~bayes_ssm.inference.program_store`)."""
        return [[k, repr(v)] for k, v in self.items]

    def __eq__(self, other):
        return isinstance(other, StaticScales) and self.items == other.items


def resolve_scales(static, dynamic):
    """The scales dict a program sees inside jit (one of the two is None)."""
    return dict(static.items) if static is not None else dynamic


def call_with_scales(model, scales, fn):
    """``fn(static, dynamic)`` with the scales traced when the model allows it.

    Traced scales let one compiled program serve every dataset of the same shape; a model whose
    program needs concrete floats is remembered and gets them as a static argument instead.
    """
    if model.kind not in _STATIC_SCALE_KINDS:
        try:
            return fn(None, {k: jnp.asarray(v) for k, v in scales.items()})
        except _TRACE_ERRORS:
            _STATIC_SCALE_KINDS.add(model.kind)
    return fn(StaticScales(scales), None)


def model_kwargs(scales, covariates=None, horizon=0, future_covariates=None, components=False):
    """Keyword arguments of ``model.model`` (besides ``y``)."""
    return dict(
        scales=scales,
        covariates=covariates,
        horizon=horizon,
        future_covariates=future_covariates,
        components=components,
    )


def latent_shapes(model, y, scales, covariates=None) -> dict[str, tuple[int, ...]]:
    """Latent (unobserved ``numpyro.sample``) sites of the fitting program and their shapes.

    Traced abstractly (``jax.eval_shape``: nothing is compiled or run); a model whose program
    needs concrete data runs once eagerly instead.
    """

    order: list[str] = []  # the program's site order (eval_shape's output dict is key-sorted)

    def latent(y, cov):
        with handlers.trace() as tr, handlers.seed(rng_seed=0):
            model.model(y, **model_kwargs(dict(scales), cov))
        names = [n for n, s in tr.items() if s["type"] == "sample" and not s["is_observed"]]
        order[:] = names
        return {name: tr[name]["value"] for name in names}

    try:
        out = jax.eval_shape(latent, jnp.asarray(y), _opt(covariates))
    except _TRACE_ERRORS:
        out = latent(jnp.asarray(y), _opt(covariates))
    return {name: tuple(out[name].shape) for name in order}


def latent_sites(model, y, scales, covariates=None) -> tuple[str, ...]:
    """Names of the latent sites of the fitting program."""
    return tuple(latent_shapes(model, y, scales, covariates))


def _opt(x):
    return None if x is None else jnp.asarray(x)


@locked_jit(static_argnames=("mkey", "static_scales", "horizon", "components", "sites"))
def _predict(
    mkey,
    key,
    draws,
    y,
    static_scales,
    dyn_scales,
    covariates,
    future_covariates,
    horizon,
    components,
    sites,
):
    scales = resolve_scales(static_scales, dyn_scales)
    predictive = Predictive(
        mkey.model.model,
        posterior_samples=draws,
        return_sites=list(sites),
        parallel=True,
        batch_ndims=1,
    )
    return predictive(
        key, y, **model_kwargs(scales, covariates, horizon, future_covariates, components)
    )


def predict(
    model,
    key,
    draws,
    y,
    scales,
    *,
    covariates=None,
    future_covariates=None,
    horizon=0,
    components=False,
    sites=(),
) -> dict[str, np.ndarray]:
    """Run the model under ``Predictive`` with posterior ``draws`` and return ``sites``.

    Parameters
    ----------
    draws : dict of str to array, each of shape ``(sample, ...)``
        Latent site values (chains already flattened into ``sample``).
    y : array, shape ``(time,)``
    sites : tuple of str
        Sites to return; each result has shape ``(sample, ...)``.

    Returns
    -------
    dict of str to numpy.ndarray
    """
    args = (
        ModelKey(model),
        as_key(key),
        {k: jnp.asarray(v) for k, v in draws.items()},
        jnp.asarray(y),
    )
    rest = (_opt(covariates), _opt(future_covariates), int(horizon), bool(components), tuple(sites))
    out = call_with_scales(model, scales, lambda st, dy: _predict(*args, st, dy, *rest))
    return {k: np.asarray(v) for k, v in out.items()}


def trace_site_names(
    model, y, scales, *, covariates=None, horizon=0, future_covariates=None, components=False
) -> dict[str, str]:
    """All site names of one prior run of the program, mapped to their site type."""
    with handlers.trace() as tr, handlers.seed(rng_seed=0):
        model.model(
            jnp.asarray(y),
            **model_kwargs(
                dict(scales), _opt(covariates), horizon, _opt(future_covariates), components
            ),
        )
    return {name: site["type"] for name, site in tr.items()}
