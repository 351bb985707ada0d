"""Pure JAX kernels: arrays in, arrays or NamedTuples out. No numpyro, no pandas."""

from bayes_ssm.kernels.kalman import (
    FilterResult,
    ForecastResult,
    LastFilterResult,
    SmootherResult,
    StateSpace,
    choose_kalman_method,
    kalman_filter,
    kalman_filter_last,
    kalman_forecast,
    kalman_log_likelihood,
    kalman_smoother,
)
from bayes_ssm.kernels.recurrence import choose_method, linear_recurrence

__all__ = [
    "linear_recurrence",
    "choose_method",
    "StateSpace",
    "FilterResult",
    "LastFilterResult",
    "SmootherResult",
    "ForecastResult",
    "kalman_filter",
    "kalman_filter_last",
    "kalman_log_likelihood",
    "kalman_smoother",
    "kalman_forecast",
    "choose_kalman_method",
]
