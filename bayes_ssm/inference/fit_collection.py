"""The fits of many series: :class:`FitCollection`, a read-only mapping from series id to Fit."""

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
    info : mapping
        ``groups`` (series ids of one length, fitted through one compiled program), ``batch``
        (``"vmap"`` or ``"loop"``) and ``elapsed_s``.
    """

    def __init__(self, fits: Mapping[str, Fit], info: Mapping | None = None):
        self._fits = dict(fits)
        self.info = dict(info or {})

    def __getitem__(self, ident: str) -> Fit:
        return self._fits[ident]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fits)

    def __len__(self) -> int:
        return len(self._fits)

    def __repr__(self) -> str:
        more = "..." if len(self) > 5 else ""
        return f"FitCollection({len(self)} series: {list(self)[:5]}{more})"

    def summary(self) -> pd.DataFrame:
        """One row per series: length, method, SVI steps, convergence and final loss (SVI) or
        divergences (NUTS), and the number of problems :func:`bayes_ssm.check` reports.

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
            row["problems"] = len(check(fit, warn=False))
            rows[ident] = row
        return pd.DataFrame.from_dict(rows, orient="index").rename_axis("unique_id")

    def forecast(
        self,
        horizon: int,
        *,
        prob: Prob = (0.8, 0.95),
        num_samples: int | None = None,
        key: KeyLike = 0,
        time_col: str = "ds",
    ) -> pd.DataFrame:
        """Forecasts of every series as one long frame.

        Parameters
        ----------
        horizon, prob, num_samples
            As :meth:`bayes_ssm.Fit.forecast`.
        key : int or jax.random key
            Series ``i`` forecasts with ``jax.random.split(key, n)[i]``.
        time_col : str
            Name of the timestamp column.

        Returns
        -------
        pandas.DataFrame, shape ``(series * horizon, 2 + 2 + 2 * len(prob))``
            Columns ``unique_id``, ``time_col``, ``mean``, ``median`` and the interval bounds.
        """
        keys = jax.random.split(_engine.as_key(key), len(self))
        frames = []
        for k, (ident, fit) in zip(keys, self._fits.items(), strict=True):
            fc = fit.forecast(horizon, prob=prob, num_samples=num_samples, key=k)
            fc = fc.rename_axis(time_col).reset_index()
            fc.insert(0, "unique_id", ident)
            frames.append(fc)
        return pd.concat(frames, ignore_index=True)
