"""Covariates per series for the many-series drivers: columns of the long frame in, one
covariate frame per series out; future covariates as a long frame for the forecasts.

A long frame ``unique_id, ds, y, x1, x2`` with ``covariates=["x1", "x2"]`` gives each series
the frame of its own ``x1, x2`` rows (indexed by its dates); each series is then fitted as
``fit_svi(model, y_i, covariates=x_i)`` would fit it, with coefficients of its own. For the
forecasts, a long frame ``unique_id, ds, x1, x2`` holds every series' covariates over the
horizon, on that series' own future dates.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from bayes_ssm.data.long_format import split_long_covariates

__all__ = ["series_covariates", "future_covariates"]


def series_covariates(data, series, covariates, id_col, time_col, value_col):
    """``None`` or a dict ``id -> covariate frame`` for every series of ``series``.

    Parameters
    ----------
    data : pandas.DataFrame (long format) or mapping of str to pandas.Series
    series : dict of str to pandas.Series
        The series read from ``data``.
    covariates : None, sequence of str (columns of the long frame) or mapping of id to frame

    Raises
    ------
    ValueError
        Covariate columns missing from the frame or naming the value column; a mapping that
        lacks a series or has ids of no series.
    """
    if covariates is None:
        return None
    if isinstance(data, pd.DataFrame):
        if isinstance(covariates, Mapping):
            raise ValueError(
                "with a long frame, covariates= names its covariate columns (e.g. ['x1', 'x2']); "
                "got a mapping"
            )
        if not isinstance(covariates, str) and value_col in list(covariates):
            raise ValueError(
                f"covariates {list(covariates)} include the value column {value_col!r}"
            )
        return split_long_covariates(data, covariates, id_col=id_col, time_col=time_col)
    if not isinstance(covariates, Mapping):
        raise ValueError(
            "with a mapping of series, covariates= must be a mapping of the same ids to "
            f"covariate frames; got {type(covariates).__name__}"
        )
    covs = {str(k): v for k, v in covariates.items()}
    lacking = [ident for ident in series if ident not in covs]
    extra = [ident for ident in covs if ident not in series]
    if lacking or extra:
        raise ValueError(
            f"covariates must have one frame per series: missing for {lacking[:5]}, "
            f"no series for {extra[:5]}"
        )
    return {ident: covs[ident] for ident in series}


def future_covariates(frame, fits, id_col, time_col) -> dict:
    """Future covariates ``id -> frame`` of every fitted series from a long frame.

    Parameters
    ----------
    frame : pandas.DataFrame
        Columns ``id_col``, ``time_col`` and the covariate columns of the fits (others are
        ignored); rows for each series' forecast dates (more rows are allowed).
    fits : mapping of str to Fit

    Raises
    ------
    ValueError
        The fits used no covariates or different ones; a fitted series with no rows; a
        missing covariate column.
    """
    names = {fit.data.covariate_names for fit in fits.values()}
    if names == {()}:
        raise ValueError("future covariates were given but the series were fitted without any")
    if len(names) != 1:
        raise ValueError(f"the fits use different covariates {sorted(names)}")
    columns = list(next(iter(names)))
    if isinstance(frame, pd.DataFrame):
        lacking = [c for c in columns if c not in frame.columns]
        if lacking:
            raise ValueError(
                f"future covariates lack the fitted covariate columns {lacking} "
                f"(columns: {list(frame.columns)[:8]})"
            )
    split = split_long_covariates(
        frame, columns, id_col=id_col, time_col=time_col, what="future covariates"
    )
    missing = [ident for ident in fits if ident not in split]
    if missing:
        raise ValueError(
            f"future covariates have no rows for {len(missing)} fitted series, e.g. {missing[:5]}"
        )
    return {ident: split[ident] for ident in fits}
