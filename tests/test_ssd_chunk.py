"""``chunk_size="auto"`` for the chunked SSD: the measured GPU table, the CPU default unchanged."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from bayes_ssm.kernels.ssd import ssd
from bayes_ssm.kernels.ssd_chunk import DEFAULT_SSD_CHUNK, choose_ssd_chunk


def test_cpu_keeps_the_old_default_and_gpu_reads_the_table():
    assert choose_ssd_chunk(4096, jnp.float32, "cpu") == DEFAULT_SSD_CHUNK == 64
    assert choose_ssd_chunk(4096, jnp.bfloat16, "cpu") == 64
    assert choose_ssd_chunk(4096, jnp.float32, "gpu") == 128
    assert choose_ssd_chunk(4096, jnp.bfloat16, "gpu") == 64
    assert choose_ssd_chunk(4096, jnp.float16, "gpu") == 64  # not measured: the default
    assert choose_ssd_chunk(20, jnp.float32, "gpu") == 32  # never beyond the series
    # per state size: n <= 64 as above; n = 128 measured best at 256 in both dtypes
    assert choose_ssd_chunk(4096, jnp.float32, "gpu", state_size=64) == 128
    assert choose_ssd_chunk(4096, jnp.float32, "gpu", state_size=128) == 256
    assert choose_ssd_chunk(4096, jnp.bfloat16, "gpu", state_size=128) == 256
    assert choose_ssd_chunk(4096, jnp.bfloat16, "cpu", state_size=128) == 64


def test_auto_on_the_cpu_is_chunk_64():
    assert jax.default_backend() == "cpu"
    k = jax.random.split(jax.random.key(0), 4)
    x = jax.random.normal(k[0], (1, 150, 2, 3))
    dt = jax.random.uniform(k[1], (1, 150, 2), minval=0.05, maxval=0.5)
    B, C = (jax.random.normal(kk, (1, 150, 1, 4)) for kk in k[2:])
    A = -jnp.ones(2)
    auto = ssd(x, dt, A, B, C)
    np.testing.assert_array_equal(np.asarray(auto), np.asarray(ssd(x, dt, A, B, C, chunk_size=64)))
