"""Quantile recalibration of the default forecaster from in-sample h-step PIT values.

Kuleshov, Fenner & Ermon (2018), "Accurate uncertainties for deep learning using calibrated
regression": if ``u = F(y)`` (the PIT) is not uniform, the recalibrated forecast ``R(F(y))``,
with ``R`` the empirical CDF of the PIT values, is; its quantile at level ``p`` is the model's
quantile at level ``R^{-1}(p)``, the empirical ``p``-quantile of the PIT values. Here ``R`` is
estimated per horizon step ``h`` from the PIT values of the candidates' own ``h``-step-ahead
predictive distributions at every in-sample origin of the fit window (Kalman filter at
posterior draws of the parameters, no refits), so it costs one filter pass per draw.

Draws are recalibrated by whole origins: the ``s``-th draw picks one in-sample origin ``o_s``
and maps its value at step ``h`` to the model's quantile at level ``u[o_s, h]``, which keeps
the in-sample dependence of the PIT values across horizons (so sums over the horizon stay
coherent).

In-sample PIT values are computed at parameters fitted to the same data; they miss the
parameter-estimation error of a true out-of-sample PIT (small for the few variances of a
structural model on hundreds of points), and a map learned before a break can be wrong after
it. ``recalibrate=False`` switches it off.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from bayes_ssm.inference.heavy_level_pit import heavy_level_moments, is_heavy_level, level_sums

if TYPE_CHECKING:
    from bayes_ssm.inference.fit import Fit

__all__ = [
    "Recalibration",
    "candidate_pit",
    "stacked_pit",
    "in_sample_scores",
    "multistep_weights",
    "recalibrated_levels",
    "recalibrate_draws",
    "supports_pit",
    "MIN_ORIGINS",
    "MODES",
    "DEFAULT_MAP",
    "check_mode",
    "origin_levels",
    "quantiles_at",
]

MIN_ORIGINS = 30  # fewer in-sample origins than this: no recalibration (too noisy a map)
PIT_DRAWS = 16  # posterior draws per candidate for the in-sample predictive CDFs
_T_NODES = 48  # quadrature nodes over the Student-t precision


def supports_pit(fit) -> bool:
    """Whether :func:`candidate_pit` handles ``fit`` (a discrete-time Gaussian or Student-t
    :class:`~bayes_ssm.StructuralTS`, :class:`~bayes_ssm.models.SeasonalNoiseTS` or
    :class:`~bayes_ssm.models.HeavyLevelTS` without covariates and without the cycle /
    regression-state / diffuse options)."""
    from bayes_ssm.models.structural import StructuralTS

    model = fit.model
    return (
        isinstance(model, StructuralTS)
        and model.likelihood in ("gaussian", "student_t")
        and not model.cycle
        and model.regression_states is None
        and model.initialization == "proper"
        and model.obs_times is None
        and model.state_size > 0
        and fit.data.covariates is None
    )


def _filtered_fn():
    import jax

    from bayes_ssm.kernels.kalman import kalman_filter
    from bayes_ssm.models._structural_program import to_variances
    from bayes_ssm.models.components import structural_system

    @partial(jax.jit, static_argnums=(0,))
    def filtered(model, params, scales, y, obs_precision):
        def one(p, lam):
            system = structural_system(model, to_variances(model, p), scales)
            obs_var = p["sigma_obs"] ** 2 / lam
            res = kalman_filter(system.state_space(obs_var), y, method=model.method)
            return (
                res.filtered_means,
                res.filtered_covs,
                system.transition,
                system.observation,
                system.noise_var,
            )

        return jax.vmap(one)(params, obs_precision)

    return filtered


_FILTERED = None
_TV_MOMENTS = {}


def _tv_moments(model, params, scales, y, horizon):
    """Filtered moments and per-step variances of a :class:`SeasonalNoiseTS` at each draw."""
    import jax
    import jax.numpy as jnp

    from bayes_ssm.models._seasonal_noise_program import filtered_moments

    if "fn" not in _TV_MOMENTS:

        @partial(jax.jit, static_argnums=(0, 4))
        def moments(model, params, scales, y, extra):
            return jax.vmap(lambda p: filtered_moments(model, p, scales, y, extra))(params)

        _TV_MOMENTS["fn"] = moments
    out = _TV_MOMENTS["fn"](model, params, dict(scales), jnp.asarray(y), int(horizon))
    return tuple(np.asarray(a, float) for a in out)


def default_burn(model, num_steps: int) -> int:
    """Origins skipped at the start of the window (the proper initial state still dominates):
    one longest season, at least 20 steps and twice the state size, at most a third of it."""
    periods = [s.period for s in getattr(model, "seasonal", ())]
    burn = max(20, 2 * model.state_size, int(round(max(periods, default=0))))
    return min(burn, num_steps // 3)


def candidate_pit(
    fit, horizon: int, *, burn: int, num_draws: int = PIT_DRAWS, recent: bool = False
) -> np.ndarray:
    """In-sample ``h``-step-ahead PIT values of one fitted candidate.

    At each origin ``t`` (filtered on ``y_1..y_t`` at a posterior draw of the parameters) the
    ``h``-step predictive law of ``y_{t+h}`` is Gaussian (state) plus the observation noise
    (Gaussian, or Student-t by quadrature over its precision); its CDF at the observed
    ``y_{t+h}`` is averaged over ``num_draws`` posterior draws (the posterior predictive CDF).

    Parameters
    ----------
    fit : Fit
        A fit whose model passes :func:`supports_pit`.
    horizon : int
    burn : int
        Origins ``t < burn`` (0-based) are skipped; origins run to ``time - 1 - horizon``.
    recent : bool
        Also the last ``horizon - 1`` origins (to ``time - 2``), whose later steps are not
        observed yet (NaN there): the adaptive map (:mod:`.adaptive_recalibration`) needs
        every observed ``h``-step outcome up to the end of the window.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray), each shape ``(origin, horizon)``
        The PIT values and the log predictive densities of ``y_{t+h}`` (NaN where ``y_{t+h}``
        is missing).
    """
    import jax.numpy as jnp
    from scipy import stats

    global _FILTERED
    if _FILTERED is None:
        _FILTERED = _filtered_fn()
    model = fit.model
    y = np.asarray(fit.data.y, float)
    num_steps = y.size
    origins = np.arange(burn, num_steps - (1 if recent else horizon))
    draws = fit._flat_draws(min(num_draws, fit.num_samples))
    sites = [s for s in fit.draws if s != "obs_precision"]
    params = {s: jnp.asarray(draws[s]) for s in sites}
    d = next(iter(params.values())).shape[0]
    if "obs_precision" in draws:
        lam = jnp.asarray(draws["obs_precision"])
    else:
        lam = jnp.ones((d, num_steps))
    sigma = np.asarray(draws["sigma_obs"], float).reshape(d)
    level_var = None
    if is_heavy_level(model):  # HeavyLevelTS: Student-t level shocks (heavy_level_pit)
        m, p, tm, z, q_steps, r_steps, level_var = heavy_level_moments(
            model, params, fit.scales, y, horizon
        )
        nu_level = np.asarray(draws["nu_level"], float).reshape(d)
        rng = np.random.default_rng(0)  # a fixed Monte-Carlo rule over future precisions
    elif getattr(model, "noise_period", None) is not None:  # SeasonalNoiseTS: per-step variances
        m, p, tm, z, q_steps, r_steps = _tv_moments(model, params, fit.scales, y, horizon)
    else:
        m, p, tm, z, q = (
            np.asarray(a, float)
            for a in _FILTERED(model, params, dict(fit.scales), jnp.asarray(y), lam)
        )
        q_steps = np.broadcast_to(q[:, None, :], (d, num_steps + horizon + 1, q.shape[-1]))
        r_steps = np.broadcast_to(sigma[:, None] ** 2, (d, num_steps + horizon + 1))
    m, p = m[:, origins], p[:, origins]  # (draw, origin, state[, state])
    target = np.full((origins.size, horizon), np.nan)
    for h in range(1, horizon + 1):
        seen = origins + h < num_steps
        target[seen, h - 1] = y[origins[seen] + h]
    cdf = np.zeros((origins.size, horizon))
    dens = np.zeros((origins.size, horizon))
    if model.likelihood == "student_t":
        nu = np.asarray(draws["nu"], float).reshape(d)
        nodes = (np.arange(_T_NODES) + 0.5) / _T_NODES
    for k in range(d):
        mk, pk = m[k], p[k]
        if level_var is not None:
            shocks = level_var[k] * level_sums(tm[k], z[k], nu_level[k], horizon, rng)
        for h in range(horizon):
            mk = mk @ tm[k].T
            q_h = q_steps[k][origins + h + 1]  # (origin, state): noise arriving at t + h + 1
            pk = np.einsum("ij,tjl,kl->tik", tm[k], pk, tm[k]) + q_h[:, :, None] * np.eye(
                q_h.shape[1]
            )
            mean = mk @ z[k]
            var = np.clip(np.einsum("i,tij,j->t", z[k], pk, z[k]), 0.0, None)
            resid = target[:, h] - mean
            if level_var is not None:  # mixture over the future level precisions
                sd = np.sqrt((var + r_steps[k][origins + h + 1])[:, None] + shocks[h][None, :])
                cdf[:, h] += stats.norm.cdf(resid[:, None] / sd).mean(axis=1)
                dens[:, h] += (stats.norm.pdf(resid[:, None] / sd) / sd).mean(axis=1)
            elif model.likelihood == "gaussian":
                sd = np.sqrt(var + r_steps[k][origins + h + 1])
                cdf[:, h] += stats.norm.cdf(resid / sd)
                dens[:, h] += stats.norm.pdf(resid / sd) / sd
            else:
                prec = stats.gamma.ppf(nodes, 0.5 * nu[k], scale=2.0 / nu[k])
                sd = np.sqrt(var[:, None] + sigma[k] ** 2 / prec[None, :])
                cdf[:, h] += stats.norm.cdf(resid[:, None] / sd).mean(axis=1)
                dens[:, h] += (stats.norm.pdf(resid[:, None] / sd) / sd).mean(axis=1)
    missing = np.isnan(target)
    cdf /= d
    cdf[missing] = np.nan
    with np.errstate(divide="ignore"):
        log_dens = np.log(dens / d)
    log_dens[missing] = np.nan
    return cdf, log_dens


@dataclasses.dataclass(frozen=True)
class Recalibration:
    """In-sample PIT values of the stacked mixture, the basis of the recalibration map.

    Attributes
    ----------
    pit : numpy.ndarray, shape ``(origin, horizon)``
        ``sum_k w_k F_k(y_{t+h})`` at each in-sample origin (NaN: ``y_{t+h}`` missing).
    burn : int
        Origins skipped at the start of the window.
    recent : numpy.ndarray, shape ``(horizon - 1, horizon)``, optional
        The PIT values of the origins after ``pit``'s last (NaN where ``y_{t+h}`` lies past
        the window): with ``pit`` above them, every observed ``h``-step outcome in time order
        (:attr:`sequence`, the adaptive map's data).
    """

    @property
    def sequence(self) -> np.ndarray:
        """``pit`` and ``recent`` stacked: origins in time order, shape ``(origin, horizon)``."""
        return self.pit if self.recent is None else np.vstack([self.pit, self.recent])

    pit: np.ndarray
    burn: int
    recent: np.ndarray | None = None

    @property
    def num_values(self) -> int:
        return int(np.isfinite(self.pit).sum())

    @property
    def num_origins(self) -> int:
        return int(self.pit.shape[0])

    def label(self, mode: str = "quantile") -> str:
        how = {
            "widen": "intervals only widened",
            "quantile": "Kuleshov et al. 2018",
            "adaptive": "adaptive conformal levels in time order, intervals only widened",
            "adaptive_quantile": "adaptive conformal levels in time order, Gibbs & Candes 2021",
        }[mode]
        values = self.num_values
        if mode in ADAPTIVE:
            values = int(np.isfinite(self.sequence).sum())
        return (
            f"recalibrated from {values} in-sample PIT values ({self.num_origins} "
            f"origins x {self.pit.shape[1]} steps; {mode} map, {how})"
        )


def in_sample_scores(fits: Mapping[str, Fit], horizon: int) -> dict | None:
    """Every candidate's in-sample ``h``-step PIT values and log predictive densities.

    Returns
    -------
    dict or None
        ``{"burn": int, "pit": {name: (origin, horizon)}, "log_density": {name: ...},
        "recent": {name: (horizon - 1, horizon)}}`` (``"recent"``: the PIT values of the last
        ``horizon - 1`` origins, NaN at the steps not observed yet);
        ``None`` when a candidate is not supported (:func:`supports_pit`) or the window leaves
        fewer than :data:`MIN_ORIGINS` origins.
    """
    if not fits or not all(supports_pit(f) for f in fits.values()):
        return None
    num_steps = next(iter(fits.values())).data.num_steps
    burn = max(default_burn(f.model, num_steps) for f in fits.values())
    if num_steps - horizon - burn < MIN_ORIGINS:
        return None
    pit, log_density, recent = {}, {}, {}
    full = num_steps - horizon - burn  # origins whose every step is observed
    for name, fit in fits.items():
        values, dens = candidate_pit(fit, horizon, burn=burn, recent=True)
        pit[name], log_density[name], recent[name] = values[:full], dens[:full], values[full:]
    return {"burn": burn, "pit": pit, "log_density": log_density, "recent": recent}


def stacked_pit(scores, weights) -> Recalibration | None:
    """The mixture's in-sample PIT values ``sum_k w_k F_k(y_{t+h})`` from
    :func:`in_sample_scores` (``None`` passes through)."""
    if scores is None:
        return None
    names = [n for n in scores["pit"] if weights[n] > 0]
    total = sum(float(weights[n]) for n in names)

    def mix(key):
        return np.clip(sum(float(weights[n]) / total * scores[key][n] for n in names), 0.0, 1.0)

    recent = mix("recent") if "recent" in scores else None
    return Recalibration(pit=mix("pit"), burn=scores["burn"], recent=recent)


def multistep_weights(scores) -> np.ndarray | None:
    """Stacking weights on the in-sample ``h``-step log predictive densities, every origin and
    step ``h = 1..H`` one row (rows with a missing or non-finite value are left out)."""
    if scores is None:
        return None
    from bayes_ssm.inference.stacking import stacking_weights

    lpd = np.column_stack([v.ravel() for v in scores["log_density"].values()])
    lpd = lpd[np.all(np.isfinite(lpd), axis=1)]
    return stacking_weights(lpd) if lpd.shape[0] else None


MODES = ("quantile", "widen", "adaptive", "adaptive_quantile")
ADAPTIVE = {"adaptive": True, "adaptive_quantile": False}  # adaptive mode -> widen only
# the map ``recalibrate=True`` means: the one place that says which map is the default
# ("widen" until session 10; docs/default.md, "Session 10: the recalibration default on two
# keys": adaptive won the suite's geometric mean on two keys, no panel lost beyond noise)
DEFAULT_MAP = "adaptive"


def check_mode(recalibrate) -> str | None:
    """``recalibrate=`` -> ``None`` (off), or one of :data:`MODES` (``True``:
    :data:`DEFAULT_MAP`)."""
    if recalibrate is False or recalibrate is None:
        return None
    if recalibrate is True:
        return DEFAULT_MAP
    if isinstance(recalibrate, str) and recalibrate in MODES:
        return recalibrate
    raise ValueError(
        "recalibrate must be True, False, 'widen', 'quantile', 'adaptive' or "
        f"'adaptive_quantile'; got {recalibrate!r}"
    )


def recalibrated_levels(
    pit: np.ndarray, probs, mode: str = "quantile", sequence=None
) -> np.ndarray:
    """Levels at which to read the model's quantiles for the recalibrated quantile at ``p``.

    ``"quantile"``: the empirical ``p``-quantile of the PIT values at each horizon step,
    ``R_h^{-1}(p)`` (Kuleshov et al. 2018). ``"widen"``: the same, but a quantile only ever
    moves outwards: ``min(p, R_h^{-1}(p))`` below the median, ``max`` above it.
    ``"adaptive"`` / ``"adaptive_quantile"``: adaptive conformal levels run over ``sequence``
    (default ``pit``) in time order, widen-only / two-sided
    (:func:`~bayes_ssm.inference.adaptive_recalibration.adaptive_levels`).

    Parameters
    ----------
    pit : array-like, shape ``(origin, horizon)``
        NaN entries are ignored.
    probs : array-like, shape ``(q,)`` or ``(q, horizon)``
    mode : {"quantile", "widen", "adaptive", "adaptive_quantile"}
    sequence : array-like, shape ``(origin, horizon)``, optional
        Every observed in-sample PIT value in time order
        (:attr:`Recalibration.sequence`), for the adaptive modes.

    Returns
    -------
    numpy.ndarray, shape ``(q, horizon)``
    """
    pit = np.asarray(pit, float)
    probs = np.asarray(probs, float)
    if mode in ADAPTIVE:
        from bayes_ssm.inference.adaptive_recalibration import adaptive_levels

        seq = pit if sequence is None else sequence
        return adaptive_levels(seq, probs, widen=ADAPTIVE[mode])
    if probs.ndim < 2:
        probs = np.broadcast_to(np.atleast_1d(probs)[:, None], (probs.size, pit.shape[1]))
    out = np.empty(probs.shape)
    for h in range(pit.shape[1]):
        col = pit[np.isfinite(pit[:, h]), h]
        out[:, h] = np.quantile(col, probs[:, h]) if col.size else probs[:, h]
    if mode == "widen":
        out = np.where(probs < 0.5, np.minimum(out, probs), np.maximum(out, probs))
    elif mode != "quantile":
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}")
    return out


def origin_levels(pit: np.ndarray, mode: str = "quantile", sequence=None) -> np.ndarray:
    """Each in-sample origin's levels, step by step: its PIT value's mid-rank ``(r + 1/2) / n``
    among the step's PIT values, mapped by :func:`recalibrated_levels` (NaN where missing).
    Under ``"quantile"`` this is (up to interpolation) the PIT value itself.

    Returns
    -------
    numpy.ndarray, shape ``(origin, horizon)``
    """
    pit = np.asarray(pit, float)
    ranks = np.full(pit.shape, np.nan)
    for h in range(pit.shape[1]):
        ok = np.isfinite(pit[:, h])
        ranks[ok, h] = (np.argsort(np.argsort(pit[ok, h], kind="stable")) + 0.5) / ok.sum()
    filled = np.where(np.isfinite(ranks), ranks, 0.5)
    levels = recalibrated_levels(pit, filled, mode, sequence)
    levels[~np.isfinite(ranks)] = np.nan
    return levels


def quantiles_at(draws: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Per column ``h``, the empirical quantile of ``draws[:, h]`` at each ``levels[:, h]``
    (linear interpolation between order statistics, as ``numpy.quantile``).

    draws ``(sample, horizon)``, levels ``(q, horizon)`` -> ``(q, horizon)``.
    """
    srt = np.sort(np.asarray(draws, float), axis=0)
    n = srt.shape[0]
    pos = np.clip(np.asarray(levels, float), 0.0, 1.0) * (n - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    frac = pos - lo
    lo_v = np.take_along_axis(srt, lo, axis=0)
    hi_v = np.take_along_axis(srt, hi, axis=0)
    return lo_v + frac * (hi_v - lo_v)


def recalibrate_draws(
    draws: np.ndarray, pit: np.ndarray, rng, mode: str = "quantile", sequence=None
):
    """Recalibrated draws: draw ``s`` takes one in-sample origin ``o_s`` at random and, at each
    step ``h``, the model's quantile at that origin's level (:func:`origin_levels`; a missing
    value at ``(o_s, h)`` is replaced by a random level of the same step).

    Parameters
    ----------
    draws : array-like, shape ``(sample, horizon)``
        The model's predictive draws (any monotone scale).
    pit : array-like, shape ``(origin, horizon)``
    rng : numpy.random.Generator
    mode : {"quantile", "widen", "adaptive", "adaptive_quantile"}
    sequence : array-like, shape ``(origin, horizon)``, optional
        For the adaptive modes (:func:`recalibrated_levels`).

    Returns
    -------
    numpy.ndarray, shape ``(sample, horizon)``
    """
    draws = np.asarray(draws, float)
    table = origin_levels(pit, mode, sequence)
    num = draws.shape[0]
    levels = table[rng.integers(0, table.shape[0], num)]  # (sample, horizon), whole origins
    for h in range(table.shape[1]):
        bad = ~np.isfinite(levels[:, h])
        if bad.any():
            col = table[np.isfinite(table[:, h]), h]
            levels[bad, h] = rng.choice(col, bad.sum()) if col.size else rng.random(bad.sum())
    return quantiles_at(draws, levels)
