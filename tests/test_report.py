"""The Markdown leaderboard and the HTML report, on a database of real tiny runs.

The fixture database holds 2 problems (beale, a 2-D function with trajectories, and
illcond_regression) × sgd / adam / momentum × 5 seeds, a diverging setting (sgd, lr = 1, on
beale), a failing optimizer (``plugins:Exploding`` on illcond_regression) and a small
LR-robustness sweep on beale. The report is checked against :mod:`lrbench.stats` on the same
runs, not against hand-copied numbers.
"""

from __future__ import annotations

import base64
import html
import io
import re
import sqlite3
from html.parser import HTMLParser

import pandas as pd
import pytest

from lrbench.cli import main
from lrbench.report import leaderboard_markdown, report_html, write_reports
from lrbench.runner import run_one
from lrbench.spec import Budget, OptimizerSpec, ProblemSpec, RunConfig
from lrbench.stats import rank_table, significance_table, threshold_table
from lrbench.store import Store, load_runs

SUITE = "fix"
SEEDS = range(8)
PROBLEMS = {"beale": Budget(50, 1), "illcond_regression": Budget(50, 5)}
OPTIMIZERS = [OptimizerSpec("sgd", {"lr": 0.01}), OptimizerSpec("adam", {"lr": 0.05}),
              OptimizerSpec("momentum", {"lr": 0.005})]
DIVERGING = OptimizerSpec("sgd", {"lr": 1.0})  # beale: diverges at the first evaluation
FAILING = OptimizerSpec("plugins:Exploding")  # raises inside step() (tests/plugins.py)
# the page: per problem curves, LR traces, ECDF (+ trajectories on beale); per suite the CD
# diagram and the performance profiles; one robustness figure
EXPECTED_IMAGES = 4 + 3 + 2 + 1
EXPECTED_TABLES = {"results": 2, "cost": 2, "ranking": 1, "robustness": 1}


def _configs() -> list[RunConfig]:
    out = [RunConfig(SUITE, ProblemSpec(p), o, s, "cpu", b) for p, b in PROBLEMS.items() for o in OPTIMIZERS
           for s in SEEDS]
    out += [RunConfig(SUITE, ProblemSpec("beale"), DIVERGING, s, "cpu", PROBLEMS["beale"]) for s in range(3)]
    out += [RunConfig(SUITE, ProblemSpec("illcond_regression"), FAILING, s, "cpu", PROBLEMS["illcond_regression"])
            for s in range(2)]
    out += [RunConfig(SUITE + "/robustness", ProblemSpec("beale"), OptimizerSpec(k, {"lr": lr}), s, "cpu",
                      PROBLEMS["beale"]) for k in ("sgd", "adam") for lr in (0.001, 0.01, 0.1) for s in (2000,)]
    return out


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "r.sqlite"
    with Store(path) as store:
        for c in _configs():
            store.append(run_one(c))
    return path


@pytest.fixture(scope="module")
def runs(db):
    return load_runs(db)


@pytest.fixture(scope="module")
def board(runs):
    return leaderboard_markdown(runs)


@pytest.fixture(scope="module")
def page(runs, db):
    return report_html(runs, db)


def _main_runs(runs: pd.DataFrame) -> pd.DataFrame:
    main_runs = runs[runs["suite"] == SUITE]
    return main_runs.assign(problem=main_runs["problem_name"])


def _section(board: str, heading: str) -> str:
    start = board.index(f"\n{heading}\n")
    end = board.find("\n## ", start + 1)
    return board[start: end if end > 0 else None]


