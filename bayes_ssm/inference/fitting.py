"""Inference drivers: NUTS (``fit_nuts``) and stochastic variational inference (``fit_svi``).

Both take a model (``bayes_ssm.models.base.TimeSeriesModel``) and pandas data, validate the
data at the boundary (``bayes_ssm.data.validation``), fix the prior scales from the training data
once
(``model.data_scales``) and return an immutable :class:`bayes_ssm.Fit`.
"""

from __future__ import annotations

import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
from numpyro.infer import MCMC, NUTS, init_to_sample
from numpyro.infer.util import unconstrain_fn

from bayes_ssm.data.types import CovariatesLike, KeyLike, SeriesLike
from bayes_ssm.data.validation import as_series_data
from bayes_ssm.inference import engine as _engine
from bayes_ssm.inference._nuts_records import nuts_info, nuts_sample_stats
from bayes_ssm.inference.advice import SVI_ON_VOLATILITY
from bayes_ssm.inference.fit import Fit
from bayes_ssm.inference.map_start import INITS, map_record
from bayes_ssm.inference.nuts_mass import mass_structure
from bayes_ssm.inference.padding import padded_data, padded_length, validate_pad_to
from bayes_ssm.inference.pointwise import keep_pointwise_log_lik
from bayes_ssm.inference.progress import show_progress
from bayes_ssm.inference.schedules import resolve_schedule, schedule_optimizer
from bayes_ssm.inference.svi import GUIDES, finish_svi, jnp_data, run_svi
from bayes_ssm.models._state_paths import init_to_median_path
from bayes_ssm.models.base import TimeSeriesModel

__all__ = ["fit_nuts", "fit_svi", "GUIDES"]

_CHAIN_METHODS = ("auto", "parallel", "vectorized", "sequential")
_INITS = ("prior", "median", "svi", "map")
_NUTS_FIELDS = ("diverging", "energy", "num_steps", "accept_prob", "adapt_state.step_size")


def _positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def _non_negative(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, float | int) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0; got {value!r}")
    return float(value)


def _seed_info(key):
    return int(key) if isinstance(key, int | np.integer) else None


def _prepare(model, y, covariates, freq):
    data = as_series_data(y, covariates=covariates, freq=freq)
    model.validate(data.y, data.covariates)
    scales = {k: float(v) for k, v in model.data_scales(data.y, data.covariates).items()}
    return data, scales


def _prepare_timed(model, y, covariates, freq):
    """:func:`_prepare` for a model that may run in continuous time (``model.time``): returns
    ``(model, data, scales)``, the model bound to the observation times when the data are
    irregular (or ``time="continuous"``)."""
    time = getattr(model, "time", "discrete")
    data = as_series_data(y, covariates=covariates, freq=freq, time=time)
    if data.times is not None:
        unit = None if data.time_unit is None else data.time_unit.total_seconds()
        model = model.with_times(data.times, unit)
    model.validate(data.y, data.covariates)
    scales = {k: float(v) for k, v in model.data_scales(data.y, data.covariates).items()}
    return model, data, scales


