"""The fits of many series: :class:`FitCollection`, a read-only mapping from series id to Fit
(and the series whose fit failed)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import jax
import numpy as np
import pandas as pd

from bayes_ssm.data.types import KeyLike, Prob
from bayes_ssm.inference import engine as _engine
from bayes_ssm.inference.fit import Fit

__all__ = ["FitCollection"]


class FitCollection(Mapping):
    """Fits of many series: a read-only mapping from series id to :class:`bayes_ssm.Fit`.

    Attributes
    ----------
    failures : dict of str to str
        Series whose fit failed numerically (left out of the mapping), with the error.
    info : mapping
        ``groups`` (series ids of one length, fitted through one compiled program), ``batch``
        (``"vmap"`` or ``"loop"``) and ``elapsed_s``.
    """

    def __init__(
        self,
        fits: Mapping[str, Fit],
        info: Mapping | None = None,
        failures: Mapping[str, str] | None = None,
    ):
        self._fits = dict(fits)
        self.info = dict(info or {})
        self.failures = dict(failures or {})

    def __getitem__(self, ident: str) -> Fit:
        return self._fits[ident]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fits)

    def __len__(self) -> int:
        return len(self._fits)

    def __repr__(self) -> str:
        more = "..." if len(self) > 5 else ""
        failed = f", {len(self.failures)} failed" if self.failures else ""
        return f"FitCollection({len(self)} series: {list(self)[:5]}{more}{failed})"

    def summary(self) -> pd.DataFrame:
        """One row per series: length, method, SVI steps, convergence and final loss (SVI) or
        divergences, the largest split r-hat and the smallest effective sample size over the
        parameters (NUTS), and the number of problems :func:`bayes_ssm.check` reports. Series
        whose fit failed come last, with the error in column ``error``.

        Returns
        -------
        pandas.DataFrame, indexed by series id
        """
        from bayes_ssm.inference.diagnostics import check

        rows = {}
        for ident, fit in self._fits.items():
            row = {"num_steps": fit.data.num_steps, "method": fit.method}
            if fit.method == "svi":
                row.update(
                    svi_steps=fit.info.get("steps"),
                    converged=fit.info.get("converged"),
                    final_loss=fit.info.get("final_loss"),
                )
            else:
                row["divergences"] = int(np.sum(fit.sample_stats.get("diverging", 0)))
                row.update(_mcmc_diagnostics(fit.draws))
            row["problems"] = len(check(fit, warn=False))
            rows[ident] = row
        method = self.info.get("method", "svi")
        for ident, error in self.failures.items():
            rows[ident] = {"method": method, "error": error}
        return pd.DataFrame.from_dict(rows, orient="index").rename_axis("unique_id")

    def forecast(
        self,
        horizon: int,
        *,
        prob: Prob = (0.8, 0.95),
        num_samples: int | None = None,
        key: KeyLike = 0,
        time_col: str = "ds",
        covariates: pd.DataFrame | None = None,
        id_col: str = "unique_id",
    ) -> pd.DataFrame:
        """Forecasts of every series as one long frame.

        Parameters
        ----------
        horizon, prob, num_samples
            As :meth:`bayes_ssm.Fit.forecast`.
        key : int or jax.random key
            Series ``i`` forecasts with ``jax.random.split(key, n)[i]``.
        time_col : str
            Name of the timestamp column (of the output and of ``covariates``).
        covariates : pandas.DataFrame, optional
            Future covariates in long format, columns ``id_col``, ``time_col`` and the fitted
            covariate columns: for every series a row on each of its own ``horizon`` forecast
            dates (the steps after its last fitted date; series may end on different dates).
            Required when the series were fitted with covariates.
        id_col : str
            Id column of ``covariates``.

        Raises
        ------
        ValueError
            Future covariates missing (for a series, a date or a column) or NaN, or given to
            fits without covariates; the message names the series.

        Returns
        -------
        pandas.DataFrame, shape ``(series * horizon, 2 + 2 + 2 * len(prob))``
            Columns ``unique_id``, ``time_col``, ``mean``, ``median`` and the interval bounds.
        """
        keys = jax.random.split(_engine.as_key(key), len(self))
        future = None
        if covariates is not None:
            from bayes_ssm.inference.many_covariates import future_covariates

            future = future_covariates(covariates, self._fits, id_col, time_col)
        frames = []
        for k, (ident, fit) in zip(keys, self._fits.items(), strict=True):
            cov = None if future is None else future[ident]
            try:
                fc = fit.forecast(
                    horizon, prob=prob, num_samples=num_samples, key=k, covariates=cov
                )
            except ValueError as err:
                raise ValueError(f"series {ident!r}: {err}") from err
            fc = fc.rename_axis(time_col).reset_index()
            fc.insert(0, "unique_id", ident)
            frames.append(fc)
        return pd.concat(frames, ignore_index=True)


def _mcmc_diagnostics(draws) -> dict:
    """Largest split r-hat and smallest bulk ESS over every scalar of the draws
    (``(chain, draw, ...)`` each), by ``numpyro.diagnostics``."""
    from numpyro.diagnostics import effective_sample_size, split_gelman_rubin

    r_hat, ess = [], []
    for value in draws.values():
        value = np.asarray(value, dtype=np.float64)
        if value.shape[1] < 4:
            continue
        r_hat.append(np.max(split_gelman_rubin(value)))
        ess.append(np.min(effective_sample_size(value)))
    nan = float("nan")
    return {"r_hat_max": float(max(r_hat, default=nan)), "ess_min": float(min(ess, default=nan))}
