"""The local executor: a pool of worker processes on this machine.

Workers are forked from a fork server that has imported torch and lrbench once (so a worker,
and the replacement of one that died, starts in a fraction of a second; ``spawn`` where there is
no fork server). Each worker runs one task at a time (:func:`lrbench.worker.serve`) with its
share of the cores as torch threads, and, on CUDA, one GPU (``CUDA_VISIBLE_DEVICES``, round
robin, so more workers than GPUs share them).

Faults are results, not crashes: a task past ``timeout_s`` is stopped by killing its worker
(the time is measured here, from when the task was handed over, so a run hung inside a native
call is stopped too) and recorded ``timeout``; a worker that dies (a segfault, ``os._exit``,
the OOM killer, its memory limit) has its task recorded ``failed`` with the cause, and is
replaced. On any exit of :meth:`LocalPool.run` (the sweep's end, Ctrl-C, SIGTERM) the workers
are stopped; if this process is killed outright they stop themselves (:mod:`lrbench.worker`).
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import multiprocessing.connection
import os
import signal
import time
from collections.abc import Iterator

from lrbench.executors._base import Executor, Task, take, timeout_message
from lrbench.spec import RunResult
from lrbench.worker import MEMORY_EXIT, memory_message, serve

__all__ = ["LocalPool"]

#: imported once in the fork server: torch, torch._dynamo (which building the first torch.optim
#: optimizer imports, 2-3 s) and the run code, so that no worker pays for them
_PRELOAD = ["torch", "torch._dynamo", "lrbench.worker", "lrbench.runner", "lrbench.vectorized", "lrbench.registry"]


def _context():
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return mp.get_context("spawn")


def death_cause(exitcode: int | None, max_memory_mb: float | None) -> str:
    """Why a worker process ended, for the record of the run it held."""
    if exitcode == MEMORY_EXIT and max_memory_mb is not None:
        return memory_message(max_memory_mb)
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        return f"worker died: killed by {name}{hint}"
    return f"worker died: exit status {exitcode}"


class _Worker:
    def __init__(self, ctx, slot: int, threads: int | None, max_memory_mb: float | None, gpus: int) -> None:
        self.conn, child = ctx.Pipe()
        cuda = slot % gpus if gpus else None
        self.proc = ctx.Process(target=serve, args=(child, os.getpid(), threads, max_memory_mb, cuda),
                                name=f"lrbench-worker-{slot}", daemon=True)
        self.proc.start()
        child.close()
        self.slot = slot
        self.task: Task | None = None
        self.task_id = -1
        self.started: float | None = None  # when the worker said it started the task

    def give(self, task_id: int, task: Task) -> None:
        self.task, self.task_id, self.started = task, task_id, None
        self.conn.send((task_id, task))

    def overdue(self, timeout_s: float | None, now: float) -> bool:
        return timeout_s is not None and self.started is not None and now - self.started >= timeout_s

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self.conn.close()

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self.proc.join(0.5)
        self.kill()


class LocalPool(Executor):
    """``workers`` processes, ``threads`` torch threads each; per-run limits as in the module doc."""

    def __init__(self, workers: int, threads: int | None = None, timeout_s: float | None = None,
                 max_memory_mb: float | None = None, gpus: int = 0) -> None:
        self.slots, self.threads, self.timeout_s, self.max_memory_mb, self.gpus = (
            workers, threads, timeout_s, max_memory_mb, gpus)
        t = f", {threads} thread{'s' * (threads != 1)} each" if threads else ""
        self.description = f"{workers} local worker{'s' * (workers != 1)}{t}"
        self.ctx = _context()
        if self.ctx.get_start_method() == "forkserver":  # its imports overlap the driver's planning
            from multiprocessing import forkserver

            forkserver.ensure_running()

    def run(self, tasks) -> Iterator[tuple[Task, list[RunResult]]]:
        from lrbench.core import lost_result

        ctx = self.ctx
        idle: list[_Worker] = []
        busy: list[_Worker] = []
        ids = itertools.count()
        tasks = iter(tasks)
        try:
            while True:
                for task in take(tasks, self.slots - len(busy)):
                    w = idle.pop() if idle else _Worker(ctx, self._free_slot(busy + idle), self.threads,
                                                       self.max_memory_mb, self.gpus)
                    w.give(next(ids), task)
                    busy.append(w)
                if not busy:
                    return
                wait = None
                running = [w.started for w in busy if w.started is not None]
                if self.timeout_s is not None and running:
                    wait = max(0.0, min(running) + self.timeout_s - time.monotonic())
                ready = set(mp.connection.wait([w.conn for w in busy] + [w.proc.sentinel for w in busy], wait))
                for w in list(busy):
                    task = w.task
                    results = None
                    if w.conn in ready:
                        try:
                            msg = w.conn.recv()
                        except (EOFError, OSError):
                            msg = None
                        if msg is not None and msg[0] == "start" and msg[1] == w.task_id:
                            w.started = time.monotonic()
                            continue
                        if msg is not None and msg[0] == "done" and msg[1] == w.task_id:
                            results = msg[2]
                    if results is not None:
                        busy.remove(w)
                        idle.append(w)
                        yield task, results
                    elif w.proc.sentinel in ready or w.conn in ready:
                        busy.remove(w)
                        w.proc.join(5)
                        cause = death_cause(w.proc.exitcode, self.max_memory_mb)
                        w.kill()
                        yield task, [lost_result(c, "failed", cause) for c in task]
                    elif w.overdue(self.timeout_s, time.monotonic()):
                        busy.remove(w)
                        w.kill()
                        yield task, [lost_result(c, "timeout", timeout_message(self.timeout_s)) for c in task]
        finally:
            for w in busy:
                w.kill()
            for w in idle:
                w.stop()

    @staticmethod
    def _free_slot(workers: list[_Worker]) -> int:
        used = {w.slot for w in workers}
        return next(i for i in itertools.count() if i not in used)
