"""Diagnostics of a fit through ArviZ 1.x: the DataTree, a summary table, plain-words checks, LOO.

``to_datatree`` builds the ArviZ view of a :class:`bayes_ssm.Fit`; ``summary`` wraps
``arviz_stats.summary``; ``check`` turns r_hat, ESS, divergences, tree depth, BFMI and SVI
convergence into warnings a user can act on; ``compare`` wraps ``arviz_stats.compare`` (PSIS-LOO).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING

import arviz_base
import arviz_stats
import numpy as np
import pandas as pd

from bayes_ssm.inference import advice as _advice

if TYPE_CHECKING:
    from collections.abc import Sequence

    from bayes_ssm.inference.fit import Fit

__all__ = ["summary", "check", "compare", "to_datatree", "FitWarning"]


class FitWarning(UserWarning):
    """A fit that should not be trusted as it is (see :func:`check`)."""


def _time_coord(index: pd.Index) -> np.ndarray:
    return index.to_numpy()


def to_datatree(fit, *, key=0):
    """Build the ArviZ ``DataTree`` of ``fit`` (see :meth:`bayes_ssm.Fit.to_arviz`).

    Returns
    -------
    xarray.DataTree
        Groups ``posterior``, ``sample_stats`` (NUTS only), ``log_likelihood``,
        ``posterior_predictive`` (when the model emits ``"y_rep"``), ``observed_data`` and
        ``constant_data`` (covariates). Sample dimensions ``(chain, draw)``; the data
        dimension ``time`` holds the observed (non-NaN) timestamps.
    """
    from bayes_ssm.inference import engine as _engine

    chains, draws = fit.num_chains, fit.num_draws
    observed = ~np.isnan(fit.data.y)
    time = _time_coord(fit.data.index[observed])
    names = _engine.trace_site_names(
        fit.model, fit.data.y, dict(fit.scales), covariates=fit.data.covariates, components=True
    )
    sites = ["log_lik"] + (["y_rep"] if "y_rep" in names else [])
    # y_rep lives in the components=True program; log_lik is the same in both.
    out = fit._predict(key, sites, components="y_rep" in sites)

    def per_chain(arr):
        return arr.reshape((chains, draws) + arr.shape[1:])[..., observed]

    groups = {
        "posterior": dict(fit.draws),
        "log_likelihood": {"y": per_chain(out["log_lik"])},
        "observed_data": {"y": fit.data.y[observed]},
    }
    if "y_rep" in out:
        groups["posterior_predictive"] = {"y": per_chain(out["y_rep"])}
    if fit.sample_stats:
        groups["sample_stats"] = dict(fit.sample_stats)
    dims = {"y": ["time"]}
    coords = {"time": time}
    if fit.data.covariates is not None:
        groups["constant_data"] = {"covariates": fit.data.covariates[observed]}
        dims["covariates"] = ["time", "covariate"]
        coords["covariate"] = list(fit.data.covariate_names)
    attrs = {"/": {"bayes_ssm_model": fit.model.kind, "inference": fit.method}}
    return arviz_base.from_dict(groups, dims=dims, coords=coords, attrs=attrs)


def _posterior_tree(fit):
    groups = {"posterior": dict(fit.draws)}
    if fit.sample_stats:
        groups["sample_stats"] = dict(fit.sample_stats)
    return arviz_base.from_dict(groups)


def summary(fit: Fit, *, ci_prob: float = 0.94, ci_kind: str = "eti") -> pd.DataFrame:
    """Posterior summary per parameter.

    Parameters
    ----------
    fit : Fit
    ci_prob : float
        Credible interval probability, in (0, 1).
    ci_kind : {"eti", "hdi"}
        Equal-tailed or highest-density interval.

    Returns
    -------
    pandas.DataFrame
        One row per parameter (``model.parameter_sites`` when the model names them, else
        every latent site; one row per element of a vector): ``mean, sd``, the interval
        bounds, and for NUTS ``ess_bulk, ess_tail, r_hat`` (and MCSE). ``df.attrs`` holds
        ``divergences`` (count), ``draws`` (total), ``bfmi`` (per chain) and ``method``.
    """
    if not 0 < ci_prob < 1:
        raise ValueError(f"ci_prob must be in (0, 1); got {ci_prob!r}")
    if ci_kind not in ("eti", "hdi"):
        raise ValueError(f"ci_kind must be 'eti' or 'hdi'; got {ci_kind!r}")
    tree = _posterior_tree(fit)
    names = [n for n in fit.model.parameter_sites if n in fit.draws] or list(fit.draws)
    if "beta" in fit.draws and "beta" not in names:  # covariates given without regression=True
        names.append("beta")
    kind = "all" if fit.method == "nuts" and fit.num_chains * fit.num_draws >= 4 else "stats"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        table = arviz_stats.summary(
            tree,
            var_names=names,
            kind=kind,
            ci_prob=ci_prob,
            ci_kind=ci_kind,
            round_to="none",
        )
    table.attrs["method"] = fit.method
    table.attrs["draws"] = fit.num_samples
    if fit.method == "nuts":
        table.attrs["divergences"] = int(np.sum(fit.sample_stats["diverging"]))
        table.attrs["bfmi"] = [float(b) for b in _bfmi(fit)]
    return table


def _bfmi(fit) -> np.ndarray:
    """BFMI per chain (``arviz_stats.bfmi`` on the energy), shape ``(chain,)``."""
    tree = arviz_base.from_dict({"sample_stats": {"energy": fit.sample_stats["energy"]}})
    return np.atleast_1d(np.asarray(arviz_stats.bfmi(tree)["energy"]))


def check(
    fit: Fit, *, rhat_max: float = 1.01, min_ess: int | None = None, warn: bool = True
) -> list[str]:
    """Check a fit and say, in plain words with the numbers, what should not be trusted.

    NUTS: r_hat above ``rhat_max``, bulk or tail ESS below ``min_ess`` (default 100 per
    chain), divergent transitions, transitions that hit the maximum tree depth, BFMI below 0.3,
    a single chain. SVI: the optimisation did not converge; a point-mass (delta) guide; a
    stochastic-volatility model (SVI is known to be overconfident there).

    The parameters the model names (``model.parameter_sites``: noise sds, ``phi``, ...) come
    first, one sentence each; nuisance latents the model samples on the way (``state_z``,
    ``h_z``, ``obs_precision``, ...) are grouped in one sentence. Each sentence ends with what to
    do, spelled as the argument that does it (``num_warmup=...``, ``target_accept=0.95``,
    ``state_parameterization="mixed_rms"``, ``bs.fit_nuts``). The user guide's page
    "Diagnostics and warnings" explains each.

    Parameters
    ----------
    fit : Fit
    rhat_max : float
        Largest acceptable split r_hat.
    min_ess : int, optional
        Smallest acceptable bulk and tail effective sample size (default 100 per chain).
    warn : bool
        Also emit each problem as a :class:`FitWarning`.

    Returns
    -------
    list of str
        One sentence per problem; empty when nothing was found.
    """
    problems: list[str] = []
    if fit.method == "svi":
        info = fit.info
        if info.get("stalled", False) and not info.get("converged", False):
            problems.append(
                f"SVI stalled: in {info.get('steps')} steps the loss changed by less than its "
                "noise per window while the guide parameters moved steadily one way "
                f"(last directedness {info.get('directedness', float('nan')):.2f}, above 0.5): "
                f"the optimiser is crawling (learning rate {info.get('learning_rate')}). Raise "
                "the learning rate or run many more steps; the intervals are not to be trusted."
            )
        elif not info.get("converged", False):
            steps = info.get("steps") or 0
            problems.append(
                f"SVI did not converge: after {steps} steps the loss still changed "
                f"by {info.get('rel_elbo_change', float('nan')):.1e} (relative, tolerance "
                f"{info.get('tol')}). Run more steps (steps={max(2 * int(steps), 1000)}), raise "
                "learning_rate, or sample the posterior with bs.fit_nuts."
            )
        if info.get("guide") == "delta":
            problems.append(
                "the delta guide is a point estimate: forecast intervals leave out parameter "
                'uncertainty. Use guide="normal" or "multivariate_normal", or bs.fit_nuts.'
            )
        if getattr(fit.model, "kind", None) == "stochastic_volatility":
            problems.append(_advice.SVI_ON_VOLATILITY)
        from bayes_ssm.inference.map_start import map_problems

        problems += map_problems(info)
    else:
        problems += _check_nuts(fit, rhat_max, min_ess)
    if warn:
        for p in problems:
            warnings.warn(p, FitWarning, stacklevel=2)
    return problems


def _check_nuts(fit, rhat_max, min_ess) -> list[str]:
    chains, total = fit.num_chains, fit.num_samples
    min_ess = 100 * chains if min_ess is None else int(min_ess)
    user, nuisance = _advice.split_sites(fit)
    warmup = _advice.warmup_advice(fit.info)
    tree = _posterior_tree(fit)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rhat = arviz_stats.rhat(tree, var_names=list(fit.draws)) if chains > 1 else None
        ess_bulk = arviz_stats.ess(tree, var_names=list(fit.draws), method="bulk")
        ess_tail = arviz_stats.ess(tree, var_names=list(fit.draws), method="tail")

    def worst(name):
        r = float(np.nanmax(np.asarray(rhat[name]))) if rhat is not None else float("nan")
        bulk = float(np.nanmin(np.asarray(ess_bulk[name])))
        tail = float(np.nanmin(np.asarray(ess_tail[name])))
        return r, bulk, tail

    problems = []
    for name in user:
        r, bulk, tail = worst(name)
        if rhat is not None and not r <= rhat_max:  # NaN counts as a problem
            problems.append(
                f"r_hat of {name} is {r:.3f} (above {rhat_max}): the chains disagree, so "
                f"they have not converged to one posterior. Run more warm-up ({warmup}) and "
                "check that the model suits the data."
            )
        for label, e in (("bulk", bulk), ("tail", tail)):
            part = "centre" if label == "bulk" else "tails"
            if not e >= min_ess:
                problems.append(
                    f"the {label} effective sample size of {name} is {e:.0f} (below {min_ess}) "
                    f"out of {total} draws: estimates of its {part} are noisy. Run more draws "
                    f"(num_samples={2 * fit.num_draws} per chain) or more warm-up ({warmup})."
                )
    problems += _sampler_problems(fit, chains, total)
    bad = []
    for name in nuisance:
        r, bulk, tail = worst(name)
        if (rhat is not None and not r <= rhat_max) or not min(bulk, tail) >= min_ess:
            bad.append((name, r, min(bulk, tail)))
    if bad:
        r_txt = f"worst r_hat {max(b[1] for b in bad):.3f}, " if rhat is not None else ""
        problems.append(
            f"{len(bad)} of the model's internal latent variables mix poorly "
            f"({r_txt}lowest ESS {min(b[2] for b in bad):.0f}): "
            f"{_advice.describe_nuisance(b[0] for b in bad)}. They are not parameters you set, "
            "but the forecast integrates over them; the problems named above usually cause "
            f"this. Run more warm-up ({warmup}) "
            f"{_advice.reparameterise_advice(fit.model, 'bfmi')}."
        )
    return problems


def _sampler_problems(fit, chains, total) -> list[str]:
    """Divergences, tree depth, BFMI, a single chain."""
    problems = []
    div = int(np.sum(fit.sample_stats["diverging"]))
    if div:
        now = fit.info.get("target_accept")
        higher = 0.95 if now is None or now < 0.95 else min(0.99, round(now + 0.5 * (1 - now), 3))
        raise_it = (
            f"Raise target_accept to {higher} (now {now}): "
            f"bs.fit_nuts(..., target_accept={higher}), "
            if now is None or now < 0.99
            else f"target_accept is already {now}: "
        )
        problems.append(
            f"{div} of {total} draws after warm-up ({100 * div / total:.1f}%) ended in a "
            "divergence: the sampler could not explore part of the posterior and the results "
            f"may be biased. {raise_it}"
            f"{_advice.reparameterise_advice(fit.model, 'divergences')}."
        )
    depth = np.asarray(fit.sample_stats.get("tree_depth", np.zeros(1)))
    max_depth = fit.info.get("max_tree_depth")
    if max_depth is not None:
        hit = int(np.sum(depth >= max_depth))
        if hit:
            problems.append(
                f"{hit} of {total} draws ({100 * hit / total:.1f}%) hit the maximum tree depth "
                f"{max_depth}: sampling was cut short and is inefficient. Raise max_tree_depth "
                f"(max_tree_depth={max_depth + 2}), "
                f"{_advice.reparameterise_advice(fit.model, 'tree_depth')}."
            )
    if chains == 1:
        problems.append(
            "only one chain was run: r_hat cannot detect chains that disagree. Run 2 or more "
            "(num_chains=4)."
        )
    if fit.num_draws > 2:
        bfmi = _bfmi(fit)
        low = np.flatnonzero(bfmi < 0.3)
        if low.size:
            problems.append(
                f"BFMI is {', '.join(f'{b:.2f}' for b in bfmi[low])} (below 0.3) in chain(s) "
                f"{low.tolist()}: the sampler explores the energy poorly. Run more warm-up "
                f"({_advice.warmup_advice(fit.info)}) "
                f"{_advice.reparameterise_advice(fit.model, 'bfmi')}."
            )
    return problems


def compare(fits: Mapping[str, Fit] | Sequence[Fit], *, method: str = "stacking") -> pd.DataFrame:
    """Compare fits by PSIS-LOO expected log predictive density (``arviz_stats.compare``).

    Parameters
    ----------
    fits : mapping of str to Fit, or sequence of Fit
        Fits to the same data. A sequence is named ``model0, model1, ...``.
    method : {"stacking", "BB-pseudo-BMA", "pseudo-BMA"}
        How model weights are computed.

    Returns
    -------
    pandas.DataFrame
        One row per fit (indexed by name), best first, with ``arviz_stats.compare``'s columns,
        unrounded: ``rank`` (0 is best), ``elpd_diff`` (``elpd`` minus the best fit's, <= 0),
        ``dse`` (its standard error), ``p_worse`` (normal-approximation probability that the
        fit is worse than the best), ``diag_diff`` and ``diag_elpd`` (text warnings, empty when
        none), ``p`` (effective number of parameters), ``elpd`` (PSIS-LOO expected log
        predictive density), ``se`` (its standard error) and ``weight``. (arviz-stats 1.0.0
        returns one text column ``warning`` in place of ``diag_diff`` and ``diag_elpd``.)

    Notes
    -----
    The pointwise terms are ``log p(y_t | y_<t, theta)`` (the model's ``"log_lik"`` site), so
    this is PSIS-LOO over one-step-ahead predictive densities.
    """
    if not isinstance(fits, Mapping):
        fits = {f"model{i}": f for i, f in enumerate(fits)}
    if len(fits) < 2:
        raise ValueError(f"compare needs at least two fits; got {len(fits)}")
    lengths = {name: f.data.num_steps for name, f in fits.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"fits must be to the same data; got series lengths {lengths}")
    trees = {name: f.to_arviz() for name, f in fits.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return arviz_stats.compare(trees, method=method, round_to="none")
