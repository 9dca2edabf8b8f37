"""A run's memory on the CPU: the peak resident memory of its training steps above what its
process holds once the run's data and model are built (:class:`CpuPeak`), and the process's
resident memory now (:func:`rss_bytes`, which a worker's memory limit watches).

On the GPU the runner reads ``torch.cuda.max_memory_allocated`` instead; nothing here runs.
"""

from __future__ import annotations

import gc
import resource
import sys
from pathlib import Path

import torch

from lrbench._libc import libc

__all__ = ["CpuPeak", "rss_bytes"]


def _peak_rss_bytes() -> int:
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib if sys.platform == "darwin" else kib * 1024


def _status_kib(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``), or None without one."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def rss_bytes() -> int | None:
    """This process's resident memory now (Linux), or None."""
    kib = _status_kib("VmRSS")
    return None if kib is None else kib * 1024


def _trim_heap() -> None:
    """Hand the heap's free pages back to the system (glibc's ``malloc_trim``), so that memory a
    previous run freed but the allocator kept does not count as this process's baseline."""
    try:
        libc().malloc_trim(0)
    except AttributeError:  # not glibc, or no C library
        pass


_WARM: list[bool] = []


def _warm_up() -> None:
    """Once per process, before its first measured run: a tiny training step with torch's
    optimizers, so that what the first step of a process allocates for good (torch._dynamo's
    import, the autograd engine, kernels' caches: 160 MiB on a fresh process, 2026-12-02) is not
    charged to whichever run happens to come first."""
    if _WARM:
        return
    _WARM.append(True)
    with torch.random.fork_rng(devices=[]):
        model = torch.nn.Linear(8, 2)
        for opt in (torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), torch.optim.Adam(model.parameters())):
            loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 8)), torch.tensor([0, 1, 0, 1]))
            loss.backward()
            opt.step()
            opt.zero_grad()


class CpuPeak:
    """The peak resident memory of a run's training steps above what its process holds once the
    run's data and model are built and evaluated once: ``start()`` there, ``pause()`` /
    ``resume()`` around each later evaluation, ``peak()`` at the end.

    Where Linux lets a process reset its own high-water mark (``/proc/self/clear_refs`` ``5``,
    then ``VmHWM``), ``start`` freezes what the process holds (``gc.freeze``), frees what the
    run's collector and the heap hold unused (``gc.collect``, ``malloc_trim``), resets the mark
    and takes ``VmRSS`` as the baseline; the figure is the highest mark of the stretches of
    steps between evaluations, so neither what ran earlier in the process nor the evaluation of
    the whole training set (the harness's work, not the method's) is in it. Elsewhere it falls
    back to the growth of the process's peak RSS (``getrusage``), which is 0 for every run that
    needs less than an earlier one in the process.
    """

    def __init__(self) -> None:
        self.base = _peak_rss_bytes()
        self.exact = False
        self.best = 0
        self.frozen = False

    def _reset(self) -> bool:
        gc.collect()
        _trim_heap()
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            return False
        return _status_kib("VmHWM") is not None

    def start(self) -> None:
        _warm_up()
        # Only the young generations: a full collection walks every object the process holds
        # (torch, pandas, earlier runs: 0.2 s per run in a benchmark process, 2026-12-03, a
        # fifth of a 1000-step logistic regression). What the process held before is then out
        # of the collector's sight during the run, so when a collection frees the run's
        # reference cycles depends on the run alone, not on how many objects earlier runs left.
        gc.collect(1)
        gc.freeze()
        self.frozen = True
        base = _status_kib("VmRSS") if self._reset() else None
        self.exact = base is not None
        self.base = base * 1024 if self.exact else _peak_rss_bytes()

    def pause(self) -> None:
        """Before an evaluation: the mark of the steps since ``start`` / ``resume``."""
        if self.exact:
            self.best = max(self.best, _status_kib("VmHWM") * 1024 - self.base)

    def resume(self) -> None:
        """After an evaluation: its memory handed back, the mark reset."""
        if self.exact:
            self._reset()

    def peak(self) -> int:
        if self.frozen:
            gc.unfreeze()
            self.frozen = False
        if self.exact:
            self.pause()
            return max(0, self.best)
        return max(0, _peak_rss_bytes() - self.base)

