"""The results store: an append-only SQLite database (stdlib ``sqlite3``, WAL mode).

Every finished run is one row of ``runs`` plus its curves, written in one transaction,
so an interrupted sweep (Ctrl-C, ``kill -9``) loses no finished run. Rows are never
updated or deleted: a run that ``failed`` is retried by the next sweep and appended
again; ``ok`` and ``diverged`` runs are final and skipped by run key.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from lrbench.spec import RunResult

__all__ = ["Store", "load_runs", "load_curves", "RUN_COLUMNS"]

FINAL_STATUSES = ("ok", "diverged")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_key TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    suite TEXT NOT NULL,
    problem TEXT NOT NULL,
    problem_name TEXT NOT NULL,
    optimizer TEXT NOT NULL,
    optimizer_name TEXT NOT NULL,
    hparams TEXT NOT NULL,
    seed INTEGER NOT NULL,
    device TEXT NOT NULL,
    budget_steps INTEGER NOT NULL,
    eval_every INTEGER NOT NULL,
    status TEXT NOT NULL,
    message TEXT NOT NULL,
    steps INTEGER NOT NULL,
    wall_time_s REAL,
    median_step_s REAL,
    peak_memory_bytes INTEGER,
    state_bytes INTEGER,
    forward INTEGER,
    backward INTEGER,
    final TEXT NOT NULL,
    best TEXT NOT NULL,
    thresholds TEXT NOT NULL,
    steps_to_threshold TEXT NOT NULL,
    env TEXT NOT NULL,
    result TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_key ON runs(run_key);
CREATE TABLE IF NOT EXISTS curves (
    run_id INTEGER PRIMARY KEY REFERENCES runs(id),
    columns TEXT NOT NULL
);
"""

RUN_COLUMNS = [
    "run_key", "recorded_at", "suite", "problem", "problem_name", "optimizer", "optimizer_name",
    "hparams", "seed", "device", "device_name", "budget_steps", "eval_every", "status",
    "message", "steps", "wall_time_s", "median_step_s", "peak_memory_bytes", "state_bytes",
    "forward", "backward", "vectorized", "thresholds",
]
"""Fixed columns of :func:`load_runs`; it adds ``final_<metric>``, ``best_<metric>`` for
each metric recorded and ``steps_to_<threshold>`` for each threshold."""


def _dumps(obj) -> str:
    return json.dumps(obj, sort_keys=True, allow_nan=True)


class Store:
    """An open results database."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.conn = sqlite3.connect(self.path, timeout=30)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.executescript(_SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def finished_keys(self) -> set[str]:
        """Run keys with a final (``ok`` or ``diverged``) record."""
        q = f"SELECT DISTINCT run_key FROM runs WHERE status IN {FINAL_STATUSES}"
        return {row[0] for row in self.conn.execute(q)}

    def append(self, result: RunResult) -> None:
        """Record one finished run and its curves in a single transaction."""
        c = result.config
        row = {
            "run_key": c.run_key,
            "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "suite": c.suite,
            "problem": c.problem.key,
            "problem_name": c.problem.name,
            "optimizer": c.optimizer.key,
            "optimizer_name": c.optimizer.name,
            "hparams": _dumps(c.optimizer.hparams),
            "seed": c.seed,
            "device": c.device,
            "budget_steps": c.budget.steps,
            "eval_every": c.budget.eval_every,
            "status": result.status,
            "message": result.message,
            "steps": result.steps,
            "wall_time_s": result.wall_time_s,
            "median_step_s": result.median_step_s,
            "peak_memory_bytes": result.peak_memory_bytes,
            "state_bytes": result.state_bytes,
            "forward": result.forward,
            "backward": result.backward,
            "final": _dumps(result.final),
            "best": _dumps(result.best),
            "thresholds": _dumps(list(result.thresholds)),
            "steps_to_threshold": _dumps(result.steps_to_threshold),
            "env": _dumps(result.env.to_dict()),
            "result": _dumps({k: v for k, v in result.to_dict().items() if k != "curves"}),
        }
        cols = ",".join(row)
        marks = ",".join("?" * len(row))
        with self.conn:  # one transaction: the run and its curves, or nothing
            cur = self.conn.execute(f"INSERT INTO runs ({cols}) VALUES ({marks})", list(row.values()))
            self.conn.execute("INSERT INTO curves (run_id, columns) VALUES (?, ?)",
                              (cur.lastrowid, _dumps(result.curves)))


def _connect_ro(db: str | Path) -> sqlite3.Connection:
    path = Path(db)
    if not path.exists():
        raise FileNotFoundError(f"no results database at {path}")
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def load_runs(db: str | Path = "lrbench.sqlite") -> pd.DataFrame:
    """One row per run (its latest record), with the columns of :data:`RUN_COLUMNS` plus
    ``final_<metric>``, ``best_<metric>`` and ``steps_to_<threshold>`` (``NaN`` when the
    threshold was not reached or does not belong to the run's problem)."""
    with _connect_ro(db) as conn:
        df = pd.read_sql_query(
            "SELECT * FROM runs WHERE id IN (SELECT MAX(id) FROM runs GROUP BY run_key) ORDER BY id", conn)
    if df.empty:
        extra = []
        return pd.DataFrame(columns=RUN_COLUMNS + extra)
    env = df["env"].map(json.loads)
    df["device_name"] = env.map(lambda e: e["device_name"])
    df["vectorized"] = df["result"].map(lambda s: json.loads(s).get("vectorized", 1))
    df["hparams"] = df["hparams"].map(json.loads)
    df["thresholds"] = df["thresholds"].map(lambda s: tuple(json.loads(s)))
    wide = []
    for col, prefix in (("final", "final_"), ("best", "best_"), ("steps_to_threshold", "steps_to_")):
        part = pd.DataFrame(df[col].map(json.loads).tolist(), index=df.index).add_prefix(prefix)
        wide.append(part.apply(pd.to_numeric, errors="coerce"))
    out = pd.concat([df[RUN_COLUMNS]] + wide, axis=1)
    return out


def load_curves(db: str | Path, run_key: str) -> pd.DataFrame:
    """The curves of the latest record of ``run_key``: one row per evaluation, with
    ``step``, ``time_s`` (cumulative step time), ``train_loss``, the problem's metrics and
    ``lr_<group>`` (the effective learning rate of each parameter group)."""
    with _connect_ro(db) as conn:
        row = conn.execute(
            "SELECT c.columns FROM curves c JOIN runs r ON r.id = c.run_id "
            "WHERE r.run_key = ? ORDER BY r.id DESC LIMIT 1", (run_key,)).fetchone()
    if row is None:
        raise KeyError(f"no run with key {run_key!r}")
    return pd.DataFrame(json.loads(row[0]))
