"""Session 8's candidate-set variants of the default, judged by ``benchmarks/default_suite.py``.

Each variant replaces :func:`bayes_ssm.inference.auto.default_candidates` (the seasons are
still chosen from the data as the default does) and is registered twice: recalibrated as
shipped (``widen``) and not (``_norecal``, the same fit). Variants:

``s7``
    the candidate set of session 7 (level, damped trend, level + AR(1), Student-t level), for
    reruns after the default changes.
``no_damped``
    the damped-trend candidate left out (level, level + AR(1), Student-t level).
``damped_fast``
    the damped trend with a damping that reverts faster: ``phi ~ Uniform(0.5, 0.9)`` (was
    ``Uniform(0.8, 1.0)``).
``mean_ar1``
    ``no_damped`` plus a mean-reverting candidate: a constant mean (the level's random walk
    pinned by a ``HalfNormal(1e-4)`` sd) plus a stationary AR(1).

Usage (scores go to their own CSV; the committed peers' rows are read from ``--cache``; the
session-8 runs are kept in ``benchmarks/results/suite_s8_variants.csv``)::

    nice -n 10 env PYTHONPATH=. python benchmarks/suite_variants_s8.py --variant no_damped \\
        --out benchmarks/results/suite_s8_no_damped.csv \\
        --cache benchmarks/results/default_suite.csv
"""

from __future__ import annotations

import contextlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import default_suite  # noqa: E402
import suite_runners  # noqa: E402

import bayes_ssm as bs  # noqa: E402
from bayes_ssm.inference import auto as _auto  # noqa: E402


def _session7(seasons, z=None) -> dict:
    from bayes_ssm.models import Seasonal, StructuralTS
    from bayes_ssm.models.seasonal_noise import SeasonalNoiseTS

    seasonal = [Seasonal(p, harmonics=h) for p, h in seasons] or None
    if seasonal:
        period = max(p for p, _ in seasons)
        noise = {"noise_period": period, "noise_harmonics": 2 if period >= 8 else 1}
        return {
            "level_seasonal_noise": SeasonalNoiseTS(trend=None, seasonal=seasonal, **noise),
            "damped_trend_seasonal_noise": SeasonalNoiseTS(
                trend="damped", seasonal=seasonal, **noise
            ),
            "level_ar1": StructuralTS(trend=None, seasonal=seasonal, ar_order=1),
            "level_student_t": StructuralTS(trend=None, seasonal=seasonal, likelihood="student_t"),
        }
    return {
        "level": StructuralTS(trend=None, seasonal=seasonal),
        "damped_trend": StructuralTS(trend="damped", seasonal=seasonal),
        "level_ar1": StructuralTS(trend=None, seasonal=seasonal, ar_order=1),
        "level_student_t": StructuralTS(trend=None, seasonal=seasonal, likelihood="student_t"),
    }


def _no_damped(seasons, z=None) -> dict:
    return {k: v for k, v in _session7(seasons).items() if not k.startswith("damped")}


FAST_DAMPING = {"damping": {"dist": "Uniform", "low": 0.5, "high": 0.9}}


def _damped_fast(seasons, z=None) -> dict:
    import dataclasses

    out = _session7(seasons)
    for name in [k for k in out if k.startswith("damped")]:
        model = out[name]
        out[name] = dataclasses.replace(model, priors={**(model.priors or {}), **FAST_DAMPING})
    return out


# a constant mean (a level whose random walk is pinned by a tiny sd) plus a stationary AR(1):
# forecasts revert to the window's mean, their variance is bounded by the AR's stationary one
PINNED_LEVEL = {"sigma_level": {"dist": "HalfNormal", "scale": 1e-4}}


def _mean_ar1(seasons, z=None) -> dict:
    from bayes_ssm.models import Seasonal, StructuralTS

    seasonal = [Seasonal(p, harmonics=h) for p, h in seasons] or None
    out = _no_damped(seasons)
    out["mean_ar1"] = StructuralTS(trend=None, seasonal=seasonal, ar_order=1, priors=PINNED_LEVEL)
    return out


FACTORIES = {
    "s7": _session7,
    "no_damped": _no_damped,
    "damped_fast": _damped_fast,
    "mean_ar1": _mean_ar1,
}


@contextlib.contextmanager
def _candidates(factory):
    saved = _auto.default_candidates
    _auto.default_candidates = factory
    try:
        yield
    finally:
        _auto.default_candidates = saved


def _fit_with(factory):
    def fit(train, key, pad_to):
        with _candidates(factory):
            return bs.auto_fit(train, key=key, pad_to=pad_to)

    return fit


for _name, _factory in FACTORIES.items():
    suite_runners.register_variant(_name, _fit_with(_factory), fit_id=_name)
    suite_runners.register_variant(
        f"{_name}_norecal", _fit_with(_factory), fit_id=_name, recalibrate=False
    )


if __name__ == "__main__":
    default_suite.main(sys.argv[1:])
