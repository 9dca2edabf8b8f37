"""Leaderboards rendered from the results store.

Two outputs of one document (:func:`leaderboard_markdown` and :func:`report_html` build the
same headings, paragraphs and tables):

* ``leaderboard.md``: Markdown (tabulate), written by ``lrbench run`` and ``lrbench report``;
* ``index.html``: one self-contained page (no external asset; figures embedded as base64
  PNG) with the same tables as HTML tables plus the figures of :mod:`lrbench.figures`.

Per (suite, problem): a results table (seeds, final train loss with its bootstrap CI,
significance against a reference, best headline metric, divergence, steps to each threshold
with successes and aRT) and a cost table; per suite, a ranking across problems (Friedman,
Nemenyi); then the LR-robustness sweeps. Every statistic comes from :mod:`lrbench.stats`;
this module only selects, formats and lays out. Suites ending in ``/tune`` (tuning runs) and
``/robustness`` (the robustness sweep) are not main tables. Runs on synthetic data (made-up
inputs for code-path tests) are refused: left out, with a line saying so.

Text from the database (names, messages) cannot change a document's structure: in Markdown
it is kept on one line, code spans are fenced around any backticks it holds, and ``\\``,
``|`` and ``<`` are backslash-escaped; in HTML it is HTML-escaped. Classes are looked up in
the registry only (:func:`lrbench.registry.registered_class`): a ``module:Class`` key in the
database is never imported.
"""

from __future__ import annotations

import base64
import html
import math
import os
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from lrbench.registry import registered_class
from lrbench.spec import REPORT_FORMATS
from lrbench.stats import (
    cost_table,
    ecdf_table,
    lr_robustness,
    metric_table,
    performance_profile,
    rank_table,
    significance_table,
    threshold_table,
)
from lrbench.store import load_curves, load_runs
from lrbench.tuning import ROBUSTNESS_SUFFIX, TUNE_SUFFIX, lr_param, tuning_costs

__all__ = ["FORMATS", "leaderboard_markdown", "report_html", "write_report", "write_reports"]

FORMATS = REPORT_FORMATS
"""Values of ``lrbench report --format``: ``all`` writes both files."""
ALPHA = 0.05
COST_BASELINE = "sgd"
MAX_CURVE_POINTS = 200
_VERDICT_TEXT = "▲ better, ▼ worse, ≈ no significant difference, ? too few seeds for the test to reach α"


# --- the document: blocks rendered to Markdown or HTML ------------------------------------------------


@dataclass
class Heading:
    level: int
    text: str


@dataclass
class Para:
    text: str


@dataclass
class Bullets:
    items: list[str] = field(default_factory=list)


@dataclass
class Table:
    """A table; ``kind`` (``results``, ``cost``, ``ranking``, ``robustness``) is the HTML
    ``data-kind`` attribute; the caption precedes the table in Markdown."""

    kind: str
    caption: str
    headers: list[str]
    rows: list[list[str]]


@dataclass
class Image:
    """A PNG figure (HTML only)."""

    png: bytes
    caption: str


Block = Heading | Para | Bullets | Table | Image


_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)
"""A CommonMark code span: a run of backticks, the code, a run of as many backticks
(``split`` yields text, fence, code, text, ...)."""


def _one_line(text) -> str:
    """``text`` with its line breaks (``\\n``, ``\\r``, any that ``str.splitlines`` knows) as spaces."""
    return " ".join(str(text).splitlines())


def _code(text) -> str:
    """``text`` (stored data) as a Markdown code span, whatever backticks it holds: fenced by one
    backtick more than its longest run of them, padded with a space where it begins or ends
    with a backtick or a space (CommonMark strips one such space on each side)."""
    text = _one_line(text)
    fence = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
    pad = " " if text[:1] in ("`", " ") or text[-1:] in ("`", " ") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


_MD_SPECIAL = r"[\\|<]"
"""Backslash-escaped in Markdown built from data: no table cell, no raw HTML."""
_MD_SPECIAL_OR_CODE = re.compile(f"{_CODE_SPAN.pattern}|{_MD_SPECIAL}", re.S)


def _md_line(text) -> str:
    """A Markdown line of a block's text: one line, :data:`_MD_SPECIAL` escaped outside code spans."""
    return _MD_SPECIAL_OR_CODE.sub(lambda m: m[0] if m[1] else "\\" + m[0], _one_line(text))


def _md_cell(text) -> str:
    """A Markdown table cell: one line, :data:`_MD_SPECIAL` escaped throughout (a ``|`` splits a
    row even inside a code span; a cell holds no markup of its own)."""
    return re.sub(_MD_SPECIAL, r"\\\g<0>", _one_line(text))


def _markdown(blocks: Iterable[Block]) -> str:
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out += ["#" * b.level + " " + _md_line(b.text), ""]
        elif isinstance(b, Para):
            out += [_md_line(b.text), ""]
        elif isinstance(b, Bullets) and b.items:
            out += [f"* {_md_line(item)}" for item in b.items] + [""]
        elif isinstance(b, Table):
            rows = [[_md_cell(c) for c in r] for r in b.rows]
            out += ([_md_line(b.caption), ""] if b.caption else []) + [
                tabulate(rows, headers=[_md_cell(h) for h in b.headers], tablefmt="github",
                         disable_numparse=True), ""]
    return "\n".join(out)


