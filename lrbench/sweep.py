"""A sweep: every run of a suite that the store does not hold yet, one after another."""

from __future__ import annotations

from collections import Counter
from typing import Callable

from lrbench.runner import run_one
from lrbench.spec import RunConfig, RunResult, Suite
from lrbench.store import Store

__all__ = ["pending", "sweep"]


def pending(suite: Suite, store: Store) -> tuple[list[RunConfig], int]:
    """The suite's runs without a final record in ``store``, and how many were skipped."""
    done = store.finished_keys()
    configs = suite.configs()
    todo = [c for c in configs if c.run_key not in done]
    return todo, len(configs) - len(todo)


def sweep(configs: list[RunConfig], store: Store,
          on_start: Callable[[RunConfig], None] = lambda c: None,
          on_done: Callable[[RunResult], None] = lambda r: None) -> Counter:
    """Run each config and append its result to ``store`` as soon as it finishes.

    Returns the count of each status. An interrupt between runs or inside one loses only
    the run in progress.
    """
    counts: Counter = Counter()
    for config in configs:
        on_start(config)
        result = run_one(config)
        store.append(result)
        counts[result.status] += 1
        on_done(result)
    return counts
