"""A run's memory on the CPU, and the C heap's settings that it and the step times depend on.

A run's CPU figure (:func:`replayed_peak`) is the peak resident memory of its first
:data:`REPLAY_STEPS` steps, replayed untimed after the run (same seed, same problem, a fresh
model and optimizer, no evaluations) above what the process holds once the replay's data and
model are built and a backward pass has made its kernels (:class:`CpuPeak`). The replay runs
with glibc mapping every block over 64 KiB from fresh pages and returning it to the system when
freed (:func:`returned_heap`), in a thread of its own (so on a heap of its own, not on the
timed runs' one, full of free blocks kept resident) and on one torch thread (intra-op threads
would allocate on heaps of their own). Then resident memory follows the live blocks, and the
figure depends on the run alone: ``mnist_mlp_1000x2`` with Adam (gradients and two moments of
1.8 M float32 parameters, 20.6 MiB, plus activations and the update's temporaries) measured
28.1-28.5 MiB first or last in a worker's sweep, where the growth of resident memory over the
timed run itself, on the heap it is timed with (:func:`steady_heap`), gave 33.6-64.6 MiB for
the same run (2026-12-03). The costs of this choice: a replay of 5 steps and one evaluation per
run, and memory that a method allocates only after its fifth step is not in the figure.
Figures of a few MiB vary by up to 2 MiB from run to run (fd_first_order on ``mnist_mlp_1000``:
6.4-8.5 MiB), and in a worker of several torch threads a small run can depend on the runs
before it (``mnist_lenet5`` with Adam: 5.0-5.4 MiB first or after the MLP, 10.5-16 MiB after
two ``mnist_logreg`` runs, in workers of 2 threads; 5.1-5.5 MiB in workers of 1, 2026-12-03).

Also the process's resident memory now (:func:`rss_bytes`, which a worker's memory limit watches).
On the GPU the runner reads ``torch.cuda.max_memory_allocated`` of the timed run instead.
"""

from __future__ import annotations

import contextlib
import gc
import resource
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from lrbench._libc import libc

__all__ = ["REPLAY_STEPS", "CpuPeak", "replayed_peak", "returned_heap", "rss_bytes", "steady_heap"]

REPLAY_STEPS = 5
"""Steps of a run replayed to measure its CPU memory: an optimizer's state exists from its first
step. On ``mnist_mlp_1000`` (2026-12-03) replays of 40 steps gave every built-in key within 3 % of
5 steps but four (fd_first_order, rtho, adam_hd, sf_sgd: +12 % to +34 %), which a second run put
within 4 % of 5 steps (``rtho`` +13 % over 80): the figure's own noise, up to 2 MiB on figures
of 6-18 MiB, is of that order."""


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
    """The peak resident memory of training steps above what the process holds at ``start()``
    (called by a training loop once its data and model are built: in the memory replay of
    :func:`replayed_peak`, which evaluates nothing), ``peak()`` at the end.

    Where Linux lets a process reset its own high-water mark (``/proc/self/clear_refs`` ``5``,
    then ``VmHWM``), ``start`` freezes what the process holds (``gc.freeze``), frees what the
    run's collector and the heap hold unused (``gc.collect``, ``malloc_trim``), resets the mark
    and takes ``VmRSS`` as the baseline; the figure is the mark at the end above it, so what ran
    earlier in the process is not in it. Elsewhere it falls
    back to the growth of the process's peak RSS (``getrusage``), which is 0 for every run that
    needs less than an earlier one in the process.
    """

    def __init__(self) -> None:
        self.base = _peak_rss_bytes()
        self.exact = False
        self.frozen = False

    def _reset(self) -> bool:
        gc.collect()
        _trim_heap()
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            return False
        return _status_kib("VmHWM") is not None

    def start(self, warm: Callable[[], object] | None = None) -> None:
        """The baseline: after ``warm()`` (what the run needs to have run once first: kernels
        that a process creates once and keeps, which are not the run's memory)."""
        _warm_up()
        if warm is not None:
            warm()
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

    def peak(self) -> int:
        if self.frozen:
            gc.unfreeze()
            self.frozen = False
        if self.exact:
            return max(0, _status_kib("VmHWM") * 1024 - self.base)
        return max(0, _peak_rss_bytes() - self.base)


def _mallopt(*settings: tuple[int, int]) -> None:
    c = libc()
    try:
        for param, value in settings:
            c.mallopt(param, value)
    except AttributeError:  # not glibc, or no C library
        pass


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8


def steady_heap() -> None:
    """Serve every allocation from glibc's heap and never trim it by itself (``M_MMAP_THRESHOLD``
    256 MiB, ``M_TRIM_THRESHOLD`` 1 GiB, one arena), what timed steps run with in lrbench's
    worker processes and in the timing benchmarks.

    By default glibc maps each block over a threshold that it moves as blocks are freed, so how
    many page faults a step pays depends on what the process ran before: a method that allocates
    parameter-sized temporaries every step (LQA, TLR, SLS, L4) paid them every step, and identical
    benchmark runs gave LQA/sgd ratios of 2.9 and 3.5 (2026-12-01); from the heap, 2.59-2.69.
    Nothing happens elsewhere than glibc."""
    _mallopt((_M_MMAP_THRESHOLD, 256 << 20), (_M_TRIM_THRESHOLD, 1 << 30), (_M_ARENA_MAX, 1))


@contextlib.contextmanager
def returned_heap() -> Iterator[None]:
    """Inside: glibc maps every block over 64 KiB from fresh pages and unmaps it when freed, and
    trims the heap's top over 128 KiB, so that resident memory follows the live blocks (the
    steps inside pay page faults: not for timing). After: :func:`steady_heap`."""
    _mallopt((_M_MMAP_THRESHOLD, 64 << 10), (_M_TRIM_THRESHOLD, 128 << 10), (_M_ARENA_MAX, 64))
    try:
        yield
    finally:
        steady_heap()


def replayed_peak(replay: Callable[[CpuPeak], object]) -> int:
    """The CPU figure of a run: ``replay(gauge)`` trains a fresh copy of the run for
    :data:`REPLAY_STEPS` steps without evaluations, starting ``gauge`` once its data and model are
    built; run inside :func:`returned_heap`.
    What the replay raises is ignored (the timed run recorded the failure): the figure is that of
    the steps before it."""
    gc.collect(1)  # the timed run's young cycles; a full collection walks all the process holds (0.2 s)
    _trim_heap()
    gauge = CpuPeak()

    def run() -> None:
        try:
            replay(gauge)
        except (Exception, SystemExit):  # noqa: BLE001 - the timed run has recorded it
            pass

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # intra-op threads would allocate in arenas of their own, reused or not
    try:
        with returned_heap():
            thread = threading.Thread(target=run, name="lrbench-memory-replay")
            thread.start()
            thread.join()
            return gauge.peak()
    finally:
        torch.set_num_threads(threads)
