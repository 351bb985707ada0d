"""Pure JAX kernels: arrays in, arrays or NamedTuples out. No numpyro, no pandas."""

from bayes_ssm.kernels.recurrence import choose_method, linear_recurrence

__all__ = ["linear_recurrence", "choose_method"]
from bayes_ssm.kernels.ssd import SSDParams, ssd, ssd_discrete, ssd_mask  # noqa: E402

__all__ += ["ssd", "ssd_discrete", "ssd_mask", "SSDParams"]
