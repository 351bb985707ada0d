"""The contract every forecasting model keeps: hyperparameters plus one NumPyro model function.

A model is an immutable object of hyperparameters. Calling ``model.model(...)`` inside NumPyro
runs the generative program on plain arrays (models never see pandas;
``bayes_ssm.data.validation`` turns
pandas into arrays). Forecasting is conditioning: the same program with ``horizon > 0`` emits
the future draws, read out through ``numpyro.infer.Predictive``.

Site names are API (tests pin them):

``"log_lik"``
    ``numpyro.deterministic``, shape ``(time,)``: the pointwise log predictive density
    ``log p(y_t | y_{<t}, theta)`` of each observed step (0 at missing steps). ArviZ's
    ``log_likelihood`` group and LOO are built from it.
``"y_forecast"``
    ``numpyro.sample`` (or deterministic), shape ``(horizon,)`` when ``horizon > 0``: draws from
    the posterior predictive of the next ``horizon`` observations, carrying parameter, state and
    observation uncertainty.
``"y_fitted"``
    optional, shape ``(time,)``: one-step-ahead predictive mean in sample.
``"y_rep"``
    optional, with ``components=True``, shape ``(time,)``: one draw from the one-step-ahead
    predictive ``p(y_t | y_<t, theta)`` in sample (ArviZ's ``posterior_predictive`` group, for
    posterior predictive checks and LOO-PIT; ``Fit.to_arviz`` omits that group without it).
``"component/<name>"``
    with ``components=True``, shape ``(time,)``: one draw of each smoothed component
    (``level``, ``trend``, ``seasonal``, ``regression``, ``ar``, ...).
``"y_next_state"`` etc.
    model-specific; free to add.

Everything else (parameter site names) is the model's own, documented in its docstring.
"""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from bayes_ssm.models._shared import jsonable

if TYPE_CHECKING:
    import jax

__all__ = ["TimeSeriesModel", "MODEL_REGISTRY", "register_model", "model_from_spec"]

MODEL_REGISTRY: dict[str, type[TimeSeriesModel]] = {}


def register_model(cls):
    """Class decorator: make a model loadable from its JSON spec by name."""
    MODEL_REGISTRY[cls.kind] = cls
    return cls


@dataclass(frozen=True)
class TimeSeriesModel(abc.ABC):
    """Base class of forecasting models (frozen dataclasses of hyperparameters)."""

    kind: ClassVar[str] = "base"

    @abc.abstractmethod
    def data_scales(self, y: np.ndarray, covariates: np.ndarray | None = None) -> dict[str, float]:
        """Scales of the training data that fix the default priors (plain floats).

        Computed once from the training data by the inference driver and stored with the fit,
        so that forecasting, ``update`` and a reloaded fit use the very same priors.
        """

    @abc.abstractmethod
    def model(
        self,
        y: jax.Array,
        *,
        scales: dict[str, float],
        covariates: jax.Array | None = None,
        horizon: int = 0,
        future_covariates: jax.Array | None = None,
        components: bool = False,
    ) -> None:
        """The NumPyro program.

        Parameters
        ----------
        y : Array, shape ``(time,)``
            Observations, NaN where missing (the likelihood skips them).
        scales : dict
            From :meth:`data_scales` on the training data.
        covariates : Array, shape ``(time, covariate)``, optional
        horizon : int
            Number of future steps to draw at site ``"y_forecast"``.
        future_covariates : Array, shape ``(horizon, covariate)``, optional
        components : bool
            Also emit the ``"component/<name>"`` sites.
        """

    def validate(self, y: np.ndarray, covariates: np.ndarray | None = None) -> None:  # noqa: B027
        """Raise ``ValueError`` when the data cannot be fitted by this model (e.g. too short)."""

    def spec(self) -> dict[str, Any]:
        """A JSON-serialisable description: ``{"kind": ..., "params": {...}}``."""
        return {"kind": self.kind, "params": jsonable(asdict(self))}

    @property
    def parameter_sites(self) -> tuple[str, ...]:
        """Names of the sampled parameter sites (for summaries); empty means 'all latent'."""
        return ()


class HalfLifeSpecMixin:
    """``spec`` / ``from_params`` for models with a ``half_life`` field (a
    :class:`~bayes_ssm.priors.HalfLife`): stored as a dict of its set fields, rebuilt on load."""

    def spec(self) -> dict[str, Any]:
        params = asdict(self)
        params["half_life"] = {k: v for k, v in asdict(self.half_life).items() if v is not None}
        return {"kind": self.kind, "params": jsonable(params)}

    @classmethod
    def from_params(cls, params):
        from bayes_ssm.priors import HalfLife

        params = dict(params)
        if isinstance(params.get("half_life"), dict):
            params["half_life"] = HalfLife(**params["half_life"])
        return cls(**params)


def model_from_spec(spec: dict[str, Any]) -> TimeSeriesModel:
    """Rebuild a model from :meth:`TimeSeriesModel.spec` (the inverse of ``spec``)."""
    try:
        cls = MODEL_REGISTRY[spec["kind"]]
    except KeyError:
        raise ValueError(
            f"unknown model kind {spec.get('kind')!r}; known: {sorted(MODEL_REGISTRY)}"
        ) from None
    return (
        cls.from_params(spec.get("params", {}))
        if hasattr(cls, "from_params")
        else cls(**spec.get("params", {}))
    )
