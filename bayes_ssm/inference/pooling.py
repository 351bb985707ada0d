"""Partial pooling across series: one hierarchical model over many structural series.

``fit_svi_many(..., pooling="partial")`` and ``fit_nuts_many(..., pooling="partial")`` fit

.. math::

    \\mu_k \\sim N(-0.5, 1.5^2), \\quad \\tau_k \\sim \\text{HalfNormal}(1), \\quad
    z_{ik} \\sim N(0, 1), \\quad
    \\sigma_{ik} = r_{ik} \\exp(\\mu_k + \\tau_k z_{ik})

for every noise scale ``k`` of the model (``sigma_obs``, ``sigma_level``, ``sigma_slope``,
``sigma_<seasonal>``) and every series ``i``, non-centred (``z``), with each series' exact
Kalman likelihood given its ``sigma_i``. ``r_ik`` is the scale of that site's default prior
for series ``i`` (``y_scale``, ``dy_scale``, ``0.1 dy_scale``, ``0.1 y_scale``;
:mod:`bayes_ssm.models.structural_priors`), so what the series share is the log ratio of each noise
scale to the series' own data scale, ``log(sigma_ik / r_ik) ~ N(mu_k, tau_k^2)``, and series
of any units pool. Small ``tau_k`` (learned) pulls each series' log-variance towards the
population; large ``tau_k`` leaves the series almost independent. (The seasonal amplitude is
the initial seasonal state, integrated out exactly by the Kalman filter per series; it has no
parameter to pool.)

Each series still gets its own :class:`bayes_ssm.Fit` (draws of its ``sigma`` sites), so
forecasts, ``save`` and ``check`` work as for an independent fit. ``FitCollection.info
["population"]`` holds the posterior means and sds of ``mu_k`` and ``tau_k``.

With covariates (``covariates=`` of the drivers), each series' regression coefficients are
drawn from a population too, non-centred, on the scale of their default prior:

.. math::

    m_j \\sim N(0, 1), \\quad s_j \\sim \\text{HalfNormal}(1), \\quad
    \\zeta_{ij} \\sim N(0, 1), \\quad
    \\beta_{ij} = \\frac{y_{\\text{scale}, i}}{x_{\\text{scale}, ij}} (m_j + s_j \\zeta_{ij})

(sites ``mu/beta``, ``tau/beta``, ``z/beta``, each of length ``covariate``): what the series
share is the standardised effect of covariate ``j`` (coefficient times the covariate's sd over
the series' sd), so coefficients of series in different units pool. The independent fit's
default prior ``beta_ij ~ N(0, (y_scale_i / x_scale_ij)^2)`` is the special case ``m_j = 0,
s_j = 1``.

Supported: :class:`~bayes_ssm.StructuralTS` with the Gaussian likelihood, its noise scales and
(static) regression coefficients (no damping, AR, cycle or time-varying coefficients), and no
prior overrides of the pooled sites. Series of unequal lengths share the program, padded at the
end with missing values (exact; padded covariate rows are zeros at missing steps).
"""

from __future__ import annotations

import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro import handlers
from numpyro.infer import MCMC, NUTS, SVI, init_to_median, init_to_sample
from numpyro.optim import optax_to_numpyro

from bayes_ssm.inference import engine as _engine
from bayes_ssm.inference._elbo import OrderedTraceELBO
from bayes_ssm.inference._many_common import pad_end, prepare_each, stack_covariates
from bayes_ssm.inference._nuts_records import nuts_info, nuts_sample_stats
from bayes_ssm.inference.fit import Fit
from bayes_ssm.inference.fitting import svi_settings
from bayes_ssm.inference.svi import StopRule
from bayes_ssm.models.structural_priors import default_prior

__all__ = [
    "fit_svi_pooled",
    "fit_nuts_pooled",
    "pooled_sites",
    "MU_PRIOR",
    "TAU_PRIOR",
    "BETA_MU_PRIOR",
    "BETA_TAU_PRIOR",
]

MU_PRIOR = (-0.5, 1.5)  # Normal(loc, scale) of each population mean of log(sigma / r)
TAU_PRIOR = 1.0  # HalfNormal scale of each population sd
BETA_MU_PRIOR = (0.0, 1.0)  # Normal(loc, scale) of each standardised population coefficient
BETA_TAU_PRIOR = 1.0  # HalfNormal scale of the spread of the standardised coefficients