def _inline(text: str) -> str:
    """Escaped HTML of a Markdown line: `code` (CommonMark code spans), **bold** and *italic*
    (outside code spans)."""
    out = []
    for i, piece in enumerate(_CODE_SPAN.split(str(text))):
        if i % 3 == 1:  # a fence
            continue
        piece = html.escape(piece, quote=False)
        if i % 3 == 2:
            if piece[:1] == piece[-1:] == " " and piece.strip():
                piece = piece[1:-1]
            out.append(f"<code>{piece}</code>")
            continue
        piece = re.sub(r"\*\*(\S.*?)\*\*", r"<b>\1</b>", piece)
        out.append(re.sub(r"(?<![*\w])\*(\S[^*]*?)\*(?![*\w])", r"<i>\1</i>", piece))
    return "".join(out)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1,h2,h3{line-height:1.2}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
code{background:#f3f3f3;padding:0 .25em;border-radius:3px;font-size:.92em}
.scroll{overflow-x:auto;margin:1em 0}
table{border-collapse:collapse;font-size:.88em}
caption{caption-side:top;text-align:left;padding:.3em 0;color:#444;max-width:1100px}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;white-space:nowrap}
th{background:#f5f5f5}tbody tr:nth-child(even){background:#fafafa}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.88em;color:#444}
#lrbench-check{font-size:.75em;color:#888}
"""

_CHECK_SCRIPT = """<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.getElementById("lrbench-check").textContent =
    "images=" + imgs.length + " decoded=" + ok + " tables=" + document.querySelectorAll("table").length;
});
</script>"""


def _html(blocks: list[Block], title: str) -> str:
    body: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            body.append(f"<h{b.level}>{_inline(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            body.append(f"<p>{_inline(b.text)}</p>")
        elif isinstance(b, Bullets) and b.items:
            body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{_inline(h)}</th>" for h in b.headers)
            rows = "".join("<tr>" + "".join(f"<td>{_inline(str(c))}</td>" for c in r) + "</tr>" for r in b.rows)
            body.append(f'<div class="scroll"><table data-kind="{b.kind}"><caption>{_inline(b.caption)}</caption>'
                        f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>")
        elif isinstance(b, Image):
            data = base64.b64encode(b.png).decode("ascii")
            body.append(f'<figure><img alt="{html.escape(b.caption)}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{_inline(b.caption)}</figcaption></figure>")
    images = sum(isinstance(b, Image) for b in blocks)
    tables = sum(isinstance(b, Table) for b in blocks)
    check = (f'<pre id="lrbench-check" data-images="{images}" data-tables="{tables}">'
             f"images=? decoded=? tables=?</pre>")
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
        *body, check, _CHECK_SCRIPT, "</body>", "</html>", ""])


# --- formatting ------------------------------------------------------------------------------------


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float, np.number)) and math.isfinite(float(x))


def _num(x, fmt: str = ".4g") -> str:
    if x is not None and isinstance(x, (float, np.floating)) and math.isinf(x):
        return "∞" if x > 0 else "−∞"
    return format(x, fmt) if _finite(x) else "—"


def _bytes(x) -> str:
    if not _finite(x):
        return "—"
    x = float(x)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(x) < 1024 or unit == "GiB":
            return f"{x:.0f} {unit}" if unit == "B" else f"{x:.1f} {unit}"
        x /= 1024
    return "—"  # pragma: no cover - the loop returns


def _seeds(seeds: Iterable) -> str:
    """``0–4`` for a range of seeds, else a list."""
    s = sorted({int(x) for x in seeds})
    if len(s) > 2 and s == list(range(s[0], s[-1] + 1)):
        return f"{s[0]}–{s[-1]}"
    return ", ".join(map(str, s))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


# --- what the runs are ---------------------------------------------------------------------------------


def _problem_cls(key: str):
    """The registered problem class, or ``None`` (a plug-in no longer installed, or a
    ``module:Class`` key, which is never imported: the database does not decide what runs)."""
    return registered_class("problem", key)


def _optimizer_cls(key: str):
    """The registered optimizer class, else a stand-in whose learning rate is ``lr`` (as
    :func:`_problem_cls`, nothing is imported by key)."""
    return registered_class("optimizer", key) or type("Unregistered", (), {"lr_param": "lr"})


def _headline(problem: str) -> tuple[str, str]:
    """The problem's headline metric and its sense."""
    cls = _problem_cls(problem)
    if cls is None:
        return "train_loss", "min"
    return cls.headline, cls.metrics.get(cls.headline, "min")


_SOURCE = re.compile(r"[\[,]source=([^,\]]+)")


def _is_synthetic(problem: str, problem_name: str) -> bool:
    """True for runs on made-up data: the option ``source=synthetic`` (which sets the
    problem's ``synthetic`` flag) or a problem class flagged ``synthetic`` as a whole."""
    m = _SOURCE.search(problem_name)
    if m and m.group(1) == "synthetic":
        return True
    return getattr(_problem_cls(problem), "synthetic", False) is True


def _data_source(problem: str, problem_name: str) -> str:
    m = _SOURCE.search(problem_name)
    if m:
        return f"data: {m.group(1)}"
    default = getattr(_problem_cls(problem), "default_source", None)
    return f"data: {default}, the default source" if default else "no dataset"


@dataclass
class _Runs:
    """The runs split by role."""

    main: pd.DataFrame
    robust: pd.DataFrame
    refused: pd.DataFrame
    costs: pd.DataFrame
    kept: pd.DataFrame


def _split(runs: pd.DataFrame) -> _Runs:
    synthetic = pd.Series([_is_synthetic(p, n) for p, n in zip(runs["problem"], runs["problem_name"])],
                          index=runs.index, dtype=bool)
    kept = runs[~synthetic]
    is_tune = kept["suite"].str.endswith(TUNE_SUFFIX)
    is_robust = kept["suite"].str.endswith(ROBUSTNESS_SUFFIX)
    return _Runs(main=kept[~is_tune & ~is_robust], robust=kept[is_robust], refused=runs[synthetic],
                 costs=tuning_costs(kept), kept=kept)


def _by_problem_name(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs with ``problem`` set to the problem name (with options), the unit the
    :mod:`lrbench.stats` tables group by here."""
    return runs.assign(problem=runs["problem_name"])


def _notes(r: _Runs) -> list[str]:
    """What is missing or left out (partial databases)."""
    notes = []
    for name, g in r.refused.groupby("problem_name", sort=True):
        notes.append(f"Refused: {_plural(len(g), 'run')} on {_code(name)} use synthetic data (made-up inputs for "
                     "code-path tests) and are left out of every table and figure.")
    kept = r.kept
    for status, verb in (("failed", "failed"), ("timeout", "stopped at the time limit"), ("diverged", "diverged")):
        bad = kept[kept["status"] == status]
        if bad.empty:
            continue
        parts = []
        for (suite, problem, name), g in bad.groupby(["suite", "problem_name", "optimizer_name"], sort=True):
            msg = g["message"].iloc[0]
            parts.append(f"{_code(name)} on {_code(problem)} (suite {_code(suite)}), seed {_seeds(g['seed'])}"
                         + (f": {msg}" if msg else ""))
        shown = "; ".join(parts[:8]) + (f"; and {len(parts) - 8} more" if len(parts) > 8 else "")
        tail = (" They are retried by the next `lrbench run`." if status != "diverged" else "")
        notes.append(f"{_plural(len(bad), 'run')} {verb}: {shown}.{tail} The comparisons count "
                     f"{'them' if len(bad) > 1 else 'it'} as the worst value.")
    for (suite, problem), g in r.main.groupby(["suite", "problem_name"], sort=True):
        if g["seed"].nunique() < 2:
            notes.append(f"{_code(problem)} (suite {_code(suite)}) has one seed: no confidence interval and no "
                         "significance test (marked ?).")
    if r.main.empty:
        notes.append("No main runs recorded (only tuning or robustness runs).")
    if r.robust.empty:
        notes.append("No robustness sweep recorded (no suite `<name>/robustness`; add `[robustness]` to a "
                     "suite file): the robustness section is left out.")
    return notes


# --- per problem -------------------------------------------------------------------------------------


@dataclass
class _SuiteStats:
    """The :mod:`lrbench.stats` tables of one suite's main runs (problem = problem name)."""

    runs: pd.DataFrame
    metrics: pd.DataFrame
    thresholds: pd.DataFrame
    significance: pd.DataFrame
    costs: pd.DataFrame
    references: dict[str, str]


def _reference_frame(sf: pd.DataFrame, reference: str | None) -> tuple[pd.DataFrame, dict[str, str]]:
    """The frame to test against ``reference`` and, per problem, the optimizer name that is the
    reference there. ``reference`` is an optimizer name, or a key whose one untuned setting on
    each problem stands for it (its name may differ per problem)."""
    if reference is None or reference in set(sf["optimizer_name"]):
        return sf, {p: reference for p in sf["problem"].unique()} if reference else {}
    mask = (sf["optimizer"] == reference) & ~sf["optimizer_name"].str.endswith("*")
    names = sf[mask].groupby("problem")["optimizer_name"].unique()
    for problem, n in names.items():
        if len(n) > 1:
            raise ValueError(f"invalid reference: {reference!r} runs several settings on {problem} "
                             f"({', '.join(sorted(n))}); name one")
    return (sf.assign(optimizer_name=sf["optimizer_name"].where(~mask, reference)),
            {p: n[0] for p, n in names.items()})


def _suite_stats(runs: pd.DataFrame, reference: str | None) -> _SuiteStats:
    sf = _by_problem_name(runs)
    tested, refs = _reference_frame(sf, reference)
    sig = significance_table(tested, "final_train_loss", "min", reference=reference, alpha=ALPHA)
    for problem, g in sig.groupby("problem"):
        refs.setdefault(problem, g["reference"].iloc[0])
    for problem, g in sf.groupby("problem"):  # a single optimizer is its own reference
        if problem not in refs and g["optimizer_name"].nunique() == 1:
            refs[problem] = g["optimizer_name"].iloc[0]
    return _SuiteStats(runs=sf, metrics=metric_table(sf, "final_train_loss"), thresholds=threshold_table(sf),
                       significance=sig, costs=cost_table(sf, baseline=COST_BASELINE), references=refs)


def _mark(sig: pd.DataFrame, name: str, ref: str | None) -> str:
    if name == ref:
        return "reference"
    row = sig[sig["optimizer"] == name]
    if row.empty or row["verdict"].iloc[0] == "no reference":
        return "—"
    r = row.iloc[0]
    if r["verdict"] == "too few seeds":
        return f"? (n={r['n']} vs {r['n_ref']})"
    return f"{r['symbol']} p={_num(r['p_holm'], '.2g')}"


def _threshold_cell(row: pd.Series) -> str:
    median = _num(row["median_steps"], ".0f")
    return f"{median} ({row['successes']}/{row['seeds']}); aRT {_num(row['art_steps'], '.0f')}"


def _test_names(sig: pd.DataFrame) -> str:
    used = set(sig["test"])
    if used == {"wilcoxon"}:
        return "paired Wilcoxon signed-rank test (same seeds)"
    if used == {"mannwhitneyu"}:
        return "Mann–Whitney U test (different seeds)"
    return "paired Wilcoxon signed-rank test where the seeds match, Mann–Whitney U where they differ"


def _caption(suite: str, g: pd.DataFrame) -> str:
    first = g.iloc[0]
    budgets = sorted({(int(s), int(e)) for s, e in zip(g["budget_steps"], g["eval_every"])})
    budget = "; ".join(f"{s} steps, evaluated every {e}" for s, e in budgets)
    devices = ", ".join(f"{d} ({n})" for d, n in sorted({(d, n) for d, n in zip(g["device"], g["device_name"])}))
    return (f"Suite {_code(suite)}, problem {_code(first['problem_name'])} "
            f"({_data_source(first['problem'], first['problem_name'])}): budget {budget}; "
            f"seeds {_seeds(g['seed'])} ({g['seed'].nunique()}); device: {devices}.")


def _results_table(suite: str, g: pd.DataFrame, st: _SuiteStats, costs: pd.DataFrame, reference: str | None) -> Table:
    name = g["problem_name"].iloc[0]
    headline, _ = _headline(g["problem"].iloc[0])
    mt = st.metrics[st.metrics["problem"] == name]
    best = f"best_{headline}"
    hl = metric_table(st.runs[st.runs["problem"] == name], best, n_resamples=999) if best in g else None
    tt = st.thresholds[st.thresholds["problem"] == name]
    sig = st.significance[st.significance["problem"] == name]
    ref = st.references.get(name)
    levels = tt.drop_duplicates("level").sort_values("level")
    headers = ["optimizer", "seeds", "final train loss (mean ± std)", "95% CI", f"vs {ref or 'reference'}",
               f"best {headline} (mean)", "diverged"]
    headers += [f"steps to ≤{t:g}" for t in levels["threshold"]]
    cost = {c["optimizer"] + "*": c for c in costs.to_dict("records")}
    if cost:
        headers.append("tuned (cost)")
    rows = []
    for r in mt.to_dict("records"):
        opt = r["optimizer"]
        seeds = str(r["runs"]) + (f" ({r['n']} ok)" if r["n"] < r["runs"] else "")
        h = hl[hl["optimizer"] == opt] if hl is not None else pd.DataFrame()
        diverged = f"{r['diverged']}/{r['runs']} ({r['diverged_rate']:.0%})"
        if r["failed"]:
            diverged += f"; {r['failed']} failed"
        row = [opt, seeds, f"{_num(r['mean'])} ± {_num(r['std'], '.2g')}",
               f"[{_num(r['ci_low'])}, {_num(r['ci_high'])}]" if _finite(r["ci_low"]) else "—",
               _mark(sig, opt, ref), _num(h["mean"].iloc[0]) if len(h) else "—", diverged]
        mine = tt[tt["optimizer"] == opt].set_index("level")
        row += [_threshold_cell(mine.loc[lv]) if lv in mine.index else "—" for lv in levels["level"]]
        if cost:
            c = cost.get(opt)
            row.append("—" if c is None else
                       f"{c['picked']}; {c['tuning_runs']} runs, {_num(c['tuning_seconds'], '.3g')} s")
        rows.append(row)
    if reference is None:
        how = "by default the tuned baseline `key*` with the best mean, else the best mean"
    else:
        how = "given by `--reference`"
    if ref is None or ref not in set(g["optimizer_name"]):
        vs = (f" The reference {_code(reference)} has no run on this problem: no comparison."
              if reference is not None else "")
    else:
        vs = (f" Column vs {ref}: final train loss against the reference {_code(ref)} ({how}), "
              f"{_test_names(sig)}, Holm-corrected over the {int(st.significance['p'].notna().sum())} comparisons "
              "of the suite, "
              f"α = {ALPHA}: {_VERDICT_TEXT}.")
    caption = _caption(suite, g) + vs
    if cost:
        caption += (" `key*`: hyper-parameters tuned on the seeds of the suite's tuning runs (disjoint "
                    "from these), with the cost of that tuning; the row `key` beside it uses the declared "
                    "hyper-parameters.")
    return Table("results", caption, headers, rows)


def _cost_table(g: pd.DataFrame, st: _SuiteStats) -> Table:
    name = g["problem_name"].iloc[0]
    ct = st.costs[st.costs["problem"] == name]
    has_base = (g["optimizer"] == COST_BASELINE).any()
    headers = ["optimizer", "median step", f"× {COST_BASELINE}", "forward/step", "backward/step", "peak memory",
               "optimizer state"]
    rows = [[r["optimizer"], f"{_num(r['median_step_s'] * 1e3, '.3g')} ms" if _finite(r["median_step_s"]) else "—",
             f"{_num(r['step_time_ratio'], '.2f')}" + ("×" if _finite(r["step_time_ratio"]) else ""),
             _num(r["forward_per_step"], ".3g"), _num(r["backward_per_step"], ".3g"),
             _bytes(r["peak_memory_bytes"]), _bytes(r["state_bytes"])] for r in ct.to_dict("records")]
    caption = (f"Cost per step on {_code(name)}: median over runs of each run's median `optimizer.step(closure)` time; "
               f"× {COST_BASELINE}: its ratio to `{COST_BASELINE}`'s on this problem and device"
               + ("" if has_base else f" (no `{COST_BASELINE}` run here: no ratio)")
               + "; forward/backward: oracle calls per step; peak memory: CUDA max allocated, or growth of the "
               "peak RSS on the CPU; optimizer state: bytes of the tensors in `optimizer.state`.")
    return Table("cost", caption, headers, rows)


# --- across problems ----------------------------------------------------------------------------------


def _labels(sf: pd.DataFrame) -> tuple[pd.Series, bool]:
    """Names for comparisons across problems: an optimizer key that runs one untuned setting
    per problem is named by its key (its hyper-parameters may differ per problem); others keep
    their names. Also whether any name was replaced."""
    untuned = ~sf["optimizer_name"].str.endswith("*")
    per = sf[untuned].groupby(["optimizer", "problem"])["optimizer_name"].nunique()
    single = per.groupby(level="optimizer").max()
    keys = set(single[single == 1].index)
    relabel = untuned & sf["optimizer"].isin(keys)
    labels = sf["optimizer_name"].where(~relabel, sf["optimizer"])
    return labels, bool((labels != sf["optimizer_name"]).any())


def _ranking_blocks(suite: str, st: _SuiteStats, several_suites: bool, figures: _Figures | None) -> list[Block]:
    labels, relabelled = _labels(st.runs)
    labelled = st.runs.assign(optimizer_name=labels)
    rr = rank_table(labelled, "final_train_loss", "min", alpha=ALPHA)
    title = "Overall ranking" + (f" (suite {_code(suite)})" if several_suites else "")
    out: list[Block] = [Heading(2, title)]
    if rr.problems == 0 or rr.optimizers == 0:
        return out + [Para("No optimizer ran on every problem: nothing to rank.")]
    text = [f"Mean rank of the final train loss over {_plural(rr.problems, 'problem')} (per problem: mean over "
            "seeds, a diverged or failed run counting as the worst value; rank 1 = best, ties share the average rank)."]
    if rr.reason:
        text.append(f"Friedman test not computed: {rr.reason}.")
    else:
        text.append(f"Friedman test (tie-corrected χ², {rr.optimizers} optimizers × {rr.problems} problems): "
                    f"χ² = {rr.statistic:.3g}, p = {rr.p:.3g}.")
    if math.isfinite(rr.cd):
        text.append(f"Nemenyi post-hoc test: critical difference CD = {rr.cd:.3g} at α = {rr.alpha}; two optimizers "
                    "whose mean ranks differ by more than CD differ significantly (Demšar, 2006).")
    if relabelled:
        text.append("Optimizers run with one setting per problem are named by key (the setting may differ per "
                    "problem).")
    if rr.dropped:
        text.append(f"Not run on every problem, so left out: {', '.join(map(_code, rr.dropped))}.")
    problems = sorted(rr.table["problem"].unique())
    per_problem = len(problems) <= 8
    headers = ["optimizer", "mean rank"] + ([f"rank on {p}" for p in problems] if per_problem else [])
    headers.append("within CD of the best")
    best = rr.mean_ranks["mean_rank"].min()
    ranks = rr.table.pivot(index="optimizer", columns="problem", values="rank")
    rows = []
    for r in rr.mean_ranks.to_dict("records"):
        row = [r["optimizer"], f"{r['mean_rank']:.2f}"]
        if per_problem:
            row += [f"{ranks.loc[r['optimizer'], p]:g}" for p in problems]
        row.append(("yes" if r["mean_rank"] - best <= rr.cd else "no") if math.isfinite(rr.cd) else "—")
        rows.append(row)
    out += [Table("ranking", " ".join(text), headers, rows)]
    if figures is not None:
        out += figures.ranking(suite, rr, labelled)
    return out


# --- robustness -----------------------------------------------------------------------------------


def _robustness_blocks(runs: pd.DataFrame, main: pd.DataFrame, figures: _Figures | None) -> list[Block]:
    out: list[Block] = [
        Heading(2, "Robustness to the (initial) learning rate"),
        Para("Each optimizer at every point of a log grid of its (initial) learning rate, other "
             "hyper-parameters as declared. A grid value *works* when most of its seeds reach the "
             "problem's first threshold; width = length in decades of the longest unbroken range of "
             "working values (each value standing for one grid cell); diverged = share of all grid runs.")]
    for (suite, problem), g in runs.groupby(["suite", "problem_name"], sort=True):
        names = {k: lr_param(_optimizer_cls(k)) or "lr" for k in g["optimizer"].unique()}
        table = pd.concat([lr_robustness(gk, param=names[k]) for k, gk in g.groupby("optimizer", sort=True)])
        lrs = sorted({h[names[k]] for k, h in zip(g["optimizer"], g["hparams"]) if names[k] in h})
        rows = [[r["optimizer"], names[r["optimizer"]], _num(r["width_decades"], ".2g"),
                 "—" if r["width_decades"] == 0 else f"{r['lr_low']:g} … {r['lr_high']:g}",
                 f"{r['diverged_fraction']:.0%}"] for r in table.to_dict("records")]
        headers = ["optimizer", "swept", "width (decades)", "working range", "diverged"]
        mine = main[(main["suite"] == suite[: -len(ROBUSTNESS_SUFFIX)]) & (main["problem_name"] == problem)]
        unswept = sorted(k for k in mine["optimizer"].unique() if lr_param(_optimizer_cls(k)) is None)
        note = f" Not swept (no learning rate): {', '.join(unswept)}." if unswept else ""
        caption = (f"Suite {_code(suite)}: grid {lrs[0]:g} … {lrs[-1]:g} ({len(lrs)} points), "
                   f"{g['seed'].nunique()} seeds, first threshold {g['thresholds'].iloc[0][0]:g}.{note}")
        out += [Heading(3, problem), Table("robustness", caption, headers, rows)]
        if figures is not None:
            out += figures.robustness(problem, g, names)
    return out


# --- figures (HTML) -----------------------------------------------------------------------------------


class _Figures:
    """Makes the report's figures (imports :mod:`lrbench.figures`, hence seaborn, lazily) and
    collects what could not be drawn."""

    def __init__(self, db: str | Path) -> None:
        from lrbench import figures

        self.db = db
        self.fig = figures
        self.missing: list[str] = []

    def _draw(self, what: str, make: Callable[[], bytes], caption: str) -> list[Block]:
        import matplotlib

        try:
            with matplotlib.rc_context({"text.usetex": False}):  # names are not LaTeX
                return [Image(make(), caption)]
        except Exception as exc:  # noqa: BLE001 - a figure that cannot be drawn must not lose the report
            self.missing.append(f"Figure not drawn ({what}): {type(exc).__name__}: {exc}".splitlines()[0])
            return [Para(f"*Figure not drawn ({what}): {type(exc).__name__}.*")]

    def _curves(self, g: pd.DataFrame) -> pd.DataFrame:
        """Long table of the curves of the runs in ``g`` (``optimizer, seed, status``, then the
        curve columns), thinned to at most ``MAX_CURVE_POINTS`` evaluation steps."""
        parts, lost = [], []
        for r in g[["run_key", "optimizer_name", "seed", "status"]].itertuples(index=False):
            try:
                c = load_curves(self.db, r.run_key)
            except KeyError:
                c = pd.DataFrame()
            if c.empty or "step" not in c:
                lost.append(f"{_code(r.optimizer_name)} seed {r.seed}")
                continue
            parts.append(c.assign(optimizer=r.optimizer_name, seed=r.seed, status=r.status))
        if lost:
            self.missing.append(f"Curves missing for {_plural(len(lost), 'run')} on {_code(g['problem_name'].iloc[0])} "
                                f"(suite {_code(g['suite'].iloc[0])}): {', '.join(lost[:8])}"
                                + (f" and {len(lost) - 8} more" if len(lost) > 8 else "") + ".")
        if not parts:
            return pd.DataFrame(columns=["optimizer", "seed", "status", "step"])
        curves = pd.concat(parts, ignore_index=True)
        steps = np.sort(curves["step"].unique())
        if len(steps) > MAX_CURVE_POINTS:
            keep = steps[np.unique(np.linspace(0, len(steps) - 1, MAX_CURVE_POINTS).round().astype(int))]
            curves = curves[curves["step"].isin(keep)]
        return curves

    def problem(self, g: pd.DataFrame, ecdf: pd.DataFrame) -> list[Block]:
        """Curves, effective-LR traces, the ECDF of steps to threshold and, for a 2-D problem,
        the trajectories over the contours of its objective."""
        name, key = g["problem_name"].iloc[0], g["problem"].iloc[0]
        headline, _ = _headline(key)
        colours = self.fig.palette(g["optimizer_name"].unique())
        curves = self._curves(g)
        ok = curves[curves["status"] == "ok"]
        left = g["status"].ne("ok").sum()
        out: list[Block] = []
        if len(ok):
            metrics = [m for m in dict.fromkeys(["train_loss", headline]) if m in ok.columns]
            dropped = f"; {_plural(int(left), 'diverged or failed run')} left out" if left else ""
            out += self._draw(f"curves of {name}", lambda: self.fig.curves_png(ok, metrics, colours, name),
                              f"{_code(name)}: {' and '.join(metrics)} against the step, mean over the seeds of the "
                              f"runs that ended ok{dropped}; band: {self.fig.BAND}.")
            lr_cols = sorted(c for c in ok.columns if c.startswith("lr_"))
            if lr_cols:
                out += self._draw(f"learning rates on {name}", lambda: self.fig.lr_png(ok, lr_cols, colours, name),
                                  f"{_code(name)}: effective learning rate (the step size applied, `lr_<group>`) per "
                                  f"optimizer, mean over seeds (ok runs), log scale; band: {self.fig.BAND}.")
        else:
            out.append(Para(f"*No curves of an ok run on {_code(name)}: curve figures left out.*"))
        mine = ecdf[ecdf["problem"] == name]
        if len(mine):
            out += self._draw(f"ECDF on {name}", lambda: self.fig.ecdf_png(mine, colours, name),
                              f"{_code(name)}: empirical CDF of steps to threshold: fraction of (seed, threshold) "
                              "pairs reached by each step, every run a trial (diverged and failed runs included).")
        f = getattr(_problem_cls(key), "f", None)
        if callable(f) and {"x", "y"} <= set(ok.columns):
            seed0 = ok[ok["seed"] == ok.groupby("optimizer")["seed"].transform("min")]
            paths = {n: s[["x", "y"]].to_numpy(float) for n, s in seed0.groupby("optimizer", sort=True)}
            out += self._draw(f"trajectories on {name}", lambda: self.fig.trajectory_png(f, paths, colours, name),
                              f"{_code(name)}: trajectories of the first seed of each optimizer (ok runs) over "
                              "log-spaced contours of the objective; square: start, dot: end.")
        return out

    def ranking(self, suite: str, rr, labelled: pd.DataFrame) -> list[Block]:
        """The critical-difference diagram and the performance profiles of a suite."""
        out: list[Block] = []
        if rr.optimizers >= 2 and math.isfinite(rr.cd):
            title = f"suite {suite}: mean ranks"
            out += self._draw(f"CD diagram of {suite}",
                              lambda: self.fig.cd_png(rr.mean_ranks, rr.cd, rr.optimizers, title),
                              f"Critical-difference diagram of suite {_code(suite)}: mean ranks of the final train "
                              f"loss (1 = best); bars join optimizers within CD = {rr.cd:.3g} (Nemenyi, "
                              f"α = {rr.alpha}) of each other, i.e. not significantly different.")
        profiles = {m: performance_profile(labelled, m, level=None) for m in ("steps", "seconds")}
        profiles = {m: p for m, p in profiles.items() if len(p)}
        if profiles:
            colours = self.fig.palette(labelled["optimizer_name"].unique())
            out += self._draw(f"performance profiles of {suite}",
                              lambda: self.fig.profiles_png(profiles, colours, f"suite {suite}"),
                              f"Performance profiles of suite {_code(suite)} (Dolan–Moré): an instance is a problem "
                              "and one of its thresholds; cost = aRT in steps / in seconds (steps × median step "
                              "time); ρ(τ) = fraction of instances an optimizer solves within τ × the best "
                              "optimizer's cost.")
        return out

    def robustness(self, problem: str, g: pd.DataFrame, names: dict[str, str]) -> list[Block]:
        """Final train loss against the (initial) learning rate of each optimizer key."""
        points = pd.DataFrame({"optimizer": g["optimizer"],
                               "lr": [h.get(names[k]) for k, h in zip(g["optimizer"], g["hparams"])],
                               "final_train_loss": pd.to_numeric(g["final_train_loss"], errors="coerce")
                               if "final_train_loss" in g else math.nan,
                               "status": g["status"]}).dropna(subset=["lr"])
        colours = self.fig.palette(points["optimizer"].unique())
        return self._draw(f"robustness on {problem}", lambda: self.fig.robustness_png(points, colours, problem),
                          f"{_code(problem)}: final train loss against the swept (initial) learning rate, log-log, "
                          f"mean over the seeds of the ok runs (band: {self.fig.BAND}); ×: a run diverged or failed "
                          "there.")


# --- the document --------------------------------------------------------------------------------


_LEGEND = ("How to read: final train loss over the runs that ended `ok` (mean ± std, and the bootstrap BCa 95% "
           "confidence interval of the mean); best headline metric = mean over ok runs of each run's best value; "
           "diverged = runs stopped for a non-finite loss or one above 10⁶ × the initial loss. Steps to a threshold: "
           "first evaluated step with full-training-set loss ≤ threshold; median over the seeds that reached it, "
           "(reached/seeds), and aRT, the average running time (all steps spent by all seeds, unsuccessful ones "
           "their whole run, per success; ∞ without success). Step time covers `optimizer.step(closure)` only.")


def _document(runs: pd.DataFrame, command: str | None, reference: str | None,
              figures: _Figures | None) -> list[Block]:
    blocks: list[Block] = [Heading(1, "lrbench leaderboard")]
    if command:
        blocks.append(Para(f"Generated by {_code(command)}."))
    if runs.empty:
        return blocks + [Para("No runs recorded yet.")]
    r = _split(runs)
    if reference is not None and len(r.main) and reference not in set(r.main["optimizer_name"]) \
            and reference not in set(r.main["optimizer"]):
        names = ", ".join(sorted(r.main["optimizer_name"].unique()))
        raise ValueError(f"invalid reference: {reference!r} (no main run of that optimizer name or key; "
                         f"names: {names})")
    notes = Bullets(_notes(r))
    blocks += [Heading(2, "Notes"), notes, Para(_LEGEND)]
    suites = sorted(r.main["suite"].unique())
    for suite in suites:
        runs_s = r.main[r.main["suite"] == suite]
        st = _suite_stats(runs_s, reference)
        ecdf = ecdf_table(st.runs) if figures is not None else None
        for problem, g in runs_s.groupby("problem_name", sort=True):
            mine = r.costs[(r.costs["suite"] == suite) & (r.costs["problem_name"] == problem)]
            blocks += [Heading(2, f"{problem}" + (f" (suite {_code(suite)})" if len(suites) > 1 else "")),
                       _results_table(suite, g, st, mine, reference), _cost_table(g, st)]
            if figures is not None:
                blocks += figures.problem(g, ecdf)
        blocks += _ranking_blocks(suite, st, len(suites) > 1, figures)
    if len(r.robust):
        blocks += _robustness_blocks(r.robust, r.main, figures)
    if figures is not None:
        notes.items += figures.missing
    if not notes.items:
        blocks.remove(notes)
        blocks.remove(next(b for b in blocks if isinstance(b, Heading) and b.text == "Notes"))
    return blocks


def leaderboard_markdown(runs: pd.DataFrame, command: str | None = None, reference: str | None = None) -> str:
    """The Markdown leaderboard of a runs table (:func:`lrbench.load_runs`).

    Args:
        runs: every run of the database (main, tuning and robustness runs).
        command: the command line that produced it, printed at the top.
        reference: the optimizer (name, or key with one setting per problem) the significance
            marks compare against; ``None``: per problem, the best tuned baseline (``key*``),
            else the best mean (:func:`lrbench.stats.significance_table`).

    Raises:
        ValueError: ``reference`` names no main run.
    """
    return _markdown(_document(runs, command, reference, None))


def report_html(runs: pd.DataFrame, db: str | Path, command: str | None = None, reference: str | None = None) -> str:
    """The self-contained HTML report: the leaderboard's tables plus figures (curves read from
    ``db`` with :func:`lrbench.load_curves`), PNGs embedded as base64 data URIs.

    Args:
        runs: every run of the database (:func:`lrbench.load_runs` of ``db``).
        db: the results database the curves are read from.
        command: the command line that produced it.
        reference: as for :func:`leaderboard_markdown`.
    """
    return _html(_document(runs, command, reference, _Figures(db)), "lrbench report")


def write_reports(db: str | Path, out_dir: str | Path, fmt: str = "md", command: str | None = None,
                  reference: str | None = None) -> list[Path]:
    """Render the reports of ``db`` into ``out_dir``: ``leaderboard.md`` (``fmt`` ``md``),
    ``index.html`` (``html``) or both (``all``). Returns the files written. Each file is replaced
    whole (written beside it, then renamed): an interrupted or failed write keeps the previous one.

    Raises:
        ValueError: an unknown ``fmt``, or a ``reference`` that names no main run.
        FileNotFoundError: no database at ``db``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"invalid format: {fmt!r} (supported: {', '.join(FORMATS)})")
    runs = load_runs(db)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if fmt in ("md", "all"):
        _write_atomic(out_dir / "leaderboard.md", leaderboard_markdown(runs, command, reference))
        written.append(out_dir / "leaderboard.md")
    if fmt in ("html", "all"):
        _write_atomic(out_dir / "index.html", report_html(runs, db, command, reference))
        written.append(out_dir / "index.html")
    return written


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` all at once: into a temporary file beside it, synced to
    disk, then renamed over it, so that a crash or a full disk leaves the previous file whole.
    The temporary file is removed on failure; a symlink at ``path`` keeps pointing at the file.
    """
    path = Path(os.path.realpath(path))
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    # O_EXCL: a fresh file, whose mode the umask sets, as for Path.write_text
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with open(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_report(db: str | Path, out_dir: str | Path, fmt: str = "md", command: str | None = None,
                 reference: str | None = None) -> Path:
    """As :func:`write_reports`; returns the last file written (``index.html`` for ``all``)."""
    return write_reports(db, out_dir, fmt, command, reference)[-1]
