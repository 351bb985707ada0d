"""What ``batch="auto"`` runs for many series: one vmapped program or a loop of single fits.

The choice is a measurement (``benchmarks/many_auto.py``; tables in ``benchmarks/README.md``,
"Many series, session 7 (CPU)"), written down as a rule of the platform, the number of series
and, for NUTS, the work per series (iterations x largest tree x length).
"""

from __future__ import annotations

__all__ = [
    "CPU_VMAP_MAX_SERIES",
    "CPU_NUTS_VMAP_MAX_WORK",
    "auto_batch",
]

CPU_VMAP_MAX_SERIES = 16
"""On a CPU, the most series one vmapped program takes by default (SVI always; NUTS when its
work per series is large, :data:`CPU_NUTS_VMAP_MAX_WORK`). Measured by CPU seconds: the
vmapped program's cost per series and step is 46-67 us at 2-10 series (T = 104) and 244-262 us
at 30-100 series, whatever the step count (300-8,000); the loop's is ~41-53 us a step plus
~38 ms a fit. So for SVI vmap wins at 2-10 series (1.1-2.5x, at 300 to 8,000 steps, T = 104
and 260) and loses at 30-100 (0.24-0.71x): the crossover lies between 10 and 30 series and
does not move with the steps or the length measured."""

CPU_NUTS_VMAP_MAX_WORK = 1_300_000
"""NUTS on a CPU, beyond :data:`CPU_VMAP_MAX_SERIES` series: the most work per series,
``(num_warmup + num_samples) x (2 ** max_tree_depth - 1) x length`` (an upper bound on the
leapfrog steps times the filter length), for which vmap still beats the loop. A loop of
``fit_nuts`` pays ~2.45 CPU seconds a series whatever the run's length (each call builds and
traces its own sampler), so vmap won by 37x at 30 series and 22x (wall) at 1,000 with 10 + 10
iterations at depth <= 4 (31,200 units), and 2.4x at 100 series with 50 + 50 at depth <= 6
(655,000 units, session 6). In that regime the vmapped program costs ~2.1 us of CPU a unit
(0.066 s a series at 31,200), the loop ~2.45 s plus ~0-0.4 us a unit of its own sampling,
so the two cross near 1.2-1.4 million units (EXTRAPOLATED: no run measured there). The
defaults (1,000 + 1,000 at depth <= 10) are ~200 million units for a 104-step series: the
loop."""


def auto_batch(
    method: str,
    platform: str,
    num_series: int,
    *,
    length: int | None = None,
    steps: int | None = None,
    iterations: int | None = None,
    max_tree_depth: int | None = None,
) -> str:
    """What ``batch="auto"`` runs: whichever of ``"vmap"`` and ``"loop"`` was measured faster.

    The rule:

    - one series: ``"loop"`` (nothing to batch; the fit is ``fit_svi`` / ``fit_nuts`` itself);
    - off the CPU (GPU, TPU): ``"vmap"`` (H200, SVI: 7.2x the loop at 10 series, 57x at
      1,000; NUTS: 8.3x at 10, 152x at 1,000 with compilation);
    - on the CPU, SVI: ``"vmap"`` for 2 to :data:`CPU_VMAP_MAX_SERIES` series, ``"loop"``
      beyond, whatever ``steps`` and ``length`` (measured: they do not move the crossover);
    - on the CPU, NUTS: ``"vmap"`` for 2 to :data:`CPU_VMAP_MAX_SERIES` series; beyond, still
      ``"vmap"`` when the work per series, ``iterations x (2 ** max_tree_depth - 1) x length``,
      is at most :data:`CPU_NUTS_VMAP_MAX_WORK` (short runs: the loop's fixed cost per
      ``fit_nuts`` call dominates), ``"loop"`` otherwise. Unknown work: ``"loop"``.

    The vmapped NUTS program is not bit-equal to a loop of ``fit_nuts`` calls (it draws its
    own keys): pass ``batch="loop"`` for that.

    Parameters
    ----------
    method : {"svi", "nuts"}
    platform : str
        ``jax.default_backend()``: ``"cpu"``, ``"gpu"``, ``"tpu"``.
    num_series : int
    length : int, optional
        The longest series' number of time steps (the work of one filter pass).
    steps : int, optional
        SVI: the most optimisation steps (recorded; it does not change the choice).
    iterations : int, optional
        NUTS: warm-up + draws per chain.
    max_tree_depth : int, optional
        NUTS: the largest tree depth.

    Returns
    -------
    str
        ``"vmap"`` or ``"loop"``.
    """
    if method not in ("svi", "nuts"):
        raise ValueError(f"method must be 'svi' or 'nuts'; got {method!r}")
    if num_series < 2:
        return "loop"
    if platform != "cpu":
        return "vmap"
    if num_series <= CPU_VMAP_MAX_SERIES:
        return "vmap"
    if method == "svi" or None in (iterations, max_tree_depth, length):
        return "loop"
    work = iterations * (2**max_tree_depth - 1) * length
    return "vmap" if work <= CPU_NUTS_VMAP_MAX_WORK else "loop"
