"""The command line as a new user and a hostile one use it: every bad input is one line and
exit 2 (or it just works), faults inside runs are recorded runs, signals end it cleanly."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from lrbench.store import load_runs

TINY = """
name = "tiny"
seeds = 1
device = "cpu"

[[problems]]
key = "beale"
size = "smoke"
steps = 5
eval_every = 5

[[optimizers]]
key = "sgd"
lr = 0.01
"""

PLUGINS = '''
import torch
from lrbench.problems.beale import Beale


class FarBeale(Beale):
    """Beale from another start: a subclass that inherits Beale's registry key."""
    start = (-2.0, 2.0)


class Quits(torch.optim.SGD):
    """An optimizer whose step calls sys.exit, as a careless plug-in might."""
    def __init__(self, params, lr=0.01):
        super().__init__(params, lr=lr)

    def step(self, closure=None):
        raise SystemExit(3)


class Tagged(torch.optim.SGD):
    """SGD with a free-text hyper-parameter (it ends up in the run's name)."""
    def __init__(self, params, lr=0.01, tag=""):
        super().__init__(params, lr=lr)
'''


def _suite(tmp_path, text=TINY, name="s.toml"):
    f = tmp_path / name
    f.write_text(text)
    return str(f)


@pytest.fixture
def plugins(tmp_path):
    (tmp_path / "myplugins.py").write_text(PLUGINS)
    (tmp_path / "raises_on_import.py").write_text("raise RuntimeError('broken plug-in')\n")
    (tmp_path / "exits_on_import.py").write_text("import sys\nsys.exit(4)\n")
    yield tmp_path
    for mod in ("myplugins", "raises_on_import", "exits_on_import"):
        sys.modules.pop(mod, None)


def test_a_problem_subclass_given_as_module_class_runs_as_itself(plugins, lrbench_cli):
    done = lrbench_cli("run", _suite(plugins), "--problems", "myplugins:FarBeale", cwd=plugins)
    assert done.returncode == 0, done.stderr
    df = load_runs(plugins / "lrbench.sqlite")
    assert df["problem"].tolist() == ["myplugins:FarBeale"]
    sys.path.insert(0, str(plugins))
    try:
        from myplugins import FarBeale
    finally:
        sys.path.remove(str(plugins))
    import torch

    from lrbench.problems.beale import Beale
    from lrbench.store import load_curves

    first = load_curves(plugins / "lrbench.sqlite", df.run_key[0])["train_loss"][0]
    own = float(FarBeale(size="smoke").build(0, torch.device("cpu")).evaluate(None)["train_loss"])
    parent = float(Beale(size="smoke").build(0, torch.device("cpu")).evaluate(None)["train_loss"])
    assert first == own and abs(own - parent) > 10  # Beale's start (1, 1.5) is at f ≈ 41


def test_a_plugin_that_calls_sys_exit_is_a_failed_run_and_the_sweep_goes_on(plugins, lrbench_cli):
    done = lrbench_cli("run", _suite(plugins), "--optimizers", "myplugins:Quits,sgd", cwd=plugins)
    assert done.returncode == 0, done.stderr
    df = load_runs(plugins / "lrbench.sqlite").set_index("optimizer")
    assert df.loc["myplugins:Quits", "status"] == "failed"
    assert df.loc["myplugins:Quits", "message"].startswith("SystemExit")
    assert df.loc["sgd", "status"] == "ok"


@pytest.mark.parametrize("key, expect", [
    ("raises_on_import:X", "RuntimeError: broken plug-in"),
    ("exits_on_import:X", "SystemExit"),
    ("builtins:print", "not a subclass of torch.optim"),
    ("os:path", "not a subclass"),
    ("no_such_module_here:X", "No module named"),
])
def test_optimizers_that_cannot_load_are_one_line(plugins, lrbench_cli, key, expect):
    line = lrbench_cli("run", _suite(plugins), "--optimizers", key, cwd=plugins).error_line()
    assert key in line and expect in line


def test_the_working_folder_is_importable_for_module_class(tmp_path, lrbench_cli):
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "sign_sgd.py").write_text(textwrap.dedent('''
        import torch

        class SignSGD(torch.optim.Optimizer):
            def __init__(self, params, lr=1e-3):
                super().__init__(params, {"lr": lr})

            @torch.no_grad()
            def step(self, closure):
                with torch.enable_grad():
                    loss = closure()
                for group in self.param_groups:
                    for p in group["params"]:
                        if p.grad is not None:
                            p.add_(p.grad.sign(), alpha=-group["lr"])
                return loss
    '''))
    try:
        done = lrbench_cli("run", _suite(tmp_path), "--optimizers", "mypkg.sign_sgd:SignSGD", cwd=tmp_path)
    finally:
        for mod in ("mypkg", "mypkg.sign_sgd"):
            sys.modules.pop(mod, None)
    assert done.returncode == 0, done.stderr
    assert load_runs(tmp_path / "lrbench.sqlite")["status"].tolist() == ["ok"]


def test_missing_data_is_refused_before_any_run(tmp_path, lrbench_cli, monkeypatch):
    data = tmp_path / "data"
    done = lrbench_cli("run", "--problems", "cifar10_lenet5", "--optimizers", "sgd", "--seeds", "1",
                       "--data-dir", str(data), cwd=tmp_path)
    line = done.error_line()
    assert "CIFAR10 is not in" in line and "--data-dir" in line
    assert not (tmp_path / "lrbench.sqlite").exists() or load_runs(tmp_path / "lrbench.sqlite").empty
    assert not data.exists() or not any(data.rglob("*"))  # no empty dataset folders left behind


def test_a_validation_objective_on_a_problem_without_a_validation_split_is_refused(tmp_path, lrbench_cli):
    line = lrbench_cli("run", "--problems", "illcond_regression", "--optimizers", "marthe", "--seeds", "1",
                       cwd=tmp_path).error_line()
    assert "validation" in line and 'objective = "train"' in line


def test_a_misspelt_hyper_parameter_names_the_optimizer_and_the_closest(tmp_path, lrbench_cli):
    line = lrbench_cli("run", _suite(tmp_path, TINY.replace("lr = 0.01", "lrr = 0.1")), cwd=tmp_path).error_line()
    assert "optimizer sgd" in line and "'lrr'" in line and "did you mean 'lr'" in line and "momentum" in line


@pytest.mark.parametrize("edit, expect", [
    (("seeds = 1", "seeds = [0, 0]"), None),
    (("steps = 5", "steps = true"), "invalid steps"),
    (("steps = 5", "steps = 100000000"), "invalid steps"),
    (("lr = 0.01", "lr = 0.01\nwhen = 1979-05-27"), "TOML date"),
    (("lr = 0.01", "lr = 0.01\nschedule = { name = \"sgdr\", t0 = 0 }"), "invalid t0"),
    (("lr = 0.01", "lr = 0.01\nschedule = { name = \"staircase\", every_epochs = 0 }"), "invalid every_epochs"),
    (("lr = 0.01", "lr = 0.01\nschedule = { name = \"multistep\", gamma = 1e308 }"), "invalid gamma"),
    (("lr = 0.01", "lr = 0.01\nschedule = { name = \"sgdr\", min_factor = nan }"), "invalid min_factor"),
    (("lr = 0.01", "lr = 0.01\ntune = { lr = { low = 1e-300, high = 1e300 } }"), "at most 1000"),
    (("device = \"cpu\"", "device = \"cpu\"\n[robustness]\nlow = 1e-300\nhigh = 1e300"), "at most 1000"),
    (("lr = 0.01", "lr = " + "[" * 2000 + "]" * 2000), "nested too deeply"),
    (("name = \"tiny\"", "name = \"" + "n" * 1_000_000 + "\""), "invalid name"),
])
def test_repros_of_bad_suites(tmp_path, lrbench_cli, edit, expect):
    t0 = time.perf_counter()
    done = lrbench_cli("run", _suite(tmp_path, TINY.replace(*edit)), cwd=tmp_path)
    assert time.perf_counter() - t0 < 30
    if expect is None:  # seeds = [0, 0]: seed 0 runs once
        assert done.returncode == 0, done.stderr
        assert len(load_runs(tmp_path / "lrbench.sqlite")) == 1
    else:
        assert expect in done.error_line()


@pytest.mark.parametrize("args, expect", [
    (["--seeds", "99999999999999999999"], "invalid seeds"),
    (["--seeds", "1000000000"], "invalid seeds"),
    (["--seeds", "0"], "invalid seeds"),
    (["--seeds", "x"], "not an integer"),
    (["--out", "/dev/null"], "not a directory"),
    (["--db", ""], "invalid database path"),
])
def test_repros_of_bad_arguments(tmp_path, lrbench_cli, args, expect):
    assert expect in lrbench_cli("run", _suite(tmp_path), *args, cwd=tmp_path).error_line()


def test_report_of_an_empty_file_and_of_a_foreign_database(tmp_path, lrbench_cli):
    (tmp_path / "empty.sqlite").touch()
    done = lrbench_cli("report", "--db", "empty.sqlite", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    sqlite3.connect(tmp_path / "other.sqlite").execute("CREATE TABLE runs (id INTEGER, payload TEXT)")
    assert "not lrbench's" in lrbench_cli("report", "--db", "other.sqlite", cwd=tmp_path).error_line()
    (tmp_path / "afile").write_text("x")
    assert "not a directory" in lrbench_cli("report", "--db", "empty.sqlite", "--out", "afile/sub",
                                            cwd=tmp_path).error_line()
    (tmp_path / "odir" / "leaderboard.md").mkdir(parents=True)
    line = lrbench_cli("report", "--db", "empty.sqlite", "--out", "odir", cwd=tmp_path).error_line()
    assert line.endswith("Is a directory: " + str(tmp_path / "odir" / "leaderboard.md"))
    assert [p.name for p in (tmp_path / "odir").iterdir()] == ["leaderboard.md"]  # no temporary left


def test_names_with_rich_markup_show_as_written(plugins, lrbench_cli):
    suite = TINY.replace('key = "sgd"', 'key = "myplugins:Tagged"\ntag = "[/x][bold]"')
    done = lrbench_cli("run", _suite(plugins, suite), cwd=plugins)
    assert done.returncode == 0, done.stderr
    assert "beale[size=smoke]/myplugins:Tagged[lr=0.01,tag=[/x][bold]]" in done.stdout  # the bar cuts at 60


def test_help_and_version_do_not_import_torch():
    code = ("import sys, io, contextlib\nfrom lrbench.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    for args in (['--help'], ['--version'], ['run', '--help']):\n"
            "        try:\n            main(args)\n        except SystemExit:\n            pass\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
    version = subprocess.run([sys.executable, "-m", "lrbench", "--version"], capture_output=True, text=True,
                             timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("lrbench ")


def _start(tmp_path, seeds: int, steps: int):
    suite = _suite(tmp_path, TINY.replace("seeds = 1", f"seeds = {seeds}").replace("steps = 5", f"steps = {steps}")
                   .replace('size = "smoke"\n', ""))
    return subprocess.Popen([sys.executable, "-m", "lrbench", "run", suite, "--vectorize", "off"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_mid_sweep_say_so_and_keep_finished_runs(tmp_path, sig):
    proc = _start(tmp_path, seeds=200, steps=300)
    db = tmp_path / "lrbench.sqlite"
    deadline = time.time() + 300
    n = 0
    while time.time() < deadline and proc.poll() is None and n < 2:
        time.sleep(0.05)
        try:
            n = sqlite3.connect(db, timeout=1).execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        except sqlite3.OperationalError:
            continue
    assert proc.poll() is None, "the sweep ended before the signal"
    proc.send_signal(sig)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 128 + sig, err
    assert err.strip().splitlines() == [f"lrbench: terminated by {signal.Signals(sig).name}; every finished run is saved"]
    assert len(load_runs(db)) >= 2
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0


def test_ctrl_c_while_torch_is_imported_is_one_line(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "lrbench", "list", "optimizers"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)  # inside `import torch` (seconds), well after the interpreter started
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["lrbench: interrupted; every finished run is saved"]
