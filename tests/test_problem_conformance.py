"""Conformance tests over the whole problem registry: every key gets them for free.

They run each problem at ``size="smoke"`` (seconds on a CPU); a problem whose data must be
downloaded (``needs_download``) runs on ``source="synthetic"``, so nothing is fetched.
"""

from __future__ import annotations

import math

import pytest
import torch

import lrbench
from lrbench.problems import SIZES
from lrbench.registry import problem_class, problem_keys
from lrbench.runner import run_one
from lrbench.spec import RunConfig

KEYS = problem_keys()


def smoke(key: str):
    """The smoke-size instance of ``key`` (on synthetic data when its real data needs a download)."""
    options = {"source": "synthetic"} if problem_class(key).needs_download else {}
    return lrbench.make_problem(key, size="smoke", **options)


@pytest.mark.parametrize("key", KEYS)
def test_declarations(key):
    cls = problem_class(key)
    assert set(cls.sizes) <= {"smoke", "paper"}, "the class attributes are the default size"
    for size in SIZES:
        p = smoke(key) if size == "smoke" else lrbench.make_problem(key, size=size)
        ts = p.thresholds
        assert len(ts) >= 1 and list(ts) == sorted(ts, reverse=True), "thresholds go from easy to hard"
        assert "train_loss" in p.metrics and p.headline in p.metrics
        assert p.budget.steps >= 1 and p.budget.eval_every >= 1
        assert p.reference.key in lrbench.optimizer_keys()
        assert p.size == size and p.options.get("size") == (None if size == "default" else size)
    default = lrbench.make_problem(key)
    assert (default.budget, tuple(default.thresholds), default.options) == (cls.budget, tuple(cls.thresholds), {})
    with pytest.raises(ValueError, match="size"):
        lrbench.make_problem(key, size="huge")


@pytest.mark.parametrize("key", KEYS)
def test_deterministic_for_a_seed(key):
    problem = smoke(key)
    values = []
    for i, seed in enumerate((0, 0, 1)):
        torch.manual_seed(123 + i)  # the problem must not depend on the global RNG
        task = problem.build(seed, torch.device("cpu"))
        values.append([p.detach().clone() for p in task.model.parameters()] + [task.evaluate(None)["train_loss"]])
    same = all(torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b for a, b in zip(values[0], values[1]))
    assert same
    assert math.isfinite(values[0][-1])


@pytest.mark.parametrize("key", KEYS)
def test_reference_optimizer_reaches_first_threshold(key):
    problem = smoke(key)
    r = run_one(RunConfig("conformance", problem.spec, problem.reference, 0, "cpu", problem.budget))
    assert r.status == "ok", r.message
    first = str(float(problem.thresholds[0]))
    assert r.steps_to_threshold[first] is not None, (r.final, problem.thresholds)
