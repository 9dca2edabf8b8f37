"""A sweep: every run of a suite that the store does not hold yet, one after another.

A suite runs in stages: its tuning runs, its LR-robustness sweep, then its main runs (whose
tuned entries use what the tuning runs picked, so they are planned only once those ended).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Callable, Iterator

from lrbench.runner import run_one
from lrbench.vectorized import run_seeds, supports
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
          on_start: Callable[[RunConfig], None] = lambda c: None,
          on_done: Callable[[RunResult], None] = lambda r: None,
          vectorize: bool = True) -> Counter:
    """Run each config and append its result to ``store`` as soon as it finishes.

    With ``vectorize``, consecutive configs that differ only in their seed and that
    :func:`lrbench.vectorized.supports` run as one batch (their results are appended when
    the batch ends). Returns the count of each status. An interrupt loses only the run (or
    batch) in progress.
    """
    counts: Counter = Counter()
    for group in _groups(configs, vectorize):
        for config in group:
            on_start(config)
        results = run_seeds(group) if len(group) > 1 else [run_one(group[0])]
        for result in results:
            store.append(result)
            counts[result.status] += 1
            on_done(result)
    return counts


def _groups(configs: list[RunConfig], vectorize: bool) -> Iterator[list[RunConfig]]:
    group: list[RunConfig] = []
    for c in configs:
        same = group and dataclasses.replace(group[0], seed=c.seed) == c
        if group and not (vectorize and same and supports(c)):
            yield group
            group = []
        group.append(c)
    if group:
        yield group
