"""Parallel == sequential Kalman filter when noise variances are exactly zero (issue 13).

With no observation noise and no noise on the observed state, a block's first observation is
exactly determined by the unknown state before the block; the parallel filter's block element
then carried infinite information and the combine returned NaN from ``T = 2 B + 1`` (three
blocks). The sequential filter is the independent twin. Values agree to ~1e-7. Gradients are
taken w.r.t. the standard deviations (every model here samples sds, ``var = sd ** 2``) and agree
to ~1e-3 relative; w.r.t. a variance sitting exactly at 0 the parallel gradient is off by up to
10% (the floor that removes the NaN regularises phases 1-2, see
``kalman_parallel._degenerate_floor``), which the sd chain rule multiplies by 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayes_ssm.kernels import StateSpace, kalman_filter, kalman_log_likelihood
from bayes_ssm.kernels.kalman_parallel import kalman_block_size, parallel_filter

# local linear trend + a trigonometric seasonal (period 5, one harmonic): 4 states
_TRANS = np.zeros((4, 4))
_TRANS[:2, :2] = [[1.0, 1.0], [0.0, 1.0]]
_LAM = 2 * np.pi / 5
_TRANS[2:, 2:] = [[np.cos(_LAM), np.sin(_LAM)], [-np.sin(_LAM), np.cos(_LAM)]]
_Z = np.array([1.0, 0.0, 1.0, 0.0])

# (obs sd, level sd, slope sd, seasonal sd)
NOISE = {
    "zero_obs": (0.0, 0.5, 0.2, 0.3),
    "zero_level": (0.7, 0.0, 0.2, 0.3),
    "zero_obs_and_level": (0.0, 0.0, 0.2, 0.3),
    "only_slope_noise": (0.0, 0.0, 0.2, 0.0),
}


def _ss(sd):
    h, q_level, q_slope, q_seas = sd**2
    q = jnp.stack([q_level, q_slope, q_seas, q_seas])
    return StateSpace(
        jnp.asarray(_TRANS), jnp.asarray(_Z), jnp.diag(q), h, jnp.zeros(4), 4.0 * jnp.eye(4)
    )


def _series(num_steps, seed=0):
    """Drawn from the 4-state model with every noise on, so all the cases are finite."""
    rng = np.random.default_rng(seed)
    slope = np.cumsum(rng.normal(scale=0.2, size=num_steps))
    t = np.arange(num_steps)
    return np.cumsum(slope) + 2.0 * np.sin(_LAM * t) + rng.normal(scale=0.1, size=num_steps)


@jax.jit
def _value_and_grads(p, y):
    def loglik(p, method):
        return kalman_log_likelihood(_ss(p), y, method=method)

    seq = jax.value_and_grad(loglik)(p, "sequential")
    par = jax.value_and_grad(loglik)(p, "parallel")
    return seq, par


@pytest.mark.parametrize(
    "num_steps",
    [17, pytest.param(29, marks=pytest.mark.slow), pytest.param(45, marks=pytest.mark.slow)],
)
def test_parallel_equals_sequential_with_zero_noise(x64, num_steps):
    """Every filter output, the log-likelihood and its gradient w.r.t. the four sds;
    lengths past two blocks and not a multiple of the block size."""
    block = kalman_block_size(num_steps)
    assert num_steps > 2 * block and num_steps % block
    y = jnp.asarray(_series(num_steps))
    for case, p in NOISE.items():
        p = jnp.asarray(p)
        seq = kalman_filter(_ss(p), y, method="sequential")
        par = kalman_filter(_ss(p), y, method="parallel")
        assert np.isfinite(seq.log_likelihood), case
        for field in seq._fields:
            np.testing.assert_allclose(
                getattr(par, field), getattr(seq, field), rtol=1e-6, atol=1e-6, err_msg=field
            )
        (v_seq, g_seq), (v_par, g_par) = _value_and_grads(p, y)
        np.testing.assert_allclose(v_par, v_seq, rtol=1e-8, err_msg=case)
        assert np.all(np.isfinite(g_seq)), case
        scale = np.max(np.abs(g_seq))
        np.testing.assert_allclose(g_par, g_seq, rtol=0, atol=2e-3 * scale, err_msg=case)


@pytest.mark.slow
def test_small_blocks_with_missing_values_and_zero_noise(x64):
    """Blocks of 3 (so many combines) with missing steps at block starts."""
    y = _series(31, seed=1)
    y[[3, 4, 9, 30]] = np.nan
    y = jnp.asarray(y)
    ss = _ss(jnp.asarray(NOISE["only_slope_noise"]))
    seq = kalman_filter(ss, y, method="sequential")
    par = parallel_filter(ss, y, block_size=3)
    assert np.isfinite(seq.log_likelihood)
    for field in seq._fields:
        np.testing.assert_allclose(
            getattr(par, field), getattr(seq, field), rtol=1e-6, atol=1e-6, err_msg=field
        )