def fit_svi(
    model: TimeSeriesModel,
    y: SeriesLike,
    *,
    key: KeyLike,
    covariates: CovariatesLike | None = None,
    freq: str | None = None,
    guide: str = "normal",
    steps: int = 10_000,
    optimizer: optax.GradientTransformation | None = None,
    learning_rate: float = 0.01,
    schedule: str | None = None,
    tol: float = 1e-4,
    min_change: float = 0.0,
    check_every: int = 250,
    num_samples: int = 1000,
    progress: bool = True,
    pad_to: int | None = None,
    init: str = "prior",
) -> Fit:
    """Fit ``model`` to ``y`` by stochastic variational inference with a NumPyro autoguide.

    Parameters
    ----------
    model : TimeSeriesModel
    y : pandas.Series (DatetimeIndex), one-column DataFrame, or array-like ``(time,)``
        NaN marks missing values.
    key : int or jax.random key
        Keyword-only. Same key, same fit.
    covariates : pandas.DataFrame or array-like ``(time, covariate)``, optional
    freq : str, optional
        Frequency when it cannot be inferred from the index (or ``y`` is an array).
    guide : {"normal", "multivariate_normal", "low_rank", "delta"}
        AutoNormal (mean field), AutoMultivariateNormal, AutoLowRankMultivariateNormal or
        AutoDelta (MAP: the draws are one point repeated).
    steps : int
        Most optimisation steps.
    optimizer : optax.GradientTransformation, optional
        Default ``optax.adam`` with the step size ``learning_rate`` on ``schedule``.
    learning_rate : float
        Adam's (peak) step size (ignored when ``optimizer`` is given).
    schedule : {"constant", "decay", "warmup_cosine"}, optional
        The step-size schedule (:mod:`bayes_ssm.inference.schedules`). ``"constant"``:
        ``learning_rate`` throughout. ``"decay"``: 10 x ``learning_rate`` at first, halved
        every 250 steps down to ``learning_rate / 2`` (an option of
        :func:`bayes_ssm.auto_fit`, not its default). ``"warmup_cosine"``: a linear warm-up
        over 250 steps, then a cosine decay over ``steps`` to 5% of ``learning_rate``.
        Default: the model's own ``svi_schedule`` (``NeuralSSM`` and ``HybridTS``:
        ``"warmup_cosine"``), else ``"constant"``. Ignored when ``optimizer`` is given.
        ``fit.info["schedule"]`` records which ran (``"user"`` for a given ``optimizer``).
    tol : float
        Stop when, twice in a row, the mean loss of the last ``check_every`` steps changed by
        less than ``tol`` relative to the previous window, or by less than twice its
        Monte-Carlo standard error, *and* the guide parameters did not move steadily one way
        during the window (directedness at most 0.5: a flat loss with steadily moving
        parameters is a stalled optimiser, e.g. a learning rate far too small; see
        ``bayes_ssm.inference.svi_stop.StopRule``). ``fit.info["converged"]`` records whether that
        happened, ``info["directedness"]`` the last window's value and ``info["stalled"]``
        whether the loss was flat while the parameters still moved steadily.
    min_change : float
        Nats: a change of the window's mean loss (from the previous window, and from four
        windows back) smaller than this also counts as no change, however small its noise; 0
        (default) leaves it to the noise, as :func:`bayes_ssm.auto_fit` does (1 nat with the
        ``"decay"`` schedule saved steps but cost accuracy: ``docs/default.md``, "Why it is not
        the default"). The directedness test still applies: a stalled optimiser is not called
        converged.
    num_samples : int
        Draws taken from the fitted guide (stored in ``fit.draws``, one chain).
    progress : bool
        tqdm bar (a widget in Jupyter); drawn only where someone can see it: stderr is a
        terminal or the code runs in a Jupyter kernel. ``BAYES_SSM_PROGRESS=0`` silences it.
    pad_to : int, optional
        Run the compiled programs on ``y`` followed by missing values up to this length, so
        that fits of series of different lengths (up to ``pad_to``) compile once, e.g. the
        expanding windows of a backtest. Missing values add nothing to the likelihood: the
        fit is that of ``y`` (to rounding). Ignored (no padding) for models other than
        ``StructuralTS``, models whose latent sites grow with the length, with covariates,
        or in continuous time; see
        :mod:`bayes_ssm.inference.padding`. ``fit.info["padded_to"]`` records the length used.
    init : {"prior", "map"}
        Where SVI starts. ``"prior"``: the guide's locations at the median of 15 prior draws,
        scales 0.1 (NumPyro's ``init_to_median``). ``"map"`` (``guide="normal"`` only): at the
        posterior mode in the unconstrained space, found by L-BFGS in one compiled program,
        with each scale ``1 / sqrt(H_ii)`` from the Hessian of the potential there (the
        mean-field optimum of a Gaussian posterior), so the stopping rule ends SVI in fewer
        steps (:mod:`bayes_ssm.inference.map_start`). ``fit.info["map"]`` records the search
        (converged, iterations, gradient norm, potential, smallest Hessian diagonal);
        ``bs.check`` reports a search that did not converge, a non-positive curvature, or a
        non-finite mode (then SVI starts from the prior start, ``info["map"]["used"]`` False).

    Returns
    -------
    Fit
    """
    pad_to = validate_pad_to(pad_to)
    init = check_init(init, guide)
    if getattr(model, "kind", None) == "stochastic_volatility":
        from bayes_ssm.inference.diagnostics import FitWarning  # arviz: imported only when needed

        warnings.warn(SVI_ON_VOLATILITY, FitWarning, stacklevel=2)
    schedule = "user" if optimizer is not None else resolve_schedule(model, schedule)
    steps, check_every, num_samples, optimizer = svi_settings(
        guide, steps, check_every, num_samples, tol, optimizer, learning_rate, schedule
    )
    model, data, scales = _prepare_timed(model, y, covariates, freq)
    k_fit, k_draw = jax.random.split(_engine.as_key(key))
    latent = _engine.latent_sites(model, data.y, scales, data.covariates)
    if not latent:
        raise ValueError(f"model {model.kind!r} has no latent sites to fit")
    start = time.perf_counter()
    padded = padded_length(model, data, scales, pad_to)
    run_data = padded_data(data, padded)
    state, rule, (static, dyn), record = run_svi(
        model,
        run_data,
        scales,
        k_fit,
        guide=guide,
        steps=steps,
        optimizer=optimizer,
        tol=tol,
        check_every=check_every,
        progress=progress,
        min_change=_non_negative(min_change, "min_change"),
        init=init,
    )
    params, draws = finish_svi(
        model, guide, optimizer, static, dyn, state, k_draw, run_data, num_samples
    )
    losses = np.concatenate(rule.losses)
    fit = svi_fit(
        model,
        data,
        scales,
        params,
        draws,
        latent,
        losses,
        info={
            "seed": _seed_info(key),
            "guide": guide,
            **rule.info(losses, max_steps=steps, check_every=check_every),
            "learning_rate": float(learning_rate),
            "schedule": schedule,
            "num_samples": num_samples,
            "padded_to": padded,
            "init": init,
            **({} if record is None else {"map": map_record(record)}),
            "elapsed_s": time.perf_counter() - start,
        },
    )
    keep_pointwise_log_lik(fit, draws)
    return fit


