"""The default forecaster: ``bs.forecast(y, horizon, key=...)`` and ``bs.auto_fit``.

What a user gets without choosing a model:

1. **Transform** (``transform="auto"``): ``log`` when every observed value is positive (errors
   that scale with the level, and forecasts that stay positive), else none; but the square
   root (Box-Cox 0.5) when random-walk forecasts on the log scale score at least 1.5x worse
   on the data scale than on the square root (counts that swing through small values, whose
   back-transformed log-scale forecasts explode: :mod:`bayes_ssm.inference.transform_check`;
   ``attrs["transform_reason"]`` says so). ``"log"``,
   ``"none"`` or a Box-Cox ``lambda`` (a number) choose it; forecast draws are
   back-transformed draw by draw, so quantiles are exact and the mean is the mean of the
   back-transformed draws.
2. **Fit window**: the last ``max(6 * longest season, 400)`` steps (all, when shorter).
3. **Seasonals from the frequency** (:func:`seasonal_periods`): weekly 52.18 (yearly, 3
   harmonics); monthly 12; quarterly 4; daily 7 (+ 365.25 with 2 harmonics when the window
   holds two years); hourly 24 (+ 168). A season is kept when the window holds three full
   cycles *and* the series shows it (a positive autocorrelation at the seasonal lag above
   1.645 Bartlett standard errors, Theta's seasonality test, after
   removing a one-period moving average), so
   daily exchange rates get none.
4. **Candidates** (:func:`default_candidates`), each :class:`~bayes_ssm.StructuralTS` with
   those seasonals: a random-walk level; the level plus AR(1); the level with Student-t
   observation noise; a constant mean plus AR(1) (mean-reverting). With a season, the level
   candidate is :class:`~bayes_ssm.models.SeasonalNoiseTS`: its level and observation noise
   variances follow the longest season (2 harmonics of the log variances; 1 for periods below
   8), shrunk towards constant variances by their priors. No trend candidate (session 8:
   the damped trend, fitted on epidemic waves, was the default's worst loss).
5. **Combination**: Bayesian stacking of the candidates' PSIS-LOO one-step predictive
   densities (:func:`bayes_ssm.stacking.stacking_weights`); the forecast is the weighted
   mixture of the candidates' predictive draws. Points where PSIS-LOO is unreliable for any
   candidate (Pareto ``k`` above ArviZ's threshold ``min(1 - 1/log10(S), 0.7)``) are left out
   of the stacking objective for all candidates, and counted in :meth:`StackedFit.summary`;
   when more than 10% of the points are left out the weights fall back to equal weights (LOO
   cannot be trusted to rank the candidates there) and ``weights_from`` says so.
6. **Recalibration** (``recalibrate=True``, the default map
   :data:`~bayes_ssm.inference.recalibration.DEFAULT_MAP`, ``"adaptive"`` since session 10):
   per horizon step and level, adaptive conformal levels (Gibbs & Candes 2021) run over the
   in-sample ``h``-step PIT values in time order, so recent misses count most; the mixture's
   quantiles are read at those levels where they lie outside the nominal ones, never inwards
   (:mod:`bayes_ssm.inference.adaptive_recalibration`); ``forecast(...).attrs
   ["recalibration"]`` says so. ``recalibrate=False`` turns it off, ``"widen"`` is the static
   widen-only map (the default until session 10), ``"quantile"`` the full (two-way) map.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bayes_ssm.data.validation import as_series_data
from bayes_ssm.inference.auto_settings import AUTO_SVI
from bayes_ssm.inference.candidate_stacking import BAD_K_SHARE, stack_candidates  # noqa: F401
from bayes_ssm.inference.candidate_stacking import candidate_loo as _loo  # noqa: F401
from bayes_ssm.inference.candidates import default_candidates
from bayes_ssm.inference.forecast import validate_horizon
from bayes_ssm.inference.stacked_fit import StackedFit, resolve_transform
from bayes_ssm.inference.threads import map_in_threads, resolve_workers

if TYPE_CHECKING:
    from bayes_ssm.data.types import KeyLike, Prob, SeriesLike
    from bayes_ssm.models.base import TimeSeriesModel

__all__ = [
    "forecast",
    "auto_fit",
    "AutoTS",
    "StackedFit",
    "default_candidates",
    "seasonal_periods",
    "resolve_transform",
]

# frequency code -> (period, harmonics, needs a long window) in order
_SEASONS = {
    "W": [(52.18, 3)],
    "M": [(12, 3)],
    "MS": [(12, 3)],
    "ME": [(12, 3)],
    "Q": [(4, 1)],
    "QS": [(4, 1)],
    "QE": [(4, 1)],
    "D": [(7, 3), (365.25, 2)],
    "B": [(5, 2), (260.9, 2)],
    "h": [(24, 3), (168, 3)],
    "H": [(24, 3), (168, 3)],
}
MIN_WINDOW = 400
RECALIBRATE = True  # the default map, recalibration.DEFAULT_MAP (docs/default.md, session 10)
SEASON_Z = 1.645  # as in Theta (statsforecast, forecast::thetaf): 90% two-sided


def _freq_code(freq) -> str | None:
    if freq is None:
        return None
    code = freq.rule_code if hasattr(freq, "rule_code") else str(freq)
    return code.split("-")[0].lstrip("0123456789") or None


def _has_season(z: np.ndarray, period: float) -> bool:
    """Theta's seasonality test (90%, Bartlett standard error) at lag ``round(period)``, on the
    series minus its centred moving average over one period (so a trend or a wandering level
    does not pass for a season)."""
    z = np.asarray(z, dtype=float)
    z = z[np.isfinite(z)]
    lag = int(round(period))
    if lag < 2 or z.size < 3 * lag:
        return False
    trend = np.convolve(z, np.ones(lag) / lag, mode="valid")
    d = z[lag // 2 : lag // 2 + trend.size] - trend
    d = d - d.mean()
    denom = float(np.sum(d * d))
    if d.size < 2 * lag or denom <= 0:
        return False
    acf = np.array([np.sum(d[k:] * d[:-k]) / denom for k in range(1, lag + 1)])
    se = np.sqrt((1 + 2 * np.sum(acf[:-1] ** 2)) / d.size)
    return bool(acf[-1] > SEASON_Z * se)


def seasonal_periods(freq, z) -> list[tuple[float, int]]:
    """``(period, harmonics)`` of each season the (transformed) series ``z`` supports."""
    z = np.asarray(z, dtype=float)
    return [(p, h) for p, h in _SEASONS.get(_freq_code(freq), []) if _has_season(z, p)]


def auto_fit(
    y: SeriesLike,
    *,
    key: KeyLike,
    transform: str | float = "auto",
    candidates: Mapping[str, TimeSeriesModel] | None = None,
    method: str = "svi",
    fit_last: int | None = None,
    freq: str | None = None,
    fit_kwargs: dict | None = None,
    progress: bool = False,
    pad_to: int | None = None,
    recalibrate: bool | str = RECALIBRATE,
    workers: int | None = 1,
) -> StackedFit:
    """Fit the default candidates (or ``candidates``) and weight them by stacking.

    Parameters
    ----------
    y : pandas.Series (DatetimeIndex) or array-like ``(time,)``
        NaN marks missing values.
    key : int or jax.random key
        Keyword-only; candidate ``i`` is fitted with ``jax.random.fold_in(key, i)``.
    transform : {"auto", "log", "none"} or float
        See the module docstring; a float is a Box-Cox lambda.
    candidates : mapping of str to TimeSeriesModel, optional
        Replace the default candidates (fitted on the transformed scale).
    method : {"svi", "nuts"}
        ``fit_svi`` (default) or ``fit_nuts`` (2 chains, 300 + 400 draws, a dense mass matrix
        over the global parameters, unless ``fit_kwargs`` says otherwise).
    fit_last : int, optional
        Fit the last ``fit_last`` steps (default ``max(6 * longest season, 400)``).
    freq : str, optional
        Frequency when it cannot be inferred.
    fit_kwargs : dict, optional
        Passed to ``fit_svi`` / ``fit_nuts``.
    pad_to : int, optional
        SVI only: fit every candidate on the window padded with missing values to
        ``min(pad_to, fit_last)`` steps (``fit_svi(pad_to=...)``), so that backtest folds of
        different lengths share each candidate's compiled programs.
    recalibrate : bool or {"widen", "quantile", "adaptive", "adaptive_quantile"}
        Recalibrate the forecasts' quantiles per horizon step from in-sample ``h``-step PIT
        values (:mod:`bayes_ssm.inference.recalibration`). ``True`` (default) is the default
        map, :data:`~bayes_ssm.inference.recalibration.DEFAULT_MAP` (``"adaptive"``):
        adaptive conformal levels run over the PIT values in time order, intervals only
        ever widened (:mod:`bayes_ssm.inference.adaptive_recalibration`);
        ``"adaptive_quantile"``: the same, two-sided; ``"widen"``: the static widen-only map
        (the default until session 10); ``"quantile"``: the full quantile map; ``False``:
        the raw mixture.
        ``docs/default.md`` gives the measurements behind the default. The forecast's
        ``attrs["recalibration"]`` says what was done.
    workers : int, optional
        Fit the candidates in this many threads (``None``: one per candidate, at most one per
        core; default ``1``: one after the other, as two threads showed no gain on a 2-core
        CPU, ``benchmarks/README.md`` "Speed of the default, session 7"). Same results
        whatever the number (:mod:`bayes_ssm.inference.threads`); progress bars are off with
        more than one.

    Returns
    -------
    StackedFit
    """
    import jax

    from bayes_ssm.inference import engine as _engine

    start = time.perf_counter()
    full, window, tf, z, candidates, kw = prepare_window(
        y, transform, candidates, method, fit_last, freq, fit_kwargs, progress, pad_to, recalibrate
    )
    fitter = _fitter(method)
    base = _engine.as_key(key)
    workers = resolve_workers(workers, len(candidates))
    if workers > 1:
        kw["progress"] = False  # one bar per thread would interleave

    def fit_one(item):  # fit, PSIS-LOO and checks of candidate i (its own key)
        i, (name, model) = item
        fit = fitter(model, z, key=jax.random.fold_in(base, i), freq=full.freq, **kw)
        return name, fit

    done = map_in_threads(fit_one, enumerate(candidates.items()), workers)
    return stack_candidates(dict(done), tf, window, full.freq, recalibrate, start, workers)


def _fitter(method):
    from bayes_ssm.inference.fitting import fit_nuts, fit_svi

    return fit_svi if method == "svi" else fit_nuts


def prepare_window(
    y, transform, candidates, method, fit_last, freq, fit_kwargs, progress, pad_to, recalibrate
):
    """:func:`auto_fit`'s checks and its data: ``(full, window, transform, z, candidates,
    fit_kwargs)``; ``z`` the transformed window (a Series), ``fit_kwargs`` those of the
    fitter."""
    if method not in ("svi", "nuts"):
        raise ValueError(f"method must be 'svi' or 'nuts'; got {method!r}")
    from bayes_ssm.inference.recalibration import check_mode

    check_mode(recalibrate)
    full = as_series_data(y, freq=freq)
    series = pd.Series(full.y, index=full.index, name=full.name)
    if fit_last is None:
        longest = max((p for p, _ in _SEASONS.get(_freq_code(full.freq), [])), default=0)
        fit_last = max(int(round(6 * longest)), MIN_WINDOW)
    if isinstance(fit_last, bool) or not isinstance(fit_last, int) or fit_last < 10:
        raise ValueError(f"fit_last must be an integer >= 10; got {fit_last!r}")
    window = series.iloc[-fit_last:]
    tf = resolve_transform(transform, window.to_numpy())
    z = pd.Series(tf.forward(window.to_numpy()), index=window.index, name=window.name)
    if candidates is None:
        candidates = default_candidates(seasonal_periods(full.freq, z.to_numpy()), z.to_numpy())
    if not isinstance(candidates, Mapping) or not candidates:
        raise ValueError("candidates must be a non-empty dict of name -> model")
    if method == "nuts":
        kw = {"num_chains": 2, "num_warmup": 300, "num_samples": 400, "progress": progress}
    else:  # the default's SVI settings (inference/auto_settings.py)
        kw = {"progress": progress, **AUTO_SVI}
    kw.update(fit_kwargs or {})
    if pad_to is not None and method == "svi":
        kw["pad_to"] = min(int(pad_to), fit_last)
    return full, window, tf, z, candidates, kw


def forecast(
    y: SeriesLike,
    horizon: int,
    *,
    key: KeyLike,
    prob: Prob = (0.8, 0.95),
    num_samples: int | None = None,
    **options: Any,
) -> pd.DataFrame:
    """The default forecast: :func:`auto_fit` then :meth:`StackedFit.forecast`.

    Parameters
    ----------
    y : pandas.Series or array-like ``(time,)``
    horizon : int
    key : int or jax.random key
        Keyword-only; same key, same forecast.
    prob : float or sequence of float
    **options
        Passed to :func:`auto_fit` (``transform``, ``candidates``, ``method``, ...).

    Returns
    -------
    pandas.DataFrame
        ``mean, median, lower_80, upper_80, lower_95, upper_95`` on the future timestamps;
        ``attrs["weights"]`` the stacking weights (a dict), ``attrs["transform"]`` the
        transform, ``attrs["recalibration"]`` whether and from how many in-sample PIT values
        the quantiles were recalibrated. For the fitted candidates (summary, diagnostics,
        draws) call :func:`auto_fit` and then :meth:`StackedFit.forecast` instead.

    Examples
    --------
    >>> fc = bs.forecast(bs.datasets.load("ili"), 8, key=0)  # doctest: +SKIP
    """
    horizon = validate_horizon(horizon)
    fit = auto_fit(y, key=key, **options)
    return fit.forecast(horizon, prob=prob, num_samples=num_samples, key=key)


@dataclasses.dataclass(frozen=True)
class AutoTS:
    """The default forecaster as a :func:`bayes_ssm.backtest` runner (``bs.AutoTS()``).

    Each fold calls :func:`auto_fit` on the fold's training data with these options
    (``workers``: threads over the candidates; ``candidates``: instead of the default ones).
    ``fold_batch="loop"`` (default): one :func:`auto_fit`
    per fold; ``"vmap"``: each candidate fitted on all the backtest's folds at once, one
    vmapped SVI program per candidate (:mod:`bayes_ssm.inference.auto_folds`; equal to the
    per-fold fits up to rounding). On this CPU the batch cost more CPU than the loop (20 folds:
    2.6-4.5x per fold in SVI's steps; ``benchmarks/README.md``, "Speed of the default, session
    7"), so the loop is the default; the batch is meant for accelerators. NUTS always runs per fold.
    """

    transform: object = "auto"
    method: str = "svi"
    fit_last: int | None = None
    fit_kwargs: dict | None = None
    recalibrate: bool | str = RECALIBRATE
    workers: int | None = 1
    fold_batch: str = "loop"
    candidates: Mapping | None = None
    name: str = "default (stacked)"
    wants_index: bool = True

    def __post_init__(self):
        if self.fold_batch not in ("vmap", "loop"):
            raise ValueError(f"fold_batch must be 'vmap' or 'loop'; got {self.fold_batch!r}")

    def _options(self, freq=None) -> dict:
        return {
            "transform": self.transform,
            "method": self.method,
            "fit_last": self.fit_last,
            "freq": freq,
            "fit_kwargs": self.fit_kwargs,
            "recalibrate": self.recalibrate,
            "workers": self.workers,
            "candidates": self.candidates,
        }

    def fit_folds(
        self, trains: Sequence[pd.Series], keys: Sequence[int], *, pad_to: int | None = None
    ) -> list | None:
        """Every fold's :class:`StackedFit` (or the error its fit raised) from one batch per
        candidate (:func:`~bayes_ssm.inference.auto_folds.auto_fit_folds`); None when this
        runner fits fold by fold (``fold_batch="loop"`` or NUTS). ``keys``: each fold's key
        as :meth:`draws_and_problems` gets it."""
        if self.fold_batch != "vmap" or self.method != "svi" or len(trains) < 2:
            return None
        from bayes_ssm.inference.auto_folds import auto_fit_folds

        return auto_fit_folds(
            trains,
            keys,
            options=self._options(),
            prepare=prepare_window,
            fit_alone=auto_fit,
            pad_to=pad_to,
        )

    def fit(
        self, y: SeriesLike, *, key: KeyLike, freq: str | None = None, pad_to: int | None = None
    ) -> StackedFit:
        return auto_fit(y, key=key, pad_to=pad_to, **self._options(freq))

    def draws_and_problems(
        self,
        train: pd.Series,
        horizon: int,
        *,
        num_samples: int | None,
        key: KeyLike,
        pad_to: int | None = None,
        fitted: StackedFit | Exception | None = None,
    ) -> tuple[np.ndarray, list[str]]:
        """Forecast draws of the stacked fit and the ``bs.check`` problems of the candidates
        that carry weight (for the backtest's ``converged`` column). ``pad_to``: the longest
        training length of the backtest (see :func:`auto_fit`); ``fitted``: this fold's
        result of :meth:`fit_folds` (the fit is then not run again; an error is raised)."""
        if isinstance(fitted, Exception):
            raise fitted
        stacked = fitted if fitted is not None else self.fit(train, key=int(key), pad_to=pad_to)
        draws = stacked.forecast_samples(horizon, num_samples=num_samples or 1000, key=int(key))
        problems = [
            f"{name}: {row.first_problem}"
            for name, row in stacked.table.iterrows()
            if row.problems and row.weight > 0.05
        ]
        return draws, problems
