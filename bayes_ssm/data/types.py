"""Type aliases of the public API (``type`` statements: evaluated lazily, so the modules they
name are imported only by type checkers)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import os
    from collections.abc import Mapping, Sequence

    import jax
    import numpy as np
    import pandas as pd

__all__ = ["KeyLike", "SeriesLike", "CovariatesLike", "Prob", "PathLike", "LongData"]

#: An int seed or a JAX PRNG key (``jax.random.key(0)``).
type KeyLike = int | jax.Array
#: One series: a pandas Series (DatetimeIndex or RangeIndex) or a 1-d array, shape ``(time,)``.
type SeriesLike = pd.Series | np.ndarray
#: Covariates on the series' index: a DataFrame or an array, shape ``(time, covariate)``.
type CovariatesLike = pd.DataFrame | np.ndarray
#: One central interval level in (0, 1), or several.
type Prob = float | Sequence[float]
#: A file path.
type PathLike = str | os.PathLike[str]
#: Many series: a long frame (``unique_id, ds, y``) or a mapping of id to Series.
type LongData = pd.DataFrame | Mapping[str, pd.Series]
