"""Evaluation: scoring forecasts against what happened.

- :mod:`~bayes_ssm.evaluation.metrics`: CRPS, pinball/WQL, coverage, MSIS, MASE, PIT
  (``bs.metrics``); :mod:`~bayes_ssm.evaluation._scoring_inputs` turns their inputs into arrays.
- :mod:`~bayes_ssm.evaluation.backtesting`: rolling-origin backtests (``bs.backtest``), scored
  per fold by :mod:`~bayes_ssm.evaluation.backtest_scores`.
- :mod:`~bayes_ssm.evaluation.baselines`: seasonal naive, statsmodels ETS / UC, Prophet.
"""
