"""What ``batch="auto"`` runs for many series: vmapped programs (how many series each) or a
loop of single fits.

The choice is a measurement (``benchmarks/many_auto.py``, ``benchmarks/many_series.py``;
tables in ``benchmarks/README.md``, "Many series, session 7 (CPU)"), written down as a rule of
the platform and the number of series.
"""

from __future__ import annotations

__all__ = ["CPU_VMAP_MAX_SERIES", "auto_batch", "auto_group_size"]

CPU_VMAP_MAX_SERIES = 10
"""On a CPU, the most series one vmapped program takes under ``batch="auto"``; more series run
as several programs of this many (one compiled program). Measured by CPU seconds on the
2-core development machine (T = 104): the vmapped program's cost per series and step is
46-67 us at 2-10 series and 244-262 us at 30-100 series, at 300, 2,000 and 8,000 SVI steps
alike (NUTS: 0.017 CPU s a series at 10 series, 0.062-0.066 at 30-100, 10 + 10 iterations),
while a loop of ``fit_svi`` pays ~41-53 us a step plus ~38 ms a fit and a loop of
``fit_nuts`` ~2.45 s a fit. So one program of 2-10 series beat the loop at every step count
measured (SVI 1.1-2.5x; T = 104 and 260) and one of 30-100 series lost (0.24-0.71x); the
crossover lies between 10 and 30 series and did not move with the steps or the length. 10 is
the largest size measured on the winning side."""


def auto_batch(method: str, platform: str, num_series: int) -> str:
    """What ``batch="auto"`` runs: ``"vmap"`` or ``"loop"``.

    The rule, for SVI and NUTS alike:

    - one series: ``"loop"`` (nothing to batch; the fit is ``fit_svi`` / ``fit_nuts`` itself);
    - two or more: ``"vmap"``; off the CPU in one program per length group (H200, SVI: 7.2x
      the loop at 10 series, 57x at 1,000; NUTS: 8.3x at 10, 152x at 1,000 with
      compilation), on a CPU in programs of at most :data:`CPU_VMAP_MAX_SERIES` series
      (:func:`auto_group_size`).

    The number of SVI steps, NUTS iterations and tree depth and the series' length do not
    enter: on the CPU they did not move the crossover where measured (300-8,000 SVI steps,
    T = 104 and 260; NUTS 10 + 10 to 300 + 300 iterations).

    The vmapped NUTS program is not bit-equal to a loop of ``fit_nuts`` calls (it draws its
    own keys): pass ``batch="loop"`` for that.

    Parameters
    ----------
    method : {"svi", "nuts"}
    platform : str
        ``jax.default_backend()``: ``"cpu"``, ``"gpu"``, ``"tpu"``.
    num_series : int

    Returns
    -------
    str
        ``"vmap"`` or ``"loop"``.
    """
    if method not in ("svi", "nuts"):
        raise ValueError(f"method must be 'svi' or 'nuts'; got {method!r}")
    return "loop" if num_series < 2 else "vmap"


def auto_group_size(platform: str) -> int | None:
    """The most series per vmapped program under ``batch="auto"``: :data:`CPU_VMAP_MAX_SERIES`
    on a CPU, None (one program per length group) elsewhere."""
    return CPU_VMAP_MAX_SERIES if platform == "cpu" else None
