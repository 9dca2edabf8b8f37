"""The store under faults: concurrent sweeps, held locks, a full disk, files that are not
lrbench databases, read-only archives. Each fault is one line and exit 2, or it just works;
nothing recorded before it is lost."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import lrbench.store as store_mod
from lrbench.runner import run_one
from lrbench.spec import Budget, OptimizerSpec, ProblemSpec, RunConfig
from lrbench.store import Store, StoreError, load_curves, load_runs
from lrbench.suite import load_suite
from lrbench.sweep import sweep
from test_cli import TINY as SUITE  # beale × sgd, adam; {seeds} and {steps}

def _cfg(seed=0, lr=0.01, steps=20):
    return RunConfig("t", ProblemSpec("beale"), OptimizerSpec("sgd", {"lr": lr}), seed, "cpu", Budget(steps, 5))


def _keys(db) -> list[str]:
    return [r[0] for r in sqlite3.connect(db).execute("SELECT run_key FROM runs")]


def test_concurrent_sweeps_record_each_run_once(tmp_path):
    """Two ``lrbench run`` of one suite on one database, started together, and a third 1 s
    later: every run key is recorded exactly once, and each sweep returns when all are."""
    f = tmp_path / "s.toml"
    f.write_text(SUITE.format(seeds=8, steps=300))
    db = tmp_path / "r.sqlite"
    cmd = [sys.executable, "-m", "lrbench", "run", str(f), "--db", str(db), "--vectorize", "off"]
    procs = [subprocess.Popen(cmd + ["--out", f"out{i}"], cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    time.sleep(1.0)
    procs.append(subprocess.Popen(cmd + ["--out", "out2"], cwd=tmp_path, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [o[1] for o in outs]
    keys = _keys(db)
    expected = {c.run_key for c in load_suite(str(f)).configs()}
    assert len(keys) == len(set(keys)) == 16 and set(keys) == expected
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0


def test_a_run_claimed_by_a_live_sweep_is_left_to_it_then_taken_over_once_it_dies(tmp_path):
    db = tmp_path / "r.sqlite"
    configs = [_cfg(seed) for seed in range(3)]
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)"])
    with Store(db) as s:  # a claim as another sweep's process would hold it
        s.conn.execute("INSERT INTO claims VALUES (?, ?, ?, ?, ?, ?)",
                       (configs[1].run_key, "other", s.host, holder.pid, store_mod._process_start(holder.pid),
                        time.time()))
    waits = []
    t0 = time.perf_counter()
    with Store(db) as s:
        counts = sweep(configs, s, vectorize=False, on_wait=waits.append, poll_s=0.1)
    assert counts["ok"] == 3 and waits and waits[0] == 1
    assert time.perf_counter() - t0 >= 1.0  # it waited for the holder's process to end
    holder.wait()
    assert sorted(_keys(db)) == sorted(c.run_key for c in configs)


def test_a_run_another_sweep_records_while_this_one_waits_is_not_run_again(tmp_path):
    db = tmp_path / "r.sqlite"
    configs = [_cfg(0), _cfg(1)]
    with Store(db) as other:
        other.claim([configs[1].run_key])
        result = run_one(configs[1])
        timer = threading.Timer(0.5, other.append, args=(result,))
        timer.start()
        with Store(db) as s:
            counts = sweep(configs, s, vectorize=False, poll_s=0.1)
        timer.join()
    assert counts["ok"] == 1
    assert sorted(_keys(db)) == sorted(c.run_key for c in configs)


def test_duplicate_configs_run_once(tmp_path):
    db = tmp_path / "r.sqlite"
    c = _cfg()
    with Store(db) as s:
        counts = sweep([c, c, _cfg(1), c], s, vectorize=True)
    assert sum(counts.values()) == 2
    assert len(_keys(db)) == 2


def test_a_held_write_lock_is_waited_for_and_the_finished_run_kept(tmp_path, monkeypatch):
    """Another process holds the write lock for longer than SQLite's busy timeout: the append
    waits (and says so once), then records the run."""
    monkeypatch.setattr(store_mod, "BUSY_TIMEOUT_S", 0.2)
    db = tmp_path / "r.sqlite"
    Store(db).close()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sqlite3, sys, time
        c = sqlite3.connect({str(db)!r}, isolation_level=None)
        c.execute("BEGIN IMMEDIATE")
        print("locked", flush=True)
        time.sleep(2.0)
        c.execute("COMMIT")
    """)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    told = []
    result = run_one(_cfg())
    t0 = time.perf_counter()
    with Store(db, on_wait=told.append) as s:
        s.append(result)
    assert time.perf_counter() - t0 >= 1.0
    holder.wait()
    assert len(told) == 1 and "write lock" in told[0]
    assert _keys(db) == [result.config.run_key]


