"""The long format: many series in one frame, one row per series and timestamp.

Nixtla's convention (also pandas' ``melt``): columns ``unique_id``, ``ds`` (the timestamp) and
``y``; ``bs.fit_svi_many`` reads it, ``FitCollection.forecast`` and ``bayes-ssm forecast-many``
write forecasts in it (``unique_id, ds, mean, median, lower_*, upper_*``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from bayes_ssm.data.time_labels import parse_dates

__all__ = ["split_long", "split_long_covariates", "as_series_map"]


def split_long(
    frame: pd.DataFrame, *, id_col: str = "unique_id", time_col: str = "ds", value_col: str = "y"
) -> dict[str, pd.Series]:
    """Split a long-format frame into one series per id (ids sorted, whatever the row order).

    Parameters
    ----------
    frame : pandas.DataFrame
        Columns ``id_col``, ``time_col`` (timestamps, or integers for a plain step count) and
        ``value_col`` (numbers, NaN = missing); other columns are ignored. Rows may come in
        any order.
    id_col, time_col, value_col : str

    Returns
    -------
    dict of str to pandas.Series
        Each indexed by its sorted timestamps (index name ``time_col``), named by its id.

    Raises
    ------
    ValueError
        A missing column, a missing id, timestamps that are not dates or integers, or a
        timestamp repeated within one series (naming the series and the timestamps).
    """
    series = {}
    for ident, (index, values) in _split(frame, id_col, time_col, [value_col], "data").items():
        series[ident] = pd.Series(values[:, 0], index=index, name=ident)
    return series


def split_long_covariates(
    frame: pd.DataFrame,
    columns,
    *,
    id_col: str = "unique_id",
    time_col: str = "ds",
    what: str = "covariates",
) -> dict[str, pd.DataFrame]:
    """Covariate columns of a long frame, one frame per id (ids sorted as :func:`split_long`).

    Parameters
    ----------
    frame : pandas.DataFrame
        Columns ``id_col``, ``time_col`` and every name in ``columns`` (other columns, such as
        ``y``, are ignored). The training frame itself, or a frame of FUTURE covariates
        (``unique_id, ds, x1, ...``) over the forecast horizon.
    columns : sequence of str
        The covariate columns, in the order the model sees them.
    id_col, time_col, what : str
        Column names; ``what`` names the frame in errors.

    Returns
    -------
    dict of str to pandas.DataFrame
        Each ``(time, covariate)``, indexed by its sorted timestamps.

    Raises
    ------
    ValueError
        ``columns`` empty, not strings, naming the id or time column, or missing from the frame;
        and the errors of :func:`split_long`.
    """
    if isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
        raise ValueError(
            f"{what}: covariate columns must be a list of column names; got {columns!r}"
        )
    columns = list(columns)
    if not columns:
        raise ValueError(f"{what}: the list of covariate columns is empty")
    clash = [c for c in columns if c in (id_col, time_col)]
    if clash or len(set(columns)) != len(columns):
        raise ValueError(f"{what}: covariate columns {columns} repeat a name or use {clash}")
    out = {}
    for ident, (index, values) in _split(frame, id_col, time_col, columns, what).items():
        out[ident] = pd.DataFrame(values, index=index, columns=columns)
    return out


def _split(frame, id_col, time_col, columns, what) -> dict[str, tuple[pd.Index, np.ndarray]]:
    """``id -> (sorted time index, values (time, len(columns)))`` after the checks."""
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(
            f"{what} must be a long-format pandas.DataFrame; got {type(frame).__name__}"
        )
    missing = [c for c in (id_col, time_col, *columns) if c not in frame.columns]
    if missing:
        raise ValueError(
            f"long-format {what} needs columns {[id_col, time_col, *columns]}; "
            f"missing {missing} (columns: {list(frame.columns)[:8]})"
        )
    if frame.empty:
        raise ValueError(f"{what} has no rows")
    if frame[id_col].isna().any():
        raise ValueError(f"column {id_col!r} has {int(frame[id_col].isna().sum())} missing ids")
    times = frame[time_col]
    if not (pd.api.types.is_datetime64_any_dtype(times) or pd.api.types.is_integer_dtype(times)):
        try:
            # ambiguous day/month strings are refused, not guessed
            times = parse_dates(times.to_numpy(), what=f"column {time_col!r}")
        except (ValueError, TypeError) as err:
            raise ValueError(
                f"column {time_col!r} must hold timestamps or integers; got dtype {times.dtype} "
                f"({err})"
            ) from err
    frame = frame.assign(**{time_col: times})
    duplicated = frame.duplicated([id_col, time_col], keep=False)
    if duplicated.any():
        bad = frame.loc[duplicated, [id_col, time_col]].drop_duplicates().head(3)
        raise ValueError(
            f"{int(duplicated.sum())} rows repeat a ({id_col}, {time_col}) pair, e.g. "
            f"{list(bad.itertuples(index=False, name=None))}"
        )
    idents = pd.Series(pd.unique(frame[id_col]))
    names = idents.map(str)
    if names.duplicated().any():
        clash = idents[names.duplicated(keep=False)].head(4).tolist()
        raise ValueError(
            f"ids {clash} in column {id_col!r} are different values with the same text; make "
            f"the ids strings (read the CSV with dtype={{{id_col!r}: str}})"
        )
    try:
        idents = idents.sort_values()
    except TypeError:  # ids of mixed types: in the order of their text
        idents = idents.iloc[np.argsort(names.to_numpy(), kind="stable")]
    # one sort of all rows, then slices (a filter per id would be quadratic in the ids)
    codes, uniques = pd.factorize(frame[id_col])
    stamps = frame[time_col].to_numpy()
    order = np.lexsort((stamps, codes))
    codes, stamps = codes[order], stamps[order]
    values = np.column_stack([frame[c].to_numpy() for c in columns])[order]
    starts = np.searchsorted(codes, np.arange(len(uniques) + 1))
    position = {ident: i for i, ident in enumerate(uniques)}
    out = {}
    for ident in idents:
        i = position[ident]
        rows = slice(starts[i], starts[i + 1])
        out[str(ident)] = (pd.Index(stamps[rows], name=time_col), values[rows])
    return out


def as_series_map(data, id_col, time_col, value_col) -> dict[str, pd.Series]:
    """A long frame (split by :func:`split_long`) or a mapping of id to series, as a dict."""
    if isinstance(data, pd.DataFrame):
        return split_long(data, id_col=id_col, time_col=time_col, value_col=value_col)
    if isinstance(data, Mapping):
        return {str(k): v for k, v in data.items()}
    raise ValueError(
        f"data must be a long-format DataFrame or a mapping of id to series; got "
        f"{type(data).__name__}"
    )
