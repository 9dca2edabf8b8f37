"""Progress of a sweep: a bar on a terminal, one line per finished run otherwise.

The estimate of the time left is the sum, over the runs not yet finished, of the mean duration
measured in this sweep for the same (problem, optimizer) (the mean over all finished runs
where that pair has none yet), divided by the runs that go at once. A batch of seeds is named
as such: ``mnist_logreg/adam seeds 0–5``.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict

from lrbench.spec import RunConfig, RunResult

__all__ = ["SweepProgress", "task_name", "seed_ranges"]

BAR_NAME = 60
"""The longest task name the bar shows (a longer one is cut)."""


def seed_ranges(seeds: list[int]) -> str:
    """``0–5``, ``0–2, 7``: consecutive seeds as ranges."""
    seeds = sorted(set(seeds))
    parts, start = [], None
    for i, s in enumerate(seeds):
        if start is None:
            start = s
        if i + 1 == len(seeds) or seeds[i + 1] != s + 1:
            parts.append(str(start) if start == s else f"{start}–{s}")
            start = None
    return ", ".join(parts)


def task_name(task: list[RunConfig]) -> str:
    """A run's name, or ``problem/optimizer seeds a–b`` for a batch of seeds."""
    if len(task) == 1:
        return task[0].name
    c = task[0]
    return f"{c.problem.name}/{c.optimizer.name} seeds {seed_ranges([t.seed for t in task])}"


def _pair(c: RunConfig) -> tuple[str, str]:
    return c.problem.name, c.optimizer.name


class SweepProgress:
    """Feed it ``start(task)`` and ``done(result)``; use as a context manager."""

    def __init__(self, console, todo: list[RunConfig], slots: int, clock=time.monotonic) -> None:
        self.console, self.slots, self.clock = console, max(1, slots), clock
        self.left: dict[str, RunConfig] = {c.run_key: c for c in todo}
        self.started: dict[str, tuple[float, int]] = {}
        self.durations: dict[tuple[str, str], list[float]] = defaultdict(list)
        self.terminal = bool(getattr(console, "is_terminal", False))
        self.bar = None
        self.total = len(self.left)

    def __enter__(self) -> "SweepProgress":
        if self.terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), TextColumn("ETA {task.fields[eta]}"), console=self.console,
                                transient=False)
            self.bar.__enter__()
            self.row = self.bar.add_task("runs", total=self.total, eta="?")
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    # ---- events
    def start(self, task: list[RunConfig]) -> None:
        now = self.clock()
        for c in task:
            self.started[c.run_key] = (now, len(task))
        if self.bar is not None:
            from rich.markup import escape

            name = task_name(task)
            name = name if len(name) <= BAR_NAME else name[: BAR_NAME - 1] + "…"
            self.bar.update(self.row, description=escape(name))

    def waiting(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(self.row, description=f"waiting for {n} runs of another sweep")

    def done(self, result: RunResult) -> None:
        c = result.config
        t0, size = self.started.pop(c.run_key, (self.clock(), 1))
        seconds = (self.clock() - t0) / size  # a batch's time, shared by its seeds
        self.durations[_pair(c)].append(seconds)
        self.left.pop(c.run_key, None)
        if self.bar is not None:
            self.bar.update(self.row, advance=1, eta=self._eta_text())
        else:
            from rich.markup import escape

            n = self.total - len(self.left)
            msg = f" ({result.message})" if result.message else ""
            self.console.print(escape(f"[{n}/{self.total}] {result.status} {seconds:.1f} s {c.name}{msg}"),
                               highlight=False)

    # ---- the estimate
    def eta_seconds(self) -> float | None:
        """Seconds left by the measured durations, or None before any run finished."""
        every = [d for ds in self.durations.values() for d in ds]
        if not every:
            return None
        overall = statistics.fmean(every)
        total = sum(statistics.fmean(self.durations[_pair(c)]) if self.durations.get(_pair(c)) else overall
                    for c in self.left.values())
        return total / self.slots

    def _eta_text(self) -> str:
        s = self.eta_seconds()
        if s is None:
            return "?"
        s = int(round(s))
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
