"""How the neural models are fitted by default: the SVI learning-rate schedule (issue 15).

A :class:`~bayes_ssm.models.NeuralSSM` has hundreds of weights, most of them barely identified,
and a mean-field guide over them gives a noisy ELBO (one draw per step: on ILI the per-step sd
of the loss is 15-30% of its level). With Adam at a constant learning rate the guide's means
keep jittering by about the learning rate, so the loss of one 250-step window differs from the
next by more than its Monte-Carlo error long after the fit has stopped improving, and the
stopping rule (:class:`bayes_ssm.inference.svi.StopRule`) ran out of steps: 15 of 80 fits on
the 20 ILI origins of session 7. The schedule below lets the jitter die down instead:

* a linear warm-up from 0 to ``learning_rate`` over the first ``WARMUP_STEPS`` steps (the
  first steps start from prior draws, where the gradients are largest),
* then a cosine decay over the rest of the step budget (``steps`` of
  :func:`bayes_ssm.fit_svi`) down to ``FLOOR * learning_rate`` (never 0: a fit that still
  drifts at the end keeps moving its parameters steadily, and the stopping rule calls that
  stalled, not converged).

A faster decay (halving every 1000 or 2000 steps) also ended every fit by the rule, but
earlier and at a worse ELBO (selective layer, ILI origin 19: 210-234 against 194-199 at a
constant rate): the loss was still falling too slowly to be seen. The cosine keeps the rate
near its peak for the first third of the budget (``benchmarks/README.md``, "Neural fits that
converge (session 8)").

:meth:`NeuralSSM.svi_optimizer` returns it and :func:`bayes_ssm.fit_svi` uses it when no
``optimizer`` is passed (``learning_rate`` is the peak). Passing ``optimizer=optax.adam(0.01)``
gives back the constant rate of sessions 1-7.
"""

from __future__ import annotations

from functools import lru_cache

import optax

__all__ = ["WARMUP_STEPS", "FLOOR", "neural_schedule", "neural_optimizer"]

WARMUP_STEPS = 250
FLOOR = 0.05


def neural_schedule(learning_rate: float, steps: int) -> optax.Schedule:
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
def neural_optimizer(learning_rate: float, steps: int) -> optax.GradientTransformation:
    """Adam on :func:`neural_schedule` (one object per setting, so compiled fits are reused)."""
    return optax.adam(neural_schedule(learning_rate, steps))
