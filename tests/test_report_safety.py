"""The report against hostile database contents and interrupted writes.

One set of real tiny runs on beale (sgd and adam × 3 seeds, a failed momentum run, a small
LR-robustness sweep) is stored under different names: plain ones, names holding Markdown
table syntax and line breaks, names holding ``$`` (mathtext for matplotlib), and
``module:Class`` keys that the report must not import. The plain database is the yardstick:
whatever the names, the documents have the same shape.
"""

from __future__ import annotations

import dataclasses
import errno
import importlib
import importlib.abc
import os
import re
import subprocess
import sys
from html.parser import HTMLParser

import matplotlib
import pytest

from lrbench import report
from lrbench.report import leaderboard_markdown, report_html, write_reports
from lrbench.runner import run_one
from lrbench.spec import Budget, OptimizerSpec, ProblemSpec, RunConfig
from lrbench.store import Store, load_runs

BUDGET = Budget(20, 2)
GRID = (0.001, 0.01, 0.1)
# curves, LR traces, ECDF and trajectories on beale; CD diagram and profiles; robustness
EXPECTED_IMAGES = 4 + 2 + 1
PLAIN = {"suite": "s", "notes": {"sgd": "ab", "adam": "pq", "momentum": "mq"}, "problem_note": "pqr",
         "message": "boom here"}


@pytest.fixture(scope="module")
def results():
    main = [run_one(RunConfig("s", ProblemSpec("beale"), o, seed, "cpu", BUDGET))
            for o in (OptimizerSpec("sgd", {"lr": 0.01}), OptimizerSpec("adam", {"lr": 0.05})) for seed in range(3)]
    failed = dataclasses.replace(main[0], status="failed", message="boom", config=dataclasses.replace(
        main[0].config, optimizer=OptimizerSpec("momentum", {"lr": 0.005})))
    sweep = [run_one(RunConfig("s/robustness", ProblemSpec("beale"), OptimizerSpec(k, {"lr": lr}), 100, "cpu", BUDGET))
             for k in ("sgd", "adam") for lr in GRID]
    return [*main, failed, *sweep]


def _store(path, results, *, suite="s", notes=None, problem="beale", problem_note=None, keys=None, message=None):
    """Store ``results`` renamed: the suite (``s`` in ``s``, ``s/robustness``), a ``note``
    hyper-parameter per optimizer key, the problem key and a ``note`` option, optimizer keys
    (old -> new) and the failed run's message."""
    with Store(path) as store:
        for r in results:
            c = r.config
            note = {"note": notes[c.optimizer.key]} if notes else {}
            config = dataclasses.replace(
                c, suite=suite + c.suite[1:],
                problem=ProblemSpec(problem, {"note": problem_note} if problem_note else {}),
                optimizer=OptimizerSpec((keys or {}).get(c.optimizer.key, c.optimizer.key),
                                        {**c.optimizer.hparams, **note}))
            store.append(dataclasses.replace(r, config=config, message=message or r.message))
    return path


@pytest.fixture(scope="module")
def plain(results, tmp_path_factory):
    db = _store(tmp_path_factory.mktemp("plain") / "p.sqlite", results, **PLAIN)
    runs = load_runs(db)
    return leaderboard_markdown(runs), report_html(runs, db)


# --- Markdown and HTML tables -------------------------------------------------------------------


def _cells(line: str) -> list[str]:
    """The cells of a GitHub table row: split on ``|`` not escaped by a backslash."""
    cells, cell, chars = [], "", iter(line.strip())
    for ch in chars:
        if ch == "\\":
            cell += ch + next(chars, "")
        elif ch == "|":
            cells.append(cell.strip())
            cell = ""
        else:
            cell += ch
    return cells[1:]  # a row starts and ends with "|": drop the empty text before the first


def _md_tables(text: str) -> list[list[list[str]]]:
    """Every table of a Markdown document (runs of lines starting with ``|``): rows of cells,
    the delimiter row included."""
    tables, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append(_cells(line))
        elif current:
            tables.append(current)
            current = []
    return tables


