"""Kalman kernels: sequential == parallel == NumPy twin == dense Gaussian algebra."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from bayes_ssm.kernels import (
    StateSpace,
    kalman_filter,
    kalman_filter_last,
    kalman_forecast,
    kalman_log_likelihood,
    kalman_smoother,
)
from bayes_ssm.kernels.kalman_parallel import parallel_filter, parallel_smooth_backward
from bayes_ssm.kernels.reference import kalman_filter_ref

FILTER_FIELDS = (
    "log_lik_steps",
    "predicted_means",
    "predicted_covs",
    "filtered_means",
    "filtered_covs",
    "predicted_obs_means",
    "predicted_obs_vars",
)


def random_model(seed, n, num_steps, *, nan=False, tv_var=False, tv_obs=False, offset=False):
    """A random stable system (numpy float64) and a series drawn from it."""
    rng = np.random.default_rng(seed)
    T = rng.normal(size=(n, n))
    T = 0.95 * T / max(1.0, np.abs(np.linalg.eigvals(T)).max())
    A = rng.normal(size=(n, n))
    Q = A @ A.T / n + 0.05 * np.eye(n)
    z = rng.normal(size=(num_steps, n)) if tv_obs else rng.normal(size=n)
    h = 0.3 + rng.random(num_steps) if tv_var else np.array(0.7)
    d = rng.normal(size=num_steps) if offset else np.array(0.0)
    m0 = rng.normal(size=n)
    B = rng.normal(size=(n, n))
    P0 = B @ B.T / n + np.eye(n)
    y = rng.normal(size=num_steps) * 2.0
    if nan:
        y[rng.choice(num_steps, size=max(1, num_steps // 4), replace=False)] = np.nan
        y[0] = np.nan  # a missing first step exercises the initial element
    return dict(
        transition=T, observation=z, state_cov=Q, obs_var=h, init_mean=m0, init_cov=P0, obs_offset=d
    ), y


def to_ss(m):
    return StateSpace(**{k: jnp.asarray(v) for k, v in m.items()})


def dense_joint(m, num_steps):
    """Mean and covariance of (states (num_steps*n,), observations (num_steps,)) by brute force."""
    T, Q, P0, m0 = m["transition"], m["state_cov"], m["init_cov"], m["init_mean"]
    n = T.shape[0]
    Z = np.broadcast_to(m["observation"], (num_steps, n))
    h = np.broadcast_to(m["obs_var"], (num_steps,))
    d = np.broadcast_to(m["obs_offset"], (num_steps,))
    # X = G e + mu, e = (alpha_1 - m0, eta_1, ..., eta_{T-1}); alpha_t = T^{t-1} alpha_1 + ...
    G = np.zeros((num_steps * n, num_steps * n))
    for t in range(num_steps):
        for s in range(t + 1):
            G[t * n : (t + 1) * n, s * n : (s + 1) * n] = np.linalg.matrix_power(T, t - s)
    E = np.zeros_like(G)
    E[:n, :n] = P0
    for s in range(1, num_steps):
        E[s * n : (s + 1) * n, s * n : (s + 1) * n] = Q
    mu_x = np.concatenate([np.linalg.matrix_power(T, t) @ m0 for t in range(num_steps)])
    cov_x = G @ E @ G.T
    Zb = np.zeros((num_steps, num_steps * n))
    for t in range(num_steps):
        Zb[t, t * n : (t + 1) * n] = Z[t]
    mu_y = Zb @ mu_x + d
    cov_y = Zb @ cov_x @ Zb.T + np.diag(h)
    cov_xy = cov_x @ Zb.T
    return mu_x, cov_x, mu_y, cov_y, cov_xy


CASES = [
    # (seed, n, nan, tv_var, tv_obs, offset)
    (0, 1, False, False, False, False),
    (1, 2, True, True, False, True),
    (2, 3, True, False, True, False),
    (3, 4, False, True, True, True),
    (4, 5, True, True, False, False),
    (5, 6, True, True, True, True),
]


@pytest.mark.parametrize("case", CASES, ids=[f"n{c[1]}-nan{int(c[2])}" for c in CASES])
def test_sequential_matches_numpy_twin(x64, case):
    seed, n, nan, tv_var, tv_obs, offset = case
    m, y = random_model(seed, n, 25, nan=nan, tv_var=tv_var, tv_obs=tv_obs, offset=offset)
    res = kalman_filter(to_ss(m), jnp.asarray(y), method="sequential")
    ref = kalman_filter_ref(**m, y=y)
    for field in FILTER_FIELDS:
        np.testing.assert_allclose(
            getattr(res, field), ref[field], rtol=1e-9, atol=1e-10, err_msg=field
        )
    np.testing.assert_allclose(res.log_likelihood, ref["log_lik_steps"].sum(), rtol=1e-10)
    if nan:
        assert np.all(np.asarray(res.log_lik_steps)[np.isnan(y)] == 0.0)


# The parallel filter compiles one program per shape (a few seconds on a CPU): three sizes.
PAR_CASES = [CASES[0], CASES[2], CASES[5]]


@pytest.mark.parametrize("case", PAR_CASES, ids=[f"n{c[1]}-nan{int(c[2])}" for c in PAR_CASES])
def test_parallel_matches_sequential(x64, case):
    seed, n, nan, tv_var, tv_obs, offset = case
    m, y = random_model(seed, n, 37, nan=nan, tv_var=tv_var, tv_obs=tv_obs, offset=offset)
    ss, yj = to_ss(m), jnp.asarray(y)
    seq = kalman_smoother(ss, yj, method="sequential")
    par = kalman_smoother(ss, yj, method="parallel")
    for field in seq._fields:
        np.testing.assert_allclose(
            getattr(par, field), getattr(seq, field), rtol=1e-8, atol=1e-9, err_msg=field
        )
    last = kalman_filter_last(ss, yj, method="parallel")
    np.testing.assert_allclose(last.last_mean, seq.filtered_means[-1], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(last.last_cov, seq.filtered_covs[-1], rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("block_size", [2, 3, 5, 40])
def test_parallel_block_sizes_match_sequential(x64, block_size):
    """Every block layout gives the sequential filter and smoother: many blocks (2), a ragged
    last block padded with no-op steps (3, 5) and one block longer than the series (40);
    missing steps at the start, at block edges and at the very end."""
    m, y = random_model(7, 4, 23, nan=True, tv_var=True, tv_obs=True, offset=True)
    y[[5, 6, 9, 22]] = np.nan
    ss, yj = to_ss(m), jnp.asarray(y)
    seq = kalman_filter(ss, yj, method="sequential")
    par = parallel_filter(ss, yj, block_size=block_size)
    for field in seq._fields:
        np.testing.assert_allclose(
            getattr(par, field), getattr(seq, field), rtol=1e-8, atol=1e-9, err_msg=field
        )
    smooth = kalman_smoother(ss, yj, method="sequential")
    m_s, P_s = parallel_smooth_backward(
        ss, yj, seq.predicted_means, seq.predicted_covs, block_size=block_size
    )
    np.testing.assert_allclose(m_s, smooth.smoothed_means, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(P_s, smooth.smoothed_covs, rtol=1e-8, atol=1e-9)
    ll, steps, last_mean, last_cov = parallel_filter(
        ss, yj, burn_in=2, history=False, block_size=block_size
    )
    np.testing.assert_allclose(ll, seq.log_lik_steps[2:].sum(), rtol=1e-10)
    np.testing.assert_allclose(steps, seq.log_lik_steps, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(last_mean, seq.filtered_means[-1], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(last_cov, seq.filtered_covs[-1], rtol=1e-8, atol=1e-10)


def test_parallel_gradient_matches_sequential(x64):
    m, y = random_model(8, 3, 29, nan=True, tv_var=True)
    yj = jnp.asarray(y)

    def loglik(scale, method):
        ss = to_ss(m)
        ss = ss._replace(state_cov=scale[0] * ss.state_cov, obs_var=scale[1] * ss.obs_var)
        if method == "sequential":
            return kalman_log_likelihood(ss, yj, method="sequential")
        return parallel_filter(ss, yj, history=False, block_size=4)[0]

    x = jnp.array([0.8, 1.3])
    g_seq = jax.grad(loglik)(x, "sequential")
    g_par = jax.grad(loglik)(x, "parallel")
    np.testing.assert_allclose(g_par, g_seq, rtol=1e-8)


@pytest.mark.parametrize("method", ["sequential", "parallel"])
@pytest.mark.parametrize("nan", [False, True])
def test_log_likelihood_equals_dense_gaussian(x64, method, nan):
    num_steps = 12
    m, y = random_model(10 + nan, 3, num_steps, nan=nan, tv_var=True, tv_obs=True, offset=True)
    _, _, mu_y, cov_y, _ = dense_joint(m, num_steps)
    obs = ~np.isnan(y)
    expected = stats.multivariate_normal(mu_y[obs], cov_y[np.ix_(obs, obs)]).logpdf(y[obs])
    got = kalman_log_likelihood(to_ss(m), jnp.asarray(y), method=method)
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    last = kalman_filter_last(to_ss(m), jnp.asarray(y), method=method)
    np.testing.assert_allclose(last.log_likelihood, expected, rtol=1e-10)
    # burn_in drops the leading terms: the rest is log p(y_{3:} | y_{1:2}).
    first = obs.copy()
    first[2:] = False
    lp_first = (
        stats.multivariate_normal(mu_y[first], cov_y[np.ix_(first, first)]).logpdf(y[first])
        if first.any()
        else 0.0
    )
    burnt = kalman_log_likelihood(to_ss(m), jnp.asarray(y), method=method, burn_in=2)
    np.testing.assert_allclose(burnt, expected - lp_first, rtol=1e-10)


@pytest.mark.parametrize("method", ["sequential", "parallel"])
def test_smoother_equals_dense_posterior(x64, method):
    num_steps, n = 10, 3
    m, y = random_model(20, n, num_steps, nan=True, tv_var=True, offset=True)
    mu_x, cov_x, mu_y, cov_y, cov_xy = dense_joint(m, num_steps)
    obs = ~np.isnan(y)
    gain = cov_xy[:, obs] @ np.linalg.inv(cov_y[np.ix_(obs, obs)])
    post_mean = mu_x + gain @ (y[obs] - mu_y[obs])
    post_cov = cov_x - gain @ cov_xy[:, obs].T
    res = kalman_smoother(to_ss(m), jnp.asarray(y), method=method)
    np.testing.assert_allclose(
        res.smoothed_means, post_mean.reshape(num_steps, n), rtol=1e-8, atol=1e-10
    )
    blocks = np.stack(
        [post_cov[t * n : (t + 1) * n, t * n : (t + 1) * n] for t in range(num_steps)]
    )
    np.testing.assert_allclose(res.smoothed_covs, blocks, rtol=1e-8, atol=1e-10)
    # Filtered moments: condition on y_{1:t} only.
    for t in (0, 4, num_steps - 1):
        sub = obs.copy()
        sub[t + 1 :] = False
        g = cov_xy[t * n : (t + 1) * n, sub] @ np.linalg.inv(cov_y[np.ix_(sub, sub)])
        mean_t = mu_x[t * n : (t + 1) * n] + g @ (y[sub] - mu_y[sub])
        cov_t = (
            cov_x[t * n : (t + 1) * n, t * n : (t + 1) * n] - g @ cov_xy[t * n : (t + 1) * n, sub].T
        )
        np.testing.assert_allclose(res.filtered_means[t], mean_t, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(res.filtered_covs[t], cov_t, rtol=1e-8, atol=1e-10)


def test_forecast_equals_dense_gaussian(x64):
    num_steps, horizon, n = 9, 4, 3
    m, y_obs = random_model(
        30, n, num_steps + horizon, nan=True, tv_var=True, tv_obs=True, offset=True
    )
    y = y_obs.copy()
    y[num_steps:] = np.nan  # the future
    mu_x, cov_x, mu_y, cov_y, cov_xy = dense_joint(m, num_steps + horizon)
    obs = ~np.isnan(y)
    inv = np.linalg.inv(cov_y[np.ix_(obs, obs)])
    fut = np.arange(num_steps, num_steps + horizon)
    y_mean = mu_y[fut] + cov_y[np.ix_(fut, obs)] @ inv @ (y[obs] - mu_y[obs])
    y_var = np.diag(
        cov_y[np.ix_(fut, fut)] - cov_y[np.ix_(fut, obs)] @ inv @ cov_y[np.ix_(obs, fut)]
    )
    past = {
        k: (
            v[:num_steps]
            if np.ndim(v) >= 1
            and k in ("observation", "obs_var", "obs_offset")
            and np.shape(v)[0] == num_steps + horizon
            else v
        )
        for k, v in m.items()
    }
    future = {
        k: (
            v[num_steps:]
            if np.ndim(v) >= 1
            and k in ("observation", "obs_var", "obs_offset")
            and np.shape(v)[0] == num_steps + horizon
            else v
        )
        for k, v in m.items()
    }
    last = kalman_filter_last(to_ss(past), jnp.asarray(y[:num_steps]))
    fc = kalman_forecast(to_ss(future), last.last_mean, last.last_cov, horizon)
    np.testing.assert_allclose(fc.obs_means, y_mean, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(fc.obs_vars, y_var, rtol=1e-8)
    sl = slice(num_steps * n, (num_steps + 1) * n)
    x_mean = mu_x[sl] + cov_xy[sl, obs] @ inv @ (y[obs] - mu_y[obs])
    np.testing.assert_allclose(fc.state_means[0], x_mean, rtol=1e-8, atol=1e-10)


def _param_model(theta, y):
    """A 2-state model whose every field depends on the 6 parameters (for gradients)."""
    rho, log_q, log_h, c, mu0, log_p0 = (theta[i] for i in range(6))
    T = jnp.array([[rho, 0.2], [0.0, 0.5]]) + jnp.zeros((2, 2), theta.dtype)
    Q = jnp.exp(log_q) * jnp.array([[1.0, 0.3], [0.3, 0.5]])
    h = jnp.exp(log_h) * (1.0 + 0.5 * jnp.sin(jnp.arange(y.shape[0])))
    P0 = jnp.exp(log_p0) * jnp.array([[1.0, 0.2], [0.2, 2.0]])
    m0 = mu0 * jnp.array([1.0, -0.5])
    return StateSpace(T, jnp.array([1.0, c]), Q, h, m0, P0, obs_offset=0.3 * c)


THETA = (0.7, -0.5, 0.1, 0.4, 0.3, 0.2)


@pytest.mark.parametrize("method", ["sequential", "parallel"])
def test_gradient_matches_finite_differences(x64, method):
    _, y = random_model(40, 2, 20, nan=True)
    y = jnp.asarray(y)
    theta = jnp.array(THETA)

    def f(th):
        return kalman_log_likelihood(_param_model(th, y), y, method=method)

    grad = jax.grad(f)(theta)
    assert np.all(np.isfinite(grad))
    eps = 1e-6
    fd = np.array(
        [(f(theta.at[i].add(eps)) - f(theta.at[i].add(-eps))) / (2 * eps) for i in range(6)]
    )
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-7)


def test_gradient_through_last_filter_and_smoother_is_finite(x64):
    _, y = random_model(41, 2, 15, nan=True)
    y = jnp.asarray(y)
    theta = jnp.array(THETA)

    def f(th):
        last = kalman_filter_last(_param_model(th, y), y)
        sm = kalman_smoother(_param_model(th, y), y, method="sequential")
        return last.last_mean.sum() + last.last_cov.sum() + sm.smoothed_means.sum()

    assert np.all(np.isfinite(jax.grad(f)(theta)))


def test_matches_statsmodels_kalman_filter(x64):
    """Independent check: statsmodels' generic Cython KalmanFilter on the same matrices."""
    sm_kf = pytest.importorskip("statsmodels.tsa.statespace.kalman_filter")
    num_steps, n = 40, 4
    m, y = random_model(50, n, num_steps, nan=True, tv_var=True)
    kf = sm_kf.KalmanFilter(k_endog=1, k_states=n, k_posdef=n)
    kf.bind(y[:, None].copy())
    kf["design"] = m["observation"][None, :]
    kf["obs_cov"] = m["obs_var"][None, None, :]
    kf["transition"] = m["transition"]
    kf["selection"] = np.eye(n)
    kf["state_cov"] = m["state_cov"]
    kf.initialize_known(m["init_mean"], m["init_cov"])
    expected = kf.loglikeobs()
    ours = kalman_filter(to_ss(m), jnp.asarray(y))
    np.testing.assert_allclose(ours.log_lik_steps, expected, rtol=1e-9, atol=1e-12)