def _md_tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every GitHub-style table of ``text``: (headers, rows of cells)."""
    tables, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif current:
            tables.append((current[0], current[2:]))
            current = []
    return tables


def _results(board: str, problem: str) -> tuple[list[str], dict[str, dict[str, str]]]:
    headers, rows = _md_tables(_section(board, f"## {problem}"))[0]
    return headers, {r[0]: dict(zip(headers, r)) for r in rows}


@pytest.mark.parametrize("problem", list(PROBLEMS))
def test_significance_marks_match_the_stats_table(board, runs, problem):
    sig = significance_table(_main_runs(runs), "final_train_loss", "min")
    mine = sig[sig["problem"] == problem]
    ref = mine["reference"].iloc[0]
    headers, rows = _results(board, problem)
    assert f"vs {ref}" in headers
    assert f"against the reference `{ref}`" in _section(board, f"## {problem}")
    assert "Holm-corrected" in _section(board, f"## {problem}")
    assert rows[ref][f"vs {ref}"] == "reference"
    assert set(rows) == set(mine["optimizer"]) | {ref}
    for r in mine.to_dict("records"):
        cell = rows[r["optimizer"]][f"vs {ref}"]
        assert cell.split()[0] == r["symbol"], (r["optimizer"], cell, r["verdict"])
    marks = {rows[o][f"vs {ref}"].split()[0] for o in mine["optimizer"]}
    assert marks <= {"▲", "▼", "≈", "?"} and marks & {"▲", "▼"}  # some difference is significant here


@pytest.mark.parametrize("problem", list(PROBLEMS))
def test_threshold_columns_match_the_threshold_table(board, runs, problem):
    tt = threshold_table(_main_runs(runs))
    tt = tt[tt["problem"] == problem]
    headers, rows = _results(board, problem)
    columns = [h for h in headers if h.startswith("steps to ≤")]
    assert columns == [f"steps to ≤{t:g}" for t in sorted(set(tt["threshold"]), reverse=True)]
    for r in tt.to_dict("records"):
        cell = rows[r["optimizer"]][f"steps to ≤{r['threshold']:g}"]
        m = re.fullmatch(r"(\S+) \((\d+)/(\d+)\); aRT (\S+)", cell)
        assert m, cell
        assert (int(m[2]), int(m[3])) == (r["successes"], r["seeds"])
        assert m[1] == ("—" if r["successes"] == 0 else f"{r['median_steps']:.0f}")
        assert m[4] == ("∞" if r["successes"] == 0 else f"{r['art_steps']:.0f}")
    if problem == "beale":  # a partial success count is exercised
        assert tt["successes"].between(1, tt["seeds"] - 1).any()


def test_results_and_cost_tables(board, runs):
    headers, rows = _results(board, "beale")
    assert rows["sgd[lr=1]"]["diverged"] == "3/3 (100%)"
    assert rows["sgd[lr=1]"]["seeds"] == "3 (0 ok)"
    assert rows["adam[lr=0.05]"]["seeds"] == str(len(SEEDS))
    assert re.fullmatch(r"\[\S+, \S+\]", rows["adam[lr=0.05]"]["95% CI"])
    _, ill = _results(board, "illcond_regression")
    assert ill["plugins:Exploding"]["diverged"] == "0/2 (0%); 2 failed"
    cost_headers, cost_rows = _md_tables(_section(board, "## beale"))[1]
    assert cost_headers == ["optimizer", "median step", "× sgd", "forward/step", "backward/step", "peak memory",
                            "optimizer state"]
    by_name = {r[0]: r for r in cost_rows}
    assert by_name["sgd[lr=0.01]"][3:5] == ["1", "1"]  # one forward and one backward pass per step
    assert by_name["adam[lr=0.05]"][2].endswith("×")
    caption = _section(board, "## beale")
    assert "problem `beale` (no dataset)" in caption
    assert f"seeds 0–{len(SEEDS) - 1} ({len(SEEDS)})" in caption and "device: cpu" in caption
    assert "budget 50 steps, evaluated every 1" in caption


def test_ranking_section_states_its_test(board, runs):
    main_runs = _main_runs(runs)
    # names as the report ranks them: a key with one setting per problem goes by its key
    labels = main_runs["optimizer_name"].replace({"adam[lr=0.05]": "adam", "momentum[lr=0.005]": "momentum"})
    rr = rank_table(main_runs.assign(optimizer_name=labels), "final_train_loss", "min")
    section = _section(board, "## Overall ranking")
    assert f"χ² = {rr.statistic:.3g}, p = {rr.p:.3g}" in section
    assert f"CD = {rr.cd:.3g}" in section and "Nemenyi" in section and "Friedman" in section
    assert "`plugins:Exploding`" in section and "`sgd[lr=1]`" in section  # not on every problem
    headers, rows = _md_tables(section)[0]
    assert headers[:2] == ["optimizer", "mean rank"]
    assert [r[0] for r in rows] == rr.mean_ranks["optimizer"].tolist()
    assert [r[1] for r in rows] == [f"{x:.2f}" for x in rr.mean_ranks["mean_rank"]]


def test_notes_say_what_failed_and_diverged(board):
    notes = _section(board, "## Notes")
    assert "2 runs failed: `plugins:Exploding` on `illcond_regression` (suite `fix`), seed 0, 1: RuntimeError" in notes
    assert "4 runs diverged: `sgd[lr=1]` on `beale` (suite `fix`), seed 0–2: train loss" in notes
    assert "`sgd[lr=0.1]` on `beale` (suite `fix/robustness`), seed 2000: train loss" in notes
    assert "robustness sweep" not in notes


def test_reference_option(runs):
    by_key = leaderboard_markdown(runs, reference="adam")  # a key with one setting per problem
    by_name = leaderboard_markdown(runs, reference="adam[lr=0.05]")
    sig = significance_table(_main_runs(runs), "final_train_loss", "min", reference="adam[lr=0.05]")
    for board in (by_key, by_name):
        for problem in PROBLEMS:
            headers, rows = _results(board, problem)
            assert "vs adam[lr=0.05]" in headers and rows["adam[lr=0.05]"]["vs adam[lr=0.05]"] == "reference"
            for r in sig[sig["problem"] == problem].to_dict("records"):
                assert rows[r["optimizer"]]["vs adam[lr=0.05]"].split()[0] == r["symbol"]
        assert "given by `--reference`" in board
    with pytest.raises(ValueError, match="invalid reference: 'sgd' runs several settings"):
        leaderboard_markdown(runs, reference="sgd")
    with pytest.raises(ValueError, match="invalid reference: 'nope'"):
        leaderboard_markdown(runs, reference="nope")


class _Page(HTMLParser):
    """Images, tables (cells by kind) and external references of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.tables: list[tuple[str, list[list[str]]]] = []
        self.external: list[str] = []
        self._cell: list[str] | None = None
        self._row: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src", ""))
        if tag in ("link", "script", "iframe") and (a.get("src") or a.get("href")):
            self.external.append(a.get("src") or a.get("href"))
        if tag == "table":
            self.tables.append((a.get("data-kind", ""), []))
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[-1][1].append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _text(page: str) -> str:
    """The text of an HTML page (tags dropped, entities decoded)."""
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def _png_size(data: bytes) -> tuple[int, int]:
    try:
        from PIL import Image
    except ImportError:  # the PNG signature and the IHDR chunk's width and height
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    with Image.open(io.BytesIO(data)) as im:
        im.verify()
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        assert im.format == "PNG"
        return im.size


