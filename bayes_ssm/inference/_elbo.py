"""A Trace_ELBO whose traced program does not depend on ``PYTHONHASHSEED`` (private).

NumPyro's ``Trace_ELBO`` (0.22) forms ``log p(z) - log q(z)`` over ``set(model_sites) |
set(guide_sites)``: the order of the per-site subtractions and of their sum follows the hash
order of the site names, which changes with every Python process (``PYTHONHASHSEED``). The
traced SVI step program therefore differs between processes, so JAX's persistent compilation
cache never finds it from a new process, and the loss is summed in a different order (a
different rounding) in each process. :class:`OrderedTraceELBO` computes the same estimator
with the sites in trace order: model sites first, in the order the model visits them, then
any guide-only sites in the guide's order.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import random
from numpyro.handlers import replay, seed
from numpyro.infer import Trace_ELBO
from numpyro.infer.util import compute_log_probs

__all__ = ["OrderedTraceELBO"]


class OrderedTraceELBO(Trace_ELBO):
    """``Trace_ELBO(num_particles=1)`` with the sites summed in trace order (deterministic).

    Other settings (several particles, a multi-sample guide) fall back to NumPyro's code.
    """

    def loss_with_mutable_state(self, rng_key, param_map, model, guide, *args, **kwargs):
        if self.num_particles != 1 or self.multi_sample_guide or not self.sum_sites:
            return super().loss_with_mutable_state(
                rng_key, param_map, model, guide, *args, **kwargs
            )
        model_seed, guide_seed = random.split(rng_key)
        guide_lp, guide_trace = compute_log_probs(seed(guide, guide_seed), args, kwargs, param_map)
        mutable = {n: s["value"] for n, s in guide_trace.items() if s["type"] == "mutable"}
        params = {**param_map, **mutable}
        model_lp, model_trace = compute_log_probs(
            replay(seed(model, model_seed), guide_trace), args, kwargs, params
        )
        mutable.update({n: s["value"] for n, s in model_trace.items() if s["type"] == "mutable"})
        names = list(model_lp) + [n for n in guide_lp if n not in model_lp]
        zero = jnp.array(0.0)
        elbo = sum((model_lp.get(n, zero) - guide_lp.get(n, zero) for n in names), start=zero)
        return {"loss": -elbo, "mutable_state": mutable or None}