def check_init(init, guide) -> str:
    """:func:`fit_svi`'s ``init``, checked: ``"prior"`` or ``"map"`` (AutoNormal only)."""
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}; got {init!r}")
    if init == "map" and guide != "normal":
        raise ValueError(f"init='map' needs guide='normal' (AutoNormal); got guide={guide!r}")
    return init


def svi_settings(
    guide, steps, check_every, num_samples, tol, optimizer, learning_rate, schedule="constant"
):
    """Validate :func:`fit_svi`'s settings; returns ``(steps, check_every, num_samples,
    optimizer)`` with the default optimizer (``learning_rate`` on the named ``schedule`` over
    ``steps``; :func:`bayes_ssm.inference.schedules.schedule_optimizer`) filled in."""
    if guide not in GUIDES:
        raise ValueError(f"guide must be one of {sorted(GUIDES)}; got {guide!r}")
    steps = _positive_int(steps, "steps")
    check_every = _positive_int(check_every, "check_every", 2)
    num_samples = _positive_int(num_samples, "num_samples", 2)
    if not (isinstance(tol, float | int) and tol > 0):
        raise ValueError(f"tol must be a positive number; got {tol!r}")
    if optimizer is None:
        if not (isinstance(learning_rate, float | int) and learning_rate > 0):
            raise ValueError(f"learning_rate must be positive; got {learning_rate!r}")
        optimizer = schedule_optimizer(schedule, float(learning_rate), steps)
    elif not isinstance(optimizer, optax.GradientTransformation):
        raise ValueError(f"optimizer must be an optax.GradientTransformation; got {optimizer!r}")
    return steps, check_every, num_samples, optimizer