def test_large_initial_variance_with_burn_in_matches_reference(x64):
    """An approximately diffuse start (variance 1e6) stays accurate in float64."""
    m, y = random_model(60, 3, 30, nan=True)
    m["init_cov"] = 1e6 * np.eye(3)
    ref = kalman_filter_ref(**m, y=y)
    for method in ("sequential", "parallel"):
        got = kalman_filter(to_ss(m), jnp.asarray(y), method=method, burn_in=3)
        np.testing.assert_allclose(got.log_lik_steps[3:], ref["log_lik_steps"][3:], rtol=1e-7)
        P = np.asarray(got.filtered_covs)
        np.testing.assert_array_equal(P, np.swapaxes(P, -1, -2))
        assert np.linalg.eigvalsh(P).min() > 0


def test_float32_close_to_float64():
    m, y = random_model(70, 3, 50, nan=True, tv_var=True)
    with jax.enable_x64(True):
        ll64 = float(kalman_log_likelihood(to_ss(m), jnp.asarray(y)))
    m32 = {k: np.asarray(v, np.float32) for k, v in m.items()}
    for method in ("sequential", "parallel"):
        ll32 = kalman_log_likelihood(to_ss(m32), jnp.asarray(y, jnp.float32), method=method)
        assert ll32.dtype == jnp.float32
        np.testing.assert_allclose(ll32, ll64, rtol=1e-4)


