"""Inferring a time index's frequency the same way under pandas 2 and 3.

pandas 3.1 warns that ``pd.infer_freq`` will return a ``BaseOffset`` instead of a string
(``Pandas4Warning``); the option ``future.infer_freq_returns_offset`` opts in. We opt in only
inside :func:`infer_offset` (``pd.option_context`` restores the user's setting), so calling
bayes_ssm changes no pandas option, and we always hand back an offset.
"""

from __future__ import annotations

import pandas as pd

_FUTURE_OPTION = "future.infer_freq_returns_offset"


def _has_option(name: str) -> bool:
    try:
        pd.get_option(name)
    except (KeyError, pd.errors.OptionError):
        return False
    return True


def infer_offset(index) -> pd.offsets.BaseOffset | None:
    """The frequency of ``index`` as a pandas offset, or ``None`` when it is not regular.

    Parameters
    ----------
    index : pandas.DatetimeIndex or pandas.TimedeltaIndex, ``(time,)``
        At least three timestamps (``pd.infer_freq``'s own requirement).

    Returns
    -------
    pandas.offsets.BaseOffset or None
    """
    if _has_option(_FUTURE_OPTION):
        with pd.option_context(_FUTURE_OPTION, True):
            inferred = pd.infer_freq(index)
    else:  # pandas < 3.1: a string
        inferred = pd.infer_freq(index)
    return None if inferred is None else pd.tseries.frequencies.to_offset(inferred)
