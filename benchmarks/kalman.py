"""Kalman filter log-likelihood: bayes_ssm vs statsmodels vs dynamax, side by side.

Model (issue 3): local linear trend + trigonometric seasonal (period 52, 3 harmonics) +
irregular noise, i.e. 8 states, float64, approximately diffuse start (variance 1e6, the
first 8 terms burnt as statsmodels' ``loglikelihood_burn``). The same matrices and
parameters feed every library; the script checks that the log-likelihoods agree.

Columns (milliseconds per call, median of ``--repeats``; ratios are ours / statsmodels):

* ``seq``, ``seq+grad``: :func:`bayes_ssm.kernels.kalman_log_likelihood`, ``method="sequential"``,
  and its value and gradient w.r.t. the four variances (``jax.value_and_grad``).
* ``par``, ``par+grad``: the same with ``method="parallel"`` (associative scan).
* ``sm``: statsmodels ``UnobservedComponents(...).loglike(params)`` (Cython filter).
* ``dx_seq``, ``dx_par``: dynamax ``lgssm_filter`` and ``parallel_inference.lgssm_filter``.
* ``compile``: seconds to trace and compile our parallel log-likelihood (and its gradient),
  and dynamax's parallel filter.

Usage::

    PYTHONPATH=. python benchmarks/kalman.py                       # T = 1e3, 1e4, 1e5
    PYTHONPATH=. python benchmarks/kalman.py --sizes 1000000 --backend-only --no-sequential
    PYTHONPATH=. python benchmarks/kalman.py --dtype float32

``--backend-only`` skips statsmodels and dynamax (also skipped, with a note, when not
installed); ``--no-sequential`` skips the sequential columns (a GPU pays a kernel launch per
step, so they take minutes at T = 1e6); ``--max-sequential-T`` skips them above a length.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import jax
import jax.numpy as jnp
import numpy as np

from bayes_ssm.kernels import StateSpace, kalman_log_likelihood

PERIOD, HARMONICS = 52, 3
# sigma2 of irregular, level, trend, seasonal: a typical weekly series scale.
PARAMS = np.array([1.0, 0.05, 0.001, 0.01])
INIT_VAR = 1e6


def structural_matrices():
    """Transition (8, 8), observation (8,), and the map from variances to diag(Q)."""
    blocks = [np.array([[1.0, 1.0], [0.0, 1.0]])]
    for j in range(1, HARMONICS + 1):
        lam = 2 * np.pi * j / PERIOD
        c, s = np.cos(lam), np.sin(lam)
        blocks.append(np.array([[c, s], [-s, c]]))
    n = 2 * len(blocks)
    T = np.zeros((n, n))
    for k, blk in enumerate(blocks):
        T[2 * k : 2 * k + 2, 2 * k : 2 * k + 2] = blk
    Z = np.zeros(n)
    Z[0] = 1.0
    Z[2::2] = 1.0
    # diag(Q) = which[i] -> params index (level, trend, seasonal x 6)
    which = np.array([1, 2] + [3] * (2 * HARMONICS))
    return T, Z, which


def our_state_space(params, dtype):
    T, Z, which = structural_matrices()
    n = T.shape[0]
    params = jnp.asarray(params, dtype)
    return StateSpace(
        transition=jnp.asarray(T, dtype),
        observation=jnp.asarray(Z, dtype),
        state_cov=jnp.diag(params[which]),
        obs_var=params[0],
        init_mean=jnp.zeros(n, dtype),
        init_cov=INIT_VAR * jnp.eye(n, dtype=dtype),
    )


def simulate(num_steps, seed=0):
    rng = np.random.default_rng(seed)
    T, Z, which = structural_matrices()
    q = np.sqrt(PARAMS[which])
    x = np.zeros(T.shape[0])
    x[0] = 10.0
    x[2] = 3.0
    y = np.empty(num_steps)
    for t in range(num_steps):
        y[t] = Z @ x + np.sqrt(PARAMS[0]) * rng.normal()
        x = T @ x + q * rng.normal(size=x.shape)
    return y


def timeit(fn, repeats):
    fn()  # warm (compiled already)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def compile_seconds(jitted, *args):
    t0 = time.perf_counter()
    jitted.lower(*args).compile()
    return time.perf_counter() - t0


def block(x):
    return jax.block_until_ready(x)


def run_ours(y, dtype, repeats, sequential, burn):
    out, checks = {}, {}
    yj = jnp.asarray(y, dtype)
    p = jnp.asarray(PARAMS, dtype)

    def make(method):
        def ll(params, y):
            return kalman_log_likelihood(
                our_state_space(params, dtype), y, method=method, burn_in=burn
            )

        return jax.jit(ll), jax.jit(jax.value_and_grad(ll))

    methods = (["sequential"] if sequential else []) + ["parallel"]
    for method in methods:
        key = "seq" if method == "sequential" else "par"
        f, g = make(method)
        if method == "parallel":
            out["compile_par"] = compile_seconds(f, p, yj)
            out["compile_par_grad"] = compile_seconds(g, p, yj)
        checks[key] = float(block(f(p, yj)))
        block(g(p, yj))
        out[key] = timeit(lambda f=f: block(f(p, yj)), repeats)
        out[key + "+grad"] = timeit(lambda g=g: block(g(p, yj)), repeats)
    return out, checks


def run_statsmodels(y, repeats):
    try:
        from statsmodels.tsa.statespace.structural import UnobservedComponents
    except ImportError:
        return None, None
    mod = UnobservedComponents(
        y,
        level="local linear trend",
        freq_seasonal=[{"period": PERIOD, "harmonics": HARMONICS}],
    )
    mod.initialize_default(approximate_diffuse_variance=INIT_VAR)
    mod.update(PARAMS)  # check the matrices are ours
    T, Z, which = structural_matrices()
    assert np.allclose(mod.ssm["transition"], T)
    assert np.allclose(mod.ssm["design"][0], Z)
    sel = mod.ssm["selection"]
    assert np.allclose(sel @ mod.ssm["state_cov"] @ sel.T, np.diag(PARAMS[which]))
    assert mod.loglikelihood_burn == T.shape[0]
    value = mod.loglike(PARAMS)
    return {"sm": timeit(lambda: mod.loglike(PARAMS), repeats)}, value


def run_dynamax(y, repeats, sequential, dtype):
    try:
        from dynamax.linear_gaussian_ssm import inference as seq_inf
        from dynamax.linear_gaussian_ssm import parallel_inference as par_inf
        from dynamax.linear_gaussian_ssm.models import LinearGaussianSSM
    except ImportError:
        return None, None
    T, Z, which = structural_matrices()
    n = T.shape[0]
    model = LinearGaussianSSM(state_dim=n, emission_dim=1)
    params, _ = model.initialize(
        initial_mean=jnp.zeros(n, dtype),
        initial_covariance=INIT_VAR * jnp.eye(n, dtype=dtype),
        dynamics_weights=jnp.asarray(T, dtype),
        dynamics_covariance=jnp.diag(jnp.asarray(PARAMS[which], dtype)),
        emission_weights=jnp.asarray(Z, dtype)[None],
        emission_covariance=jnp.array([[PARAMS[0]]], dtype),
    )
    emissions = jnp.asarray(y, dtype)[:, None]
    out, checks = {}, {}
    par = jax.jit(lambda p, e: par_inf.lgssm_filter(p, e).marginal_loglik)
    out["compile_dx_par"] = compile_seconds(par, params, emissions)
    checks["dx_par"] = float(block(par(params, emissions)))
    out["dx_par"] = timeit(lambda: block(par(params, emissions)), repeats)
    if sequential:
        seq = jax.jit(lambda p, e: seq_inf.lgssm_filter(p, e).marginal_loglik)
        checks["dx_seq"] = float(block(seq(params, emissions)))
        out["dx_seq"] = timeit(lambda: block(seq(params, emissions)), repeats)
    return out, checks


def _enable_x64():
    """``jax.enable_x64(True)``, or the older ``jax.experimental.enable_x64()``."""
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64

    return enable_x64()


def fmt(x, digits=2):
    return "-" if x is None else f"{x:.{digits}f}"


def main(argv=None):
    global INIT_VAR
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    ap.add_argument("--backend-only", action="store_true", help="skip statsmodels and dynamax")
    ap.add_argument("--no-statsmodels", action="store_true")
    ap.add_argument("--no-dynamax", action="store_true")
    ap.add_argument(
        "--init-var",
        type=float,
        default=INIT_VAR,
        help="initial state variance (1e6 = statsmodels' approximate diffuse; in float32 "
        "use <= 1e4, see bayes_ssm/kernels/kalman.py)",
    )
    ap.add_argument("--no-sequential", action="store_true", help="skip sequential columns")
    ap.add_argument(
        "--max-sequential-T",
        type=int,
        default=None,
        help="skip sequential columns above this length (default: none on CPU, "
        "1e5 on an accelerator)",
    )
    args = ap.parse_args(argv)
    backend = jax.default_backend()
    max_seq = args.max_sequential_T
    if max_seq is None:
        max_seq = 10**12 if backend == "cpu" else 100_000
    dtype = jnp.float64 if args.dtype == "float64" else jnp.float32
    INIT_VAR = args.init_var
    ctx = _enable_x64() if args.dtype == "float64" else contextlib.nullcontext()
    n = 2 + 2 * HARMONICS
    print(f"# init_var={INIT_VAR:g}; jax {jax.__version__}")
    print(
        f"# Kalman log-likelihood, LLT + trig({PERIOD}, {HARMONICS}) + noise, {n} states, "
        f"{args.dtype}, backend={backend} ({jax.devices()[0].device_kind})"
    )
    print("# ms per call (median); ratios = ours / statsmodels (sm) or ours / dynamax")
    cols = [
        "T",
        "seq",
        "seq+grad",
        "par",
        "par+grad",
        "sm",
        "dx_seq",
        "dx_par",
        "seq/sm",
        "seq+grad/sm",
        "seq/dx_seq",
        "par/dx_par",
        "compile_par",
        "compile_par_grad",
        "compile_dx_par",
        "rel_diff_ours_sm",
        "rel_diff_dx",
    ]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    notes = []
    with ctx:
        for num_steps in args.sizes:
            y = simulate(num_steps)
            sequential = not args.no_sequential and num_steps <= max_seq
            row, checks = run_ours(y, dtype, args.repeats, sequential, burn=n)
            sm_value = None
            if not (args.backend_only or args.no_statsmodels):
                res, sm_value = run_statsmodels(y, args.repeats)
                if res is None:
                    notes.append("statsmodels not installed: sm columns skipped")
                else:
                    row.update(res)
            dx_checks = {}
            if not (args.backend_only or args.no_dynamax):
                res, dx_checks = run_dynamax(y, args.repeats, sequential, dtype)
                if res is None:
                    notes.append("dynamax not installed: dx columns skipped")
                else:
                    row.update(res)
            # Agreement: ours (seq vs par) and vs statsmodels (same burn-in). dynamax has no
            # burn-in, so it is compared with our unburnt sum, computed here.
            vals = list(checks.values()) + ([sm_value] if sm_value is not None else [])
            scale = abs(vals[0])
            diff = (max(vals) - min(vals)) / scale if len(vals) > 1 else None
            diff_dx = None
            if dx_checks:
                ours_full = float(
                    kalman_log_likelihood(our_state_space(PARAMS, dtype), jnp.asarray(y, dtype))
                )
                d2 = max(abs(v - ours_full) for v in dx_checks.values())
                diff_dx = d2 / abs(ours_full)

            def ratio(a, b, row=row):
                return None if a not in row or b not in row else row[a] / row[b]

            cells = [str(num_steps)] + [fmt(row.get(c)) for c in cols[1:8]]
            cells += [
                fmt(ratio("seq", "sm")),
                fmt(ratio("seq+grad", "sm")),
                fmt(ratio("seq", "dx_seq")),
                fmt(ratio("par", "dx_par")),
            ]
            cells += [
                fmt(row.get(c)) for c in ("compile_par", "compile_par_grad", "compile_dx_par")
            ]
            cells.append("-" if diff is None else f"{diff:.1e}")
            cells.append("-" if diff_dx is None else f"{diff_dx:.1e}")
            print("| " + " | ".join(cells) + " |", flush=True)
    for note in dict.fromkeys(notes):
        print(f"# note: {note}")


if __name__ == "__main__":
    main()
