"""A structural model whose level shocks are Student-t: :class:`HeavyLevelTS`.

A break or an epidemic wave seen through a Gaussian random-walk level inflates the one level
variance, and that variance then drives every future step: the long-horizon intervals
explode. With heavy-tailed level innovations a few large jumps explain the break while the
typical shock stays small, so the future's intervals stay honest without exploding. The
level innovation arriving at step ``t`` is

.. math::

    \\eta_t \\mid \\lambda_t \\sim N(0, \\sigma_{level}^2 / \\lambda_t), \\qquad
    \\lambda_t \\sim \\mathrm{Gamma}(\\nu / 2, \\nu / 2),

i.e. ``eta_t ~ t_nu(0, sigma_level)``. The precisions are latent (site ``level_precision``,
shape ``(time - 1,)``: the first step has no innovation), like the Student-t observation
noise's ``obs_precision``; given them the model is linear-Gaussian and the likelihood is the
exact time-varying Kalman filter (a state noise per step).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar

from bayes_ssm.models import _heavy_level_program as program
from bayes_ssm.models._heavy_level_program import (
    FORECAST_PRECISION_SITE,
    NU_SITE,
    PRECISION_SITE,
)
from bayes_ssm.models._shared import refuse_time_varying_unsupported
from bayes_ssm.models.base import register_model
from bayes_ssm.models.structural import StructuralTS

__all__ = ["HeavyLevelTS", "NU_SITE", "PRECISION_SITE", "FORECAST_PRECISION_SITE"]


@register_model
@dataclass(frozen=True)
class HeavyLevelTS(StructuralTS):
    """:class:`~bayes_ssm.StructuralTS` with Student-t level innovations (Gaussian
    observations, discrete time).

    Parameters
    ----------
    nu_level_rate : float
        Rate of the ``nu_level`` prior ``2 + Gamma(2, nu_level_rate)`` (default 0.1: the
        Student-t observation noise's ``nu`` prior, prior median 18.8; 0.5: median 5.4).

    Notes
    -----
    The fields are the :class:`~bayes_ssm.StructuralTS` options (level, trend, seasonal,
    ar_order, regression, priors, method); ``trend`` defaults to ``None`` (a random-walk
    level). Only the level's innovations are heavy-tailed; slope, seasonal and AR noise stay
    Gaussian. Not supported: ``likelihood`` other than ``"gaussian"``, ``cycle``,
    ``regression_states``, ``initialization="diffuse"``, continuous time.

    Extra sites: ``nu_level`` (degrees of freedom; prior ``2 + Gamma(2, nu_level_rate)``, so
    ``nu_level > 2``; or ``priors={"nu_level": ...}``), the latent ``level_precision``
    ``(time - 1,)`` and, in forecasts, ``forecast_level_precision`` ``(horizon,)`` (fresh
    precisions: future shocks follow the t law).

    ``log_lik`` (for PSIS-LOO) is ``log p(y_t | y_<t, lambda_<t)``: it conditions on the
    sampled precisions of the earlier steps and integrates out the step's own precision
    ``lambda_t`` (as ``nu`` does for Student-t observations), so leaving ``y_t`` out does not
    leave its own latent behind. The sampled program's likelihood conditions on every
    ``lambda_t``. ``y_rep`` is drawn from the one-step law given the sampled precisions. The
    filter is sequential whatever ``method`` says.

    Examples
    --------
    >>> model = HeavyLevelTS()
    >>> model.parameter_sites
    ('sigma_obs', 'sigma_level', 'nu_level')
    """

    kind: ClassVar[str] = "structural_heavy_level"
    program: ClassVar[ModuleType] = program  # StructuralTS.model runs its ``run``

    trend: str | None = None
    nu_level_rate: float = 0.1

    def __post_init__(self):
        super().__post_init__()
        rate = self.nu_level_rate
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
            raise ValueError(f"nu_level_rate must be a positive number; got {rate!r}")
        object.__setattr__(self, "nu_level_rate", float(rate))
        refuse_time_varying_unsupported(self, "its level shocks are Student-t")

    @property
    def parameter_sites(self) -> tuple[str, ...]:
        return super().parameter_sites + (NU_SITE,)

    def prior_predictive(self, num_steps, *, key, scales, num_samples=200, covariates=None):
        raise NotImplementedError("HeavyLevelTS has no prior predictive program yet")

    def spec(self) -> dict[str, Any]:
        out = super().spec()
        out["kind"] = self.kind
        out["params"]["nu_level_rate"] = self.nu_level_rate
        return out
