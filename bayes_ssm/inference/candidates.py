"""The default forecaster's candidate structures (:func:`default_candidates`).

Chosen by measurement across the seven panels of ``benchmarks/default_suite.py``
(``docs/default.md``, "Session 8: the candidate set"): a random-walk level (with a season, its
level and observation variances follow the season), the level plus AR(1), the level with
Student-t observation noise, and a constant mean plus AR(1). The damped trend of sessions 5-7
is gone: fitted on epidemic waves, extrapolated on the log scale, it was the default's worst
loss (weekly COVID cases, monthly deaths).
"""

from __future__ import annotations

__all__ = ["default_candidates", "pinned_level_prior", "PIN_LEVEL"]

PIN_LEVEL = 1e-3  # the mean-reverting candidate's level sd, in units of the step sd of z


def default_candidates(seasons, z=None) -> dict:
    """The default candidate structures for the given ``(period, harmonics)`` seasons.

    Parameters
    ----------
    seasons : sequence of ``(period, harmonics)``
        From :func:`seasonal_periods`.
    z : array-like ``(time,)``, optional
        The (transformed) fit window; accepted for older callers, not used: the
        mean-reverting candidate's pinned level sd is ``PIN_LEVEL`` times the fitted series'
        step sd (its data scale ``dy_scale``), whatever the series.

    Returns
    -------
    dict of str to StructuralTS
        ``level`` (a random walk; with a season ``level_seasonal_noise``, whose level and
        observation variances follow the longest season), ``level_ar1`` (the level plus a
        stationary AR(1)), ``level_student_t`` (Student-t observation noise) and ``mean_ar1``
        (a constant mean plus a stationary AR(1): forecasts revert to the window's mean, their
        variance bounded by the AR's stationary variance). No trend candidate: a trend fitted
        on an epidemic wave and extrapolated on the log scale was the default's worst loss
        (``docs/default.md``, "Session 8: the candidate set").
    """
    from bayes_ssm.models import Seasonal, StructuralTS

    seasonal = [Seasonal(p, harmonics=h) for p, h in seasons] or None
    if seasonal:  # the level: level/observation noise that follows the season
        from bayes_ssm.models.seasonal_noise import SeasonalNoiseTS

        period = max(p for p, _ in seasons)
        noise = {"noise_period": period, "noise_harmonics": 2 if period >= 8 else 1}
        level = {"level_seasonal_noise": SeasonalNoiseTS(trend=None, seasonal=seasonal, **noise)}
    else:
        level = {"level": StructuralTS(trend=None, seasonal=seasonal)}
    return {
        **level,
        "level_ar1": StructuralTS(trend=None, seasonal=seasonal, ar_order=1),
        "level_student_t": StructuralTS(trend=None, seasonal=seasonal, likelihood="student_t"),
        "mean_ar1": StructuralTS(
            trend=None, seasonal=seasonal, ar_order=1, priors=pinned_level_prior(z)
        ),
    }


def pinned_level_prior(z=None) -> dict:
    """The prior override that pins the level of ``mean_ar1``: ``sigma_level ~ HalfNormal(s)``
    with ``s = PIN_LEVEL`` times the sd of the steps of the fitted series (the model's data
    scale ``dy_scale``), so its random walk moves by about ``PIN_LEVEL`` of a typical step per
    step and the level is a constant mean, integrated out by the Kalman filter.

    The scale is relative (``"scale_by": "dy_scale"``), not a number computed from ``z``: one
    model for every window, so a backtest compiles its programs once, not once per origin
    (``z`` is accepted for the callers that pass it and not used)."""
    del z
    return {"sigma_level": {"dist": "HalfNormal", "scale": PIN_LEVEL, "scale_by": "dy_scale"}}