def _check_images(srcs: list[str]) -> None:
    for src in srcs:
        assert src.startswith("data:image/png;base64,"), src[:40]
        w, h = _png_size(base64.b64decode(src.split(",", 1)[1], validate=True))
        assert w > 100 and h > 100


def test_html_is_one_file_with_embedded_pngs_and_every_table(page, board):
    p = _Page()
    p.feed(page)
    assert len(p.images) == EXPECTED_IMAGES
    _check_images(p.images)
    assert p.external == [] and "http://" not in page and "https://" not in page
    kinds = pd.Series([k for k, _ in p.tables]).value_counts().to_dict()
    assert kinds == EXPECTED_TABLES
    assert f'data-images="{EXPECTED_IMAGES}" data-tables="{sum(EXPECTED_TABLES.values())}"' in page
    # the HTML tables hold the Markdown tables' cells
    md = [t for t in _md_tables(board)]
    html_tables = [rows for _, rows in p.tables]
    assert len(md) == len(html_tables)
    for (headers, rows), html_rows in zip(md, html_tables):
        assert html_rows[0] == headers
        assert html_rows[1:] == rows


def _partial_db(path) -> None:
    """One seed per optimizer, a failed run, curves of one run lost, a synthetic-data run,
    no robustness sweep."""
    configs = [RunConfig("part", ProblemSpec("beale"), o, 0, "cpu", Budget(20, 2)) for o in OPTIMIZERS[:2]]
    configs.append(RunConfig("part", ProblemSpec("beale"), FAILING, 0, "cpu", Budget(20, 2)))
    configs.append(RunConfig("part", ProblemSpec("mnist_logreg", {"source": "synthetic", "size": "smoke"}),
                             OptimizerSpec("sgd", {"lr": 0.5}), 0, "cpu", Budget(10, 5)))
    with Store(path) as store:
        for c in configs:
            store.append(run_one(c))
    lost = configs[1].run_key
    with sqlite3.connect(path) as conn:  # simulate a run whose curves were not recorded
        conn.execute("DELETE FROM curves WHERE run_id IN (SELECT id FROM runs WHERE run_key = ?)", (lost,))


