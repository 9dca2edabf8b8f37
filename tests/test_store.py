import sqlite3

import pytest

from lrbench.runner import run_one
from lrbench.spec import Budget, OptimizerSpec, ProblemSpec, RunConfig
from lrbench.store import RUN_COLUMNS, Store, load_curves, load_runs


def _cfg(opt="sgd", hp=None, seed=0):
    return RunConfig("t", ProblemSpec("beale"), OptimizerSpec(opt, hp or {"lr": 0.01}), seed, "cpu", Budget(20, 5))


def test_load_runs_documented_columns(tmp_path):
    db = tmp_path / "r.sqlite"
    with Store(db) as s:
        s.append(run_one(_cfg()))
        s.append(run_one(_cfg("adam", {"lr": 0.05})))
    df = load_runs(db)
    assert len(df) == 2
    for col in RUN_COLUMNS:
        assert col in df.columns, col
    for col in ("final_train_loss", "best_train_loss", "steps_to_1.0", "steps_to_0.0001"):
        assert col in df.columns, col
    assert set(df["status"]) == {"ok"}
    assert df["forward"].tolist() == [20, 20]
    assert df["optimizer_name"].tolist() == ["sgd[lr=0.01]", "adam[lr=0.05]"]


def test_curves_round_trip(tmp_path):
    db = tmp_path / "r.sqlite"
    r = run_one(_cfg())
    with Store(db) as s:
        s.append(r)
    c = load_curves(db, r.config.run_key)
    assert c["step"].tolist() == r.curves["step"]
    assert c["train_loss"].tolist() == r.curves["train_loss"]
    assert c["lr_0"].tolist() == [0.01] * len(c)
    with pytest.raises(KeyError):
        load_curves(db, "nope")


def test_append_only_failed_runs_are_retried(tmp_path):
    db = tmp_path / "r.sqlite"
    failed = run_one(RunConfig("t", ProblemSpec("beale"), OptimizerSpec("plugins:Exploding"), 0, "cpu", Budget(5, 5)))
    assert failed.status == "failed"
    with Store(db) as s:
        s.append(failed)
        assert s.finished_keys() == set()  # a failed run is not final
        ok = run_one(_cfg())
        s.append(ok)
        assert s.finished_keys() == {ok.config.run_key}
    rows = sqlite3.connect(db).execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    assert rows == 2
    df = load_runs(db)
    assert df.loc[df["status"] == "failed", "message"].item().startswith("RuntimeError: boom")
    assert df.loc[df["status"] == "failed", "steps"].item() == 2


def test_missing_database_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no results database"):
        load_runs(tmp_path / "none.sqlite")
