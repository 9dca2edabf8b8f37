"""``lrbench`` command line: parses arguments and delegates; no logic of its own."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from lrbench import registry
from lrbench.registry import RegistryError
from lrbench.report import FORMATS, write_report, write_reports
from lrbench.runner import resolve_device
from lrbench.store import Store
from lrbench.suite import SuiteError, check_configs, load_suite, select, suite_names
from lrbench.sweep import pending, stages, sweep
from lrbench.tuning import TuningError

EXIT_BAD_INPUT = 2


class _BadInput(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit code 2
        raise _BadInput(message)


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="lrbench", description="Benchmark learning-rate adaptation methods.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    ls = sub.add_parser("list", help="list registered problems, optimizers or shipped suites")
    ls.add_argument("what", choices=["problems", "optimizers", "suites"])

    run = sub.add_parser("run", help="run a suite (default: problems/default.toml)")
    run.add_argument("suite", nargs="?", default=None, help="a shipped suite's name or a TOML file")
    run.add_argument("--problems", type=_csv, help="comma-separated problem keys")
    run.add_argument("--optimizers", type=_csv, help="comma-separated optimizer keys (or module:Class)")
    run.add_argument("--seeds", type=int, help="number of seeds (0..N-1), overriding the suite")
    run.add_argument("--device", choices=["auto", "cpu", "cuda"], help="overrides the suite's device")
    run.add_argument("--db", default="lrbench.sqlite", help="results database (default ./lrbench.sqlite)")
    run.add_argument("--out", default="reports", help="directory of the leaderboard (default ./reports)")
    run.add_argument("--vectorize", choices=["auto", "off"], default="auto",
                     help="run the seeds of a setting as one batched computation where supported (default auto)")
    run.add_argument("--data-dir", help="where datasets are read from (default $LRBENCH_DATA or ~/.cache/lrbench)")

    rep = sub.add_parser("report", help="render the leaderboard from a results database")
    rep.add_argument("--db", default="lrbench.sqlite")
    rep.add_argument("--format", default="md", choices=FORMATS,
                     help="md: leaderboard.md; html: index.html with figures; all: both (default md)")
    rep.add_argument("--out", default="reports")
    rep.add_argument("--reference", help="optimizer name (or key) the significance marks compare against "
                     "(default: per problem, the best tuned baseline)")
    return p


def _describe(cls) -> str:
    doc = (cls.__doc__ or "").strip().splitlines()
    line = doc[0] if doc else ""
    if not getattr(cls, "available", True):  # an optional package is missing
        line = f"[unavailable: {cls.unavailable_reason}] {line}"
    return line


def _list(what: str, console: Console) -> int:
    if what == "suites":
        for name in suite_names():
            console.print(name)
        return 0
    keys = registry.optimizer_keys() if what == "optimizers" else registry.problem_keys()
    lookup = registry.optimizer_class if what == "optimizers" else registry.problem_class
    width = max(map(len, keys))
    for key in keys:
        console.print(f"{key:<{width}}  {_describe(lookup(key))}", highlight=False)
    return 0


def _run(args, console: Console, argv: list[str]) -> int:
    if args.data_dir:
        import os

        os.environ["LRBENCH_DATA"] = str(Path(args.data_dir).expanduser())
    suite = load_suite(args.suite, validate=False)  # checked below, for the runs still to do
    device = args.device or suite.device
    suite = select(suite, args.problems, args.optimizers, args.seeds, str(resolve_device(device)))
    command = " ".join(["lrbench", *argv])
    counts: Counter = Counter()
    with Store(args.db) as store:
        for stage, configs in stages(suite, args.db):
            todo, skipped = pending(configs, store)
            check_configs(todo)
            name = suite.name if stage == "main" else f"{suite.name} ({stage})"
            console.print(f"suite {name}: {len(configs)} runs, {skipped} already recorded in {args.db}")
            counts += _sweep_with_progress(todo, store, console, args.vectorize == "auto")
    if counts:
        console.print("finished: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    path = write_report(args.db, args.out, "md", command=command)
    console.print(f"leaderboard: {path}")
    return 0


def _sweep_with_progress(todo, store: Store, console: Console, vectorize: bool) -> Counter:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("runs", total=len(todo))
        return sweep(todo, store, on_start=lambda c: bar.update(task, description=c.name),
                     on_done=lambda r: bar.advance(task), vectorize=vectorize)


def _report(args, console: Console) -> int:
    command = f"lrbench report --db {args.db}" + (f" --reference {args.reference}" if args.reference else "")
    for path in write_reports(args.db, args.out, args.format, command=command, reference=args.reference):
        console.print(f"report: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    console = Console(soft_wrap=True)
    try:
        args = _parser().parse_args(argv)
        if args.command == "list":
            return _list(args.what, console)
        if args.command == "run":
            return _run(args, console, argv)
        return _report(args, console)
    except (_BadInput, SuiteError, RegistryError, TuningError, ValueError, FileNotFoundError) as exc:
        print(f"lrbench: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("lrbench: interrupted; every finished run is saved", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
