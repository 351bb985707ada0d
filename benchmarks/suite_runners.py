"""The models of ``benchmarks/default_suite.py``: variants of the default, and the peers.

Every runner has ``name`` and ``forecast(train, horizon, key, pad_to) -> draws`` with
``train`` a ``pandas.Series`` (DatetimeIndex, all data before the origin), ``pad_to`` the
longest training length of the panel (``bs.auto_fit(pad_to=...)``: the folds share compiled
programs; peers ignore it) and draws of shape ``(1000, horizon)``.

Variants of the default are registered in :data:`VARIANTS` (``register_variant``); variants
with the same ``fit_id`` share one fit per series and origin, so ``default`` and
``default_norecal`` cost one ``bs.auto_fit``. To score other candidates::

    import default_suite, suite_runners
    suite_runners.register_variant(
        "heavy",
        lambda train, key, pad_to: bs.auto_fit(train, key=key, pad_to=pad_to, candidates=...),
    )
    default_suite.main(["--variant", "heavy", "--out", "suite.csv"])
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd

import bayes_ssm as bs
from bayes_ssm.evaluation import baselines

NUM_SAMPLES = 1000
PEER_CONTEXT = 2500  # the peers see at most the last 2,500 points (as the fx benchmark)


# --- variants of the default ------------------------------------------------------------


@dataclasses.dataclass
class Variant:
    """A variant of the default: a fit function, and how to forecast from it.

    Attributes
    ----------
    name : str
    fit : callable ``(train: Series, key: int, pad_to: int) -> StackedFit``
    fit_id : str
        Variants with equal ``fit_id`` share the fit (at one series and origin).
    recalibrate : bool or str or None
        Override the fit's ``recalibrate`` (None: as fitted).
    """

    name: str
    fit: Callable
    fit_id: str
    recalibrate: object = None
    _cache: dict = dataclasses.field(default_factory=dict, repr=False)

    def forecast(self, train: pd.Series, horizon: int, key: int, pad_to=None) -> np.ndarray:
        stacked = _shared_fit(self.fit_id, self.fit, train, key, pad_to)
        if self.recalibrate is not None:
            stacked = dataclasses.replace(stacked, recalibrate=self.recalibrate)
        self.weights = stacked.weights.round(2).to_dict()
        return np.asarray(
            stacked.forecast_samples(horizon, num_samples=NUM_SAMPLES, key=key), dtype=float
        )


_FITS: dict = {}


def _shared_fit(fit_id, fit, train, key, pad_to):
    tag = (fit_id, str(train.name), len(train), str(train.index[-1]), key, pad_to)
    if tag not in _FITS:
        _FITS.clear()  # one series and origin at a time: keep only the latest fit
        _FITS[tag] = fit(train, key, pad_to)
    return _FITS[tag]


VARIANTS: dict[str, Variant] = {}


def register_variant(name, fit=None, *, fit_id=None, recalibrate=None) -> Variant:
    """Register a variant of the default (``fit`` defaults to ``bs.auto_fit``)."""
    if fit is None:
        fit = lambda train, key, pad_to: bs.auto_fit(train, key=key, pad_to=pad_to)  # noqa: E731
        fit_id = fit_id or "auto_fit"
    VARIANTS[name] = Variant(name, fit, fit_id or name, recalibrate)
    return VARIANTS[name]


# today's bs.auto_fit (recalibrate=True: "adaptive" since session 10, "widen" before; the
# cached ``default`` rows in results/default_suite.csv are the widen map's)
register_variant("default")
register_variant("default_norecal", recalibrate=False)  # the same fit, raw mixture


# --- peers --------------------------------------------------------------------------------


def _context(train: pd.Series) -> np.ndarray:
    y = train.to_numpy(float)[-PEER_CONTEXT:]
    return pd.Series(y).interpolate(limit_direction="both").to_numpy()


class EmpiricalNaive:
    """Seasonal naive with empirical quantiles: step ``h`` repeats the value one season
    before; its spread is the ``h``-step errors the same rule made on the training data
    (the last ``window`` origins), resampled. ``center="zero"`` / ``"mean"`` forecast 0 /
    the training mean plus resampled deviations of the last ``window`` values from it
    (returns)."""

    def __init__(self, season=1, center="last", window=1000):
        self.season, self.center, self.window = season, center, window
        self.name = {
            "last": "seasonal naive" if season > 1 else "naive",
            "zero": "zero + empirical",
            "mean": "mean + empirical",
        }[center]

    def forecast(self, train, horizon, key, pad_to=None):
        y = _context(train)
        rng = np.random.default_rng(key)
        if self.center != "last":
            hist = y[-self.window :]
            level = 0.0 if self.center == "zero" else hist.mean()
            dev = hist - hist.mean()
            return level + rng.choice(dev, size=(NUM_SAMPLES, horizon))
        s = self.season
        point = baselines.SeasonalNaive(s).point_forecast(y, horizon)
        draws = np.empty((NUM_SAMPLES, horizon))
        for h in range(1, horizon + 1):
            lag = s * ((h - 1) // s + 1)  # the rule's lag for step h
            err = (y[lag:] - y[:-lag])[-self.window :]
            draws[:, h - 1] = point[h - 1] + rng.choice(err, size=NUM_SAMPLES)
        return draws


class Statsforecast:
    """A statsforecast model: Gaussian draws matching its 80% interval (as default_model)."""

    def __init__(self, name, season_length):
        self.name, self.season_length = name, season_length  # name: a statsforecast model

    def forecast(self, train, horizon, key, pad_to=None):
        import statsforecast.models

        model = getattr(statsforecast.models, self.name)(season_length=self.season_length)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = model.forecast(y=_context(train), h=horizon, level=[80])
        mean = np.asarray(out["mean"], float)
        sd = (np.asarray(out["hi-80"]) - np.asarray(out["lo-80"])) / (2 * 1.2815515655446004)
        rng = np.random.default_rng(key)
        return mean + np.maximum(sd, 1e-12) * rng.standard_normal((NUM_SAMPLES, horizon))


class UC:
    """statsmodels UnobservedComponents, local linear trend (+ trigonometric season), MLE."""

    name = "statsmodels UC"

    def __init__(self, period=1.0, harmonics=3, context=1000):
        self.period, self.harmonics, self.context = period, harmonics, context

    def forecast(self, train, horizon, key, pad_to=None):
        from statsmodels.tsa.statespace.structural import UnobservedComponents

        y = train.to_numpy(float)[-self.context :]
        seas = [{"period": self.period, "harmonics": self.harmonics}] if self.period > 1 else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = UnobservedComponents(y, level="local linear trend", freq_seasonal=seas).fit(
                disp=False, maxiter=200
            )
        fc = res.get_forecast(horizon)
        mean, sd = np.asarray(fc.predicted_mean), np.sqrt(np.asarray(fc.var_pred_mean))
        rng = np.random.default_rng(key)
        return mean + sd * rng.standard_normal((NUM_SAMPLES, horizon))


class Prophet:
    name = "Prophet"

    def forecast(self, train, horizon, key, pad_to=None):
        part = train.iloc[-PEER_CONTEXT:]
        return baselines.ProphetBaseline().forecast_samples(
            part.to_numpy(float),
            horizon,
            num_samples=NUM_SAMPLES,
            key=key,
            index=part.index,
            freq=part.index.freqstr,
        )


class Garch:
    """arch: constant mean, GARCH(1,1), Student-t innovations; simulated paths."""

    name = "GARCH(1,1)-t"

    def forecast(self, train, horizon, key, pad_to=None):
        from arch import arch_model

        y = _context(train)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = arch_model(y, mean="Constant", vol="GARCH", p=1, q=1, dist="t").fit(disp="off")
            fc = res.forecast(
                horizon=horizon,
                method="simulation",
                simulations=NUM_SAMPLES,
                reindex=False,
                random_state=np.random.RandomState(key),  # noqa: NPY002 (arch's API)
            )
        return np.asarray(fc.simulations.values[-1], dtype=float)  # (simulation, horizon)


def peers(panel) -> list:
    """The peers of a panel (by its season and kind)."""
    m = panel.season
    out = [EmpiricalNaive(m)]
    if panel.name == "fx_returns":
        out += [EmpiricalNaive(1, "zero"), EmpiricalNaive(1, "mean")]
    out += [
        Statsforecast("AutoETS", m if m <= 24 else 1),
        Statsforecast("AutoTheta", m),
    ]
    if panel.name in ("fx_returns", "fx_levels"):
        out.append(Statsforecast("AutoARIMA", m))
    if m > 1:
        out.append(Statsforecast("MSTL", m))
    if panel.name == "fx_returns":
        out.append(Garch())
    else:
        out.append(UC({52: 52.18}.get(m, m)))
    if panel.name not in ("fx_returns", "etth1"):  # cheap enough on the weekly/monthly/fx
        out.append(Prophet())
    return out