def test_vmap_over_parameters(x64):
    _, y = random_model(80, 2, 15)
    y = jnp.asarray(y)
    thetas = jnp.array([THETA, (0.2, 0.1, -0.3, 1.0, -1.0, 1.0)])
    batched = jax.vmap(lambda th: kalman_log_likelihood(_param_model(th, y), y))(thetas)
    for i in range(2):
        np.testing.assert_allclose(batched[i], kalman_log_likelihood(_param_model(thetas[i], y), y))


def test_jit_does_not_recompile_for_same_shapes():
    traces = []

    @jax.jit
    def f(ss, y):
        traces.append(1)
        return kalman_log_likelihood(ss, y, method="sequential")

    m1, y1 = random_model(90, 3, 20, nan=True)
    m2, y2 = random_model(91, 3, 20, nan=True)
    cast = lambda m: StateSpace(**{k: jnp.asarray(v, jnp.float32) for k, v in m.items()})  # noqa: E731
    a = f(cast(m1), jnp.asarray(y1, jnp.float32))
    b = f(cast(m2), jnp.asarray(y2, jnp.float32))
    assert len(traces) == 1
    assert np.isfinite(a) and np.isfinite(b) and a != b
    # The public kernels are jitted themselves: a second eager call with new values and the
    # same shapes reuses the compiled program.
    from bayes_ssm.kernels import kalman as kalman_module

    kalman_filter(cast(m1), jnp.asarray(y1, jnp.float32), method="sequential")
    size = kalman_module._filter_jit._cache_size()
    kalman_filter(cast(m2), jnp.asarray(y2, jnp.float32), method="sequential")
    assert kalman_module._filter_jit._cache_size() == size


