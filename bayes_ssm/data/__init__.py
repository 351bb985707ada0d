"""Data in: the one input-validation boundary and the bundled datasets.

- :mod:`~bayes_ssm.data.validation`: pandas/NumPy input -> :class:`SeriesData` (sorted unique
  index, inferred frequency, aligned covariates, clear errors); every fit passes through it.
- :mod:`~bayes_ssm.data.datasets`: the bundled real series (``bs.datasets.load("ili")``).
- :mod:`~bayes_ssm.data.events`: holidays and interventions as covariate columns.
- :mod:`~bayes_ssm.data.long_format`: many series in one frame (``unique_id, ds, y``).
- :mod:`~bayes_ssm.data.time_labels`: what each kind of index becomes (dates, periods, integer
  time with its gaps, date strings) or a clear refusal.
- :mod:`~bayes_ssm.data.atomic`: every file written through a temporary file and a rename.
"""
