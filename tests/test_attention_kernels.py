"""Attention kernels: linear attention by recurrence == its quadratic form; FAVOR+ -> softmax."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayes_ssm.kernels import (
    favor_attention,
    init_favor_projection,
    linear_attention,
    softmax_attention,
    split_heads,
)
from bayes_ssm.kernels.attention import elu_feature_map
from bayes_ssm.kernels.reference import linear_attention_ref, softmax_attention_ref
from tests.conftest import maybe_x64

METHODS = ("recurrent", "chunked", "quadratic")
jit_linear = jax.jit(
    linear_attention, static_argnames=("feature_map", "method", "causal", "normalize", "chunk_size")
)
TOL = {np.float32: dict(rtol=1e-4, atol=1e-4), np.float64: dict(rtol=1e-10, atol=1e-10)}


def qkv(dtype, batch=(2,), T=11, h=3, n=4, p=5, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    q = scale * rng.normal(size=(*batch, T, h, n))
    k = scale * rng.normal(size=(*batch, T, h, n))
    v = rng.normal(size=(*batch, T, h, p))
    return [jnp.asarray(z, dtype) for z in (q, k, v)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("normalize", [True, False])
def test_linear_attention_forms_equal_loop_twin(dtype, causal, normalize):
    with maybe_x64(dtype):
        q, k, v = qkv(dtype)
        expected = linear_attention_ref(
            elu_feature_map(q), elu_feature_map(k), v, causal=causal, normalize=normalize
        )
        for method in METHODS:
            y = jit_linear(q, k, v, method=method, causal=causal, normalize=normalize, chunk_size=4)
            assert y.dtype == dtype and y.shape == v.shape
            np.testing.assert_allclose(y, expected, **TOL[dtype], err_msg=method)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_attention_gradients_agree(dtype):
    with maybe_x64(dtype):
        q, k, v = qkv(dtype, batch=())
        w = jnp.asarray(np.random.default_rng(2).normal(size=v.shape), dtype)
        grads = {
            m: jax.jit(
                jax.grad(
                    lambda q, k, v, m=m: jnp.sum(
                        w * linear_attention(q, k, v, method=m, chunk_size=4)
                    ),
                    argnums=(0, 1, 2),
                )
            )(q, k, v)
            for m in METHODS
        }
        for m in ("chunked", "quadratic"):
            for g_ref, g in zip(grads["recurrent"], grads[m], strict=True):
                np.testing.assert_allclose(g, g_ref, **TOL[dtype])


@pytest.mark.parametrize("causal", [True, False])
def test_softmax_attention_equals_loop_twin(causal):
    q, k, v = qkv(np.float32)
    expected = softmax_attention_ref(q, k, v, causal=causal)
    np.testing.assert_allclose(softmax_attention(q, k, v, causal=causal), expected, atol=1e-5)


def test_favor_recurrent_equals_quadratic():
    q, k, v = qkv(np.float32, scale=0.5)
    proj = init_favor_projection(jax.random.key(0), 32, q.shape[-1])
    f = jax.jit(favor_attention, static_argnames=("method", "chunk_size"))
    ys = [f(q, k, v, projection=proj, method=m, chunk_size=4) for m in METHODS]
    for y in ys[1:]:
        np.testing.assert_allclose(y, ys[0], rtol=1e-4, atol=1e-4)


def test_favor_approaches_softmax_as_features_grow():
    """Mean error over 8 fixed keys falls with m, roughly like m^{-1/2} (x2 per x4 features).

    Keys are fixed, so the test is deterministic; averaging over 8 independent projections
    makes the decrease a property of the estimator rather than of one lucky draw.
    """
    with jax.enable_x64(True):
        q, k, v = qkv(np.float64, batch=(), T=16, h=2, n=8, p=4, scale=0.6)
        exact = softmax_attention(q, k, v)
        keys = jax.random.split(jax.random.key(42), 8)
        errors = []
        for m in (16, 64, 256, 1024):

            def rmse(kk, m=m):
                y = favor_attention(q, k, v, key=kk, num_features=m, method="quadratic")
                return jnp.sqrt(jnp.mean((y - exact) ** 2))

            errors.append(float(jnp.mean(jax.jit(jax.vmap(rmse))(keys))))
    ratios = np.array(errors[1:]) / np.array(errors[:-1])
    assert np.all(ratios < 0.8), errors
    assert errors[-1] < 0.4 * errors[0], errors  # m^{-1/2} predicts 1/8
    assert errors[-1] < 0.05, errors


@pytest.mark.parametrize("orthogonal", [True, False])
def test_favor_kernel_is_unbiased(orthogonal):
    """E[φ(x)·φ(y)] = exp(x·y): the mean over m = 200,000 features is within 4 standard errors.

    (This caught orthogonal features drawn without the sign correction of the QR factor.)
    """
    with jax.enable_x64(True):
        rng = np.random.default_rng(3)
        x, y = (jnp.asarray(rng.normal(size=8)) for _ in range(2))
        w = init_favor_projection(jax.random.key(7), 200_000, 8, orthogonal=orthogonal)
        # Each row is marginally N(0, I): mean 0 and covariance I within sampling error.
        assert float(jnp.max(jnp.abs(jnp.mean(w, 0)))) < 4 / np.sqrt(w.shape[0])
        np.testing.assert_allclose(w.T @ w / w.shape[0], np.eye(8), atol=0.02)
        terms = jnp.exp(w @ x - x @ x / 2) * jnp.exp(w @ y - y @ y / 2)
        standard_error = float(jnp.std(terms) / np.sqrt(terms.size))
        assert abs(float(jnp.mean(terms)) - float(jnp.exp(x @ y))) < 4 * standard_error


def test_orthogonal_projection_rows_orthogonal_within_blocks():
    w = np.asarray(init_favor_projection(jax.random.key(1), 8, 4))
    block = w[:4] / np.linalg.norm(w[:4], axis=1, keepdims=True)
    np.testing.assert_allclose(block @ block.T, np.eye(4), atol=1e-5)


def test_no_recompile_on_second_call():
    f = jax.jit(lambda q, k, v: linear_attention(q, k, v, method="chunked", chunk_size=4))
    f(*qkv(np.float32)).block_until_ready()
    f(*qkv(np.float32, seed=5)).block_until_ready()
    assert f._cache_size() == 1


def test_bad_input_raises_clear_errors():
    q, k, v = qkv(np.float32)
    with pytest.raises(ValueError, match="q and k"):
        linear_attention(q, k[..., :2], v)
    with pytest.raises(ValueError, match="v must share"):
        softmax_attention(q, k, v[:, :5])
    with pytest.raises(ValueError, match="method"):
        linear_attention(q, k, v, method="fft")
    with pytest.raises(ValueError, match="feature_map"):
        linear_attention(q, k, v, feature_map="relu6")
    with pytest.raises(ValueError, match="key"):
        favor_attention(q, k, v)
    with pytest.raises(ValueError, match="projection"):
        favor_attention(q, k, v, projection=jnp.ones((8, 3)))
    with pytest.raises(ValueError, match="num_features"):
        init_favor_projection(jax.random.key(0), 0, 4)
    with pytest.raises(ValueError, match="num_heads=3 does not divide the width d=8"):
        split_heads(jnp.ones((5, 8)), 3)
    with pytest.raises(ValueError, match="q must have shape"):
        softmax_attention(q[0, 0], k, v)