def pooled_sites(model, y, scales, covariates=None) -> tuple[str, ...]:
    """The pooled sites of ``model`` (every latent site: noise scales and ``beta``), or a
    ``ValueError`` saying why the model cannot be pooled."""
    if getattr(model, "likelihood", None) != "gaussian" or not hasattr(model, "prior_overrides"):
        raise ValueError(
            "pooling='partial' supports StructuralTS with likelihood='gaussian'; got "
            f"{type(model).__name__}(likelihood={getattr(model, 'likelihood', None)!r})"
        )
    if getattr(model, "regression_states", None) is not None and covariates is not None:
        raise ValueError(
            "pooling='partial' pools static regression coefficients only; got "
            f"regression_states={model.regression_states!r}: fit it with pooling='none'"
        )
    sites = _engine.latent_sites(model, y, scales, covariates)
    others = [s for s in sites if not s.startswith("sigma_") and s != "beta"]
    if others:
        raise ValueError(
            f"pooling='partial' pools noise scales and regression coefficients only; the model "
            f"also samples {others} (damping, AR, cycle or Student-t sites): fit it with "
            "pooling='none'"
        )
    overridden = sorted(set(sites) & set(model.prior_overrides))
    if overridden:
        raise ValueError(f"pooling='partial' replaces the priors of {overridden}; drop overrides")
    return tuple(sites)


def _reference(site, scales):
    """``r_ik``: the scale of the site's default HalfNormal prior (traceable)."""
    return default_prior(site, scales).scale


def _series_log_lik(model, y, scales, params, cov=None):
    """One series' Kalman log likelihood given its noise scales and coefficients (``params``)."""
    with handlers.block(), handlers.trace() as tr, handlers.substitute(data=params):
        with handlers.seed(rng_seed=0):
            model.model(y, **_engine.model_kwargs(scales, cov))
    site = tr["y_log_likelihood"]
    return site["fn"].log_prob(site["value"])


def _beta_reference(scales, num_covariates):
    """``y_scale_i / x_scale_ij``, shape ``(series, covariate)``: the default prior's sds."""
    xs = jnp.stack([scales[f"x_scale_{j}"] for j in range(num_covariates)], axis=-1)
    return scales["y_scale"][:, None] / xs


def _series_params(sites, scales, mu, tau, z):
    """Every series' parameters from the population draws: ``sigma_ik = r_ik exp(mu_k + tau_k
    z_ik)``, shape ``(..., series)``, and ``beta_ij = r_ij (m_j + s_j z_ij)``, shape ``(...,
    series, covariate)``."""
    out = {
        s: _reference(s, scales) * jnp.exp(mu[s][..., None] + tau[s][..., None] * z[s])
        for s in sites
        if s != "beta"
    }
    if "beta" in sites:
        ref = _beta_reference(scales, z["beta"].shape[-1])
        out["beta"] = ref * (mu["beta"][..., None, :] + tau["beta"][..., None, :] * z["beta"])
    return out


def _population_priors(site, num_covariates):
    if site != "beta":
        return dist.Normal(*MU_PRIOR), dist.HalfNormal(TAU_PRIOR), dist.Normal(0.0, 1.0)
    k = [num_covariates]
    return (
        dist.Normal(*BETA_MU_PRIOR).expand(k).to_event(1),
        dist.HalfNormal(BETA_TAU_PRIOR).expand(k).to_event(1),
        dist.Normal(0.0, 1.0).expand(k).to_event(1),
    )


def pooled_program(model, sites, y, scales, cov=None):
    """The hierarchical NumPyro program: ``y`` shape ``(series, time)``, scales ``(series,)``,
    ``cov`` None or ``(series, time, covariate)`` (needed when ``"beta"`` is pooled)."""
    num_cov = 0 if cov is None else cov.shape[-1]
    priors = {s: _population_priors(s, num_cov) for s in sites}
    mu = {s: numpyro.sample(f"mu/{s}", priors[s][0]) for s in sites}
    tau = {s: numpyro.sample(f"tau/{s}", priors[s][1]) for s in sites}
    with numpyro.plate("series", y.shape[0]):
        z = {s: numpyro.sample(f"z/{s}", priors[s][2]) for s in sites}
    params = _series_params(sites, scales, mu, tau, z)
    log_lik = jax.vmap(partial(_series_log_lik, model))(y, scales, params, cov)
    numpyro.factor("y_log_likelihood", jnp.sum(log_lik))


