"""What a NUTS ``Fit`` records about its run: the per-draw sample stats and the ``info`` dict.

One place for the three NUTS drivers (``fitting.fit_nuts``, the vmapped many-series program in
``many_nuts`` and the pooled run in ``pooling``), so their fits carry the same fields under the
same names (``bs.check``, ``summary`` and ``to_arviz`` read them).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["nuts_info", "nuts_sample_stats"]


def nuts_sample_stats(
    diverging, energy, num_steps, accept_prob, step_size=None
) -> dict[str, np.ndarray]:
    """Per-draw NUTS statistics, each of shape ``(chains, draws)``.

    Parameters
    ----------
    diverging, energy, num_steps, accept_prob : array_like, shape (chains, draws)
        NumPyro's extra fields of the same names.
    step_size : array_like, shape (chains, draws), optional
        The adapted step size (``adapt_state.step_size``); left out where a driver has none.

    Returns
    -------
    dict
        ``diverging`` (bool), ``energy``, ``n_steps``, ``tree_depth`` (``floor(log2(n_steps))
        + 1``), ``acceptance_rate`` and, when given, ``step_size``.
    """
    num_steps = np.asarray(num_steps)
    stats = {
        "diverging": np.asarray(diverging, dtype=bool),
        "energy": np.asarray(energy),
        "n_steps": num_steps,
        "tree_depth": np.floor(np.log2(np.maximum(num_steps, 1))).astype(np.int64) + 1,
        "acceptance_rate": np.asarray(accept_prob),
    }
    if step_size is not None:
        stats["step_size"] = np.asarray(step_size)
    return stats


def nuts_info(
    *,
    seed,
    num_chains: int,
    num_warmup: int,
    num_samples: int,
    target_accept: float,
    max_tree_depth,
    dense_mass: bool,
    chain_method: str,
    init,
    elapsed_s: float,
    **extra: Any,
) -> dict[str, Any]:
    """The ``info`` dict of a NUTS ``Fit``: the run's settings and its wall-clock seconds.

    ``extra`` entries (e.g. ``pooling="partial"``) follow ``seed``, in the order given.
    """
    return {
        "seed": seed,
        **extra,
        "num_chains": num_chains,
        "num_warmup": num_warmup,
        "num_samples": num_samples,
        "target_accept": float(target_accept),
        "max_tree_depth": max_tree_depth,
        "dense_mass": bool(dense_mass),
        "chain_method": chain_method,
        "init": init,
        "elapsed_s": elapsed_s,
    }
