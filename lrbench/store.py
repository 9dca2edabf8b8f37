"""The results store: an append-only SQLite database (stdlib ``sqlite3``, WAL mode).

Every finished run is one row of ``runs`` plus its curves, written in one transaction,
so an interrupted sweep (Ctrl-C, ``kill -9``) loses no finished run. Rows are never
updated or deleted: a run that ``failed`` is retried by the next sweep and appended
again; ``ok`` and ``diverged`` runs are final and skipped by run key.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

import pandas as pd

from lrbench.spec import RunResult

__all__ = ["Store", "StoreError", "load_runs", "load_curves", "RUN_COLUMNS"]

T = TypeVar("T")

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
CREATE TABLE IF NOT EXISTS claims (
    run_key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started TEXT NOT NULL,
    heartbeat REAL NOT NULL
);
"""

_TABLES = {"runs", "curves", "claims", "sqlite_sequence"}
_RUN_FIELDS = {line.split()[0] for line in _SCHEMA.split("CREATE TABLE IF NOT EXISTS runs (")[1].split(");")[0]
               .strip().splitlines()}
"""The columns of lrbench's ``runs`` table: a table that lacks one is not lrbench's."""

HEARTBEAT_S = 30.0
"""How often a sweep refreshes the claims it holds."""
STALE_S = 300.0
"""A claim whose heartbeat is older than this is abandoned (its sweep died on another host);
on this host a claim is abandoned as soon as its process is gone."""
BUSY_TIMEOUT_S = 5.0
"""SQLite's own wait for a lock before :class:`Store` reports the wait and keeps retrying."""


class StoreError(ValueError):
    """A results database that cannot be used as given; ``str()`` is one line."""


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


def _proc_stat(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first), or ``[]``."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _process_start(pid: int) -> str:
    """The start time of process ``pid`` (field 22 of ``/proc/<pid>/stat``), which tells a
    live process from a later one that reused its pid; ``""`` where there is no ``/proc``."""
    fields = _proc_stat(pid)
    return fields[19] if len(fields) > 19 else ""


def _alive(pid: int, started: str) -> bool:
    """Whether the process that made a claim still runs (a zombie, killed but not yet reaped
    by its parent, does not)."""
    if started and sys.platform.startswith("linux"):
        fields = _proc_stat(pid)
        return len(fields) > 19 and fields[19] == started and fields[0] not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_path(path: str | Path) -> Path:
    """``path`` as a database file to open or create, or :class:`StoreError` saying why not."""
    if str(path).strip() == "":
        raise StoreError("invalid database path: '' (name a file, e.g. lrbench.sqlite)")
    p = Path(path)
    if p.is_dir():
        raise StoreError(f"invalid database path: {p} is a directory (name a file inside it)")
    if p.exists() and not p.is_file():
        raise StoreError(f"invalid database path: {p} is not a regular file")
    parent = p.parent
    if parent.exists() and not parent.is_dir():
        raise StoreError(f"invalid database path: {parent} is not a directory")
    if not parent.exists():
        raise StoreError(f"invalid database path: no such directory {parent}")
    return p


def _check_schema(conn: sqlite3.Connection, path: Path) -> bool:
    """Whether ``conn`` holds an lrbench store (``False``: an empty database). Raises
    :class:`StoreError` for a file that is not an SQLite database or another program's one."""
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.OperationalError:  # cannot open or lock it: the caller decides
        raise
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is not an lrbench results database ({exc})") from None
    foreign = sorted(tables - _TABLES)
    if foreign:
        raise StoreError(f"{path} is an SQLite database of another program (table {foreign[0]!r}), "
                         "not an lrbench results database; name another file")
    if "runs" in tables:
        cols = {r[1] for r in conn.execute("PRAGMA table_info(runs)")}
        missing = sorted(_RUN_FIELDS - cols)
        if missing:
            raise StoreError(f"{path} has a 'runs' table that is not lrbench's (no column {missing[0]!r})")
    return "runs" in tables


