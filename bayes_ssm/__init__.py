"""bayes_ssm: uncertainty-aware time series with Bayesian state-space models in JAX/NumPyro.

The public namespace is curated here. Importing this package changes nothing global: no
``jax_enable_x64``, no host device count, no matplotlib backend.

>>> import bayes_ssm as bs
>>> y = bs.datasets.load("ili")
>>> model = bs.StructuralTS(trend="local_linear", seasonal=52)
"""

from bayes_ssm import datasets, kernels, layers, metrics, priors
from bayes_ssm.anomalies import anomalies
from bayes_ssm.attention_map import attention_map
from bayes_ssm.backtest import backtest, summarize_backtest
from bayes_ssm.diagnostics import FitWarning, check, compare, summary
from bayes_ssm.events import Event, event_covariates
from bayes_ssm.fit import Fit
from bayes_ssm.infer import fit_nuts, fit_svi
from bayes_ssm.io import load
from bayes_ssm.models import AttentionAR, Seasonal, StructuralTS, TimeSeriesModel
from bayes_ssm.plotting import (
    plot_anomalies,
    plot_attention_map,
    plot_backtest_scores,
    plot_calibration,
    plot_components,
    plot_forecast,
)

__version__ = "0.1.0"

__all__ = [
    "AttentionAR",
    "Event",
    "Fit",
    "FitWarning",
    "Seasonal",
    "StructuralTS",
    "TimeSeriesModel",
    "anomalies",
    "attention_map",
    "backtest",
    "check",
    "compare",
    "datasets",
    "event_covariates",
    "fit_nuts",
    "fit_svi",
    "kernels",
    "layers",
    "load",
    "metrics",
    "plot_anomalies",
    "plot_attention_map",
    "plot_backtest_scores",
    "plot_calibration",
    "plot_components",
    "plot_forecast",
    "priors",
    "summarize_backtest",
    "summary",
    "__version__",
]
