"""PSIS-LOO of each fitted candidate and their stacking weights: the last step of
:func:`bayes_ssm.auto_fit` (also used by the backtest's batched folds,
:mod:`bayes_ssm.inference.auto_folds`)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from bayes_ssm.data.validation import as_series_data
from bayes_ssm.inference.stacked_fit import StackedFit
from bayes_ssm.inference.stacking import stacking_weights

__all__ = ["BAD_K_SHARE", "candidate_loo", "stack_candidates"]

BAD_K_SHARE = 0.10


def candidate_loo(fit):
    """Pointwise PSIS-LOO of the one-step predictive densities (the ``log_lik`` site only,
    not the full ArviZ tree of ``fit.to_arviz``, which also simulates ``y_rep``)."""
    import warnings

    import arviz_base
    import arviz_stats

    from bayes_ssm.inference import engine as _engine
    from bayes_ssm.inference.padding import padded_data
    from bayes_ssm.inference.pointwise import pointwise_log_lik

    observed = ~np.isnan(fit.data.y)
    # a padded fit (``fit_svi(pad_to=...)``): the same padded length, so one program serves
    # every length; the log_lik of step t depends on the steps up to t only
    padded = fit.info.get("padded_to")
    kept = pointwise_log_lik(fit)
    if kept is not None:  # computed with the guide's draws (fit_svi), the same values
        out = {"log_lik": kept}
    elif padded:  # no covariates (padded_length refuses them)
        y = padded_data(fit.data, padded).y
        out = _engine.predict(
            fit.model, 0, fit._flat_draws(), y, dict(fit.scales), sites=("log_lik",)
        )
    else:
        out = fit._predict(0, ("log_lik",))
    log_lik = np.asarray(out["log_lik"])[:, : observed.size][:, observed]
    tree = arviz_base.from_dict(
        {
            "posterior": dict(fit.draws),
            "log_likelihood": {"y": log_lik.reshape(fit.num_chains, fit.num_draws, -1)},
            "observed_data": {"y": fit.data.y[observed]},
        },
        dims={"y": ["time"]},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = arviz_stats.loo(tree, pointwise=True)
    return np.asarray(res.elpd_i, float), np.asarray(res.pareto_k, float), float(res.good_k)


def stack_candidates(fits, tf, window, freq, recalibrate, start, workers=None) -> StackedFit:
    """PSIS-LOO and ``bs.check`` of each fitted candidate, then the stacking weights: the
    :class:`StackedFit` of ``fits`` (name -> Fit, on the transformed ``window``)."""
    from bayes_ssm.inference.diagnostics import check

    rows, lpds, ks, good = [], [], [], []
    for name, fit in fits.items():
        elpd_i, k, good_k = candidate_loo(fit)
        problems = check(fit, warn=False)
        lpds.append(elpd_i)
        ks.append(k)
        good.append(good_k)
        rows.append(
            {
                "candidate": name,
                "elpd_loo": float(np.sum(elpd_i)),
                "bad_pareto_k": int(np.sum(~(k <= good_k))),
                "problems": len(problems),
                "first_problem": problems[0] if problems else "",
            }
        )
    lpd = np.column_stack(lpds)
    reliable = np.all(np.column_stack(ks) <= np.asarray(good), axis=1) & np.all(
        np.isfinite(lpd), axis=1
    )
    if len(fits) == 1:
        w, source = np.ones(1), "single candidate"
    elif reliable.mean() < 1 - BAD_K_SHARE:
        w, source = np.full(len(fits), 1 / len(fits)), "equal (LOO unreliable)"
    else:
        w, source = stacking_weights(lpd[reliable]), "stacking (PSIS-LOO)"
    weights = pd.Series(w, index=list(fits), name="weight")
    table = pd.DataFrame(rows).set_index("candidate")
    table.insert(0, "weight", weights)
    table.attrs["points_left_out"] = int((~reliable).sum())
    return StackedFit(
        fits=fits,
        weights=weights,
        transform=tf,
        data=as_series_data(window, freq=freq),
        table=table,
        weights_from=source,
        seconds=time.perf_counter() - start,
        recalibrate=recalibrate,
        workers=workers,
    )
