"""Executors (issue 16): the local worker pool and Ray give the numbers of the inline executor,
and faults (a hang, a killed worker, a memory limit, a killed driver, Ctrl-C) are runs, not
crashes. Everything here is the real component: real worker processes, a real local Ray."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lrbench.cli import main
from lrbench.executors.inline import Inline
from lrbench.executors.local import LocalPool, death_cause
from lrbench.progress import seed_ranges, task_name
from lrbench.spec import Budget, Execution, OptimizerSpec, ProblemSpec, RunConfig
from lrbench.store import Store
from lrbench.suite import SuiteError, load_suite, with_execution
from lrbench.sweep import sweep
from lrbench.worker import MEMORY_EXIT

TESTS = Path(__file__).resolve().parent


def _cfg(problem="beale", key="sgd", hp=None, seed=0, steps=40):
    return RunConfig("ex", ProblemSpec(problem), OptimizerSpec(key, hp or {"lr": 0.01}), seed, "cpu",
                     Budget(steps, 10))


def _mixed() -> list[RunConfig]:
    """Batches of seeds (sgd, adam on beale) and runs of their own (an LR-free wrapper, a
    schedule, illcond_regression)."""
    out = []
    for seed in (0, 1):
        out += [_cfg("beale", "sgd", {"lr": 0.01}, seed), _cfg("beale", "adam", {"lr": 0.05}, seed)]
    for seed in (0, 1):
        out += [_cfg("illcond_regression", "sgd", {"lr": 0.01, "schedule": "sgdr"}, seed),
                _cfg("illcond_regression", "dadapt_sgd", {}, seed)]
    return out


def _records(db) -> dict[str, tuple]:
    """Per run key: everything but timings, memory and the environment."""
    con = sqlite3.connect(db)
    rows = con.execute("SELECT r.run_key, r.status, r.message, r.steps, r.final, r.best, r.steps_to_threshold, "
                       "r.forward, r.backward, r.state_bytes, r.env, c.columns FROM runs r "
                       "JOIN curves c ON c.run_id = r.id").fetchall()
    con.close()
    out = {}
    for key, *rest, env, cols in rows:
        curves = {k: v for k, v in json.loads(cols).items() if k != "time_s"}
        out.setdefault(key, []).append((*rest, json.loads(env).get("threads"), json.dumps(curves, sort_keys=True)))
    return out


def _run(configs, db, executor, vectorize=True):
    with Store(db) as store:
        return sweep(configs, store, executor=executor, vectorize=vectorize)


def test_a_pool_of_workers_records_the_numbers_of_the_inline_executor(tmp_path):
    configs = _mixed()
    _run(configs, tmp_path / "inline.sqlite", Inline(threads=1))
    counts = _run(configs, tmp_path / "pool.sqlite", LocalPool(2, threads=1))
    assert counts == {"ok": len(configs)}
    a, b = _records(tmp_path / "inline.sqlite"), _records(tmp_path / "pool.sqlite")
    assert set(a) == {c.run_key for c in configs} and a == b
    assert all(rec[0][-2] == 1 for rec in b.values())  # the thread count is recorded with each run


def test_ray_records_the_numbers_of_the_local_executors(tmp_path):
    pytest.importorskip("ray", reason="the ray extra is not installed (.ci/run installs it)")
    suite = tmp_path / "s.toml"
    suite.write_text(textwrap.dedent("""
        name = "ray"
        seeds = 2
        device = "cpu"
        [[problems]]
        key = "beale"
        steps = 40
        eval_every = 10
        [[problems]]
        key = "illcond_regression"
        steps = 40
        eval_every = 10
        [[optimizers]]
        key = "sgd"
        lr = 0.01
        [[optimizers]]
        key = "dadapt_sgd"
    """))
    common = ["run", str(suite), "--threads", "1", "--out", str(tmp_path / "rep")]
    assert main([*common, "--db", str(tmp_path / "local.sqlite"), "--workers", "2"]) == 0
    assert main([*common, "--db", str(tmp_path / "ray.sqlite"), "--backend", "ray", "--workers", "2"]) == 0
    assert main([*common, "--db", str(tmp_path / "one.sqlite"), "--workers", "1"]) == 0
    local, ray_, one = (_records(tmp_path / f"{n}.sqlite") for n in ("local", "ray", "one"))
    assert len(local) == 8 and local == ray_ == one


def test_a_hanging_run_is_stopped_at_its_time_limit_and_the_sweep_goes_on(tmp_path):
    configs = [_cfg(key="plugins:Hang"), _cfg(seed=0), _cfg(seed=1, key="adam")]
    t0 = time.monotonic()
    counts = _run(configs, tmp_path / "t.sqlite", LocalPool(2, threads=1, timeout_s=4), vectorize=False)
    assert time.monotonic() - t0 < 60
    assert counts == {"ok": 2, "timeout": 1}
    (rec,) = _records(tmp_path / "t.sqlite")[configs[0].run_key]
    assert rec[0] == "timeout" and "time limit of 4 s" in rec[1]


def test_a_worker_killed_mid_run_is_a_failed_run_and_a_rerun_retries_it(tmp_path):
    marker = tmp_path / "killed"
    victim = _cfg(key="plugins:KillsItsWorker", hp={"lr": 0.01, "marker": str(marker)})
    configs = [_cfg(seed=s) for s in range(3)] + [victim] + [_cfg(key="adam", seed=s) for s in range(3)]
    db = tmp_path / "k.sqlite"
    counts = _run(configs, db, LocalPool(2, threads=1), vectorize=False)
    assert marker.exists() and counts == {"ok": 6, "failed": 1}
    (rec,) = _records(db)[victim.run_key]
    assert rec[0] == "failed" and rec[1] == "worker died: killed by SIGKILL (out of memory?)"
    assert _run(configs, db, LocalPool(2, threads=1), vectorize=False) == {"ok": 1}  # only the failed one reran
    assert [r[0] for r in _records(db)[victim.run_key]] == ["failed", "ok"]


def test_a_run_over_its_memory_limit_fails_with_that_cause(tmp_path):
    configs = [_cfg(key="plugins:Hog", steps=200), _cfg()]
    counts = _run(configs, tmp_path / "m.sqlite", LocalPool(1, threads=1, max_memory_mb=1500), vectorize=False)
    assert counts == {"failed": 1, "ok": 1}
    (rec,) = _records(tmp_path / "m.sqlite")[configs[0].run_key]
    assert rec[1].startswith("memory limit: over 1500 MiB")


def test_the_causes_of_a_worker_death_are_named():
    assert death_cause(-signal.SIGSEGV, None) == "worker died: killed by SIGSEGV"
    assert death_cause(3, None) == "worker died: exit status 3"
    assert death_cause(MEMORY_EXIT, 100) == "memory limit: over 100 MiB"


def test_cpu_memory_does_not_depend_on_what_ran_before_in_the_process(tmp_path):
    # in a fresh process (the first run of a process used to be charged 160 MiB, every later one 0)
    probe = _cfg("mnist_mlp_1000x2", "adam", {"lr": 0.001}, 0, steps=20)
    between = [_cfg("mnist_logreg", "adam", {"lr": 0.01}, s, steps=30) for s in range(2)]
    between += [_cfg("mnist_lenet5", "adam", {"lr": 0.01}, 0, steps=5)]
    db = tmp_path / "mem.sqlite"
    again = dataclasses.replace(probe, suite="again")  # the same run under another key
    _run([probe, *between, again], db, LocalPool(1, threads=1), vectorize=False)
    con = sqlite3.connect(db)
    first, last = (con.execute("SELECT peak_memory_bytes FROM runs WHERE run_key = ?", (c.run_key,)).fetchone()[0]
                   for c in (probe, again))
    con.close()
    # Adam on the 784-1000-1000-10 MLP: gradients and two moments of 1.8 M float32 parameters
    # are 20.6 MiB, besides activations and the update's temporaries (28.2-28.5 MiB measured in
    # 9 such runs, 2026-12-03); the growth of the process's peak RSS gave 0 B after a bigger run
    assert 20.6 * 2**20 < first < 40 * 2**20, first
    assert abs(last - first) <= 0.1 * first, (first, last)


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.add(c)
            todo.append(c)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


_SLOW_SUITE = """
    name = "slow"
    seeds = 4
    device = "cpu"
    [[problems]]
    key = "mnist_logreg"
    steps = 300
    eval_every = 100
    [[optimizers]]
    key = "dadapt_sgd"
    [[optimizers]]
    key = "prodigy"
