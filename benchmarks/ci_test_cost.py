"""Where the CPU time of the heaviest slow tests goes (CI time, session 7).

Two probes, each printing one JSON line of CPU seconds (``time.process_time``: a fair measure on a
shared machine, where the wall clock is mostly waiting):

- ``hybrid [STEPS]``: the parts of ``tests/test_hybrid.py``'s slow test (two SVI fits, held-out
  scores, forecast, components, save/load) with ``STEPS`` SVI steps (the test: 3000);
- ``nb_long T WARMUP SAMPLES SEED``: ``tests/test_structural_slow.py``'s negative-binomial
  long-trending-series fit (the test: 1000 800 400 0) and every quantity it asserts on.

Run the same probe under different settings side by side (e.g. ``XLA_FLAGS=...``) to compare.
``PYTHONPATH=. python benchmarks/ci_test_cost.py hybrid 3000``
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def hybrid(steps: int) -> dict:
    from test_hybrid import _held_out_log_score, simulate_nonlinear

    from bayes_ssm.inference.fitting import fit_svi
    from bayes_ssm.inference.io import load
    from bayes_ssm.models import HybridTS, NeuralSSM, StructuralTS

    parts, start = {}, [time.process_time()]

    def tick(name):
        now = time.process_time()
        parts[name], start[0] = round(now - start[0], 1), now

    y = simulate_nonlinear(np.random.default_rng(11), 350)
    train = pd.Series(y[:250], index=pd.date_range("2001-01-01", periods=250, freq="D"))
    sts = StructuralTS(trend=None)
    model = HybridTS(structural=sts, neural=NeuralSSM(width=4, num_layers=1))
    kw = dict(key=0, steps=steps, learning_rate=0.01, progress=False)
    f_sts = fit_svi(sts, train, **kw)
    tick("fit_structural")
    f_hyb = fit_svi(model, train, **kw)
    tick("fit_hybrid")
    scores = [_held_out_log_score(f, y, 250) for f in (f_hyb, f_sts)]
    tick("held_out_scores")
    f_hyb.forecast(4, key=1)
    tick("forecast")
    f_hyb.components(num_samples=50)
    tick("components")
    path = Path(tempfile.mkdtemp()) / "hybrid.nc"
    f_hyb.save(path)
    load(path).forecast(4, key=1)
    tick("save_load_forecast")
    total = round(sum(parts.values()), 1)
    return {"probe": "hybrid", "steps": steps, "cpu": total, "parts": parts,
            "score_hybrid": scores[0], "score_structural": scores[1]}  # fmt: skip


def nb_long(num_steps: int, warmup: int, samples: int, seed: int) -> dict:
    from numpyro.diagnostics import split_gelman_rubin

    import bayes_ssm as bs
    from bayes_ssm.models import StructuralTS

    truth = {"sigma_level": 0.05, "sigma_slope": 0.0005, "concentration": 20.0}
    rng = np.random.default_rng(seed)
    level, slope = np.log(200.0), 0.0
    log_mean = np.empty(num_steps)
    for t in range(num_steps):
        log_mean[t] = level
        level += slope + rng.normal(0, truth["sigma_level"])
        slope += rng.normal(0, truth["sigma_slope"])
    k = truth["concentration"]
    y = rng.negative_binomial(k, k / (k + np.exp(log_mean))).astype(float)
    model = StructuralTS(trend="local_linear", likelihood="negative_binomial")
    start = time.process_time()
    fit = bs.fit_nuts(
        model, y, key=0, num_chains=2, num_warmup=warmup, num_samples=samples, init="median",
        chain_method="sequential", progress=False,
    )  # fmt: skip
    depth = fit.sample_stats["tree_depth"]
    out = {"probe": "nb_long", "T": num_steps, "warmup": warmup, "samples": samples,
           "seed": seed, "cpu": round(time.process_time() - start, 1),
           "share_depth_10": float(np.mean(depth >= 10)), "mean_depth": float(np.mean(depth)),
           "divergent": float(np.mean(fit.sample_stats["diverging"])),
           "rhat_level_path": float(np.max(split_gelman_rubin(
               fit.draws["state_path"][..., 0][..., ::50])))}  # fmt: skip
    for name in ("concentration", "sigma_level"):
        draws = fit.draws[name]
        lo, hi = np.quantile(draws.ravel(), [0.025, 0.975])
        out[name] = {
            "rhat": float(split_gelman_rubin(draws)),
            "covers": bool(lo <= truth[name] <= hi),
        }
    out["test_passes"] = bool(
        out["share_depth_10"] < 0.05 and out["mean_depth"] < 8.5 and out["divergent"] < 0.02
        and out["rhat_level_path"] < 1.05 and out["concentration"]["rhat"] < 1.05
        and out["sigma_level"]["rhat"] < 1.2
        and out["concentration"]["covers"] and out["sigma_level"]["covers"]
    )  # fmt: skip
    return out


if __name__ == "__main__":
    probe, *args = sys.argv[1:] or ["hybrid"]
    result = hybrid(*map(int, args or [3000])) if probe == "hybrid" else nb_long(*map(int, args))
    print(json.dumps(result))