def _unescape(text: str) -> str:
    """Markdown backslash escapes resolved."""
    return re.sub(r"\\(.)", r"\1", text)


class _Tables(HTMLParser):
    """Rows of cell texts of every HTML table; the images."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.images = 0
        self._cell: list[str] | None = None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images += 1
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _shape(tables: list[list[list[str]]]) -> list[tuple[int, ...]]:
    return [tuple(len(row) for row in t) for t in tables]


@pytest.mark.filterwarnings("ignore:Glyph 13:UserWarning")  # a carriage return in a figure title
def test_names_with_table_syntax_and_line_breaks_keep_the_tables_whole(results, plain, tmp_path):
    notes = {"sgd": "a|b\nc", "adam": "p`q|\r\n|---|", "momentum": "m`q<!--"}
    db = _store(tmp_path / "h.sqlite", results, suite="s|x", notes=notes, problem_note="p|q\r\nr",
                message="boom | here\n| a | b |")
    runs = load_runs(db)
    md, page = leaderboard_markdown(runs), report_html(runs, db)
    plain_md, plain_page = plain
    assert len(_md_tables(plain_md)) == 4  # results, cost, ranking, robustness
    assert all(len(set(row)) == 1 for row in _shape(_md_tables(plain_md)))  # every row as wide as its header
    assert _shape(_md_tables(md)) == _shape(_md_tables(plain_md))
    assert len(md.splitlines()) == len(plain_md.splitlines())
    one_line = {k: " ".join(v.splitlines()) for k, v in notes.items()}
    names = {OptimizerSpec(k, {"lr": lr, "note": one_line[k]}).name
             for k, lr in (("sgd", 0.01), ("adam", 0.05), ("momentum", 0.005))}
    results_table = _md_tables(md)[0]
    assert {_unescape(row[0]) for row in results_table[2:]} == names
    assert "## beale[note=p|q r]" in map(_unescape, md.splitlines())
    assert "(suite `s|x`), seed 0: boom \\| here \\| a \\| b \\|." in md
    assert "``momentum[lr=0.005,note=m`q<!--]``" in md  # a code span holding a backtick
    # the HTML: the same tables, the names whole, nothing unescaped
    got, want = _Tables(page), _Tables(plain_page)
    assert _shape(got.tables) == _shape(want.tables) and len(got.tables) == 4
    assert {" ".join(row[0].split()) for row in got.tables[0][1:]} == {" ".join(n.split()) for n in names}
    assert "<code>momentum[lr=0.005,note=m`q&lt;!--]</code>" in page and "<!--" not in page


def test_dollar_signs_in_names_are_drawn_as_text(results, plain, tmp_path):
    notes = {"sgd": "$x$", "adam": "5$_$", "momentum": "$"}  # math, invalid math, a lone dollar
    db = _store(tmp_path / "d.sqlite", results, suite="s$_$", notes=notes, problem_note="$_$")
    runs = load_runs(db)
    page = report_html(runs, db)
    assert _Tables(plain[1]).images == EXPECTED_IMAGES
    assert _Tables(page).images == EXPECTED_IMAGES
    assert "Figure not drawn" not in page
    with matplotlib.rc_context({"text.usetex": True}):  # a user's matplotlibrc: the report draws plain text
        assert _Tables(report_html(runs, db)).images == EXPECTED_IMAGES


# --- writing the files --------------------------------------------------------------------------


_FULL_DISK = r"""
import resource, signal, sys
from lrbench import report

report.load_runs = lambda db: None
report.leaderboard_markdown = report.report_html = lambda *args, **kwargs: "new report\n" * 10_000
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit, write() fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    report.write_reports("unused.sqlite", sys.argv[1], sys.argv[2])
except OSError as exc:
    sys.exit(f"errno {exc.errno}")
