"""What runs in a worker: one task (a run, or a batch of seeds) under a thread count and a
memory limit. Every executor (:mod:`lrbench.executors`) calls :func:`run_task`, in this process
or in a worker process, so a run gives the same numbers wherever it runs (at equal threads).

The worker-process side of the local executor is here too (:func:`serve`): it ignores Ctrl-C
(the driver stops the workers), and it exits by itself when the driver is gone, even if the
driver was killed with SIGKILL and had no chance to stop it: Linux sends it SIGKILL when its
parent dies (``PR_SET_PDEATHSIG``), and a watchdog thread checks that the driver's process is
still alive every 0.2 s (other systems, and a worker whose parent is a fork server).
"""

from __future__ import annotations

import _thread
import os
import signal
import sys
import threading
import time

from lrbench._libc import libc
from lrbench.memory import steady_heap

__all__ = ["run_task", "serve", "MEMORY_EXIT", "memory_message"]

MEMORY_EXIT = 86
"""Exit status of a worker that stopped itself at its memory limit."""
_POLL_S = 0.05
_DRIVER_POLL_S = 0.2


def memory_message(limit_mb: float, rss: int | None = None) -> str:
    seen = f" (resident {rss / 2**20:.0f} MiB)" if rss is not None else ""
    return f"memory limit: over {limit_mb:g} MiB{seen}"


def run_task(configs: list, threads: int | None = None, max_memory_mb: float | None = None) -> list:
    """Run one task: a single config, or configs that differ only in their seed (one batch).

    ``threads`` sets torch's intra-op threads (recorded in each result's environment). Over
    ``max_memory_mb`` of resident memory (checked every 50 ms) the run stops and every config
    of the task is recorded ``failed`` with ``memory limit: ...``; if it cannot be stopped
    within 2 s (inside one long native call), the process exits with :data:`MEMORY_EXIT`.
    """
    import torch

    from lrbench.core import lost_result
    from lrbench.memory import rss_bytes
    from lrbench.runner import run_one
    from lrbench.vectorized import run_seeds

    steady_heap()
    if threads is not None:
        torch.set_num_threads(threads)
    if max_memory_mb is None:
        return run_seeds(configs) if len(configs) > 1 else [run_one(configs[0])]
    limit = max_memory_mb * 2**20
    done, tripped = threading.Event(), []

    def watch():
        while not done.wait(_POLL_S):
            rss = rss_bytes()
            if rss is not None and rss > limit:
                tripped.append(rss)
                _thread.interrupt_main()
                if not done.wait(2.0):
                    os._exit(MEMORY_EXIT)
                return

    watcher = threading.Thread(target=watch, name="lrbench-memory", daemon=True)
    watcher.start()
    try:
        results = run_seeds(configs) if len(configs) > 1 else [run_one(configs[0])]
    except KeyboardInterrupt:
        if not tripped:
            raise
        results = None
    finally:
        done.set()
    if tripped:
        import gc

        gc.collect()
        return [lost_result(c, "failed", memory_message(max_memory_mb, tripped[0])) for c in configs]
    return results


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        try:
            libc().prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except AttributeError:  # no C library
            pass


def _watch_driver(pid: int) -> None:
    def watch():
        while True:
            time.sleep(_DRIVER_POLL_S)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:  # alive, another user's (a reused pid): keep going
                pass

    threading.Thread(target=watch, name="lrbench-driver-watch", daemon=True).start()


def serve(conn, driver_pid: int, threads: int | None, max_memory_mb: float | None,
          cuda_device: int | None = None) -> None:
    """The loop of a local worker process: receive ``(task_id, configs)``, send
    ``("start", task_id)`` as it starts (the time limit counts from there, not from a start-up
    of the worker) and ``("done", task_id, results)``; ``None`` or a closed pipe ends it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    _watch_driver(driver_pid)
    if cuda_device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(cuda_device)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        task_id, configs = msg
        try:
            conn.send(("start", task_id))
            results = run_task(configs, threads, max_memory_mb)
            conn.send(("done", task_id, results))
        except (BrokenPipeError, OSError):
            return
