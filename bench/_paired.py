"""Paired timing: the benchmark and its reference alternate round by round.

The development VM (and many CI machines) change speed from one second to the next, so a
ratio of two medians taken a minute apart moved by up to 130 % between identical runs.
Here each round of the benchmark is preceded by a round of its reference (pytest-benchmark's
``setup`` hook, timed by us), and the gated number is the median of the per-round ratios:
drift slower than one round cancels. pytest-benchmark still records the benchmark's own
times (``benchmark.stats``), which give the per-round numerators.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def paired(benchmark, target: Callable, reference: Callable, reference_name: str, *, rounds: int,
           warmup_rounds: int = 1, args: tuple = ()) -> None:
    """``benchmark.pedantic(target)`` with ``reference()`` timed before every round; stores
    ``extra_info["paired_ratio"]`` (median over rounds of target time / reference time),
    ``extra_info["paired_with"]`` and the reference's median time."""
    ref_times: list[float] = []

    def setup():
        t0 = time.perf_counter()
        reference()
        ref_times.append(time.perf_counter() - t0)

    benchmark.pedantic(target, args=args, setup=setup, rounds=rounds, warmup_rounds=warmup_rounds, iterations=1)
    if benchmark.stats is None:  # --benchmark-disable: one call, no timings
        return
    times = list(benchmark.stats.stats.data)
    refs = ref_times[-len(times):]
    benchmark.extra_info.update({
        "paired_ratio": statistics.median(t / r for t, r in zip(times, refs)),
        "paired_with": reference_name,
        "reference_median_s": statistics.median(refs),
    })
