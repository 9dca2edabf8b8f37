"""``lrbench`` command line: parses arguments and delegates; no logic of its own.

Only the standard library is imported at start-up, so that ``lrbench --help`` and
``--version`` answer at once and an interrupt while torch is being imported is handled like
any other; each command imports what it needs.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections import Counter
from pathlib import Path

from lrbench.spec import REPORT_FORMATS  # no torch behind it

EXIT_BAD_INPUT = 2


class _BadInput(Exception):
    pass


class _Terminated(BaseException):
    """SIGTERM or SIGHUP: stop like Ctrl-C (the run in progress is lost, nothing recorded is).
    A ``BaseException``, as ``KeyboardInterrupt``, so that no run records it as its failure."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit code 2
        raise _BadInput(message)


def _csv(text: str) -> list[str]:
    keys = [t.strip() for t in text.split(",") if t.strip()]
    if not keys:
        raise argparse.ArgumentTypeError(f"no keys in {text!r} (comma-separated keys)")
    return keys


def _count(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lrbench")
    except PackageNotFoundError:  # a source tree on sys.path
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="lrbench", description="Benchmark learning-rate adaptation methods.")
    p.add_argument("--version", action="version", version=f"lrbench {_version()}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    ls = sub.add_parser("list", help="list registered problems, optimizers or shipped suites")
    ls.add_argument("what", choices=["problems", "optimizers", "suites"])

    run = sub.add_parser("run", help="run a suite (default: problems/default.toml)")
    run.add_argument("suite", nargs="?", default=None, help="a shipped suite's name or a TOML file")
    run.add_argument("--problems", type=_csv, help="comma-separated problem keys (or module:Class)")
    run.add_argument("--optimizers", type=_csv, help="comma-separated optimizer keys (or module:Class)")
    run.add_argument("--seeds", type=_count, help="number of seeds (0..N-1), overriding the suite")
    run.add_argument("--device", choices=["auto", "cpu", "cuda"], help="overrides the suite's device")
    run.add_argument("--db", default="lrbench.sqlite", help="results database (default ./lrbench.sqlite)")
    run.add_argument("--out", default="reports", help="directory of the leaderboard (default ./reports)")
    run.add_argument("--vectorize", choices=["auto", "off"], default="auto",
                     help="run the seeds of a setting as one batched computation where supported (default auto)")
    run.add_argument("--data-dir", help="where datasets are read from (default $LRBENCH_DATA or ~/.cache/lrbench)")
    run.add_argument("--workers", type=_count, help="runs at a time (default: one per CPU core, or per GPU on CUDA)")
    run.add_argument("--threads", type=_count, help="torch threads per run (default: the cores shared among the workers)")
    run.add_argument("--backend", choices=["local", "ray"], help="local worker processes (default) or a Ray cluster")
    run.add_argument("--address", help="the Ray cluster: auto or HOST:PORT (default: start a local Ray)")
    run.add_argument("--timeout", type=_number, help="per-run wall-time limit in seconds (status timeout)")
    run.add_argument("--max-memory", type=_number, help="per-run resident-memory limit in MiB (status failed)")

    rep = sub.add_parser("report", help="render the leaderboard from a results database")
    rep.add_argument("--db", default="lrbench.sqlite")
    rep.add_argument("--format", default="md", choices=REPORT_FORMATS,
                     help="md: leaderboard.md; html: index.html with figures; all: both (default md)")
    rep.add_argument("--out", default="reports")
    rep.add_argument("--reference", help="optimizer name (or key) the significance marks compare against "
                     "(default: per problem, the best tuned baseline)")
    return p


def _check_out(out: str) -> None:
    """``--out`` must be a directory or a path whose first existing ancestor is one."""
    if not out.strip():
        raise _BadInput("invalid --out: '' (name a directory)")
    p = Path(out)
    while not p.exists() and p != p.parent:
        p = p.parent
    if p.exists() and not p.is_dir():
        raise _BadInput(f"invalid --out: {p} is not a directory")


def _console():
    from rich.console import Console

    return Console(soft_wrap=True, highlight=False)


def _say(console, text: str) -> None:
    """Print stored or user-given text literally (no rich markup, no highlighting)."""
    from rich.markup import escape

    console.print(escape(text))


def _describe(cls) -> str:
    doc = (cls.__doc__ or "").strip().splitlines()
    line = doc[0] if doc else ""
    if not getattr(cls, "available", True):  # an optional package is missing
        line = f"[unavailable: {cls.unavailable_reason}] {line}"
    return line


def _list(what: str) -> int:
    from lrbench import registry
    from lrbench.suite import suite_names

    console = _console()
    if what == "suites":
        for name in suite_names():
            _say(console, name)
        return 0
    keys = registry.optimizer_keys() if what == "optimizers" else registry.problem_keys()
    lookup = registry.optimizer_class if what == "optimizers" else registry.problem_class
    width = max(map(len, keys))
    for key in keys:
        _say(console, f"{key:<{width}}  {_describe(lookup(key))}")
    return 0


def _run(args, argv: list[str]) -> int:
    from lrbench.report import write_report
    from lrbench.core import resolve_device
    from lrbench.store import Store, check_path
    from lrbench.executors import make_executor
    from lrbench.suite import check_configs, load_suite, select, with_execution
    from lrbench.sweep import pending, stages

    console = _console()
    check_path(args.db)
    _check_out(args.out)
    if args.data_dir:
        os.environ["LRBENCH_DATA"] = str(Path(args.data_dir).expanduser())
    suite = load_suite(args.suite, validate=False)  # checked below, for the runs still to do
    device = args.device or suite.device
    suite = select(suite, args.problems, args.optimizers, args.seeds, str(resolve_device(device)))
    execution = with_execution(suite.execution, "command line", workers=args.workers, threads=args.threads,
                               backend=args.backend, address=args.address, timeout_s=args.timeout,
                               max_memory_mb=args.max_memory)
    executor = make_executor(execution, suite.device)
    command = " ".join(["lrbench", *argv])
    counts: Counter = Counter()
    with Store(args.db, on_wait=lambda msg: print(f"lrbench: {msg}", file=sys.stderr)) as store:
        for stage, configs in stages(suite, args.db):
            todo, skipped = pending(configs, store)
            check_configs(todo)
            name = suite.name if stage == "main" else f"{suite.name} ({stage})"
            _say(console, f"suite {name}: {len(configs)} runs, {skipped} already recorded in {args.db}"
                 + (f"; {executor.description}" if todo else ""))
            counts += _sweep_with_progress(todo, store, console, args.vectorize == "auto", executor)
    if counts:
        _say(console, "finished: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    path = write_report(args.db, args.out, "md", command=command)
    _say(console, f"leaderboard: {path}")
    return 0


def _sweep_with_progress(todo, store, console, vectorize: bool, executor) -> Counter:
    from lrbench.progress import SweepProgress
    from lrbench.sweep import sweep

    with SweepProgress(console, todo, executor.slots) as progress:
        return sweep(todo, store, on_start=progress.start, on_done=progress.done, vectorize=vectorize,
                     on_wait=progress.waiting, executor=executor)


def _report(args) -> int:
    from lrbench.report import write_reports

    _check_out(args.out)
    command = f"lrbench report --db {args.db}" + (f" --reference {args.reference}" if args.reference else "")
    console = _console()
    for path in write_reports(args.db, args.out, args.format, command=command, reference=args.reference):
        _say(console, f"report: {path}")
    return 0


def _bad_input_types() -> tuple[type, ...]:
    """The exceptions that mean bad input (imported here: they live in modules that import torch)."""
    from lrbench.registry import RegistryError

    return (_BadInput, RegistryError, ValueError, OSError)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:  # raised by the system: say what and where
        where = exc.filename2 or exc.filename  # a rename names its target second
        return f"{exc.strerror}: {where}" if where else exc.strerror
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _on_signal(signum, frame):  # noqa: ARG001
    raise _Terminated(signum)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    signals = [s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]
    previous = {s: signal.signal(s, _on_signal) for s in signals}
    try:
        return _main(argv)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _main(argv: list[str]) -> int:
    try:
        args = _parser().parse_args(argv)
        if args.command == "list":
            return _list(args.what)
        if args.command == "run":
            return _run(args, argv)
        return _report(args)
    except KeyboardInterrupt:
        print("lrbench: interrupted; every finished run is saved", file=sys.stderr)
        return 130
    except _Terminated as exc:
        print(f"lrbench: terminated by {exc}; every finished run is saved", file=sys.stderr)
        return 128 + exc.signum
    except RecursionError:
        print("lrbench: error: input nested too deeply", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:
        if not isinstance(exc, _bad_input_types()):
            raise
        print(f"lrbench: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
