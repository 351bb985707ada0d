"""The read-outs of a fit that live in their own modules, as methods of :class:`Fit`.

One way to read a fit: methods on the object the user holds. ``fit.forecast(h)``,
``fit.fitted()`` and ``fit.components()`` are defined in :mod:`bayes_ssm.inference.fit`;
:class:`ReadOuts` adds ``fit.volatility_forecast(h)``, ``fit.anomalies()``,
``fit.attention_map()`` and ``fit.impute()``, each a thin method over the function in its own
module (imported on first use, so ``import bayes_ssm`` stays cheap; keyword options pass through
unchanged, so the method and the function never drift apart). The read-out modules never import
``fit.py``, so imports keep pointing one way. :class:`~bayes_ssm.inference.fit.Fit` inherits
this class; the top-level functions ``bs.volatility_forecast(fit, ...)``, ``bs.anomalies(fit,
...)`` and ``bs.attention_map(fit, ...)`` are deprecated aliases of these methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from bayes_ssm.data.types import KeyLike, Prob

__all__ = ["ReadOuts"]


class ReadOuts:
    """Mixin of :class:`~bayes_ssm.inference.fit.Fit`: read-outs kept in their own modules."""

    __slots__ = ()

    def volatility_forecast(self, horizon: int, **options: Any) -> pd.DataFrame:
        """Posterior predictive of the volatility ``exp(h_t / 2)`` over the next ``horizon``
        steps, for a :class:`~bayes_ssm.StochasticVolatility` fit.

        Options (``prob``, ``num_samples``, ``key``) and the returned DataFrame, shape
        ``(horizon, 2 + 2 * len(prob))`` on the future index: see
        :func:`bayes_ssm.inference.volatility_forecasts.volatility_forecast`.
        """
        from bayes_ssm.inference.volatility_forecasts import volatility_forecast

        return volatility_forecast(self, horizon, **options)

    def anomalies(self, **options: Any) -> pd.DataFrame:
        """Observations outside their one-step-ahead predictive band, with tail probabilities.

        Options (``level``, ``num_samples``, ``replicates``, ``all_steps``, ``key``) and the
        returned DataFrame, indexed by the fitted timestamps: see
        :func:`bayes_ssm.inference.anomaly.anomalies`.
        """
        from bayes_ssm.inference.anomaly import anomalies

        return anomalies(self, **options)

    def attention_map(self, **options: Any) -> pd.DataFrame:
        """The posterior of the implied attention map of the forecast made at ``origin``.

        Options (``origin``, ``max_lag``, ``prob``, ``by_head``, ``num_samples``, ``key``) and
        the returned DataFrame, one row per lag (and head): see
        :func:`bayes_ssm.inference.attention_maps.attention_map`.
        """
        from bayes_ssm.inference.attention_maps import attention_map

        return attention_map(self, **options)

    def impute(
        self,
        *,
        prob: Prob = (0.8, 0.95),
        num_samples: int | None = None,
        key: KeyLike = 0,
        times: Any = None,
    ) -> pd.DataFrame:
        """Fill the gaps: the predictive of ``y`` at every fitted timestamp given all the data.

        Non-causal (the value at a gap depends on what came after it too): the exact smoothing
        distribution of a :class:`~bayes_ssm.models.StructuralTS` plus observation noise
        (:func:`bayes_ssm.inference.impute.impute`). Forecasts never read it.

        Parameters
        ----------
        prob, num_samples, key
            As in :meth:`forecast`.
        times : sequence of timestamps (or floats), optional
            Continuous-time fits: impute at these past times (anywhere between the first and
            last fitted timestamps) instead of at the fitted ones.

        Returns
        -------
        pandas.DataFrame, shape ``(time, 3 + 2 * len(prob))``
            ``observed`` (NaN at the gaps), ``mean``, ``median``, ``lower_80``, ``upper_80``, ...
        """
        from bayes_ssm.inference.impute import impute

        return impute(self, prob=prob, num_samples=num_samples, key=key, times=times)
