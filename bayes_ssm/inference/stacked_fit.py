"""The result of :func:`bayes_ssm.auto_fit`: candidate fits, their stacking weights, and the
mixture forecast; and the transforms (log, Box-Cox) the default forecaster fits on."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bayes_ssm.data.validation import future_index
from bayes_ssm.inference.forecast import level_label, validate_horizon, validate_prob
from bayes_ssm.inference.stacking import mixture_counts, mixture_quantiles
from bayes_ssm.inference.transform_check import LOG_GUARD_RATIO, guard_reason, log_scale_ratio

if TYPE_CHECKING:
    from bayes_ssm.data.types import KeyLike, Prob
    from bayes_ssm.inference.recalibration import Recalibration

__all__ = ["StackedFit", "Transform", "resolve_transform"]

MIN_WEIGHT = 1e-3  # candidates below this weight are left out of the mixture's in-sample PIT


@dataclasses.dataclass(frozen=True)
class Transform:
    """A monotone transform: ``"none"``, ``"log"`` or Box-Cox with ``lam``; ``reason`` says
    why ``transform="auto"`` chose it when it is not the plain rule (log for positive data)."""

    name: str
    lam: float | None = None
    reason: str = dataclasses.field(default="", compare=False)

    def forward(self, y):
        y = np.asarray(y, dtype=float)
        if self.name == "none":
            return y
        if self.name == "log":
            return np.log(y)
        return np.log(y) if self.lam == 0 else (y**self.lam - 1) / self.lam

    def inverse(self, z):
        z = np.asarray(z, dtype=float)
        if self.name == "none":
            return z
        if self.name == "log" or self.lam == 0:
            return np.exp(z)
        return np.maximum(self.lam * z + 1, 0.0) ** (1 / self.lam)

    def __str__(self):
        return f"boxcox({self.lam:g})" if self.name == "boxcox" else self.name


def resolve_transform(transform, y) -> Transform:
    """``"auto"`` -> log for positive data, else none; checks that the data allow it.

    ``"auto"`` on positive data keeps the log scale unless its multi-step forecasts would
    explode when back-transformed (:mod:`bayes_ssm.inference.transform_check`: random-walk
    forecasts scored on the data scale are at least ``LOG_GUARD_RATIO`` times worse on the log
    scale than on the square root); then the square root (Box-Cox 0.5), with the reason.
    """
    y = np.asarray(y, dtype=float)
    positive = bool(np.all(y[np.isfinite(y)] > 0))
    if isinstance(transform, str):
        if transform == "auto":
            if not positive:
                return Transform("none")
            ratio = log_scale_ratio(y)
            if ratio >= LOG_GUARD_RATIO:
                return Transform("boxcox", 0.5, reason=guard_reason(ratio))
            return Transform("log")
        if transform == "none":
            return Transform("none")
        if transform == "log":
            if not positive:
                raise ValueError("transform='log' needs positive values; use transform='none'")
            return Transform("log")
    elif isinstance(transform, int | float) and not isinstance(transform, bool):
        if not positive:
            raise ValueError("a Box-Cox transform needs positive values; use transform='none'")
        return Transform("boxcox", float(transform))
    raise ValueError(
        f"transform must be 'auto', 'log', 'none' or a Box-Cox lambda; got {transform!r}"
    )


@dataclasses.dataclass(frozen=True, eq=False)
class StackedFit:
    """Candidates fitted to one series and their stacking weights (build with :func:`auto_fit`).

    Attributes
    ----------
    fits : mapping of str to Fit
        Each candidate's fit, on the transformed scale.
    weights : pandas.Series
        Stacking weight per candidate (sums to 1).
    transform : Transform
    data : SeriesData
        The fitted window on the data scale.
    table : pandas.DataFrame
        Per candidate: weight, elpd_loo, bad_pareto_k (count), problems (``bs.check``).
    weights_from : str
        ``"stacking (PSIS-LOO)"``, or ``"equal (LOO unreliable)"``.
    recalibrate : bool or {"widen", "quantile", "adaptive", "adaptive_quantile"}
        Recalibrate forecasts from in-sample ``h``-step PIT values
        (:mod:`bayes_ssm.inference.recalibration`; ``True`` is the default map,
        ``recalibration.DEFAULT_MAP``; the adaptive maps:
        :mod:`bayes_ssm.inference.adaptive_recalibration`);
        ``forecast(...).attrs["recalibration"]`` says what was done.
    workers : int, optional
        Threads for the candidates' forecast draws (:func:`auto_fit`'s ``workers``; same
        draws whatever the number).
    """

    fits: Mapping
    weights: pd.Series
    transform: Transform
    data: object
    table: pd.DataFrame
    weights_from: str
    seconds: float
    recalibrate: bool | str = False
    workers: int | None = None
    scores_cache: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @property
    def seasonal_period(self) -> float | None:
        """The longest seasonal period of the candidates (None: no season)."""
        periods = [s.period for f in self.fits.values() for s in getattr(f.model, "seasonal", ())]
        return max(periods, default=None)

    def summary(self) -> pd.DataFrame:
        """The per-candidate table (weights, LOO, diagnostics); ``attrs["recalibration"]``
        says whether forecasts are recalibrated and from how many in-sample PIT values."""
        out = self.table.copy()
        if self.mode is None:
            note = "off (recalibrate=False)"
        elif self.scores_cache:
            h = max(key[0] for key in self.scores_cache)
            note = f"on: {self.recalibration_label(h)} for horizon {h}"
        else:
            note = "on: from in-sample h-step PIT values, computed at the first forecast"
        out.attrs["recalibration"] = note
        return out

    def in_sample_scores(self, horizon: int, names: Iterable[str] | None = None) -> dict | None:
        """In-sample ``h``-step PIT values and log densities of the candidates ``names``
        (default: all), ``h = 1..horizon``
        (:func:`~bayes_ssm.inference.recalibration.in_sample_scores`; cached)."""
        from bayes_ssm.inference.recalibration import in_sample_scores

        names = tuple(self.fits) if names is None else tuple(names)
        if (horizon, names) not in self.scores_cache:
            fits = {n: self.fits[n] for n in names}
            self.scores_cache[horizon, names] = in_sample_scores(fits, horizon)
        return self.scores_cache[horizon, names]

    @property
    def mode(self) -> str | None:
        """The recalibration map (one of ``recalibration.MODES``), or ``None`` (off)."""
        from bayes_ssm.inference.recalibration import check_mode

        return check_mode(self.recalibrate)

    def recalibration(self, horizon: int) -> Recalibration | None:
        """The :class:`~bayes_ssm.inference.recalibration.Recalibration` used for a forecast
        of ``horizon`` steps, or ``None`` (off, or not available)."""
        if self.mode is None:
            return None
        from bayes_ssm.inference.recalibration import stacked_pit

        # candidates with a weight below 0.1% change the mixture's PIT by less than 0.001
        names = [n for n in self.fits if self.weights[n] >= MIN_WEIGHT]
        return stacked_pit(self.in_sample_scores(horizon, names), self.weights)

    def recalibration_label(self, horizon: int) -> str:
        """What ``forecast(horizon)`` does about recalibration, in words."""
        if self.mode is None:
            return "not recalibrated (recalibrate=False)"
        recal = self.recalibration(horizon)
        if recal is None:
            return (
                "not recalibrated: in-sample PIT not available (a candidate the in-sample "
                "PIT does not support, or too few in-sample origins for this horizon)"
            )
        return recal.label(self.mode)

    def _candidate_draws(self, horizon, num_samples, key, only=None):
        """Forecast draws of each candidate with positive weight (of those in ``only``)."""
        import jax

        from bayes_ssm.inference import engine as _engine
        from bayes_ssm.inference.threads import map_in_threads, resolve_workers

        base = _engine.as_key(key)
        tasks = [(i, name, fit) for i, (name, fit) in enumerate(self.fits.items())]
        tasks = [t for t in tasks if self.weights[t[1]] > 0 and (only is None or t[1] in only)]

        def draw(task):  # candidate i draws with fold_in(key, i)
            i, name, fit = task
            n = min(num_samples, fit.num_samples) if num_samples else None
            k = jax.random.fold_in(base, i)
            return np.asarray(fit.forecast_samples(horizon, num_samples=n, key=k), float)

        workers = resolve_workers(self.workers, max(len(tasks), 1))
        draws = map_in_threads(draw, tasks, workers)
        return {name: d for (_, name, _), d in zip(tasks, draws, strict=True)}

    def forecast_samples(
        self, horizon: int, *, num_samples: int = 1000, key: KeyLike = 0
    ) -> np.ndarray:
        """``num_samples`` draws of the stacked predictive on the data scale.

        Candidate ``k`` contributes ``round(w_k * num_samples)`` of its own draws (largest
        remainder; candidate ``i`` draws with ``fold_in(key, i)``).

        Returns
        -------
        numpy.ndarray, shape ``(num_samples, horizon)``
        """
        horizon = validate_horizon(horizon)
        used = self.weights[self.weights > 0]
        counts = dict(zip(used.index, mixture_counts(used.to_numpy(), num_samples), strict=True))
        # a candidate whose share rounds to no draw is not run (its draws would not be used)
        drawn = {name for name, count in counts.items() if count}
        draws = self._candidate_draws(horizon, num_samples, key, drawn)
        parts = []
        for name, d in draws.items():
            take = np.resize(np.arange(d.shape[0]), counts[name])  # cycles when c > the draws
            parts.append(d[take])
        out = np.concatenate(parts, axis=0)
        recal = self.recalibration(horizon)
        if recal is not None:
            from bayes_ssm.inference.recalibration import recalibrate_draws

            out = recalibrate_draws(out, recal.pit, _rng(key), self.mode, recal.sequence)
        return self.transform.inverse(out)

    def forecast(
        self,
        horizon: int,
        *,
        prob: Prob = (0.8, 0.95),
        num_samples: int | None = None,
        key: KeyLike = 0,
    ) -> pd.DataFrame:
        """The stacked forecast: mean, median and intervals of the weighted mixture.

        Quantiles are those of the mixture ``sum_k w_k F_k`` of the candidates' empirical
        predictive laws (every draw of every candidate, weighted), back-transformed; the mean
        is the weighted mean of the back-transformed draws.

        Returns
        -------
        pandas.DataFrame, shape ``(horizon, 2 + 2 * len(prob))``
            As :meth:`bayes_ssm.Fit.forecast`; ``attrs["weights"]`` holds the weights,
            ``attrs["recalibration"]`` what was done about recalibration. Recalibrated: the
            quantile at ``p`` is the mixture's at the mapped level (per step), the mean the
            mean of the mixture's quantiles at every in-sample origin's mapped level.
        """
        horizon = validate_horizon(horizon)
        levels = validate_prob(prob)
        draws = self._candidate_draws(horizon, num_samples, key)
        w = self.weights[list(draws)].to_numpy()
        w = w / w.sum()
        qs = [0.5]
        for p in levels:
            qs += [(1 - p) / 2, (1 + p) / 2]
        parts = list(draws.values())
        recal = self.recalibration(horizon)
        if recal is None:
            quant = self.transform.inverse(mixture_quantiles(parts, w, qs))
            mean = sum(
                wk * self.transform.inverse(d).mean(axis=0) for wk, d in zip(w, parts, strict=True)
            )
        else:  # quantile p of the recalibrated law: the model's at the PIT's p-quantile
            from bayes_ssm.inference.recalibration import origin_levels, recalibrated_levels

            at = recalibrated_levels(recal.pit, qs, self.mode, recal.sequence)
            table = origin_levels(recal.pit, self.mode, recal.sequence)
            quant, mean = np.empty((len(qs), horizon)), np.empty(horizon)
            for h in range(horizon):
                col = [d[:, h : h + 1] for d in parts]
                quant[:, h] = mixture_quantiles(col, w, at[:, h])[:, 0]
                u = table[np.isfinite(table[:, h]), h]  # the mean: over the origins' levels
                mean[h] = self.transform.inverse(mixture_quantiles(col, w, u)[:, 0]).mean()
            quant = self.transform.inverse(quant)
        cols = {"mean": mean, "median": quant[0]}
        for i, p in enumerate(levels):
            cols[f"lower_{level_label(p)}"] = quant[1 + 2 * i]
            cols[f"upper_{level_label(p)}"] = quant[2 + 2 * i]
        index = future_index(self.data, horizon)
        index.name = self.data.index.name
        frame = pd.DataFrame(cols, index=index)
        frame.attrs["weights"] = self.weights.to_dict()
        frame.attrs["transform"] = str(self.transform)
        if self.transform.reason:
            frame.attrs["transform_reason"] = self.transform.reason
        frame.attrs["recalibration"] = self.recalibration_label(horizon)
        return frame


def _rng(key) -> np.random.Generator:
    """A NumPy generator derived from ``key`` (same key, same stream)."""
    import jax

    from bayes_ssm.inference import engine as _engine

    base = jax.random.fold_in(_engine.as_key(key), 7919)
    return np.random.default_rng(int(jax.random.randint(base, (), 0, 2**31 - 1)))
