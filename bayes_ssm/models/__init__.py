"""NumPyro models over the kernels. ``numpyro.sample`` lives here and in ``layers/`` only."""

from bayes_ssm.models.base import TimeSeriesModel, model_from_spec, register_model

__all__ = ["TimeSeriesModel", "model_from_spec", "register_model"]