"""
_FILES = {"md": "leaderboard.md", "html": "index.html"}


@pytest.mark.parametrize("fmt", list(_FILES))
def test_a_write_that_fails_midway_leaves_the_previous_report(tmp_path, fmt):
    pytest.importorskip("resource")
    (tmp_path / _FILES[fmt]).write_text("previous report\n")
    done = subprocess.run([sys.executable, "-c", _FULL_DISK, str(tmp_path), fmt], capture_output=True, text=True,
                          timeout=300)
    assert done.stderr.strip().endswith(f"errno {errno.EFBIG}"), done.stderr[-2000:]
    assert (tmp_path / _FILES[fmt]).read_text() == "previous report\n"
    assert os.listdir(tmp_path) == [_FILES[fmt]]  # no temporary file left


def test_a_failed_sync_leaves_the_previous_report(tmp_path, monkeypatch):
    (tmp_path / "leaderboard.md").write_text("previous report\n")
    monkeypatch.setattr(report, "load_runs", lambda db: None)
    monkeypatch.setattr(report, "leaderboard_markdown", lambda *args: "new report\n")

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as exc:
        write_reports("unused.sqlite", tmp_path, "md")
    assert exc.value.errno == errno.ENOSPC
    assert (tmp_path / "leaderboard.md").read_text() == "previous report\n"
    assert os.listdir(tmp_path) == ["leaderboard.md"]


def test_a_normal_write_replaces_the_report_and_keeps_a_symlink(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "load_runs", lambda db: None)
    monkeypatch.setattr(report, "leaderboard_markdown", lambda *args: "new report\n")
    monkeypatch.setattr(report, "report_html", lambda *args: "<p>new page</p>\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "index.html").write_text("old page\n")
    (tmp_path / "kept.md").write_text("old report\n")
    (tmp_path / "out" / "leaderboard.md").symlink_to(tmp_path / "kept.md")
    assert write_reports("unused.sqlite", tmp_path / "out", "all") == [tmp_path / "out" / n for n in _FILES.values()]
    assert (tmp_path / "out" / "index.html").read_text() == "<p>new page</p>\n"
    assert (tmp_path / "out" / "leaderboard.md").is_symlink()
    assert (tmp_path / "kept.md").read_text() == "new report\n"
    assert sorted(os.listdir(tmp_path / "out")) == sorted(_FILES.values())
    assert sorted(os.listdir(tmp_path)) == ["kept.md", "out"]


# --- no import by key ----------------------------------------------------------------------------


class _Blocker(importlib.abc.MetaPathFinder):
    """Refuses (and records) any import of the named top-level modules."""

    def __init__(self, names: set[str]) -> None:
        self.names = names
        self.requested: list[str] = []

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.names:
            self.requested.append(name)
            raise ImportError(f"{name} must not be imported")
        return None


def test_module_keys_in_the_database_are_not_imported(results, tmp_path, monkeypatch):
    keys = {"sgd": "antigravity:Y", "adam": "os:system", "momentum": "antigravity:Z"}
    db = _store(tmp_path / "k.sqlite", results, problem="this:X", keys=keys)
    runs = load_runs(db)
    blocker = _Blocker({"this", "antigravity"})
    monkeypatch.setattr(sys, "meta_path", [blocker, *sys.meta_path])
    for name in blocker.names:
        monkeypatch.delitem(sys.modules, name, raising=False)
    imported: list[str] = []
    import_module = importlib.import_module

    def spy(name, package=None):
        imported.append(name)
        return import_module(name, package)

    monkeypatch.setattr(importlib, "import_module", spy)
    md = leaderboard_markdown(runs)
    page = report_html(runs, db)
    assert blocker.requested == [] and not {"this", "antigravity", "os"} & set(imported)
    # the runs are still reported, with the fallbacks for an unknown class
    assert "\n## this:X\n" in md
    headers, _, *rows = _md_tables(md)[0]
    assert "best train_loss (mean)" in headers
    assert {r[0] for r in rows} == {"antigravity:Y[lr=0.01]", "os:system[lr=0.05]", "antigravity:Z[lr=0.005]"}
    robustness = _md_tables(md)[-1]
    assert {(r[0], r[1]) for r in robustness[2:]} == {("antigravity:Y", "lr"), ("os:system", "lr")}
    assert _Tables(page).images > 0 and "Figure not drawn" not in page