def svi_fit(model, data, scales, params, draws, latent, losses, info) -> Fit:
    """The :class:`Fit` of an SVI run: draws of the latent sites as one chain."""
    return Fit(
        model=model,
        data=data,
        scales=scales,
        method="svi",
        draws={k: np.asarray(draws[k])[None] for k in latent},
        info=info,
        guide_params={k: np.asarray(v) for k, v in params.items()},
        svi_loss=losses,
    )


# --------------------------------------------------------------------------------------- NUTS
def _chain_method(chain_method: str, num_chains: int) -> str:
    if chain_method not in _CHAIN_METHODS:
        raise ValueError(f"chain_method must be one of {_CHAIN_METHODS}; got {chain_method!r}")
    if chain_method == "auto":
        return "parallel" if jax.local_device_count() >= num_chains else "vectorized"
    return chain_method


def _initial_point(model, data, scales, key, init, num_chains):
    """(init_strategy, init_params) for NUTS; init_params are unconstrained, one per chain."""
    if init == "prior":
        return init_to_sample, None
    if init == "median":
        return init_to_median_path(num_samples=15), None
    guide = "normal" if init == "svi" else "delta"
    k_svi, k_draw, k_jit = jax.random.split(key, 3)
    fit = fit_svi(
        model,
        data_series(data),
        key=k_svi,
        covariates=_cov_frame(data),
        freq=data.freq if data.times is None else data.time_unit,
        guide=guide,
        steps=2000,
        num_samples=max(num_chains, 2),
        progress=False,
    )
    y, cov = jnp_data(data)
    kwargs = _engine.model_kwargs(dict(scales), cov)
    values = {k: jnp.asarray(v[0, :num_chains]) for k, v in fit.draws.items()}
    unconstrained = jax.vmap(lambda p: unconstrain_fn(model.model, (y,), kwargs, p))(values)
    if init == "map":  # one point: jitter the chains apart in unconstrained space
        unconstrained = {
            k: v + 0.1 * jax.random.normal(jax.random.fold_in(k_jit, i), v.shape)
            for i, (k, v) in enumerate(sorted(unconstrained.items()))
        }
    if num_chains == 1:
        unconstrained = {k: v[0] for k, v in unconstrained.items()}
    return init_to_sample, unconstrained


def data_series(data):
    """A ``SeriesData`` back to the pandas Series it came from (values, index, name)."""
    import pandas as pd

    return pd.Series(data.y, index=data.index, name=data.name)


def _cov_frame(data):
    import pandas as pd

    if data.covariates is None:
        return None
    return pd.DataFrame(data.covariates, index=data.index, columns=list(data.covariate_names))


