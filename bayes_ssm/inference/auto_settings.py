"""The default forecaster's (:func:`bayes_ssm.auto_fit`) SVI settings, in one place.

``fit_kwargs`` of ``auto_fit`` / ``bs.forecast`` overrides any of them. They equal
:func:`bayes_ssm.fit_svi`'s own defaults today; they live apart because they are a decision
about the default forecaster, measured on the suite, not about ``fit_svi``:

- ``schedule="constant"``, ``min_change=0.0``: the step-size schedule and the smallest change
  of the loss (nats per window) that counts as progress. ``"decay", 1.0`` needs 0.57x the steps
  on ILI but lost accuracy on every suite panel it was measured on (monthly deaths 3.49 -> 5.41
  and 5.25 with two keys; ILI CRPS 1-4 0.277 -> 0.292; weekly cases 0.882 -> 0.901; session 8).
- ``init="prior"``: where SVI starts. ``"map"`` (``inference/map_start.py``) takes 0.54-0.71x
  the steps but compiles one more program per candidate, which a first forecast pays for
  (session 9, ``benchmarks/README.md`` "A MAP start for SVI").
"""

from __future__ import annotations

from types import MappingProxyType

__all__ = ["AUTO_SVI"]

AUTO_SVI = MappingProxyType({"schedule": "constant", "min_change": 0.0, "init": "prior"})
