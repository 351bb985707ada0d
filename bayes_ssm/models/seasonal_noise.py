"""A structural model whose level and observation noise variances follow the season:
:class:`SeasonalNoiseTS`.

One constant level variance averaged over the year makes a seasonal epidemic's in-season
intervals too narrow and its summer ones too wide. Here the log variances move with known
harmonics of the season,

.. math::

    \\log q_t = \\log \\sigma_{level}^2 + \\sum_{k=1}^{K} b_k \\cos(2 \\pi k t / P)
    + c_k \\sin(2 \\pi k t / P),

    \\log r_t = \\log \\sigma_{obs}^2 + \\sum_{k=1}^{K} d_k \\cos(2 \\pi k t / P)
    + e_k \\sin(2 \\pi k t / P),

with ``t`` the 0-based step of the fitted window (a forecast continues the count), ``q_t`` the
variance of the level innovation that arrives at step ``t`` and ``r_t`` the observation
variance at step ``t``. The variances are known functions of the parameters, so the model is
still linear-Gaussian given them and the Kalman filter (with a state noise per step, the same
filter as the continuous-time models) is exact. The coefficients (sites ``level_noise_coef``
and ``obs_noise_coef``, shape ``(2K,)``: cosines then sines) have ``Normal(0, 1)`` priors, so
with them at 0 the model is the constant-variance :class:`~bayes_ssm.StructuralTS` (a test
checks the log-likelihoods are equal there). A coefficient of 1 is a variance ratio of
``e^2 ~ 7.4`` between the peak and the trough of the season.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from bayes_ssm.models import _seasonal_noise_program as program
from bayes_ssm.models._seasonal_noise_program import COEF_PRIOR_SD, COEF_SITES
from bayes_ssm.models._shared import refuse_time_varying_unsupported
from bayes_ssm.models.base import register_model
from bayes_ssm.models.structural import StructuralTS

__all__ = ["SeasonalNoiseTS", "COEF_SITES", "COEF_PRIOR_SD"]


@register_model
@dataclass(frozen=True)
class SeasonalNoiseTS(StructuralTS):
    """:class:`~bayes_ssm.StructuralTS` with level and observation noise variances that follow
    the season (Gaussian observations, discrete time).

    Parameters
    ----------
    noise_period : float
        Period ``P`` of the variance pattern in steps (e.g. ``52.18`` for weekly data).
    noise_harmonics : int
        Number ``K`` of harmonics of the log variances (each adds 2 coefficients per variance).

    Notes
    -----
    The other fields are the :class:`~bayes_ssm.StructuralTS` options (level, trend, seasonal,
    ar_order, regression, priors, method). Not supported: ``likelihood`` other than
    ``"gaussian"``, ``cycle``, ``regression_states``, ``initialization="diffuse"``, continuous
    time.

    Extra parameter sites: ``level_noise_coef`` and ``obs_noise_coef``, each ``(2K,)``.
    ``log_lik``, ``y_forecast``, ``y_fitted``, ``y_rep`` and ``component/<name>`` as for
    :class:`~bayes_ssm.StructuralTS`; the filter is sequential whatever ``method`` says.

    Examples
    --------
    >>> model = SeasonalNoiseTS(trend=None, seasonal=52.18, noise_period=52.18)
    >>> model.parameter_sites[-2:]
    ('level_noise_coef', 'obs_noise_coef')
    """

    kind: ClassVar[str] = "structural_seasonal_noise"
    program: ClassVar[ModuleType] = program  # StructuralTS.model runs its ``run``

    trend: str | None = None
    noise_period: float = 52.18
    noise_harmonics: int = 2

    def __post_init__(self):
        super().__post_init__()
        period = float(self.noise_period)
        if not np.isfinite(period) or period < 2:
            raise ValueError(f"noise_period must be a number >= 2; got {self.noise_period!r}")
        object.__setattr__(self, "noise_period", period)
        k = self.noise_harmonics
        if isinstance(k, bool) or int(k) != k or k < 1 or k > period / 2:
            raise ValueError(
                f"noise_harmonics must be an integer in [1, noise_period / 2]; got {k!r}"
            )
        object.__setattr__(self, "noise_harmonics", int(k))
        refuse_time_varying_unsupported(self, "its level noise varies")

    @property
    def parameter_sites(self) -> tuple[str, ...]:
        return super().parameter_sites + COEF_SITES

    def prior_predictive(self, num_steps, *, key, scales, num_samples=200, covariates=None):
        raise NotImplementedError("SeasonalNoiseTS has no prior predictive program yet")

    def spec(self) -> dict[str, Any]:
        out = super().spec()
        out["kind"] = self.kind
        out["params"]["noise_period"] = self.noise_period
        out["params"]["noise_harmonics"] = self.noise_harmonics
        return out
