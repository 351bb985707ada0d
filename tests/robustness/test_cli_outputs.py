"""Every CLI output is written atomically and checked before the fit; dates and ids are read as
the text they are (issue 13: ``--out`` was written in place, a kill left it empty or half
written; integer dates became nanoseconds after 1970; dd/mm/yyyy monthly dates were read as
January days; ids "02134" came out as 2134 and "1", "01", "1.0" were refused)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayes_ssm import cli
from bayes_ssm.cli._io import parse_date_column, read_long_csv, read_series_csv

ROOT = Path(__file__).resolve().parents[2]

WRITER = textwrap.dedent(
    """
    import sys, numpy as np, pandas as pd
    from bayes_ssm.cli._common import write_csv
    frame = pd.DataFrame(np.random.default_rng(0).normal(size=(3_000_000, 4)))
    print("ready", flush=True)
    write_csv(frame, sys.argv[1])
    """
)


def _start_writer(target: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target)], env=env, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 60
    while not any(p.name.endswith(".tmp") for p in target.parent.iterdir()):
        assert time.monotonic() < deadline and proc.poll() is None, "the writer never started"
        time.sleep(0.01)
    time.sleep(0.2)  # mid-write
    return proc


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_the_previous_output_survives_a_kill_mid_write(tmp_path, sig):
    target = tmp_path / "forecast.csv"
    target.write_text("date,mean\n2020-01-01,1.5\n")
    proc = _start_writer(target)
    proc.send_signal(sig)
    proc.wait(timeout=30)
    assert proc.returncode == -sig  # killed, not finished
    assert target.read_text() == "date,mean\n2020-01-01,1.5\n"
    left = [p.name for p in tmp_path.iterdir() if p.name != "forecast.csv"]
    if sig == signal.SIGTERM:
        assert left == []  # the writer removed its temporary file itself
    else:
        assert len(left) == 1  # SIGKILL cannot be handled: the next write removes it
        from bayes_ssm.cli._common import write_csv

        write_csv(pd.DataFrame({"a": [1]}), target, index=False)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["forecast.csv"]
        assert target.read_text() == "a\n1\n"


def _weekly_csv(path: Path, dates) -> Path:
    values = 10 + np.sin(np.arange(len(dates)))
    pd.DataFrame({"date": dates, "value": values}).to_csv(path, index=False)
    return path


def test_unwritable_outputs_are_refused_before_the_fit(tmp_path, monkeypatch, capsys):
    csv = _weekly_csv(tmp_path / "y.csv", pd.date_range("2020-01-04", periods=30, freq="W-SAT"))
    blocker = tmp_path / "file"
    blocker.write_text("")

    def no_fit(*args, **kwargs):
        raise AssertionError("the fit ran before the outputs were checked")

    monkeypatch.setattr("bayes_ssm.inference.fitting.fit_svi", no_fit)
    # the CLI sets one CPU device per chain before JAX starts; in a test process that would
    # change every later NUTS run of the suite
    monkeypatch.setattr("bayes_ssm.cli._common.set_chain_devices", lambda chains: None)
    base = ["forecast", "--csv", str(csv), "--date-col", "date", "--value-col", "value"]
    base += ["--horizon", "2", "--method", "svi", "--quiet"]
    for extra, message in [
        (["--out", str(blocker / "out.csv")], "cannot create its folder"),
        (["--out", str(tmp_path)], "is a folder"),
        (["--plot", str(tmp_path / "fan.xyz")], "unknown figure format"),
        (["--horizon", "100000000"], "GiB, above"),
    ]:
        with pytest.raises(SystemExit) as err:
            cli.main(base + extra)
        assert err.value.code == 2
        assert message in capsys.readouterr().err


def test_integer_dates_stay_integers(tmp_path):
    csv = _weekly_csv(tmp_path / "y.csv", [*range(1990, 2010), *range(2015, 2025)])
    y = read_series_csv(csv, "date", "value")
    assert list(y.index[:2]) == [1990, 1991] and y.index.dtype == np.int64


def test_day_first_monthly_dates_are_refused_or_read_as_told(tmp_path):
    months = pd.date_range("2020-01-01", periods=12, freq="MS")
    csv = _weekly_csv(tmp_path / "y.csv", months.strftime("%d/%m/%Y"))
    with pytest.raises(ValueError, match="ambiguous"):
        read_series_csv(csv, "date", "value")
    assert read_series_csv(csv, "date", "value", dayfirst=True).index.equals(months)
    told = read_series_csv(csv, "date", "value", date_format="%d/%m/%Y")
    assert told.index.equals(months)
    with pytest.raises(ValueError, match="do not all match"):
        read_series_csv(csv, "date", "value", date_format="%Y-%m-%d")


def test_compact_dates_need_a_format():
    raw = pd.Series(["20200101", "20200102", "20200103"])
    assert parse_date_column(raw).dtype == np.int64  # whole numbers: integer time
    days = parse_date_column(raw, date_format="%Y%m%d")
    assert days.equals(pd.date_range("2020-01-01", periods=3, freq="D"))


def test_ids_stay_the_strings_they_are(tmp_path):
    rows = []
    for ident in ["02134", "1", "01", "1.0"]:
        for day in range(6):
            rows.append({"unique_id": ident, "ds": f"2020-01-0{day + 1}", "y": float(day)})
    path = tmp_path / "long.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    series = read_long_csv(path, "unique_id", "ds", "y")
    assert sorted(series) == ["01", "02134", "1", "1.0"]
    assert series["02134"].name == "02134"


def test_ids_that_collide_as_text_are_refused():
    from bayes_ssm.data.long_format import split_long

    frame = pd.DataFrame(
        {"unique_id": [1, 1, "1", "1"], "ds": [0, 1, 0, 1], "y": [1.0, 2.0, 3.0, 4.0]}
    )
    with pytest.raises(ValueError, match="same text"):
        split_long(frame)
