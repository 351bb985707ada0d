"""SVI step-size schedules: every optimizer :func:`bayes_ssm.fit_svi` builds itself.

A schedule is named by a string (``fit_svi(schedule=...)``, or a model's ``svi_schedule``
class attribute, used when ``schedule`` is not given) and resolved here, so models name how
they are fitted without importing an optimisation library:

``"constant"``
    Adam at ``learning_rate`` throughout (sessions 1-7; the structural models' default).
``"decay"``
    ``DECAY_START`` (10) times ``learning_rate`` at the first step, halved every
    ``DECAY_HALF_LIFE`` (250) steps, never below ``DECAY_FLOOR`` (0.5) times ``learning_rate``.
    The large first steps cross the distance from the prior's median to the posterior in a few
    hundred steps; the small late steps leave less optimiser noise in the loss, so the stopping
    rule sees a flat loss sooner (``benchmarks/README.md``, "Speed of the default, session 8":
    about 0.6x the steps on the default's candidates, the same or a better final loss; an
    option of :func:`bayes_ssm.auto_fit`, not its default).
``"warmup_cosine"``
    A linear warm-up from 0 to ``learning_rate`` over the first ``WARMUP_STEPS`` steps, then a
    cosine decay over the rest of the step budget (``steps`` of :func:`bayes_ssm.fit_svi`) down
    to ``FLOOR * learning_rate`` (:class:`~bayes_ssm.models.NeuralSSM` and
    :class:`~bayes_ssm.models.HybridTS` name it).

Why the neural models need the warm-up + cosine (issue 15): a ``NeuralSSM`` has hundreds of
weights, most of them barely identified, and a mean-field guide over them gives a noisy ELBO
(one draw per step: on ILI the per-step sd of the loss is 15-30% of its level). With Adam at a
constant learning rate the guide's means keep jittering by about the learning rate, so the
loss of one 250-step window differs from the next by more than its Monte-Carlo error long
after the fit has stopped improving, and the stopping rule
(:class:`bayes_ssm.inference.svi_stop.StopRule`) ran out of steps: 15 of 80 fits on the 20 ILI
origins of session 7. The warm-up starts gently from prior draws (where the gradients are
largest); the cosine lets the jitter die down, never to 0 (a fit that still drifts at the end
keeps moving its parameters steadily, and the stopping rule calls that stalled, not
converged). A faster decay (halving every 1000 or 2000 steps) also ended every fit by the
rule, but earlier and at a worse ELBO (selective layer, ILI origin 19: 210-234 against 194-199
at a constant rate): the loss was still falling too slowly to be seen. The cosine keeps the
rate near its peak for the first third of the budget (``benchmarks/README.md``, "Neural fits
that converge (session 8)").

Every optimizer is cached: it is a static argument of the compiled programs, so the same
object must come back for the same settings (the ``"constant"`` and ``"decay"`` ones do not
depend on ``steps``).
"""

from __future__ import annotations

from functools import lru_cache

import optax

from bayes_ssm.inference.program_store import register_static

__all__ = [
    "SCHEDULES",
    "DECAY_START",
    "DECAY_HALF_LIFE",
    "DECAY_FLOOR",
    "WARMUP_STEPS",
    "FLOOR",
    "default_optimizer",
    "warmup_cosine_schedule",
    "warmup_cosine_optimizer",
    "schedule_optimizer",
    "resolve_schedule",
]

SCHEDULES = ("constant", "decay", "warmup_cosine")
DECAY_START, DECAY_HALF_LIFE, DECAY_FLOOR = 10.0, 250, 0.5
WARMUP_STEPS = 250
FLOOR = 0.05


@lru_cache(maxsize=32)
def default_optimizer(learning_rate: float, schedule: str = "constant"):
    """Adam at ``learning_rate`` (``schedule="constant"``) or on the ``"decay"`` schedule (see
    the module docstring); the two schedules that do not depend on the step budget."""
    described = f"default_optimizer({learning_rate!r}, {schedule!r})"  # the program store's
    if schedule == "constant":
        return register_static(optax.adam(learning_rate), described)
    if schedule == "decay":
        rate = optax.exponential_decay(
            DECAY_START * learning_rate,
            DECAY_HALF_LIFE,
            0.5,
            end_value=DECAY_FLOOR * learning_rate,
        )
        return register_static(optax.adam(rate), described)
    raise ValueError(f"schedule must be one of {SCHEDULES}; got {schedule!r}")


def warmup_cosine_schedule(learning_rate: float, steps: int) -> optax.Schedule:
    """Step -> learning rate: linear warm-up, then a cosine decay to the floor at ``steps``.

    Parameters
    ----------
    learning_rate : float
        The peak rate, reached at step ``WARMUP_STEPS``.
    steps : int
        The step budget; the rate reaches ``FLOOR * learning_rate`` there (and stays).

    Returns
    -------
    optax.Schedule
        ``schedule(k)`` is ``learning_rate * k / w`` for ``k < w = min(WARMUP_STEPS, steps
        // 2)``, then ``f + (1 - f) (1 + cos(pi (k - w) / (steps - w))) / 2`` times
        ``learning_rate`` (``f = FLOOR``), ``f * learning_rate`` after ``steps``.
    """
    if not (isinstance(learning_rate, float | int) and learning_rate > 0):
        raise ValueError(f"learning_rate must be positive; got {learning_rate!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be an integer >= 2; got {steps!r}")
    warmup = min(WARMUP_STEPS, steps // 2)
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=float(learning_rate),
        warmup_steps=warmup,
        decay_steps=steps,
        end_value=FLOOR * float(learning_rate),
    )


@lru_cache(maxsize=16)
def warmup_cosine_optimizer(learning_rate: float, steps: int) -> optax.GradientTransformation:
    """Adam on :func:`warmup_cosine_schedule` (one object per setting)."""
    return register_static(
        optax.adam(warmup_cosine_schedule(learning_rate, steps)),
        f"warmup_cosine_optimizer({learning_rate!r}, {steps!r})",
    )


def schedule_optimizer(
    schedule: str, learning_rate: float, steps: int
) -> optax.GradientTransformation:
    """Adam on the named schedule (one of :data:`SCHEDULES`), peak ``learning_rate``, over a
    budget of ``steps``.

    Raises
    ------
    ValueError
        An unknown schedule name, a non-positive rate, or ``steps < 2`` for
        ``"warmup_cosine"``.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}; got {schedule!r}")
    if not (isinstance(learning_rate, float | int) and learning_rate > 0):
        raise ValueError(f"learning_rate must be positive; got {learning_rate!r}")
    if schedule == "warmup_cosine":
        return warmup_cosine_optimizer(float(learning_rate), int(steps))
    return default_optimizer(float(learning_rate), schedule)


def resolve_schedule(model, schedule: str | None) -> str:
    """The schedule a fit of ``model`` uses: ``schedule`` when given, else the model's own
    ``svi_schedule`` (a class attribute naming one of :data:`SCHEDULES`), else ``"constant"``.
    """
    if schedule is None:
        schedule = getattr(model, "svi_schedule", "constant")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}; got {schedule!r}")
    return schedule
