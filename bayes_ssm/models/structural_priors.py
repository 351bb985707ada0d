"""Default priors of :class:`~bayes_ssm.models.structural.StructuralTS`, scaled to the data.

Every default is weakly informative *relative to the data's own scales*, which
:meth:`StructuralTS.data_scales` computes once from the training series (and the fit stores, so a
forecast or a reloaded fit uses the same priors):

``y_loc``
    mean of the observed values (on the log1p scale for the negative binomial);
``y_scale``
    their standard deviation;
``dy_scale``
    standard deviation of the first differences (the step-to-step movement);
``x_scale_<j>``
    standard deviation of covariate ``j``.

Scales are floored (``_MIN_SCALE`` times ``max(1, |y_loc|)``) so that a constant series gives
tight but proper priors and finite output rather than NaN.

=====================  ==========================================  =================================
site                   default                                     meaning
=====================  ==========================================  =================================
``sigma_obs``          ``HalfNormal(y_scale)``                     observation noise sd
``sigma_level``        ``HalfNormal(dy_scale)``                    level disturbance sd
``sigma_slope``        ``HalfNormal(0.1 * dy_scale)``              slope disturbance sd
``damping``            ``Uniform(0.8, 1.0)``                       damped-trend ``phi``
``sigma_<seasonal>``   ``HalfNormal(0.1 * y_scale)``               seasonal disturbance sd
``ar_pacf``            ``Uniform(-1, 1)`` per lag                  partial autocorrelations (AR)
``sigma_ar``           ``HalfNormal(y_scale)``                     AR innovation sd
``beta``               ``Normal(0, y_scale / x_scale_j)``          regression coefficients
``sigma_cycle``        ``HalfNormal(0.1 * y_scale)``               cycle disturbance sd
``cycle_frequency``    ``Uniform(2pi / max(T/2, 6), 2pi / 3)``     cycle frequency (period 3..T/2)
``cycle_damping``      ``Uniform(0.5, 1.0)``                       cycle damping ``rho``
``sigma_beta``         ``HalfNormal(0.1 dy_scale / x_scale_j)``    random-walk coefficient sds
``nu``                 ``2 + Gamma(2, 0.1)`` (Juarez-Steel, >= 2)  Student-t degrees of freedom
``concentration``      ``Gamma(2, 0.1)``                           negative-binomial shape
=====================  ==========================================  =================================

The initial state is given a proper prior too (integrated out by the Kalman filter for the
Gaussian and Student-t likelihoods): level ``N(y_loc, (3 y_scale)^2)``, slope
``N(0, (2 dy_scale)^2)``, seasonal states ``N(0, y_scale^2)``, AR states their stationary law.

Overrides: ``StructuralTS(priors={"sigma_obs": {"dist": "HalfNormal", "scale": 0.5}})`` - the
name of any ``numpyro.distributions`` class and its keyword arguments in data units (JSON
round-trips), or a ``numpyro.distributions.Distribution`` instance (not saved with ``spec()``).
``"scale_by": "dy_scale"`` (or ``"y_scale"``) makes ``scale`` relative to that data scale:
``{"dist": "HalfNormal", "scale": 1e-3, "scale_by": "dy_scale"}`` is ``HalfNormal(1e-3 *
dy_scale)`` for whatever series is fitted, one model (and one compiled program) for all of them.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from numpyro.distributions import constraints

__all__ = ["default_prior", "resolve_prior", "compute_scales", "prior_from_spec"]

_MIN_SCALE = 1e-3


def compute_scales(y: np.ndarray, covariates: np.ndarray | None = None) -> dict[str, float]:
    """The data scales that fix the default priors (plain floats).

    Parameters
    ----------
    y : ndarray, shape ``(time,)``
        Observations (NaN allowed), already on the model's scale (log1p for counts).
    covariates : ndarray, shape ``(time, covariate)``, optional

    Returns
    -------
    dict
        ``y_loc``, ``y_scale``, ``dy_scale``, ``num_steps`` and ``x_scale_<j>`` per covariate.
    """
    y = np.asarray(y, dtype=np.float64)
    obs = y[~np.isnan(y)]
    if obs.size == 0:
        raise ValueError("y has no observed values; cannot scale the priors")
    loc = float(np.mean(obs))
    floor = _MIN_SCALE * max(1.0, abs(loc))
    scale = float(np.std(obs)) if obs.size > 1 else 0.0
    diffs = np.diff(y)
    diffs = diffs[~np.isnan(diffs)]
    dscale = float(np.std(diffs)) if diffs.size > 1 else scale
    scales = {
        "y_loc": loc,
        "y_scale": max(scale, floor),
        "dy_scale": max(dscale, floor),
        "num_steps": float(y.shape[0]),
    }
    if covariates is not None:
        cov = np.asarray(covariates, dtype=np.float64)
        for j in range(cov.shape[1]):
            sd = float(np.std(cov[:, j]))
            scales[f"x_scale_{j}"] = sd if sd > 0 else 1.0
    return scales


def default_prior(name: str, scales: dict[str, float], *, size: int | None = None):
    """The default prior of parameter site ``name`` (see the module table).

    Parameters
    ----------
    name : str
        Site name; seasonal sds are ``sigma_<component name>``.
    scales : dict
        From :func:`compute_scales`.
    size : int, optional
        Vector length of ``ar_pacf`` / ``beta``.
    """
    ys, dys = scales["y_scale"], scales["dy_scale"]
    if name == "sigma_obs":
        return dist.HalfNormal(ys)
    if name == "sigma_level":
        return dist.HalfNormal(dys)
    if name == "sigma_slope":
        return dist.HalfNormal(0.1 * dys)
    if name == "damping":
        return dist.Uniform(0.8, 1.0)
    if name == "ar_pacf":
        return dist.Uniform(-np.ones(size), np.ones(size)).to_event(1)
    if name == "sigma_ar":
        return dist.HalfNormal(ys)
    if name == "beta":
        xs = jnp.stack([jnp.asarray(scales.get(f"x_scale_{j}", 1.0)) for j in range(size)])
        return dist.Normal(jnp.zeros(size), ys / xs).to_event(1)
    if name in ("sigma_cycle", "cycle_frequency", "cycle_damping", "sigma_beta"):
        return _extra_prior(name, scales, size)
    if name == "nu":  # nu >= 2: a finite variance (a nu near 0 drew 1e50 forecasts)
        return ShiftedGamma(2.0, 0.1, NU_MIN)
    if name == "concentration":
        return dist.Gamma(2.0, 0.1)
    if name.startswith("sigma_"):  # seasonal components
        return dist.HalfNormal(0.1 * ys)
    raise KeyError(f"no default prior for site {name!r}")


NU_MIN = 2.0


class ShiftedGamma(dist.TransformedDistribution):
    """``shift + Gamma(concentration, rate)``, with support ``(shift, inf)`` (so SVI's guide
    and NUTS map it to an unconstrained space correctly)."""

    def __init__(self, concentration, rate, shift):
        self.shift = shift
        base = dist.Gamma(concentration, rate)
        super().__init__(base, dist.transforms.AffineTransform(shift, 1.0))

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self):
        return constraints.greater_than(self.shift)


def _extra_prior(name: str, scales: dict[str, float], size):
    """Defaults of the cycle and random-walk-coefficient sites."""
    if name == "sigma_cycle":
        return dist.HalfNormal(0.1 * scales["y_scale"])
    if name == "cycle_frequency":
        longest = max(scales.get("num_steps", 12.0) / 2.0, 6.0)
        return dist.Uniform(2.0 * np.pi / longest, 2.0 * np.pi / 3.0)
    if name == "cycle_damping":
        return dist.Uniform(0.5, 1.0)
    xs = jnp.stack([jnp.asarray(scales.get(f"x_scale_{j}", 1.0)) for j in range(size)])
    return dist.HalfNormal(0.1 * scales["dy_scale"] / xs).to_event(1)


SCALES_FOR_PRIORS = ("y_scale", "dy_scale")


def prior_from_spec(
    name: str, spec, scales: dict | None = None, *, checking: bool = False
) -> dist.Distribution:
    """Build a distribution from an override: a Distribution, or ``{"dist": Name, **kwargs}``
    (``"scale_by": "dy_scale"`` multiplies ``scale`` by that entry of the data ``scales``;
    ``checking=True``: by 1, only to check the spec before any data are seen)."""
    if isinstance(spec, dist.Distribution):
        return spec
    if not isinstance(spec, dict) or "dist" not in spec:
        raise ValueError(
            f"prior override for {name!r} must be a numpyro Distribution or a dict like "
            f"{{'dist': 'HalfNormal', 'scale': 1.0}}; got {spec!r}"
        )
    kwargs = {k: (np.asarray(v) if isinstance(v, list) else v) for k, v in spec.items()}
    by = kwargs.pop("scale_by", None)
    if by is not None:
        if by not in SCALES_FOR_PRIORS or "scale" not in kwargs:
            raise ValueError(
                f"prior override for {name!r}: scale_by must be one of {SCALES_FOR_PRIORS} and "
                f"needs a 'scale'; got scale_by={by!r} in {spec!r}"
            )
        if scales is not None and by in scales:
            kwargs["scale"] = kwargs["scale"] * scales[by]
        elif not checking:
            raise ValueError(
                f"prior override for {name!r}: scale_by={by!r} needs the data scale {by!r}, "
                "which this model does not compute for this site; give an absolute scale"
            )
    family = kwargs.pop("dist")
    cls = getattr(dist, str(family), None)
    if not (isinstance(cls, type) and issubclass(cls, dist.Distribution)):
        raise ValueError(f"prior override for {name!r}: unknown distribution {family!r}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"prior override for {name!r} ({family}{kwargs}) is invalid: {err}"
        ) from None


def resolve_prior(name: str, overrides: dict, scales: dict[str, float], *, size=None):
    """The override for ``name`` if any, else :func:`default_prior`; vector sites get their event
    shape."""
    if name in overrides:
        prior = prior_from_spec(name, overrides[name], scales)
        if size is not None and prior.event_shape != (size,):
            prior = prior.expand((size,)).to_event(1) if prior.event_shape == () else prior
        return prior
    return default_prior(name, scales, size=size)
