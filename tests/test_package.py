"""The package's global contract: importing it changes nothing, the public API is there."""

from __future__ import annotations

import subprocess
import sys


def test_import_changes_nothing_global():
    code = (
        "import jax, matplotlib\n"
        "backend = matplotlib.get_backend()\n"
        "before = (jax.config.jax_enable_x64, jax.config.jax_platforms)\n"
        "import bayes_ssm\n"
        "after = (jax.config.jax_enable_x64, jax.config.jax_platforms)\n"
        "assert before == after, (before, after)\n"
        "assert jax.local_device_count() == 1, jax.local_device_count()\n"
        "assert matplotlib.get_backend() == backend\n"
        "import jax.numpy as jnp\n"
        "assert jnp.ones(1).dtype == jnp.float32\n"
        "print('ok')\n"
    )
    env = {"PATH": "", "JAX_PLATFORMS": "cpu"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd="."
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_public_api_names():
    import bayes_ssm as bs

    for name in bs.__all__:
        assert hasattr(bs, name), name
    assert callable(bs.fit_nuts) and callable(bs.datasets.load)


def test_kernels_import_needs_only_jax():
    code = (
        "import sys\n"
        "import bayes_ssm.kernels\n"
        "loaded = [m for m in ('numpyro', 'arviz', 'scoringrules', 'pandas', 'matplotlib')"
        " if m in sys.modules]\n"
        "assert not loaded, loaded\n"
        "import bayes_ssm.evaluation.backtesting, bayes_ssm.inference.anomaly\n"
        "import bayes_ssm.inference.attention_maps\n"
        "import bayes_ssm as bs\n"
        "assert callable(bs.backtest) and callable(bs.anomalies) and callable(bs.attention_map)\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=".")
    assert out.returncode == 0, out.stderr
