"""The Ray executor: the same sweep on a Ray cluster (``pip install 'lrbench[ray]'``).

``address`` is a running cluster (``"auto"``, ``"HOST:PORT"``); without one, lrbench starts a
local Ray for the sweep and shuts it down after. Each task is one Ray task with the suite's
per-run ``resources`` (default one CPU; ``gpu = 0.25`` lets four runs share a GPU); at most
``workers`` tasks are in flight (default: as many as the cluster's CPUs and GPUs hold), so a
task starts when it is submitted and its time limit counts from there. A task past
``timeout_s`` is cancelled (its worker process killed) and recorded ``timeout``; a task whose
worker died is recorded ``failed`` (Ray does not retry it: the next ``lrbench run`` does). The
driver alone writes the store, as with every executor.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from lrbench.executors._base import Executor, Task, take, timeout_message
from lrbench.spec import RunResult

__all__ = ["RayExecutor", "available", "unavailable_reason"]

try:
    import ray as _ray
except ImportError:  # the optional extra is not installed
    _ray = None

available = _ray is not None
unavailable_reason = "" if available else "Ray is not installed (pip install 'lrbench[ray]')"


def _task(configs, threads, max_memory_mb):
    from lrbench.worker import run_task

    return run_task(configs, threads, max_memory_mb)


class RayExecutor(Executor):
    def __init__(self, address: str | None = None, workers: int | None = None, threads: int | None = None,
                 timeout_s: float | None = None, max_memory_mb: float | None = None,
                 resources: dict[str, float] | None = None) -> None:
        if not available:
            raise ValueError(f"invalid backend: 'ray' ({unavailable_reason})")
        self.address, self.timeout_s, self.max_memory_mb = address, timeout_s, max_memory_mb
        res = dict(resources or {})
        self.cpu, self.gpu = float(res.get("cpu", 1.0)), float(res.get("gpu", 0.0))
        self.threads = threads if threads is not None else max(1, int(self.cpu))
        self.workers = workers
        self.slots = workers or 1
        where = address or "a local Ray"
        self.description = f"Ray ({where}), {self.threads} thread{'s' * (self.threads != 1)} per run"

    def _capacity(self) -> int:
        if self.workers:
            return self.workers
        have = _ray.cluster_resources()
        fits = [int(have.get("CPU", 1) // self.cpu)] if self.cpu else []
        if self.gpu:
            fits.append(int(have.get("GPU", 0) // self.gpu))
        return max(1, min(fits) if fits else 1)

    def run(self, tasks) -> Iterator[tuple[Task, list[RunResult]]]:
        from lrbench.core import lost_result

        started_here = not _ray.is_initialized()
        if started_here:
            kw = {"address": self.address} if self.address else {"include_dashboard": False}
            _ray.init(log_to_driver=False, configure_logging=False, **kw)
        remote = _ray.remote(_task).options(num_cpus=self.cpu, num_gpus=self.gpu, max_retries=0)
        self.slots = self._capacity()
        inflight: dict = {}  # ref -> (task, started)
        tasks = iter(tasks)
        try:
            while True:
                for task in take(tasks, self.slots - len(inflight)):
                    inflight[remote.remote(task, self.threads, self.max_memory_mb)] = (task, time.monotonic())
                if not inflight:
                    return
                wait = None
                if self.timeout_s is not None:
                    wait = max(0.0, min(s + self.timeout_s for _, s in inflight.values()) - time.monotonic())
                done, _ = _ray.wait(list(inflight), num_returns=1, timeout=wait)
                for ref in done:
                    task, _ = inflight.pop(ref)
                    try:
                        results = _ray.get(ref)
                    except Exception as exc:  # noqa: BLE001 - the worker died or Ray lost the task
                        cause = type(exc).__name__
                        results = [lost_result(c, "failed", f"worker died: {cause}") for c in task]
                    yield task, results
                if self.timeout_s is not None:
                    now = time.monotonic()
                    for ref, (task, s) in list(inflight.items()):
                        if now - s >= self.timeout_s:
                            inflight.pop(ref)
                            _ray.cancel(ref, force=True)
                            yield task, [lost_result(c, "timeout", timeout_message(self.timeout_s)) for c in task]
        finally:
            for ref in inflight:
                _ray.cancel(ref, force=True)
            if started_here:
                _ray.shutdown()