def fit_nuts(
    model: TimeSeriesModel,
    y: SeriesLike,
    *,
    key: KeyLike,
    covariates: CovariatesLike | None = None,
    freq: str | None = None,
    num_chains: int = 4,
    num_warmup: int = 1000,
    num_samples: int = 1000,
    target_accept: float = 0.8,
    max_tree_depth: int = 10,
    dense_mass: bool | str = "auto",
    chain_method: str = "auto",
    init: str = "prior",
    progress: bool = True,
) -> Fit:
    """Fit ``model`` to ``y`` with the No-U-Turn sampler (NumPyro).

    Parameters
    ----------
    model : TimeSeriesModel
    y : pandas.Series (DatetimeIndex), one-column DataFrame, or array-like ``(time,)``
        NaN marks missing values.
    key : int or jax.random key
        Keyword-only. Same key, same draws.
    covariates : pandas.DataFrame or array-like ``(time, covariate)``, optional
    freq : str, optional
    num_chains, num_warmup, num_samples : int
        Chains, warm-up (adaptation) iterations and kept draws per chain.
    target_accept : float
        NUTS target acceptance probability, in (0, 1); raise it when there are divergences.
    max_tree_depth : int
    dense_mass : bool or "auto"
        Adapt a dense mass matrix instead of a diagonal one. ``"auto"`` (default): dense for a
        program of global parameters only (sites of at most 64 values, 200 together),
        diagonal when it samples per-step latents
        (:func:`bayes_ssm.inference.nuts_mass.mass_structure`); on the full ILINet dense cut
        the leapfrog steps per draw 1.2-3.5x and improved r_hat.
    chain_method : {"auto", "parallel", "vectorized", "sequential"}
        ``"auto"``: parallel when ``jax.local_device_count() >= num_chains`` (on CPU, call
        ``numpyro.set_host_device_count`` before JAX starts), vectorized otherwise.
    init : {"prior", "median", "svi", "map"}
        Where chains start: independent prior draws; the prior median; draws from a short
        mean-field SVI fit; the MAP (AutoDelta) point jittered per chain. For models that
        sample per-step latents (e.g. negative-binomial state paths) prefer ``"median"``:
        prior draws of many innovations start the chains on far-off paths; with ``"median"`` a
        site whose distribution carries an ``init_value`` starts there (the count model's state
        path: a smoothed ``log(y + 0.5)``).
    progress : bool
        NumPyro's progress bar over warm-up and sampling (tqdm.auto: a widget in Jupyter);
        drawn only where someone can see it: stderr is a terminal or the code runs in a Jupyter
        kernel. ``BAYES_SSM_PROGRESS=0`` silences it.

    Returns
    -------
    Fit
        ``draws`` of shape ``(chain, draw, ...)`` for every latent site, ``sample_stats``.
    """
    num_chains = _positive_int(num_chains, "num_chains")
    num_warmup = _positive_int(num_warmup, "num_warmup", 0)
    num_samples = _positive_int(num_samples, "num_samples")
    max_tree_depth = _positive_int(max_tree_depth, "max_tree_depth")
    if not (isinstance(target_accept, float) and 0 < target_accept < 1):
        raise ValueError(f"target_accept must be a float in (0, 1); got {target_accept!r}")
    if init not in _INITS:
        raise ValueError(f"init must be one of {_INITS}; got {init!r}")
    method = _chain_method(chain_method, num_chains)
    model, data, scales = _prepare_timed(model, y, covariates, freq)
    k_init, k_mcmc = jax.random.split(_engine.as_key(key))
    shapes = _engine.latent_shapes(model, data.y, scales, data.covariates)
    latent = tuple(shapes)
    if not latent:
        raise ValueError(f"model {model.kind!r} has no latent sites to sample")
    mass = mass_structure(shapes, dense_mass)
    start = time.perf_counter()
    strategy, init_params = _initial_point(model, data, scales, k_init, init, num_chains)
    kernel = NUTS(
        model.model,
        target_accept_prob=target_accept,
        max_tree_depth=max_tree_depth,
        dense_mass=mass,
        init_strategy=strategy,
    )
    mcmc = MCMC(
        kernel,
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method=method,
        progress_bar=show_progress(progress),
    )
    y_j, cov = jnp_data(data)
    mcmc.run(
        k_mcmc,
        y_j,
        init_params=init_params,
        extra_fields=_NUTS_FIELDS,
        **_engine.model_kwargs(dict(scales), cov),
    )
    samples = mcmc.get_samples(group_by_chain=True)
    extra = mcmc.get_extra_fields(group_by_chain=True)
    stats = nuts_sample_stats(
        extra["diverging"],
        extra["energy"],
        extra["num_steps"],
        extra["accept_prob"],
        extra["adapt_state.step_size"],
    )
    info = nuts_info(
        seed=_seed_info(key),
        num_chains=num_chains,
        num_warmup=num_warmup,
        num_samples=num_samples,
        target_accept=target_accept,
        max_tree_depth=max_tree_depth,
        dense_mass=mass,
        chain_method=method,
        init=init,
        elapsed_s=time.perf_counter() - start,
    )
    return Fit(
        model=model,
        data=data,
        scales=scales,
        method="nuts",
        draws={k: np.asarray(samples[k]) for k in latent},
        sample_stats=stats,
        info=info,
    )
