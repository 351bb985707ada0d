"""bayes_ssm: uncertainty-aware time series with Bayesian state-space models in JAX/NumPyro.

Importing this package changes nothing global: no ``jax_enable_x64``, no device count.
"""

from bayes_ssm import kernels

__version__ = "0.1.0"

__all__ = ["kernels", "__version__"]