def _good():
    m, y = random_model(100, 3, 10)
    return to_ss(m), jnp.asarray(y)


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda ss, y: (ss, y[:, None]), "y must be a univariate series"),
        (lambda ss, y: (ss._replace(transition=ss.transition[:, :2]), y), "transition must be"),
        (lambda ss, y: (ss._replace(state_cov=ss.state_cov[:2, :2]), y), "state_cov must have"),
        (lambda ss, y: (ss._replace(init_mean=ss.init_mean[:2]), y), "init_mean must have"),
        (lambda ss, y: (ss._replace(observation=jnp.ones(4)), y), "observation must have"),
        (
            lambda ss, y: (ss._replace(observation=jnp.ones((9, 3))), y),
            r"time-varying observation must have shape \(time, state\) = \(10, 3\)",
        ),
        (lambda ss, y: (ss._replace(obs_var=jnp.ones(9)), y), "obs_var must be a scalar"),
        (lambda ss, y: (ss._replace(obs_offset=jnp.ones(11)), y), "obs_offset must be"),
        (lambda ss, y: (ss, jnp.arange(10)), "y must have a floating-point dtype"),
        (
            lambda ss, y: (ss._replace(transition=jnp.eye(3, dtype=jnp.int32)), y),
            "transition must have a floating-point dtype",
        ),
        (lambda ss, y: (ss, y[:0]), "y is empty"),
    ],
)
def test_bad_input_raises_value_error(change, match):
    ss, y = change(*_good())
    for fn in (kalman_filter, kalman_log_likelihood, kalman_smoother):
        with pytest.raises(ValueError, match=match):
            fn(ss, y)


