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
from bayes_ssm.kernels.kalman_diffuse import DiffuseFilterResult, diffuse_kalman_filter
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
    "diffuse_kalman_filter",
    "DiffuseFilterResult",
]
from bayes_ssm.kernels.ssd import SSDParams, ssd, ssd_discrete, ssd_mask  # noqa: E402

__all__ += ["ssd", "ssd_discrete", "ssd_mask", "SSDParams"]
from bayes_ssm.kernels._checks import merge_heads, split_heads  # noqa: E402
from bayes_ssm.kernels.attention import (  # noqa: E402
    favor_attention,
    favor_features,
    init_favor_projection,
    linear_attention,
    softmax_attention,
)
from bayes_ssm.kernels.discretize import discretize_zoh  # noqa: E402

__all__ += [
    "split_heads",
    "merge_heads",
    "softmax_attention",
    "linear_attention",
    "favor_attention",
    "favor_features",
    "init_favor_projection",
    "discretize_zoh",
]
from bayes_ssm.kernels.s4d import S4DParams, init_s4d, s4d, s4d_kernel  # noqa: E402
from bayes_ssm.kernels.selective import (  # noqa: E402
    SelectiveParams,
    init_selective_A,
    selective_scan,
)

__all__ += [
    "S4DParams",
    "init_s4d",
    "s4d",
    "s4d_kernel",
    "SelectiveParams",
    "init_selective_A",
    "selective_scan",
]
from bayes_ssm.kernels.implied import implied_attention  # noqa: E402

__all__ += ["implied_attention"]
