"""NumPyro fragments: hyperparameters + priors sampled under a scope + a kernel call.

Every layer is a frozen dataclass; calling it inside a NumPyro model samples its priors (under
the caller's :func:`numpyro.handlers.scope`) and runs a pure kernel from :mod:`bayes_ssm.kernels`.
Site names are API and are listed in each layer's module docstring.
"""

from __future__ import annotations

from bayes_ssm.layers.attention import BayesianAttention
from bayes_ssm.layers.decay import StochasticDecaySSD
from bayes_ssm.layers.s4d import StochasticDecayS4D
from bayes_ssm.layers.selective import StochasticDecaySelective

__all__ = [
    "BayesianAttention",
    "StochasticDecaySSD",
    "StochasticDecayS4D",
    "StochasticDecaySelective",
    "build_layer",
]

_LAYERS = {
    "ssd": StochasticDecaySSD,
    "s4d": StochasticDecayS4D,
    "selective": StochasticDecaySelective,
    "softmax": BayesianAttention,
    "linear": BayesianAttention,
}
_HAS_DECAY = ("ssd", "s4d", "selective")


def build_layer(kind: str, *, memory_prior=None, **hyperparameters):
    """A Bayesian layer by name, with an optional prior on its memory.

    Parameters
    ----------
    kind : {"ssd", "s4d", "selective", "softmax", "linear"}
        ``"ssd"``, ``"s4d"``, ``"selective"``: the stochastic-decay layers
        (:class:`StochasticDecaySSD`, :class:`StochasticDecayS4D`,
        :class:`StochasticDecaySelective`); ``"softmax"`` / ``"linear"``:
        :class:`BayesianAttention` of that kind.
    memory_prior : bayes_ssm.priors.HalfLife, optional
        Prior on the half-life of the layer's memory. Only layers with a decay have one.
    **hyperparameters
        Passed to the layer's constructor.

    Raises
    ------
    ValueError
        For an unknown ``kind``, or a ``memory_prior`` on a layer that has no decay.
    """
    if kind not in _LAYERS:
        raise ValueError(f"unknown layer kind {kind!r}; known: {sorted(_LAYERS)}")
    if memory_prior is not None and kind not in _HAS_DECAY:
        raise ValueError(
            f"memory_prior={memory_prior!r} was given for a {kind!r} attention layer, which has "
            "no decay to put a prior on (its memory is set by the attention weights); use a "
            f"decaying layer ({', '.join(_HAS_DECAY)}) or drop memory_prior"
        )
    if kind in ("softmax", "linear"):
        return BayesianAttention(kind=kind, **hyperparameters)
    if memory_prior is not None:
        hyperparameters["half_life"] = memory_prior
    return _LAYERS[kind](**hyperparameters)