"""


def _driver(tmp_path, *extra):
    suite = tmp_path / "slow.toml"
    suite.write_text(textwrap.dedent(_SLOW_SUITE))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}
    return subprocess.Popen([sys.executable, "-m", "lrbench", "run", str(suite), "--db", str(tmp_path / "d.sqlite"),
                             "--out", str(tmp_path / "rep"), "--workers", "2", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, start_new_session=True)


def _wait_for_records(db: Path, n: int, proc, limit_s=120) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        if db.exists():
            try:
                con = sqlite3.connect(db)
                have = con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
                con.close()
                if have >= n:
                    return
            except sqlite3.Error:
                pass
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.1)
    raise AssertionError("no run was recorded in time")


def _driver_with_a_record(tmp_path):
    """A driver of the slow suite once it has recorded a run, its database and its workers."""
    db = tmp_path / "d.sqlite"
    proc = _driver(tmp_path)
    _wait_for_records(db, 1, proc)
    family = _descendants(proc.pid)
    assert family, "the driver has worker processes"
    return db, proc, family


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find the driver's children")
def test_kill_9_of_the_driver_leaves_no_worker_and_a_rerun_records_each_run_once(tmp_path):
    db, proc, family = _driver_with_a_record(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in family) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in family if _alive(p)], "worker processes outlived the driver"
    con = sqlite3.connect(db)
    before = con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    con.close()
    assert 1 <= before < 8
    rerun = _driver(tmp_path)
    assert rerun.wait(300) == 0, rerun.stderr.read().decode()
    con = sqlite3.connect(db)
    counts = con.execute("SELECT run_key, COUNT(*), MIN(status) FROM runs GROUP BY run_key").fetchall()
    con.close()
    assert len(counts) == 8 and all(n == 1 and status == "ok" for _, n, status in counts)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find the driver's children")
def test_ctrl_c_stops_the_workers_and_keeps_every_finished_run(tmp_path):
    db, proc, family = _driver_with_a_record(tmp_path)
    os.killpg(proc.pid, signal.SIGINT)  # what the terminal sends: the whole foreground group
    assert proc.wait(30) == 130
    assert "every finished run is saved" in proc.stderr.read().decode()
    time.sleep(1)
    assert not [p for p in family if _alive(p)]
    con = sqlite3.connect(db)
    rows = con.execute("SELECT status FROM runs").fetchall()
    claims = con.execute("SELECT COUNT(*) FROM claims").fetchone()[0]
    con.close()
    assert rows and all(s == "ok" for (s,) in rows) and claims == 0


def test_progress_names_a_batch_of_seeds_and_prints_a_line_per_run_off_a_terminal(tmp_path, capsys):
    assert seed_ranges([5, 0, 1, 2, 7]) == "0–2, 5, 7"
    batch = [_cfg("mnist_logreg", "adam", {"lr": 0.01}, s) for s in range(6)]
    assert task_name(batch) == "mnist_logreg/adam[lr=0.01] seeds 0–5"
    suite = tmp_path / "p.toml"
    suite.write_text(textwrap.dedent("""
        seeds = 2
        device = "cpu"
        [[problems]]
        key = "beale"
        steps = 20
        eval_every = 10
        [[optimizers]]
        key = "sgd"
        lr = 0.01
        [execution]
        workers = 1
    """))
    assert main(["run", str(suite), "--db", str(tmp_path / "p.sqlite"), "--out", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    assert "in this process" in out
    lines = [ln for ln in out.splitlines() if ln.startswith("[")]
    assert [ln.split(" ")[0:2] for ln in lines] == [["[1/2]", "ok"], ["[2/2]", "ok"]]
    assert lines[0].endswith("beale/sgd[lr=0.01]/seed=0")


def test_execution_settings_from_the_suite_and_the_command_line(tmp_path, capsys):
    suite = tmp_path / "e.toml"
    suite.write_text(textwrap.dedent("""
        [[problems]]
        key = "beale"
        [[optimizers]]
        key = "sgd"
        [execution]
        workers = 3
        timeout_s = 60
        resources = { gpu = 0.25, cpu = 1 }
    """))
    ex = load_suite(str(suite)).execution
    assert ex == Execution(workers=3, timeout_s=60, resources=(("cpu", 1), ("gpu", 0.25)))
    assert with_execution(ex, workers=1).workers == 1 and with_execution(ex, workers=None).workers == 3
    with pytest.raises(SuiteError, match="invalid workers: 0"):
        with_execution(ex, workers=0)
    suite.write_text(suite.read_text().replace("workers = 3", "workers = \"many\""))
    with pytest.raises(SuiteError, match="invalid workers"):
        load_suite(str(suite))
    for bad in (["--workers", "0"], ["--timeout", "-1"], ["--address", "auto"], ["--max-memory", "x"]):
        assert main(["run", "--problems", "beale", "--optimizers", "sgd", "--db", str(tmp_path / "x.sqlite"),
                     *bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("lrbench: error:") and len(err.strip().splitlines()) == 1
