"""Inference: fitting models to data and reading the fit.

- :mod:`~bayes_ssm.inference.fitting`: ``fit_svi`` and ``fit_nuts`` for one series;
  :mod:`~bayes_ssm.inference.many`: ``fit_svi_many`` / ``fit_nuts_many``, returning a
  :class:`~bayes_ssm.inference.fit_collection.FitCollection`.
- :mod:`~bayes_ssm.inference.svi` (the SVI loop and stop rule),
  :mod:`~bayes_ssm.inference.schedules` (its step-size schedules) and
  :mod:`~bayes_ssm.inference.engine` (compiled predictive programs, keys, data scales).
- :mod:`~bayes_ssm.inference.fit`: the :class:`Fit` object; :mod:`~bayes_ssm.inference.io`
  saves and loads it (file format in :mod:`~bayes_ssm.inference._fit_file`).
- Read-outs of a fit: :mod:`~bayes_ssm.inference.forecast` (draws -> interval table),
  :mod:`~bayes_ssm.inference.volatility_forecasts`, :mod:`~bayes_ssm.inference.attention_maps`,
  :mod:`~bayes_ssm.inference.anomaly`; :mod:`~bayes_ssm.inference.diagnostics` (R-hat, ESS,
  divergences, ArviZ export, model comparison); :mod:`~bayes_ssm.inference.key_check`
  (``bs.check_keys``: do refits with other keys agree?).
"""
