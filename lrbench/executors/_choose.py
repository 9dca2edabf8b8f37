"""Which executor a sweep gets, with how many workers and threads."""

from __future__ import annotations

from lrbench.executors._base import Executor, cpu_cores
from lrbench.spec import Execution

__all__ = ["default_workers", "make_executor"]


def _gpus(device: str) -> int:
    if device == "cpu":
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def default_workers(device: str) -> int:
    """One worker per CPU core, or per visible GPU when the runs use CUDA."""
    gpus = _gpus(device)
    return gpus if gpus else cpu_cores()


def make_executor(execution: Execution, device: str) -> Executor:
    """The executor of ``execution`` for runs on ``device`` (``cpu``, ``cuda`` or ``auto``).

    Threads: ``execution.threads``, else the cores divided among the workers (at least one).
    ``workers = 1`` without limits runs in this process; with a time or memory limit it is a
    pool of one worker process, which is what enforces them.
    """
    if execution.backend == "ray":
        from lrbench.executors.ray import RayExecutor

        return RayExecutor(execution.address, execution.workers, execution.threads, execution.timeout_s,
                           execution.max_memory_mb, dict(execution.resources))
    workers = execution.workers or default_workers(device)
    threads = execution.threads or max(1, cpu_cores() // workers)
    if workers == 1 and execution.timeout_s is None and execution.max_memory_mb is None:
        from lrbench.executors.inline import Inline

        return Inline(threads)
    from lrbench.executors.local import LocalPool

    return LocalPool(workers, threads, execution.timeout_s, execution.max_memory_mb, _gpus(device))
