"""Pure JAX kernels: arrays in, arrays or NamedTuples out. No numpyro, no pandas."""

from bayes_ssm.kernels.recurrence import choose_method, linear_recurrence

__all__ = ["linear_recurrence", "choose_method"]