def _is_lock(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


class Store:
    """An open results database, for one sweep (or any writer).

    Besides the runs, the database holds *claims*: a sweep claims a run (by run key) before
    it starts it, and the claim goes in the transaction that records the run. Two sweeps of
    the same suite on one database (started together or not) therefore split its runs
    between them and record each once; a claim whose sweep has died (``kill -9``) is taken
    over. Every write waits for the database's write lock, however long another process
    holds it, so a finished run is never dropped because of it (``on_wait`` hears about the
    wait once per transaction).

    Raises:
        StoreError: ``path`` cannot be a database (empty, a directory, not a regular file,
            no such directory), is not an SQLite file, or is another program's database.
    """

    def __init__(self, path: str | Path, on_wait: Callable[[str], None] | None = None) -> None:
        self.path = check_path(path)
        self.on_wait = on_wait
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.started = _process_start(self.pid)
        self.owner = f"{self.host}:{self.pid}:{uuid.uuid4().hex[:12]}"
        try:
            self.conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                        check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {self.path}: {exc}") from None
        self._lock = threading.Lock()
        try:
            self._retry("open", lambda: _check_schema(self.conn, self.path))
            self._retry("write to", self._set_up)
        except BaseException:
            self.conn.close()
            raise
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def _set_up(self) -> None:
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.executescript(_SCHEMA)

    def close(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        try:
            self.release()
        finally:
            self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _retry(self, what: str, fn: Callable[[], T]) -> T:
        """``fn()`` under the connection's lock, retried as long as another process holds the
        database's lock (``on_wait`` hears of it once); any other SQLite error, a full disk
        included, is a :class:`StoreError` ("cannot <what> <path>: …")."""
        told = False
        while True:
            try:
                with self._lock:
                    return fn()
            except sqlite3.OperationalError as exc:
                if not _is_lock(exc):
                    raise StoreError(f"cannot {what} {self.path}: {exc}") from None
                if not told and self.on_wait is not None:
                    self.on_wait(f"waiting for the write lock of {self.path}, held by another process")
                told = True
                time.sleep(0.2)
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"cannot {what} {self.path}: {exc}") from None

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work`` in one ``BEGIN IMMEDIATE`` transaction (rolled back on any error, so
        nothing recorded before is lost), retried as :meth:`_retry` says."""

        def transaction() -> T:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                out = work(self.conn)
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            return out

        return self._retry("write to", transaction)

    def _read(self, query: str, params: Iterable = ()) -> list[tuple]:
        return self._retry("read", lambda: self.conn.execute(query, tuple(params)).fetchall())

    def finished_keys(self) -> set[str]:
        """Run keys with a final (``ok`` or ``diverged``) record."""
        q = f"SELECT DISTINCT run_key FROM runs WHERE status IN {FINAL_STATUSES}"
        return {row[0] for row in self._read(q)}

    def record_counts(self) -> dict[str, int]:
        """How many records each run key has (failed attempts included)."""
        return dict(self._read("SELECT run_key, COUNT(*) FROM runs GROUP BY run_key"))

    def claim(self, keys: Iterable[str]) -> tuple[list[str], list[str]]:
        """Claim the runs ``keys`` for this store's owner, in one transaction.

        Returns ``(mine, busy)``: the keys now claimed by this owner (in the given order), and
        those another live sweep holds. Keys already recorded as final are in neither; a claim
        whose sweep is gone is taken over.
        """
        keys = list(dict.fromkeys(keys))

        def work(conn: sqlite3.Connection) -> tuple[list[str], list[str]]:
            mine, busy, now = [], [], time.time()
            for key in keys:
                if conn.execute(f"SELECT 1 FROM runs WHERE run_key = ? AND status IN {FINAL_STATUSES} LIMIT 1",
                                (key,)).fetchone():
                    continue
                row = conn.execute("SELECT owner, host, pid, started, heartbeat FROM claims WHERE run_key = ?",
                                   (key,)).fetchone()
                if row is not None and row[0] != self.owner and self._holds(row, now):
                    busy.append(key)
                    continue
                conn.execute("INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?, ?, ?)",
                             (key, self.owner, self.host, self.pid, self.started, now))
                mine.append(key)
            return mine, busy

        out = self._write(work)
        if out[0]:
            self._start_heartbeat()
        return out

    def _holds(self, row: tuple, now: float) -> bool:
        """Whether the owner of a claim row is still running its run."""
        _, host, pid, started, heartbeat = row
        if now - heartbeat > STALE_S:
            return False
        return _alive(pid, started) if host == self.host else True

    def release(self, keys: Iterable[str] | None = None) -> None:
        """Drop this owner's claims on ``keys`` (all of them by default): runs it will not finish."""
        keys = None if keys is None else list(keys)
        if keys == []:
            return

        def work(conn):
            if keys is None:
                conn.execute("DELETE FROM claims WHERE owner = ?", (self.owner,))
            else:
                conn.executemany("DELETE FROM claims WHERE owner = ? AND run_key = ?",
                                 [(self.owner, k) for k in keys])

        try:
            self._write(work)
        except StoreError:  # a claim left behind is taken over once this process is gone
            pass

    def _start_heartbeat(self) -> None:
        if self._beat is not None:
            return

        def beat():
            while not self._stop.wait(HEARTBEAT_S):
                try:
                    self._write(lambda c: c.execute("UPDATE claims SET heartbeat = ? WHERE owner = ?",
                                                    (time.time(), self.owner)))
                except StoreError:
                    pass

        self._beat = threading.Thread(target=beat, name="lrbench-claims", daemon=True)
        self._beat.start()

    def append(self, result: RunResult) -> None:
        """Record one finished run and its curves in a single transaction, which also drops
        this owner's claim on it."""
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
        curves = _dumps(result.curves)

        def work(conn):  # one transaction: the run, its curves and the release of its claim
            cur = conn.execute(f"INSERT INTO runs ({cols}) VALUES ({marks})", list(row.values()))
            conn.execute("INSERT INTO curves (run_id, columns) VALUES (?, ?)", (cur.lastrowid, curves))
            conn.execute("DELETE FROM claims WHERE run_key = ? AND owner = ?", (c.run_key, self.owner))

        self._write(work)


@contextmanager
def _connect_ro(db: str | Path) -> Iterator[tuple[sqlite3.Connection, bool]]:
    """A connection to ``db`` that only reads, and whether it holds any runs table.

    It opens the file read-write (never creating it) so that SQLite can recover the WAL of a
    writer killed mid-commit: a ``mode=ro`` reader may miss that writer's last committed run.
    A database whose folder cannot be written to (an archive, a read-only mount) is read from
    a private copy of its files, since WAL mode must create a ``-shm`` file beside it even to
    read it."""
    path = Path(db)
    if not path.exists():
        raise FileNotFoundError(f"no results database at {path}")
    if not path.is_file():
        raise StoreError(f"{path} is not a results database (not a regular file)")
    tmp = None
    conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True)
    try:
        try:
            has_runs = _check_schema(conn, path)
        except sqlite3.OperationalError:  # cannot create the -shm file: read a copy
            conn.close()
            tmp = tempfile.mkdtemp(prefix="lrbench-ro-")
            copy = Path(tmp) / path.name
            for suffix in ("", "-wal"):
                if Path(f"{path}{suffix}").exists():
                    shutil.copyfile(f"{path}{suffix}", f"{copy}{suffix}")
            conn = sqlite3.connect(copy)
            has_runs = _check_schema(conn, path)
        yield conn, has_runs
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot read {path}: {exc}") from None
    finally:
        conn.close()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _parsed(text, kind: type):
    """A stored JSON field as ``kind`` (dict or list); an empty one where the field is damaged
    (edited by hand, or written by something else), so one bad row cannot stop a report."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return kind()
    return value if isinstance(value, kind) else kind()


def load_runs(db: str | Path = "lrbench.sqlite") -> pd.DataFrame:
    """One row per run (its latest record), with the columns of :data:`RUN_COLUMNS` plus
    ``final_<metric>``, ``best_<metric>`` and ``steps_to_<threshold>`` (``NaN`` when the
    threshold was not reached or does not belong to the run's problem)."""
    with _connect_ro(db) as (conn, has_runs):
        if not has_runs:  # an empty database
            return pd.DataFrame(columns=RUN_COLUMNS)
        df = pd.read_sql_query(
            "SELECT * FROM runs WHERE id IN (SELECT MAX(id) FROM runs GROUP BY run_key) ORDER BY id", conn)
    if df.empty:
        return pd.DataFrame(columns=RUN_COLUMNS)
    df["device_name"] = df["env"].map(lambda s: _parsed(s, dict).get("device_name", "unknown"))
    df["vectorized"] = df["result"].map(lambda s: _parsed(s, dict).get("vectorized", 1))
    df["hparams"] = df["hparams"].map(lambda s: _parsed(s, dict))
    df["thresholds"] = df["thresholds"].map(lambda s: tuple(_parsed(s, list)))
    wide = []
    for col, prefix in (("final", "final_"), ("best", "best_"), ("steps_to_threshold", "steps_to_")):
        part = pd.DataFrame(df[col].map(lambda s: _parsed(s, dict)).tolist(), index=df.index).add_prefix(prefix)
        wide.append(part.apply(pd.to_numeric, errors="coerce"))
    out = pd.concat([df[RUN_COLUMNS]] + wide, axis=1)
    return out


def load_curves(db: str | Path, run_key: str) -> pd.DataFrame:
    """The curves of the latest record of ``run_key``: one row per evaluation, with
    ``step``, ``time_s`` (cumulative step time), ``train_loss``, the problem's metrics and
    ``lr_<group>`` (the effective learning rate of each parameter group)."""
    with _connect_ro(db) as (conn, has_runs):
        row = None if not has_runs else conn.execute(
            "SELECT c.columns FROM curves c JOIN runs r ON r.id = c.run_id "
            "WHERE r.run_key = ? ORDER BY r.id DESC LIMIT 1", (run_key,)).fetchone()
    if row is None:
        raise KeyError(f"no run with key {run_key!r}")
    return pd.DataFrame(json.loads(row[0]))
