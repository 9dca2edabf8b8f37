"""The command line, end to end, in real subprocesses."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from lrbench.cli import main
from lrbench.store import load_runs
from lrbench.suite import load_suite

TINY = """
name = "tiny"
seeds = {seeds}
device = "cpu"

[[problems]]
key = "beale"
steps = {steps}
eval_every = 50

[[optimizers]]
key = "sgd"
lr = 0.01

[[optimizers]]
key = "adam"
lr = 0.05
"""


def test_unknown_optimizer_exits_2_naming_close_keys(tmp_path, lrbench_cli):
    _lrbench = lrbench_cli
    line = _lrbench("run", "--optimizers", "nope", cwd=tmp_path).error_line()
    assert "nope" in line and "sgd" in line
    line = _lrbench("run", "--optimizers", "adma", cwd=tmp_path).error_line()
    assert "did you mean adam" in line
    assert not (tmp_path / "lrbench.sqlite").exists() or load_runs(tmp_path / "lrbench.sqlite").empty


@pytest.mark.parametrize("body, expect", [
    ("name = 'x'\n[[problems]\nkey='beale'\n", "line 2"),
    (TINY.format(seeds=1, steps=5).replace("lr = 0.01", 'lr = "fast"'), "invalid lr: 'fast'"),
    (TINY.format(seeds=1, steps=5).replace("lr = 0.01", "lr = 0.01\nmomentom = 0.9"), "momentom"),
    (TINY.format(seeds=1, steps=5).replace('key = "beale"', 'key = "bael"'), "beale"),
    (TINY.format(seeds=1, steps=5).replace("seeds = 1", "seeds = -1"), "invalid seeds"),
    (TINY.format(seeds=1, steps=5).replace('key = "adam"\nlr = 0.05', 'key = "l4_adam"\nschedule = "sgdr"'),
     "l4_adam adapts its own learning rate"),
    (TINY.format(seeds=1, steps=5).replace("lr = 0.05", 'lr = 0.05\nschedule = "sgdrr"'), "invalid schedule: 'sgdrr'"),
])
def test_bad_suite_exits_2_with_one_line(tmp_path, body, expect, lrbench_cli):
    _lrbench = lrbench_cli
    f = tmp_path / "bad.toml"
    f.write_text(body)
    line = _lrbench("run", str(f), "--db", str(tmp_path / "x.sqlite"), cwd=tmp_path).error_line()
    assert expect in line


def test_list(capsys):
    assert main(["list", "optimizers"]) == 0
    out = capsys.readouterr().out
    assert "sgd" in out and "adam" in out
    assert main(["list", "problems"]) == 0
    out = capsys.readouterr().out
    for key in ("beale", "bukin6", "illcond_regression", "mnist_logreg"):
        assert key in out
    assert main(["list", "suites"]) == 0
    assert "default" in capsys.readouterr().out


def test_run_then_rerun_skips_everything(tmp_path, lrbench_cli):
    _lrbench = lrbench_cli
    f = tmp_path / "tiny.toml"
    f.write_text(TINY.format(seeds=2, steps=50))
    first = _lrbench("run", str(f), "--out", "out", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    df = load_runs(tmp_path / "lrbench.sqlite")
    assert len(df) == 4 and set(df["status"]) == {"ok"}
    board = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "sgd[lr=0.01]" in board and "adam[lr=0.05]" in board
    again = _lrbench("run", str(f), "--out", "out", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "4 already recorded" in again.stdout
    rows = sqlite3.connect(tmp_path / "lrbench.sqlite").execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    assert rows == 4
    # --seeds widens the sweep: only the new seed runs
    third = _lrbench("run", str(f), "--seeds", "3", "--out", "out", cwd=tmp_path)
    assert "4 already recorded" in third.stdout
    assert len(load_runs(tmp_path / "lrbench.sqlite")) == 6


def test_kill_9_loses_no_finished_run(tmp_path, lrbench_cli):
    _lrbench = lrbench_cli
    f = tmp_path / "tiny.toml"
    # ~40 short runs: enough that the sweep is still going when three are on disk, cheap to finish.
    f.write_text(TINY.format(seeds=20, steps=150))
    db = tmp_path / "lrbench.sqlite"
    cmd = [sys.executable, "-m", "lrbench.cli", "run", str(f), "--db", str(db)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 900
    n = 0
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
        if db.exists():
            try:
                n = sqlite3.connect(db, timeout=1).execute("SELECT COUNT(*) FROM runs").fetchone()[0]
            except sqlite3.OperationalError:
                continue
            if n >= 3:
                break
    assert proc.poll() is None, "the sweep finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    survived = len(load_runs(db))
    assert survived >= 3
    again = _lrbench("run", str(f), "--db", str(db), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"{survived} already recorded" in again.stdout
    keys = [row[0] for row in sqlite3.connect(db).execute("SELECT run_key FROM runs")]
    expected = {c.run_key for c in load_suite(str(f)).configs()}
    assert len(keys) == len(set(keys)) == 40
    assert set(keys) == expected


def test_report_on_missing_db_exits_2(tmp_path, lrbench_cli):
    _lrbench = lrbench_cli
    line = _lrbench("report", "--db", str(tmp_path / "none.sqlite"), cwd=tmp_path).error_line()
    assert "no results database" in line
