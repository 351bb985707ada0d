"""Volatility read-outs of a fitted :class:`~bayes_ssm.StochasticVolatility` (pandas out).

``fit.forecast(h)`` gives the return fan and ``fit.components()["volatility"]`` the in-sample
volatility; ``fit.volatility_forecast(h)`` (this module's :func:`volatility_forecast`) gives the
volatility fan over the forecast horizon.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bayes_ssm.data.types import KeyLike, Prob
from bayes_ssm.data.validation import future_index
from bayes_ssm.inference.forecast import summarize_draws, validate_horizon, validate_prob

if TYPE_CHECKING:
    import pandas as pd

    from bayes_ssm.inference.fit import Fit

__all__ = ["volatility_forecast"]


def volatility_forecast(
    fit: Fit,
    horizon: int,
    *,
    prob: Prob = (0.8, 0.95),
    num_samples: int | None = None,
    key: KeyLike = 0,
) -> pd.DataFrame:
    """Posterior predictive of the volatility ``exp(h_t / 2)`` over the next ``horizon`` steps.

    Parameters
    ----------
    fit : Fit
        A fit of a model that emits the ``"volatility_forecast"`` site
        (:class:`~bayes_ssm.StochasticVolatility`).
    horizon : int
        Number of future steps (> 0).
    prob : float or sequence of float
        Central credible-interval levels.
    num_samples : int, optional
        Use this many posterior draws (evenly thinned); all by default.
    key : int or jax.random key
        Same key, same draws; the same key as ``fit.forecast(..., key=key)`` gives the
        volatility path behind those very return draws.

    Returns
    -------
    pandas.DataFrame, shape ``(horizon, 2 + 2 * len(prob))``
        Columns ``mean, median, lower_80, upper_80, lower_95, upper_95`` on the future index;
        ``attrs["quantity"]`` names it (``plot_forecast`` uses it as the y-label).
    """
    horizon = validate_horizon(horizon)
    levels = validate_prob(prob)
    if fit.model.kind != "stochastic_volatility":
        raise ValueError(
            f"volatility_forecast needs a StochasticVolatility fit; got model {fit.model.kind!r}"
        )
    out = fit._predict(key, ("volatility_forecast",), horizon=horizon, num_samples=num_samples)
    index = future_index(fit.data, horizon)
    index.name = fit.data.index.name
    table = summarize_draws(out["volatility_forecast"].reshape(-1, horizon), index, levels)
    table.attrs["quantity"] = "volatility (sd of returns)"
    return table
