"""The inline executor: one task after another in this process (what lrbench always did; used
for ``workers = 1`` without a time or memory limit, which need a worker process to enforce)."""

from __future__ import annotations

from collections.abc import Iterator

from lrbench.executors._base import Executor, Task
from lrbench.spec import RunResult
from lrbench.worker import run_task

__all__ = ["Inline"]


class Inline(Executor):
    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads
        self.slots = 1
        self.description = "in this process" + (f", {threads} thread{'s' * (threads != 1)}" if threads else "")

    def run(self, tasks) -> Iterator[tuple[Task, list[RunResult]]]:
        for task in tasks:
            yield task, run_task(task, self.threads)
