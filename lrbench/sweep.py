"""A sweep: every run of a suite that the store does not hold yet, on an executor
(:mod:`lrbench.executors`: this process, local worker processes or Ray).

A suite runs in stages: its tuning runs, its LR-robustness sweep, then its main runs (whose
tuned entries use what the tuning runs picked, so they are planned only once those ended).
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Iterator

from lrbench.executors import Executor
from lrbench.executors.inline import Inline
from lrbench.registry import problem_class
from lrbench.vectorized import supports
from lrbench.spec import RunConfig, RunResult, Suite
from lrbench.store import Store, load_runs
from lrbench.tuning import main_configs, robustness_configs, tuning_configs

__all__ = ["pending", "stages", "sweep"]


def pending(configs: list[RunConfig], store: Store) -> tuple[list[RunConfig], int]:
    """The runs among ``configs`` without a final record in ``store``, and how many were skipped."""
    done = store.finished_keys()
    todo = [c for c in configs if c.run_key not in done]
    return todo, len(configs) - len(todo)


def stages(suite: Suite, db: str | Path) -> Iterator[tuple[str, list[RunConfig]]]:
    """``(label, configs)`` for each non-empty stage of the suite, in order: ``tuning``,
    ``robustness``, ``main``. Planned lazily: run a stage before asking for the next one,
    since the main stage reads the tuning runs from ``db``."""
    for label, plan in (("tuning", lambda: tuning_configs(suite)),
                        ("robustness", lambda: robustness_configs(suite)),
                        ("main", lambda: main_configs(suite, load_runs(db)) if _tunes(suite) else suite.configs())):
        configs = plan()
        if configs:
            yield label, configs


def _tunes(suite: Suite) -> bool:
    return any(e.tune for e in suite.entries)


def sweep(configs: list[RunConfig], store: Store,
          on_start: Callable[[list[RunConfig]], None] = lambda task: None,
          on_done: Callable[[RunResult], None] = lambda r: None,
          vectorize: bool = True,
          on_wait: Callable[[int], None] = lambda n: None,
          poll_s: float = 1.0,
          executor: Executor | None = None) -> Counter:
    """Run each config on ``executor`` (default: one after another in this process) and append
    its result to ``store`` as soon as it finishes; only this process writes the store.

    Each run key runs once, however often it appears in ``configs``. Before a task (a run or a
    batch) starts, its runs are claimed in ``store`` (:meth:`~lrbench.store.Store.claim`): a
    run that another live sweep holds is left to it, and once this sweep has nothing else to
    do it waits for those (``on_wait`` is told how many remain) and runs any whose sweep died
    without recording them, so that concurrent sweeps of one suite on one database record each
    run once and all return when the suite is done.

    With ``vectorize``, consecutive configs that differ only in their seed and that
    :func:`lrbench.vectorized.supports` run as one batch, one task. ``on_start`` gets each task
    as it is handed to the executor. Returns the count of each status. An interrupt stops the
    executor and loses only the tasks in progress, whose claims are released.
    """
    executor = executor if executor is not None else Inline()
    counts: Counter = Counter()
    waiting: list[RunConfig] = []
    records = store.record_counts()  # a run another sweep records (even as failed) is its to retry
    inflight: dict[str, RunConfig] = {}

    def claimed(groups: Iterator[list[RunConfig]]) -> Iterator[list[RunConfig]]:
        for group in groups:
            mine, busy = store.claim(c.run_key for c in group)
            waiting.extend(c for c in group if c.run_key in busy)
            keep = set(mine)
            todo = [c for c in group if c.run_key in keep]
            if todo:
                inflight.update((c.run_key, c) for c in todo)
                on_start(todo)
                yield todo

    def run(groups: Iterator[list[RunConfig]]) -> None:
        try:
            for task, results in executor.run(claimed(groups)):
                for result in results:
                    store.append(result)
                    inflight.pop(result.config.run_key, None)
                    counts[result.status] += 1
                    on_done(result)
        except BaseException:
            store.release(list(inflight))
            raise

    run(_groups(list(dict.fromkeys(configs)), vectorize))
    while waiting:  # runs other sweeps hold: wait for them, take over those whose sweep died
        on_wait(len(waiting))
        time.sleep(poll_s)
        now = store.record_counts()
        left, waiting[:] = [c for c in waiting if now.get(c.run_key, 0) == records.get(c.run_key, 0)], []
        run(_groups(left, vectorize))
    return counts


def _groups(configs: list[RunConfig], vectorize: bool) -> Iterator[list[RunConfig]]:
    group: list[RunConfig] = []
    for c in configs:
        same = group and dataclasses.replace(group[0], seed=c.seed) == c
        if group and not (vectorize and same and supports(c)):
            yield from _where_it_pays(group)
            group = []
        group.append(c)
    if group:
        yield from _where_it_pays(group)


def _where_it_pays(group: list[RunConfig]) -> Iterator[list[RunConfig]]:
    """The batch, or its runs one by one where the problem's ``vectorize_min_seeds`` says a
    batch that small costs more per seed than running alone."""
    if len(group) == 1:
        yield group
        return
    least = getattr(problem_class(group[0].problem.key), "vectorize_min_seeds", 2)
    if least is not None and len(group) >= least:
        yield group
    else:
        yield from ([c] for c in group)