def test_a_full_disk_is_one_error_and_keeps_what_was_recorded(tmp_path):
    db = tmp_path / "r.sqlite"
    first = run_one(_cfg(0))
    with Store(db) as s:
        s.append(first)
        pages = s.conn.execute("PRAGMA page_count").fetchone()[0]
        s.conn.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own 'database or disk is full'
        big = run_one(_cfg(1, steps=2000))
        with pytest.raises(StoreError, match="full"):
            s.append(big)
    df = load_runs(db)
    assert df["run_key"].tolist() == [first.config.run_key]
    assert load_curves(db, first.config.run_key)["train_loss"].tolist() == first.curves["train_loss"]


@pytest.mark.parametrize("make, expect", [
    (lambda p: p.write_bytes(os.urandom(4096)), "not an lrbench results database"),
    (lambda p: p.write_text("step,loss\n1,2\n" * 50), "not an lrbench results database"),
    (lambda p: sqlite3.connect(p).execute("CREATE TABLE users (name TEXT)"), "another program"),
    (lambda p: sqlite3.connect(p).execute("CREATE TABLE runs (x INTEGER)"), "not lrbench's"),
])
def test_a_file_that_is_not_an_lrbench_database_is_refused_and_left_unchanged(tmp_path, make, expect):
    db = tmp_path / "x.sqlite"
    make(db)
    before = db.read_bytes()
    with pytest.raises(StoreError, match=expect):
        Store(db)
    with pytest.raises(StoreError, match=expect):
        load_runs(db)
    assert db.read_bytes() == before  # no lrbench tables added to someone else's database


def test_a_truncated_database_is_one_error(tmp_path):
    db = tmp_path / "r.sqlite"
    with Store(db) as s:
        for seed in range(3):
            s.append(run_one(_cfg(seed, steps=500)))
    cut = tmp_path / "cut.sqlite"
    cut.write_bytes(db.read_bytes()[: db.stat().st_size // 2])
    with pytest.raises(StoreError):
        load_runs(cut)


@pytest.mark.parametrize("path, expect", [("", "''"), (".", "is a directory"), ("/dev/null", "not a regular file"),
                                          ("nodir/r.sqlite", "no such directory")])
def test_paths_that_cannot_be_a_database(tmp_path, monkeypatch, path, expect):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreError, match=expect):
        Store(path)


def test_an_empty_file_is_an_empty_database(tmp_path):
    db = tmp_path / "e.sqlite"
    db.touch()
    assert load_runs(db).empty
    with Store(db) as s:
        s.append(run_one(_cfg()))
    assert len(load_runs(db)) == 1


def _without_dac_override() -> list[str]:
    """A command prefix under which root, too, obeys file permissions (setpriv drops the
    capabilities that let root write anywhere); none is needed for another user."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    assert setpriv, "root needs setpriv (util-linux) to test a read-only folder"
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}"]


def test_a_database_in_a_read_only_folder_can_be_read(tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    db = archive / "r.sqlite"
    with Store(db) as s:
        for seed in range(2):
            s.append(run_one(_cfg(seed)))
    db.chmod(0o444)
    archive.chmod(0o555)
    try:
        out = subprocess.run(_without_dac_override() + [
            sys.executable, "-c",
            "import sys, lrbench\n"
            "try:\n    open(sys.argv[1] + '/probe', 'w')\nexcept PermissionError:\n    pass\n"
            "else:\n    sys.exit('the folder is writable: the test would not test anything')\n"
            "df = lrbench.load_runs(sys.argv[1] + '/r.sqlite')\n"
            "print(len(df), len(lrbench.load_curves(sys.argv[1] + '/r.sqlite', df.run_key[0])))",
            str(archive)], capture_output=True, text=True, timeout=120)
    finally:
        archive.chmod(0o755)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2", "5"]
