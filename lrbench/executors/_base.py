"""The executor interface: run tasks, yield their results as they finish.

A *task* is a list of :class:`~lrbench.spec.RunConfig`: one run, or the seeds of one setting
run as one batch (:mod:`lrbench.vectorized`). The sweep (:mod:`lrbench.sweep`) owns the store
and claims each task's runs just before the executor asks for the task, so executors never see
the store: they take tasks from an iterator when they have room and yield ``(task, results)``,
one result per config, in order. A run that returns nothing (stopped at its time limit, lost
with its worker) still yields a result (:func:`lrbench.core.lost_result`), so every task
yields exactly once, and an interrupt stops the workers before it propagates.
"""

from __future__ import annotations

import abc
import itertools
import os
from collections.abc import Iterator

from lrbench.spec import RunConfig, RunResult

__all__ = ["Executor", "Task", "cpu_cores", "take", "timeout_message"]

Task = list[RunConfig]


def cpu_cores() -> int:
    """The cores this process may run on (its affinity mask where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def take(tasks: Iterator[Task], n: int) -> list[Task]:
    """The next ``n`` tasks (fewer, or none, once ``tasks`` runs out). Each is claimed in the
    store as it is taken (:func:`lrbench.sweep.sweep`), so an executor takes only what it has
    room to start."""
    return list(itertools.islice(tasks, max(0, n)))


def timeout_message(seconds: float) -> str:
    return f"stopped at the time limit of {seconds:g} s"


class Executor(abc.ABC):
    """Runs tasks; ``slots`` of them at a time."""

    slots: int = 1
    #: one line for the sweep's header, e.g. ``"2 local workers, 1 thread each"``
    description: str = ""

    @abc.abstractmethod
    def run(self, tasks: Iterator[Task]) -> Iterator[tuple[Task, list[RunResult]]]:
        """Pull tasks from ``tasks`` while a slot is free; yield each one's results when it ends."""
