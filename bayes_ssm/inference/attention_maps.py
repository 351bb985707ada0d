"""Which past steps drive a forecast, and how sure we are: the posterior of the attention map.

A model whose memory is a decaying or attention layer (e.g.
:class:`~bayes_ssm.models.attention_ar.AttentionAR`) predicts the next value as a weighted sum
of past values; those weights, the *implied attention* of the forecast made at a chosen origin,
are a function of the parameters and so have a posterior. :func:`attention_map` pushes every
posterior draw of a fit through the model's ``implied_attention`` program and summarises the
weights per lag as a pandas DataFrame (mean, median, central credible bands), ready for
``bs.plot_attention_map``.

A model offers the map by defining ``implied_attention(y, *, scales, origin, max_lag)``, a
NumPyro program that samples the same parameter sites as ``model`` and records the
deterministic site ``"attention"`` of shape ``(max_lag,)`` (and optionally
``"attention_by_head"``, ``(head, max_lag)``).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from numpyro.infer import Predictive

from bayes_ssm.data.types import KeyLike, Prob
from bayes_ssm.inference import engine as _engine
from bayes_ssm.inference.forecast import summarize_draws, validate_prob

if TYPE_CHECKING:
    from bayes_ssm.inference.fit import Fit

__all__ = ["attention_map"]


@partial(jax.jit, static_argnames=("mkey", "origin", "max_lag", "sites"))
def _run(mkey, key, draws, y, scales, origin, max_lag, sites):
    predictive = Predictive(
        mkey.model.implied_attention,
        posterior_samples=draws,
        return_sites=list(sites),
        batch_ndims=1,
    )
    return predictive(key, y, scales=scales, origin=origin, max_lag=max_lag)


def _origin_position(origin, index: pd.Index) -> int:
    n = len(index)
    if origin is None:
        return n - 1
    if isinstance(origin, int | np.integer) and not isinstance(origin, bool):
        pos = int(origin) + (n if origin < 0 else 0)
        if not 0 <= pos < n:
            raise ValueError(f"origin={origin} is outside the {n} fitted steps")
        return pos
    if isinstance(index, pd.DatetimeIndex):
        try:
            stamp = pd.Timestamp(origin)
        except (TypeError, ValueError):
            raise ValueError(
                f"origin must be a step position or a timestamp; got {origin!r}"
            ) from None
        if stamp not in index:
            raise ValueError(
                f"origin {stamp.date()} is not a fitted timestamp (the fit runs from "
                f"{index[0].date()} to {index[-1].date()}); pass one of its dates"
            )
        return int(index.get_loc(stamp))
    raise ValueError(f"origin must be an integer position for this fit's index; got {origin!r}")


def attention_map(
    fit: Fit,
    *,
    origin: pd.Timestamp | str | int | None = None,
    max_lag: int | None = None,
    prob: Prob = (0.8, 0.95),
    by_head: bool = False,
    num_samples: int | None = None,
    key: KeyLike = 0,
) -> pd.DataFrame:
    """The posterior of the implied attention map of the forecast made at ``origin``.

    Parameters
    ----------
    fit : bayes_ssm.inference.fit.Fit
        A fit of a model with an ``implied_attention`` program (e.g. ``AttentionAR``).
    origin : int, timestamp or str, optional
        The last step the forecast sees (the target is the step after it): a position
        (negative counts from the end) or one of the fitted timestamps. Default: the last
        fitted step, i.e. the map of the first out-of-sample forecast.
    max_lag : int, optional
        Number of lags reported (default ``min(origin + 1, 52)``).
    prob : float or sequence of float
        Central credible-interval levels (columns ``lower_<100p>``, ``upper_<100p>``).
    by_head : bool
        One block of rows per head (column ``head``), the contribution of each memory, instead
        of their sum.
    num_samples : int, optional
        Use this many posterior draws (evenly spaced) instead of all.
    key : int or jax.random key
        Keyword-only; only used by models whose map has its own randomness.

    Returns
    -------
    pandas.DataFrame
        One row per lag (per head with ``by_head``): ``lag`` (1 = the origin itself, 2 = the
        step before, ...), ``date`` (the timestamp of that past step; ``NaT`` before the
        start), optionally ``head``, then ``mean``, ``median``, ``lower_80``, ``upper_80``,
        ``lower_95``, ``upper_95`` for the default ``prob``. ``df.attrs`` holds ``origin`` and
        ``target`` (timestamps when the index has dates).

        The weights multiply the past *values*: the model's prediction is
        ``const + sum_l weight_l * y_{origin + 1 - l}``.

    Raises
    ------
    ValueError
        When the model has no implied attention, or ``origin``, ``max_lag``, ``prob`` or
        ``num_samples`` are out of range.

    Examples
    --------
    >>> import bayes_ssm as bs  # doctest: +SKIP
    >>> fit = bs.fit_svi(AttentionAR(half_life=bs.priors.HalfLife(weeks=8), step_days=7),
    ...                  bs.datasets.load("ili")[-300:], key=0)  # doctest: +SKIP
    >>> bs.attention_map(fit, max_lag=12)  # doctest: +SKIP
    """
    model = fit.model
    if not callable(getattr(model, "implied_attention", None)):
        raise ValueError(
            f"model {model.kind!r} has no implied attention map: only models built on a "
            "decaying or attention layer (e.g. AttentionAR) define one"
        )
    levels = validate_prob(prob)
    index = fit.data.index
    pos = _origin_position(origin, index)
    if max_lag is None:
        max_lag = min(pos + 1, 52)
    if isinstance(max_lag, bool) or not isinstance(max_lag, int | np.integer) or max_lag < 1:
        raise ValueError(f"max_lag must be a positive integer; got {max_lag!r}")
    max_lag = int(max_lag)

    flat = {k: np.reshape(v, (-1, *v.shape[2:])) for k, v in fit.draws.items()}
    total = next(iter(flat.values())).shape[0]
    if num_samples is not None:
        if isinstance(num_samples, bool) or not isinstance(num_samples, int | np.integer):
            raise ValueError(f"num_samples must be a positive integer; got {num_samples!r}")
        if not 2 <= num_samples <= total:
            raise ValueError(f"num_samples must be between 2 and {total}; got {num_samples}")
        sel = np.unique(np.linspace(0, total - 1, int(num_samples)).round().astype(int))
        flat = {k: v[sel] for k, v in flat.items()}

    site = "attention_by_head" if by_head else "attention"
    out = _run(
        _engine.ModelKey(model),
        _engine.as_key(key),
        {k: jnp.asarray(v) for k, v in flat.items()},
        jnp.asarray(fit.data.y),
        {k: jnp.asarray(v) for k, v in fit.scales.items()},
        pos,
        max_lag,
        (site,),
    )
    if site not in out:
        raise ValueError(f"model {model.kind!r} does not record the site {site!r}")
    draws = np.asarray(out[site], dtype=np.float64)  # (sample, [head,] lag)

    lags = np.arange(1, max_lag + 1)
    src = pos + 1 - lags
    if isinstance(index, pd.DatetimeIndex):
        dates = pd.DatetimeIndex([index[s] if s >= 0 else pd.NaT for s in src])
    else:
        dates = pd.Index([index[s] if s >= 0 else None for s in src])
    blocks = [draws] if not by_head else [draws[:, h] for h in range(draws.shape[1])]
    frames = []
    for h, block in enumerate(blocks):
        summary = summarize_draws(block, pd.RangeIndex(max_lag), levels)
        front = {"lag": lags, "date": dates}
        if by_head:
            front["head"] = np.full(max_lag, h)
        frames.append(pd.concat([pd.DataFrame(front), summary.reset_index(drop=True)], axis=1))
    df = pd.concat(frames, ignore_index=True)
    df.attrs["origin"] = index[pos]
    freq = getattr(fit.data, "freq", None)
    df.attrs["target"] = index[pos] + freq if freq is not None else pos + 1
    return df
