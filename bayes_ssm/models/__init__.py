"""NumPyro models over the kernels. ``numpyro.sample`` lives here and in ``layers/`` only."""

from bayes_ssm.models.attention_ar import AttentionAR
from bayes_ssm.models.base import TimeSeriesModel, model_from_spec, register_model
from bayes_ssm.models.heavy_level import HeavyLevelTS
from bayes_ssm.models.hybrid import HybridTS
from bayes_ssm.models.neural import NeuralSSM
from bayes_ssm.models.seasonal import Seasonal
from bayes_ssm.models.seasonal_noise import SeasonalNoiseTS
from bayes_ssm.models.stochastic_volatility import StochasticVolatility
from bayes_ssm.models.structural import StructuralTS

__all__ = [
    "TimeSeriesModel",
    "model_from_spec",
    "register_model",
    "StructuralTS",
    "SeasonalNoiseTS",
    "HeavyLevelTS",
    "Seasonal",
    "AttentionAR",
    "NeuralSSM",
    "HybridTS",
    "StochasticVolatility",
]