def _stack(model, series, freq, covariates=None):
    """The series validated (``covariates``: None or id -> frame), the pooled sites and the
    stacked, end-padded arrays ``y (series, time)``, scales ``(series,)`` and ``cov``."""
    prepared = prepare_each(model, series, covariates, freq)
    data0, scales0 = next(iter(prepared.values()))
    sites = pooled_sites(model, data0.y, scales0, data0.covariates)
    length = max(d.num_steps for d, _ in prepared.values())
    y = jnp.asarray(np.stack([pad_end(d.y, length) for d, _ in prepared.values()]))
    scales = {k: jnp.asarray([s[k] for _, s in prepared.values()]) for k in scales0}
    cov = stack_covariates([d for d, _ in prepared.values()], length)
    cov = None if cov is None or "beta" not in sites else jnp.asarray(cov, y.dtype)
    return prepared, sites, y, scales, cov


def _summary(values):
    """A float, or a list of floats for a vector site (``beta``)."""
    return float(values) if np.ndim(values) == 0 else np.asarray(values, float).tolist()


def _population(sites, draws) -> dict:
    """Posterior means and sds of every population mean ``mu/<site>`` and spread
    ``tau/<site>`` (for ``beta``: lists over the covariates, standardised units)."""
    return {
        s: {
            f"{part}_{stat}": _summary(fn(draws[f"{part}/{s}"], axis=(0, 1)))
            for part in ("mu", "tau")
            for stat, fn in (("mean", np.mean), ("sd", np.std))
        }
        for s in sites
    }


def _series_draws(sites, scales, draws):
    """``{site: (chain, draw, series, ...)}`` from population draws ``(chain, draw, ...)`` and
    ``z`` draws ``(chain, draw, series, ...)``."""
    mu = {s: jnp.asarray(draws[f"mu/{s}"]) for s in sites}
    tau = {s: jnp.asarray(draws[f"tau/{s}"]) for s in sites}
    z = {s: jnp.asarray(draws[f"z/{s}"]) for s in sites}
    return {k: np.asarray(v) for k, v in _series_params(sites, scales, mu, tau, z).items()}


def _pooled_svi(model, sites, guide_kind, optimizer):
    """NumPyro's SVI of the pooled program with an autoguide of kind ``guide_kind``."""
    from bayes_ssm.inference.svi import GUIDES

    program = partial(pooled_program, model, sites)
    guide = GUIDES[guide_kind](program, init_loc_fn=init_to_median(num_samples=15))
    return SVI(program, guide, optax_to_numpyro(optimizer), OrderedTraceELBO())


@partial(jax.jit, static_argnames=("mkey", "sites", "guide_kind", "optimizer", "num_steps"))
def _pooled_steps(mkey, sites, guide_kind, optimizer, num_steps, state, y, scales, cov):
    """``num_steps`` SVI steps of the pooled model: ``(state, losses (num_steps,))``.

    Module-level, with the model (:class:`~bayes_ssm.inference.engine.ModelKey`), the pooled
    sites, the guide kind and the optimizer static: a second fit of same-shape data (another
    key, a backtest origin) reuses the compiled program instead of compiling a new closure.
    """
    svi = _pooled_svi(mkey.model, sites, guide_kind, optimizer)
    svi.init(jax.random.PRNGKey(0), y, scales, cov)  # sets svi.constrain_fn; result unused
    return jax.lax.scan(lambda s, _: svi.update(s, y, scales, cov), state, None, length=num_steps)


@partial(jax.jit, static_argnames=("mkey", "sites", "guide_kind", "optimizer", "num_samples"))
def _pooled_draws(mkey, sites, guide_kind, optimizer, num_samples, state, key, y, scales, cov):
    """``num_samples`` draws of every site from the fitted guide (compiled once, as
    :func:`_pooled_steps`; NumPyro's eager ``sample_posterior`` compiles a new ``scan`` on
    every call)."""
    svi = _pooled_svi(mkey.model, sites, guide_kind, optimizer)
    svi.init(jax.random.PRNGKey(0), y, scales, cov)
    params = svi.get_params(state)
    return svi.guide.sample_posterior(key, params, y, scales, cov, sample_shape=(num_samples,))


