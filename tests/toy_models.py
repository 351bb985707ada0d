"""A small model that keeps the contract of ``bayes_ssm/models/base.py``, for driver tests.

``ToyLocalLevel``: y_t = mu_t + eps_t, eps_t ~ N(0, obs_sd^2); mu_{t+1} = mu_t + eta_t,
eta_t ~ N(0, level_sd^2); mu_1 ~ N(loc, init_sd^2). The state is integrated out by a scalar
Kalman filter (lax.scan), so its only latent sites are the two standard deviations (or none,
when both are fixed: then the only uncertainty is the state, the conjugate case whose
predictive is known in closed form: :func:`kalman_predictive_numpy`).

``ToyDivergent``: a potential with a cliff; NUTS diverges on it.

``ToyTwoOptima``: two SVI optima of different depth that keys choose between (``bs.check_keys``).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from bayes_ssm.models.base import TimeSeriesModel, register_model


def _filter(y, obs_var, level_var, a1, p1):
    def step(carry, y_t):
        a, p = carry
        f = p + obs_var
        missing = jnp.isnan(y_t)
        v = jnp.where(missing, 0.0, y_t - a)
        k = jnp.where(missing, 0.0, p / f)
        ll = jnp.where(missing, 0.0, -0.5 * (jnp.log(2 * jnp.pi * f) + v**2 / f))
        a_f, p_f = a + k * v, p * (1 - k)
        return (a_f, p_f + level_var), (a, f, ll, a_f, p_f)

    _, (pred_mean, pred_var, ll, filt_mean, filt_var) = jax.lax.scan(step, (a1, p1), y)
    return pred_mean, pred_var, ll, filt_mean, filt_var


@register_model
@dataclass(frozen=True)
class ToyLocalLevel(TimeSeriesModel):
    """Gaussian local level with a Kalman likelihood (test-only)."""

    kind = "toy_local_level"
    obs_sd: float | None = None
    level_sd: float | None = None
    init_sd: float = 10.0
    min_length: int = 5

    def data_scales(self, y, covariates=None):
        y = np.asarray(y, float)
        obs = y[~np.isnan(y)]
        return {"loc": float(obs[0]), "scale": float(max(np.std(np.diff(obs)), 1e-6))}

    def validate(self, y, covariates=None):
        n = int(np.sum(~np.isnan(np.asarray(y, float))))
        if n < self.min_length:
            raise ValueError(
                f"y has {n} observed values; ToyLocalLevel needs at least {self.min_length}"
            )

    def model(
        self, y, *, scales, covariates=None, horizon=0, future_covariates=None, components=False
    ):
        scale = scales["scale"]
        if self.obs_sd is None:
            obs_sd = numpyro.sample("obs_sd", dist.HalfNormal(scale))
        else:
            obs_sd = jnp.asarray(self.obs_sd)
        if self.level_sd is None:
            level_sd = numpyro.sample("level_sd", dist.HalfNormal(scale))
        else:
            level_sd = jnp.asarray(self.level_sd)
        offset = future_offset = 0.0
        if covariates is not None:
            beta = numpyro.sample("beta", dist.Normal(0, scale).expand([covariates.shape[1]]))
            offset = covariates @ beta
            if horizon > 0:
                if future_covariates is None:
                    raise ValueError("future_covariates are needed to forecast")
                future_offset = future_covariates @ beta
        a1, p1 = scales["loc"] + 0.0 * scale, (self.init_sd * scale) ** 2
        pred_mean, pred_var, ll, filt_mean, filt_var = _filter(
            y - offset, obs_sd**2, level_sd**2, a1, p1
        )
        pred_mean = pred_mean + offset
        numpyro.deterministic("log_lik", ll)
        numpyro.factor("kalman_loglik", ll.sum())
        numpyro.deterministic("y_fitted", pred_mean)
        if components:
            numpyro.sample("y_rep", dist.Normal(pred_mean, jnp.sqrt(pred_var)))
            # one draw of the smoothed level (backward sampling, scalar state)
            eps = numpyro.sample("level_smooth_noise", dist.Normal(0, 1).expand([y.shape[0]]))

            def back(nxt, inp):
                m, p, e = inp
                gain = p / (p + level_var)
                mean = m + gain * (nxt - m)
                var = p * (1 - gain)
                draw = mean + jnp.sqrt(jnp.maximum(var, 0.0)) * e
                return draw, draw

            level_var = level_sd**2
            last = filt_mean[-1] + jnp.sqrt(filt_var[-1]) * eps[-1]
            _, path = jax.lax.scan(
                back, last, (filt_mean[:-1], filt_var[:-1], eps[:-1]), reverse=True
            )
            numpyro.deterministic("component/level", jnp.concatenate([path, last[None]]))
        if horizon > 0:
            level_t = numpyro.sample(
                "level_last", dist.Normal(filt_mean[-1], jnp.sqrt(filt_var[-1]))
            )
            innov = numpyro.sample("level_innov", dist.Normal(0, level_sd).expand([horizon]))
            path = level_t + jnp.cumsum(innov)
            numpyro.sample("y_forecast", dist.Normal(path + future_offset, obs_sd))


@register_model
@dataclass(frozen=True)
class ToyDivergent(TimeSeriesModel):
    """A potential with a cliff: NUTS trajectories that cross ``x = 1`` diverge (test-only).

    ``x ~ Normal(0, 1)`` with ``log p = -1e6`` beyond ``x = 1``: the energy error of any
    leapfrog step over the cliff exceeds NumPyro's divergence threshold (1000).
    """

    kind = "toy_divergent"

    def data_scales(self, y, covariates=None):
        return {"scale": 1.0}

    def model(
        self, y, *, scales, covariates=None, horizon=0, future_covariates=None, components=False
    ):
        x = numpyro.sample("x", dist.Normal(0, 1))
        numpyro.factor("cliff", jnp.where(x > 1.0, -1e6, 0.0))
        mask = ~jnp.isnan(y)
        ll = jnp.where(mask, dist.Normal(0, 1).log_prob(jnp.where(mask, y, 0.0)), 0.0)
        numpyro.deterministic("log_lik", ll)
        numpyro.factor("obs", ll.sum())
        if horizon > 0:
            numpyro.sample("y_forecast", dist.Normal(0, 1).expand([horizon]))


def simulate_local_level(rng, n, obs_sd, level_sd, start=0.0):
    """Simulate ``n`` steps of the local level model (numpy)."""
    level = start + np.cumsum(rng.normal(0, level_sd, n))
    return level + rng.normal(0, obs_sd, n), level


def kalman_predictive_numpy(y, obs_sd, level_sd, a1, p1, horizon):
    """Closed-form predictive of the local level with known variances (plain float64 loop).

    Returns the mean and standard deviation of ``y_{T+h} | y_{1:T}``, each shape (horizon,).
    """
    a, p = float(a1), float(p1)
    for y_t in np.asarray(y, float):
        if not np.isnan(y_t):
            f = p + obs_sd**2
            k = p / f
            a, p = a + k * (y_t - a), p * (1 - k)
        p = p + level_sd**2
    # now (a, p) predicts mu_{T+1}
    h = np.arange(horizon)
    var = p + h * level_sd**2 + obs_sd**2
    return np.full(horizon, a), np.sqrt(var)


@register_model
@dataclass(frozen=True)
class ToyExplicitLevel(TimeSeriesModel):
    """Local level with KNOWN variances whose level path is sampled explicitly (test-only).

    The only latent sites are the standardised level innovations ``z`` (time,), so NUTS explores
    exactly the Gaussian smoothing posterior; its forecast must match the closed-form Kalman
    predictive (:func:`kalman_predictive_numpy` with ``a1 = loc``, ``p1 = (init_sd*scale)^2``).
    """

    kind = "toy_explicit_level"
    obs_sd: float = 1.0
    level_sd: float = 0.5
    init_sd: float = 10.0

    def data_scales(self, y, covariates=None):
        obs = np.asarray(y, float)
        obs = obs[~np.isnan(obs)]
        return {"loc": float(obs[0]), "scale": 1.0}

    def model(
        self, y, *, scales, covariates=None, horizon=0, future_covariates=None, components=False
    ):
        n = y.shape[0]
        z = numpyro.sample("z", dist.Normal(0, 1).expand([n]))
        sd = jnp.concatenate([jnp.array([self.init_sd * 1.0]), jnp.full(n - 1, self.level_sd)])
        level = scales["loc"] + jnp.cumsum(sd * scales["scale"] * z)
        mask = ~jnp.isnan(y)
        ll = jnp.where(mask, dist.Normal(level, self.obs_sd).log_prob(jnp.where(mask, y, 0.0)), 0.0)
        numpyro.deterministic("log_lik", ll)
        numpyro.factor("obs", ll.sum())
        numpyro.deterministic("y_fitted", level)
        if components:
            numpyro.deterministic("component/level", level)
            numpyro.sample("y_rep", dist.Normal(level, self.obs_sd))
        if horizon > 0:
            innov = numpyro.sample("level_innov", dist.Normal(0, self.level_sd).expand([horizon]))
            numpyro.sample("y_forecast", dist.Normal(level[-1] + jnp.cumsum(innov), self.obs_sd))


def kalman_smoother_numpy(y, obs_sd, level_sd, a1, p1):
    """RTS smoothed means and variances of the local level (plain float64 loops)."""
    n = len(y)
    a_pred, p_pred = np.empty(n), np.empty(n)
    a_filt, p_filt = np.empty(n), np.empty(n)
    a, p = float(a1), float(p1)
    for t, y_t in enumerate(np.asarray(y, float)):
        a_pred[t], p_pred[t] = a, p
        if not np.isnan(y_t):
            k = p / (p + obs_sd**2)
            a, p = a + k * (y_t - a), p * (1 - k)
        a_filt[t], p_filt[t] = a, p
        p = p + level_sd**2
    a_s, p_s = a_filt.copy(), p_filt.copy()
    for t in range(n - 2, -1, -1):
        g = p_filt[t] / p_pred[t + 1]
        a_s[t] = a_filt[t] + g * (a_s[t + 1] - a_pred[t + 1])
        p_s[t] = p_filt[t] + g**2 * (p_s[t + 1] - p_pred[t + 1])
    return a_s, p_s


@register_model
@dataclass(frozen=True)
class ToyTwoOptima(TimeSeriesModel):
    """y_t ~ N(theta^2, 1), theta ~ N(0, 2), a tilt 5 tanh(theta); forecasts N(theta, 0.1)."""

    kind = "toy_two_optima"

    def data_scales(self, y, covariates=None):
        return {"scale": 1.0}

    def model(
        self, y, *, scales, covariates=None, horizon=0, future_covariates=None, components=False
    ):
        theta = numpyro.sample("theta", dist.Normal(0.0, 2.0))
        numpyro.factor("tilt", 5.0 * jnp.tanh(theta))
        mask = ~jnp.isnan(y)
        ll = jnp.where(mask, dist.Normal(theta**2, 1.0).log_prob(jnp.where(mask, y, 0.0)), 0.0)
        numpyro.deterministic("log_lik", ll)
        numpyro.factor("obs", ll.sum())
        if horizon > 0:
            numpyro.sample("y_forecast", dist.Normal(theta, 0.1).expand([horizon]))
