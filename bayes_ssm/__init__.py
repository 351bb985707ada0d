"""bayes_ssm: uncertainty-aware time series with Bayesian state-space models in JAX/NumPyro.

The public namespace is curated here. Importing this package changes nothing global: no
``jax_enable_x64``, no host device count, no matplotlib backend.

>>> import bayes_ssm as bs
>>> y = bs.datasets.load("ili")
>>> model = bs.StructuralTS(trend="local_linear", seasonal=52)
"""

import functools
import importlib
import sys
import warnings

if "IPython" in sys.modules:  # a Jupyter kernel, maybe: no "IProgress not found" from tqdm.auto
    from bayes_ssm.inference.progress import quiet_tqdm_import

    quiet_tqdm_import()

# Public name -> the module that defines it. Loaded on first use (PEP 562), so that
# ``import bayes_ssm.kernels`` needs only JAX (no arviz, pandas plotting or scoringrules), and
# ``import bayes_ssm`` stays cheap.
_LAZY = {
    "AttentionAR": "bayes_ssm.models",
    "AutoTS": "bayes_ssm.inference.auto",
    "StackedFit": "bayes_ssm.inference.auto",
    "auto_fit": "bayes_ssm.inference.auto",
    "forecast": "bayes_ssm.inference.auto",
    "Event": "bayes_ssm.data.events",
    "Fit": "bayes_ssm.inference.fit",
    "FitCollection": "bayes_ssm.inference.fit_collection",
    "FitWarning": "bayes_ssm.inference.diagnostics",
    "HybridTS": "bayes_ssm.models",
    "NeuralSSM": "bayes_ssm.models",
    "Seasonal": "bayes_ssm.models",
    "StochasticVolatility": "bayes_ssm.models",
    "StructuralTS": "bayes_ssm.models",
    "TimeSeriesModel": "bayes_ssm.models",
    "anomalies": "bayes_ssm.inference.anomaly",
    "attention_map": "bayes_ssm.inference.attention_maps",
    "backtest": "bayes_ssm.evaluation.backtesting",
    "check": "bayes_ssm.inference.diagnostics",
    "check_keys": "bayes_ssm.inference.key_check",
    "compare": "bayes_ssm.inference.diagnostics",
    "event_covariates": "bayes_ssm.data.events",
    "fit_nuts": "bayes_ssm.inference.fitting",
    "fit_nuts_many": "bayes_ssm.inference.many",
    "fit_svi": "bayes_ssm.inference.fitting",
    "fit_svi_many": "bayes_ssm.inference.many",
    "load": "bayes_ssm.inference.io",
    "plot_anomalies": "bayes_ssm.plotting",
    "plot_attention_map": "bayes_ssm.plotting",
    "plot_backtest_scores": "bayes_ssm.plotting",
    "plot_calibration": "bayes_ssm.plotting",
    "plot_components": "bayes_ssm.plotting",
    "plot_forecast": "bayes_ssm.plotting",
    "summarize_backtest": "bayes_ssm.evaluation.backtesting",
    "summary": "bayes_ssm.inference.diagnostics",
    "volatility_forecast": "bayes_ssm.inference.volatility_forecasts",
}
# Deprecated public names -> the new way. They work for one release and warn: every read-out of a
# fit is a method of the fit (bayes_ssm/inference/readouts.py).
_DEPRECATED = {
    "anomalies": "fit.anomalies(...)",
    "attention_map": "fit.attention_map(...)",
    "volatility_forecast": "fit.volatility_forecast(horizon, ...)",
}
# Public submodule -> its module path.
_SUBMODULES = {
    "datasets": "bayes_ssm.data.datasets",
    "kernels": "bayes_ssm.kernels",
    "layers": "bayes_ssm.layers",
    "metrics": "bayes_ssm.evaluation.metrics",
    "priors": "bayes_ssm.priors",
    "models": "bayes_ssm.models",
    "plotting": "bayes_ssm.plotting",
}


def _deprecated(name, func):
    @functools.wraps(func)
    def deprecated(*args, **kwargs):
        warnings.warn(
            f"bs.{name}(fit, ...) is deprecated and will be removed in the next release; use "
            f"{_DEPRECATED[name]}",
            DeprecationWarning,
            stacklevel=2,
        )
        # looked up at call time: the very function the fit's method calls
        return getattr(importlib.import_module(_LAZY[name]), name)(*args, **kwargs)

    return deprecated


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        if name in _DEPRECATED:
            value = _deprecated(name, value)
    elif name in _SUBMODULES:
        value = importlib.import_module(_SUBMODULES[name])
    else:
        raise AttributeError(f"module 'bayes_ssm' has no attribute {name!r}")
    globals()[name] = value  # cache: later look-ups skip this function
    return value


def __dir__():
    return sorted(__all__)


__version__ = "0.1.0"

__all__ = [
    "AttentionAR",
    "AutoTS",
    "StackedFit",
    "auto_fit",
    "forecast",
    "Event",
    "Fit",
    "FitCollection",
    "FitWarning",
    "HybridTS",
    "NeuralSSM",
    "Seasonal",
    "StochasticVolatility",
    "StructuralTS",
    "TimeSeriesModel",
    "anomalies",
    "attention_map",
    "backtest",
    "check",
    "check_keys",
    "compare",
    "datasets",
    "event_covariates",
    "fit_nuts",
    "fit_nuts_many",
    "fit_svi",
    "fit_svi_many",
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
    "volatility_forecast",
    "__version__",
]