def fit_svi_pooled(
    model,
    series,
    key,
    *,
    freq=None,
    covariates=None,
    guide="normal",
    steps=10_000,
    optimizer=None,
    learning_rate=0.01,
    tol=1e-4,
    check_every=250,
    num_samples=1000,
    progress=False,
):
    """SVI of the pooled model (AutoNormal or another autoguide over ``mu``, ``tau``, ``z``).

    Returns ``(fits, failures, info)`` as :func:`bayes_ssm.inference.many_svi.svi_series`;
    the stopping rule runs on the joint loss, and a non-finite joint loss fails every series
    (one program).
    """
    steps, check_every, num_samples, optimizer = svi_settings(
        guide, steps, check_every, num_samples, tol, optimizer, learning_rate
    )
    prepared, sites, y, scales, cov = _stack(model, series, freq, covariates)
    mkey = _engine.ModelKey(model)
    svi = _pooled_svi(model, sites, guide, optimizer)  # its init runs eagerly, compiles once
    k_fit, k_draw = jax.random.split(key)
    start = time.perf_counter()
    state = svi.init(k_fit, y, scales, cov)
    rule = StopRule(tol, check_every, "the pooled model")
    try:
        while rule.done < steps:
            n = min(check_every, steps - rule.done)
            state, losses = _pooled_steps(mkey, sites, guide, optimizer, n, state, y, scales, cov)
            if rule.update(np.asarray(losses)):
                break
    except FloatingPointError as err:
        text = f"FloatingPointError: {err}"
        return {}, dict.fromkeys(prepared, text), {"groups": [list(prepared)], "batch": "pooled"}
    draws = _pooled_draws(mkey, sites, guide, optimizer, num_samples, state, k_draw, y, scales, cov)
    draws = {k: np.asarray(v)[None] for k, v in draws.items()}  # one chain
    per_series = _series_draws(sites, scales, draws)
    losses = np.concatenate(rule.losses)
    population = _population(sites, draws)
    fits = {}
    for i, (ident, (data, sc)) in enumerate(prepared.items()):
        info = {
            "seed": None,
            "guide": guide,
            "pooling": "partial",
            **rule.info(losses, max_steps=steps, check_every=check_every),
            "learning_rate": float(learning_rate),
            "num_samples": num_samples,
            "elapsed_s": time.perf_counter() - start,
            "batch_size": len(prepared),
        }
        fits[ident] = Fit(
            model=model,
            data=data,
            scales=sc,
            method="svi",
            draws={s: per_series[s][:, :, i] for s in sites},
            info=info,
            svi_loss=losses,
        )
    info = {"groups": [list(prepared)], "batch": "pooled", "population": population}
    return fits, {}, info


def fit_nuts_pooled(
    model,
    series,
    key,
    *,
    freq=None,
    covariates=None,
    num_chains=4,
    num_warmup=1000,
    num_samples=1000,
    target_accept=0.8,
    max_tree_depth=10,
    dense_mass=False,
    chain_method="vectorized",
    init="prior",
):
    """NUTS on the pooled model (one joint run, ``num_chains`` vectorised chains); returns
    ``(fits, failures, info)``; every series' Fit carries the joint run's sample stats."""
    if init not in ("prior", "median"):
        raise ValueError(f"pooled NUTS starts from init='prior' or 'median'; got {init!r}")
    prepared, sites, y, scales, cov = _stack(model, series, freq, covariates)
    program = partial(pooled_program, model, sites)
    kernel = NUTS(
        program,
        target_accept_prob=target_accept,
        max_tree_depth=max_tree_depth,
        dense_mass=dense_mass,
        init_strategy=init_to_median(num_samples=15) if init == "median" else init_to_sample,
    )
    method = "sequential" if chain_method == "sequential" else "vectorized"
    mcmc = MCMC(
        kernel,
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method=method,
        progress_bar=False,
    )
    start = time.perf_counter()
    mcmc.run(key, y, scales, cov, extra_fields=("diverging", "num_steps", "accept_prob", "energy"))
    draws = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    extra = mcmc.get_extra_fields(group_by_chain=True)
    stats = nuts_sample_stats(
        extra["diverging"], extra["energy"], extra["num_steps"], extra["accept_prob"]
    )
    per_series = _series_draws(sites, scales, draws)
    fits = {}
    for i, (ident, (data, sc)) in enumerate(prepared.items()):
        info = nuts_info(
            seed=None,
            pooling="partial",
            num_chains=num_chains,
            num_warmup=num_warmup,
            num_samples=num_samples,
            target_accept=target_accept,
            max_tree_depth=max_tree_depth,
            dense_mass=dense_mass,
            chain_method=method,
            init=init,
            elapsed_s=time.perf_counter() - start,
        )
        fits[ident] = Fit(
            model=model,
            data=data,
            scales=sc,
            method="nuts",
            draws={s: per_series[s][:, :, i] for s in sites},
            sample_stats=stats,
            info=info,
        )
    population = _population(sites, draws)
    return fits, {}, {"groups": [list(prepared)], "batch": "pooled", "population": population}
