"""Helpers the model modules share (one place that every model imports; no model imports
another model's private helpers).

- :func:`ffill`: the network input of the neural models (``AttentionAR``, ``NeuralSSM``,
  ``HybridTS``): missing values carried forward.
- :func:`freeze_prior`, :func:`prior_json`: prior overrides stored hashable on a frozen model
  and written to its spec (``StructuralTS``, ``StochasticVolatility``).
- :func:`jsonable`: a model's parameters as JSON for :meth:`TimeSeriesModel.spec`.
- :func:`psd_sqrt`: a square root of a (possibly singular) state covariance, for simulating
  state paths (the continuous-time and the extras programs).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["ffill", "freeze_prior", "prior_json", "jsonable", "psd_sqrt"]


def ffill(y):
    """Carry the last observed value forward over NaN (leading NaN -> 0)."""
    obs = ~jnp.isnan(y)
    idx = jnp.where(obs, jnp.arange(y.shape[0]), -1)
    last = jax.lax.cummax(idx, axis=0)
    return jnp.where(last >= 0, y[jnp.maximum(last, 0)], 0.0)


def psd_sqrt(cov):
    """``L`` with ``L @ L.T == cov`` for a symmetric PSD ``cov (n, n)`` (eigen-decomposition,
    so a singular covariance, e.g. a fixed seasonal state, is fine; tiny negative eigenvalues
    from round-off are clipped to 0)."""
    cov = 0.5 * (cov + cov.T)
    w, v = jnp.linalg.eigh(cov)
    return v * jnp.sqrt(jnp.clip(w, 0.0))


def freeze_prior(name, value):
    """Priors are stored hashable: dict specs as sorted tuples of items (lists as tuples)."""
    if isinstance(value, tuple):
        value = dict(value)
    if isinstance(value, dict):
        items = (
            (k, tuple(np.ravel(v).tolist()) if isinstance(v, list | np.ndarray) else v)
            for k, v in value.items()
        )
        return (name, tuple(sorted(items)))
    return (name, value)


def prior_json(name, value) -> dict:
    """A stored prior override (see :func:`freeze_prior`) as JSON for a model spec."""
    if isinstance(value, tuple):
        value = {k: list(v) if isinstance(v, tuple) else v for k, v in value}
    if not isinstance(value, dict):
        raise ValueError(
            f"prior override {name!r} is a {type(value).__name__}, which cannot be saved in a "
            "spec; give it as {'dist': 'HalfNormal', 'scale': ...} instead"
        )
    return {
        k: (np.asarray(v).tolist() if isinstance(v, np.ndarray) else v) for k, v in value.items()
    }


def jsonable(value):
    """``value`` with tuples as lists and NumPy scalars as Python numbers (JSON-ready)."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def refuse_time_varying_unsupported(model, level_reason: str) -> None:
    """The options a time-varying-noise :class:`~bayes_ssm.StructuralTS` subclass
    (``SeasonalNoiseTS``, ``HeavyLevelTS``) does not support: ``ValueError`` naming the first
    one set. ``level_reason``: why the subclass needs ``level=True``."""
    name = type(model).__name__
    if not model.level:
        raise ValueError(f"{name} needs level=True ({level_reason})")
    for option, bad in (
        (f"likelihood={model.likelihood!r}", model.likelihood != "gaussian"),
        ("cycle=True", model.cycle),
        ("regression_states", model.regression_states is not None),
        ("initialization='diffuse'", model.initialization != "proper"),
        ("continuous time", model.obs_times is not None or model.time == "continuous"),
    ):
        if bad:
            raise ValueError(f"{name} does not support {option}")
