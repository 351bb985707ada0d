"""The ordered ELBO (``bayes_ssm.inference._elbo``) against NumPyro's ``Trace_ELBO``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import SVI, Trace_ELBO, autoguide
from numpyro.optim import Adam

from bayes_ssm.inference._elbo import OrderedTraceELBO


def _model(y):
    # site names whose set order changes with PYTHONHASHSEED; one guide-only-free layout
    scale = numpyro.sample("zeta_scale", dist.HalfNormal(1.0))
    loc = numpyro.sample("alpha_loc", dist.Normal(0.0, 1.0))
    shift = numpyro.sample("mu_shift", dist.Normal(0.0, 1.0).expand([3]).to_event(1))
    numpyro.sample("y", dist.Normal(loc + shift.sum(), scale), obs=y)


def test_ordered_elbo_equals_numpyro_trace_elbo(x64):
    """Same estimator, same random draws: the loss and its gradient agree with NumPyro's to
    rounding (only the order of the sum differs)."""
    y = jnp.asarray(np.random.default_rng(0).normal(0.5, 2.0, 50))
    guide = autoguide.AutoNormal(_model)
    losses, grads = [], []
    for elbo in (OrderedTraceELBO(), Trace_ELBO()):
        svi = SVI(_model, guide, Adam(0.05), elbo)
        state = svi.init(jax.random.PRNGKey(1), y)
        p = svi.get_params(state)
        key = jax.random.PRNGKey(2)
        losses.append(elbo.loss(key, p, _model, guide, y))
        grads.append(jax.grad(lambda q, e=elbo, k=key: e.loss(k, q, _model, guide, y))(p))
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-12)
    for name in grads[1]:
        np.testing.assert_allclose(grads[0][name], grads[1][name], rtol=1e-9, atol=1e-12)
