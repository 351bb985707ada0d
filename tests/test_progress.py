"""Progress bars: drawn in a terminal and a Jupyter kernel, never in a pipe, no widget warning."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# A baseline-only backtest: no JAX compile, so the subprocess is quick.
BACKTEST = """
import numpy as np, pandas as pd, bayes_ssm as bs
y = pd.Series(np.arange(60.0) % 7, index=pd.date_range("2020-01-06", periods=60, freq="D"))
bs.backtest(None, y, horizon=3, folds=4, baselines=["seasonal_naive"], season=7, key=0)
"""


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "BAYES_SSM_PROGRESS"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return {**env, **extra}


def _backtest_stderr(stderr_to_terminal: bool, **env) -> str:
    """Run the backtest with stderr to a pipe, or to a pseudo-terminal; return what it wrote."""
    if not stderr_to_terminal:
        done = subprocess.run(
            [sys.executable, "-c", BACKTEST], capture_output=True, text=True, env=_env(**env)
        )
        assert done.returncode == 0, done.stderr
        return done.stderr
    leader, follower = pty.openpty()
    # A 0x0 terminal would give tqdm no columns to draw in.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-c", BACKTEST], stderr=follower, stdout=subprocess.DEVNULL, env=_env()
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert proc.wait() == 0
    return b"".join(chunks).decode(errors="replace")


def test_backtest_bar_in_a_terminal_but_not_in_a_pipe():
    in_terminal = _backtest_stderr(True)
    assert "backtest" in in_terminal and "100%" in in_terminal
    piped = _backtest_stderr(False)
    assert "backtest" not in piped and "%|" not in piped, piped


def test_environment_variable_silences_bars(monkeypatch):
    from bayes_ssm.inference import progress as _progress

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    monkeypatch.delenv("BAYES_SSM_PROGRESS", raising=False)
    assert _progress.show_progress(True) and not _progress.show_progress(False)
    monkeypatch.setenv("BAYES_SSM_PROGRESS", "0")
    assert not _progress.show_progress(True)


def test_fit_in_a_jupyter_kernel_shows_progress_and_no_warning():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    cells = [
        "import warnings\nwarnings.simplefilter('always')\n"
        "import numpy as np, pandas as pd, bayes_ssm as bs",
        "y = pd.Series(np.sin(np.arange(40) / 3.0), "
        "index=pd.date_range('2020-01-06', periods=40, freq='W-MON'))\n"
        "fit = bs.fit_svi(bs.StructuralTS(trend=None), y, key=0, steps=200, "
        "check_every=100, num_samples=10)",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    old = os.environ.copy()
    os.environ.clear()
    os.environ.update(_env())
    try:
        client = nbclient.NotebookClient(
            nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
        )
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    outputs = [o for c in nb.cells for o in c.outputs]
    text = "\n".join(
        o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in outputs
    )
    # A widget bar (ipywidgets installed) or tqdm's text bar on stderr (it is not): either way
    # the SVI bar reached the notebook, and no warning came with it.
    assert "SVI (normal)" in text, outputs
    assert "Warning" not in text and "IProgress" not in text, text
