"""What the command line reads and writes: date and id columns read as text and interpreted once
(integer time stays integer time, ambiguous day/month dates are refused unless ``--date-format``
or ``--dayfirst`` says which, ids stay strings: ``"02134"`` is not ``2134``), and every output
checked writable before the fit and then written atomically (:mod:`bayes_ssm.data.atomic`).
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = [
    "add_date_args",
    "parse_date_column",
    "read_series_csv",
    "read_long_csv",
    "check_outputs",
]

_INTEGER = re.compile(r"^[+-]?\d+$")


def add_date_args(group) -> None:
    """``--date-format`` and ``--dayfirst`` on an argparse group."""
    group.add_argument(
        "--date-format",
        help="strftime format of the date column (e.g. '%%d/%%m/%%Y'); default: read ISO and "
        "unambiguous dates, keep whole numbers as integer time steps, refuse ambiguous day/month",
    )
    group.add_argument(
        "--dayfirst",
        action="store_true",
        default=None,
        help="read dates such as 03/04/2020 as day/month/year",
    )


def parse_date_column(raw, *, date_format=None, dayfirst=None, what="the date column"):
    """A date column read as text -> the series' time labels.

    Parameters
    ----------
    raw : pandas.Series of str
    date_format : str, optional
    dayfirst : bool, optional
    what : str

    Returns
    -------
    pandas.Index
        Integers (int64) when every label is a whole number and neither ``date_format`` nor
        ``dayfirst`` is given (integer time: years, step numbers); else a ``DatetimeIndex``
        (:func:`bayes_ssm.data.time_labels.parse_dates`).
    """
    import numpy as np
    import pandas as pd

    from bayes_ssm.data.time_labels import parse_dates

    text = raw.astype(str).str.strip()
    if (text == "").any():
        rows = np.flatnonzero((text == "").to_numpy())[:5].tolist()
        raise ValueError(f"{what} is empty at rows {rows}")
    if date_format is None and dayfirst is None and text.map(_INTEGER.match).notna().all():
        try:
            return pd.Index(text.astype(np.int64).to_numpy())
        except OverflowError:
            raise ValueError(f"{what} holds integers beyond the int64 range") from None
    return parse_dates(text.to_numpy(), date_format=date_format, dayfirst=dayfirst, what=what)


def _read_csv(path: Path, text_cols, value_col):
    import pandas as pd

    if not path.is_file():
        raise ValueError(f"--csv {path} does not exist")
    header = pd.read_csv(path, nrows=0)
    missing = [c for c in [*text_cols, value_col] if c not in header.columns]
    if missing:
        raise ValueError(f"--csv {path}: missing {missing} (columns: {list(header.columns)[:10]})")
    # labels are read as the text they are; the value columns as numbers
    return pd.read_csv(path, converters={c: str for c in text_cols})


def _values(frame, col, path):
    import pandas as pd

    if col not in frame.columns:
        raise ValueError(f"column {col!r} not in {path} (columns: {list(frame.columns)[:10]})")
    values = pd.to_numeric(frame[col], errors="coerce")
    bad = values.isna() & frame[col].notna()
    if bad.any():
        raise ValueError(
            f"column {col!r} of {path} holds non-numbers, e.g. {frame[col][bad].head(3).tolist()}"
        )
    return values.to_numpy(float)


def read_series_csv(path: Path, date_col: str, value_col: str, *, date_format=None, dayfirst=None):
    """One series from a CSV (``--csv --date-col --value-col``), labels as
    :func:`parse_date_column` reads them."""
    import pandas as pd

    frame = _read_csv(path, [date_col], value_col)
    index = parse_date_column(
        frame[date_col],
        date_format=date_format,
        dayfirst=dayfirst,
        what=f"the dates in column {date_col!r}",
    )
    return pd.Series(_values(frame, value_col, path), index=index.rename(date_col), name=value_col)


def read_long_csv(path: Path, id_col, date_col, value_col, *, date_format=None, dayfirst=None):
    """Series per id from a long-format CSV; ids kept as the strings they are."""
    from bayes_ssm.data.long_format import split_long

    frame = _read_csv(path, [id_col, date_col], value_col)
    labels = parse_date_column(
        frame[date_col],
        date_format=date_format,
        dayfirst=dayfirst,
        what=f"the dates in column {date_col!r}",
    )
    frame = frame.assign(
        **{date_col: labels.to_numpy(), value_col: _values(frame, value_col, path)}
    )
    return split_long(frame, id_col=id_col, time_col=date_col, value_col=value_col)


def read_long_covariates(
    path: Path, id_col, date_col, columns, *, flag="--csv", date_format=None, dayfirst=None
):
    """Covariate frames per id (``id -> (time, covariate)``) from a long-format CSV's
    ``columns`` (:func:`bayes_ssm.data.long_format.split_long_covariates`)."""
    from bayes_ssm.data.long_format import split_long_covariates

    if not path.is_file():
        raise ValueError(f"{flag} {path} does not exist")
    import pandas as pd

    header = pd.read_csv(path, nrows=0)
    missing = [c for c in [id_col, date_col, *columns] if c not in header.columns]
    if missing:
        raise ValueError(f"{flag} {path}: missing {missing} (columns: {list(header.columns)[:10]})")
    frame = pd.read_csv(path, converters={c: str for c in (id_col, date_col)})
    labels = parse_date_column(
        frame[date_col],
        date_format=date_format,
        dayfirst=dayfirst,
        what=f"the dates in column {date_col!r} of {path}",
    )
    values = {c: _values(frame, c, path) for c in columns}
    frame = frame.assign(**{date_col: labels.to_numpy()}, **values)
    return split_long_covariates(
        frame, list(columns), id_col=id_col, time_col=date_col, what=f"{flag} {path}"
    )


_FIGURE_FORMATS = ("png", "pdf", "svg", "jpg", "jpeg", "eps", "ps", "tif", "tiff", "webp")


def check_outputs(**paths) -> None:
    """Check every output path (``name=path``; ``None`` skipped) before any work is done."""
    from bayes_ssm.data.atomic import check_writable

    for name, path in paths.items():
        if path is None:
            continue
        flag = "--" + name.replace("_", "-")
        check_writable(path, what=flag)
        if name == "plot" and Path(path).suffix.lower().lstrip(".") not in _FIGURE_FORMATS:
            raise ValueError(
                f"{flag} {path}: unknown figure format {Path(path).suffix!r}; use one of "
                f"{', '.join('.' + f for f in _FIGURE_FORMATS)}"
            )