def test_bad_options_raise_value_error():
    ss, y = _good()
    with pytest.raises(ValueError, match="method must be one of"):
        kalman_filter(ss, y, method="fast")
    with pytest.raises(ValueError, match="burn_in must be"):
        kalman_filter(ss, y, burn_in=-1)
    with pytest.raises(ValueError, match="horizon must be a positive int"):
        kalman_forecast(ss, ss.init_mean, ss.init_cov, 0)
    with pytest.raises(ValueError, match="ss must be a StateSpace"):
        kalman_filter((1, 2), y)


def test_approximate_diffuse_burn_in_matches_statsmodels_unobserved_components(x64):
    """Local linear trend, statsmodels' default start (variance 1e6, first 2 terms burnt)."""
    structural = pytest.importorskip("statsmodels.tsa.statespace.structural")
    rng = np.random.default_rng(7)
    y = np.cumsum(np.cumsum(rng.normal(size=80) * 0.1) + rng.normal(size=80))
    y[[5, 30, 31]] = np.nan
    mod = structural.UnobservedComponents(y, level="local linear trend")
    params = np.array([1.3, 0.4, 0.02])  # irregular, level, trend variances
    ss = StateSpace(
        transition=jnp.array([[1.0, 1.0], [0.0, 1.0]]),
        observation=jnp.array([1.0, 0.0]),
        state_cov=jnp.diag(jnp.array(params[1:])),
        obs_var=jnp.array(params[0]),
        init_mean=jnp.zeros(2),
        init_cov=1e6 * jnp.eye(2),
    )
    assert mod.loglikelihood_burn == 2
    ours = kalman_log_likelihood(ss, jnp.asarray(y), burn_in=2)
    np.testing.assert_allclose(ours, mod.loglike(params), rtol=1e-9)


def test_old_predicted_observation_names_warn_and_alias_the_new_fields():
    """FilterResult / SmootherResult say predicted_obs_means/_vars (ForecastResult: obs_means);
    the old names stay one release as warning aliases of the same arrays."""
    m, y = random_model(3, 2, 12)
    ss, y = to_ss(m), jnp.asarray(y)
    for res in (kalman_filter(ss, y), kalman_smoother(ss, y)):
        with pytest.warns(DeprecationWarning, match="predicted_obs_means"):
            old_mean = res.pred_obs_mean
        with pytest.warns(DeprecationWarning, match="predicted_obs_vars"):
            old_var = res.pred_obs_var
        assert old_mean is res.predicted_obs_means
        assert old_var is res.predicted_obs_vars
