"""Saving and loading fits without pickle: ``bs.load(path)`` and ``Fit.save(path)``.

The file format (one netCDF-4 file, a JSON spec and a checksum; written atomically) is described
and implemented in :mod:`bayes_ssm.inference._fit_file`.
"""

from __future__ import annotations

from bayes_ssm.data.types import PathLike
from bayes_ssm.inference import _fit_file
from bayes_ssm.inference._fit_file import FORMAT, FORMAT_VERSION
from bayes_ssm.inference.fit import Fit

__all__ = ["save", "load", "FORMAT", "FORMAT_VERSION"]


def save(fit: Fit, path) -> None:
    """Write ``fit`` to ``path`` as netCDF-4 (no pickle), atomically.

    Parameters
    ----------
    fit : Fit
    path : str or os.PathLike
        Target file (conventionally ``*.nc``); replaced if it exists.
    """
    if not isinstance(fit, Fit):
        raise ValueError(f"save expects a bayes_ssm Fit; got {type(fit).__name__}")
    _fit_file.write(fit, path)


def load(path: PathLike) -> Fit:
    """Read a fit written by :meth:`Fit.save`.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    Fit
        Equal to the saved fit: the same key gives the very same forecast.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        The file is not a bayes_ssm fit, is truncated or corrupted, or was written by a newer
        format version.
    """
    return Fit(**_fit_file.read(path))