def test_partial_database(tmp_path):
    db = tmp_path / "p.sqlite"
    _partial_db(db)
    paths = write_reports(db, tmp_path / "out", "all", command="lrbench report")
    assert [p.name for p in paths] == ["leaderboard.md", "index.html"]
    board = paths[0].read_text()
    notes = _section(board, "## Notes")
    assert "1 run failed: `plugins:Exploding` on `beale` (suite `part`), seed 0: RuntimeError: boom in step" in notes
    assert "`beale` (suite `part`) has one seed" in notes
    assert "No robustness sweep recorded" in notes
    assert ("Refused: 1 run on `mnist_logreg[size=smoke,source=synthetic]` use synthetic data" in notes)
    assert "## mnist_logreg" not in board and "## Robustness" not in board
    headers, rows = _results(board, "beale")
    ref = next(h for h in headers if h.startswith("vs "))[3:]
    assert {rows[o][f"vs {ref}"].split()[0] for o in rows if o != ref} == {"?"}
    assert "Friedman test not computed" in _section(board, "## Overall ranking")
    page = paths[1].read_text()
    assert "Curves missing for 1 run on beale (suite part): adam[lr=0.05] seed 0." in _text(page)
    p = _Page()
    p.feed(page)
    _check_images(p.images)
    assert len(p.images) == 4 + 2  # curves, LR traces, ECDF, trajectories; CD diagram, profiles
    assert "mnist_logreg" not in "".join(c for _, rows in p.tables for r in rows for c in r)


def test_synthetic_runs_are_refused_from_a_dataframe(runs):
    fake = runs[runs["problem"] == "beale"].assign(problem_name="beale[source=synthetic]")
    board = leaderboard_markdown(pd.concat([runs, fake], ignore_index=True))
    assert f"Refused: {len(fake)} runs on `beale[source=synthetic]`" in board
    assert "## beale[source=synthetic]" not in board
    assert _results(board, "beale") == _results(leaderboard_markdown(runs), "beale")


def test_empty_database_and_cli(tmp_path, db, capsys):
    empty = tmp_path / "e.sqlite"
    Store(empty).close()
    assert main(["report", "--db", str(empty), "--format", "md", "--out", str(tmp_path / "e")]) == 0
    assert "No runs recorded yet." in (tmp_path / "e" / "leaderboard.md").read_text()
    out = tmp_path / "c"
    assert main(["report", "--db", str(db), "--out", str(out), "--reference", "momentum[lr=0.005]"]) == 0
    assert "vs momentum[lr=0.005]" in (out / "leaderboard.md").read_text()
    assert not (out / "index.html").exists()
    capsys.readouterr()
    assert main(["report", "--db", str(db), "--out", str(out), "--reference", "nope"]) == 2
    assert "invalid reference: 'nope'" in capsys.readouterr().err
    assert main(["report", "--db", str(db), "--format", "pdf"]) == 2
