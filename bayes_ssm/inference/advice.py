"""What :func:`bayes_ssm.check` says: parameters the user named vs nuisance latents, and advice.

A fit samples two kinds of latent variables: the parameters the user chose a model for
(``model.parameter_sites``: noise sds, damping, ``phi`` of a volatility model, ...) and the
nuisance latents the model samples on the way (standardised state innovations ``state_z``,
log-volatility innovations ``h_z``, the Student-t mixture's ``obs_precision``, ...). Problems of
the first kind are named one by one, first; problems of the second kind are grouped in one
sentence, since they follow from the same causes and the names mean nothing to most users.
Every sentence ends with something to do, spelled as the call that does it.
"""

from __future__ import annotations

__all__ = [
    "NUISANCE_DESCRIPTIONS",
    "split_sites",
    "describe_nuisance",
    "reparameterise_advice",
    "warmup_advice",
    "SVI_ON_VOLATILITY",
]

# Sites that are not parameters a user sets priors on, in words.
NUISANCE_DESCRIPTIONS = {
    "state_z": "standardised state innovations",
    "state_init_z": "the standardised initial state",
    "state_path": "the state path",
    "h_z": "standardised log-volatility innovations",
    "h_path": "the log-volatility path",
    "obs_precision": "per-observation precisions of the Student-t scale mixture",
    "level_precision": "per-step precisions of the Student-t level shocks",
    "sigma_level_ratio": "the level sd as a ratio to its innovations' rms",
    "sigma_slope_ratio": "the slope sd as a ratio to its innovations' rms",
}

SVI_ON_VOLATILITY = (
    "SVI on a stochastic-volatility model is overconfident: its mean-field posterior is far "
    "too narrow (GBP/USD returns: posterior sd of phi 0.0015 by SVI vs 0.0064 by NUTS), so "
    "volatility bands and forecast intervals are too tight. Fit it with bs.fit_nuts(model, y, "
    "key=0) for intervals you can trust."
)


def split_sites(fit) -> tuple[list[str], list[str]]:
    """``(user parameters, nuisance latents)`` among ``fit.draws``, user parameters in the
    model's order. A model that names no parameters has every latent as a user parameter.
    Sites the model lists in ``unread_sites`` are neither."""
    # sampled coordinates that no output reads as they are (an identified NeuralSSM's
    # reflected lead weights and unsorted half-lives: chains may differ there harmlessly)
    unread = set(getattr(fit.model, "unread_sites", ()))
    draws = [n for n in fit.draws if n not in unread]
    named = [n for n in fit.model.parameter_sites if n in draws]
    if not named:
        return draws, []
    return named, [n for n in draws if n not in named]


def describe_nuisance(names) -> str:
    """``"state_z (standardised state innovations), obs_precision (...)"``."""
    return ", ".join(
        f"{n} ({NUISANCE_DESCRIPTIONS[n]})" if n in NUISANCE_DESCRIPTIONS else n for n in names
    )


def _coordinates(model) -> tuple[str, tuple[str, ...]] | None:
    """The model's current state coordinates and the alternatives, when it has a choice."""
    current = getattr(model, "state_parameterization", None)
    if current is None or getattr(model, "likelihood", None) != "negative_binomial":
        return None
    from bayes_ssm.models._state_paths import STATE_PARAMETERIZATIONS

    return current, tuple(p for p in STATE_PARAMETERIZATIONS if p not in ("auto", current))


def reparameterise_advice(model, problem: str) -> str:
    """How to change coordinates for ``problem`` in {"divergences", "tree_depth", "bfmi"}."""
    coords = _coordinates(model)
    if coords is None:
        if problem == "tree_depth":
            return "or put stronger priors on the parameters that are poorly identified"
        return (
            "or tighten the priors of the parameters with the worst r_hat / ESS (funnels "
            "between a scale and what it scales cause this)"
        )
    current, others = coords
    trend = getattr(model, "trend", None) is not None
    if problem == "tree_depth":
        pick = "mixed" if current in ("auto", "noncentred") else "noncentred"
        why = "long cumulative sums of non-centred innovations make long trajectories"
    else:
        pick = "trend_rms" if trend else "mixed_rms"
        if current == pick:
            pick = "noncentred"
        why = "a funnel between a state sd and the state path causes this"
    return (
        f"or change the state coordinates ({why}): "
        f'StructuralTS(..., state_parameterization="{pick}") (now "{current}"; the others: '
        f"{', '.join(repr(o) for o in others)})"
    )


def warmup_advice(info) -> str:
    """``num_warmup=...`` advice: twice the current warm-up (or 2000)."""
    now = info.get("num_warmup")
    more = 2 * int(now) if now else 2000
    return f"num_warmup={more}" + (f" (now {now})" if now else "")
