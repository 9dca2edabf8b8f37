"""Conformance tests over the whole problem registry: every key gets them for free."""

from __future__ import annotations

import math

import pytest
import torch

import lrbench
from lrbench.registry import problem_class, problem_keys
from lrbench.runner import run_one
from lrbench.spec import RunConfig

KEYS = problem_keys()


@pytest.mark.parametrize("key", KEYS)
def test_declarations(key):
    cls = problem_class(key)
    ts = cls.thresholds
    assert len(ts) >= 1 and list(ts) == sorted(ts, reverse=True), "thresholds go from easy to hard"
    assert "train_loss" in cls.metrics and cls.headline in cls.metrics
    assert cls.budget.steps >= 1


@pytest.mark.parametrize("key", KEYS)
def test_deterministic_for_a_seed(key):
    problem = lrbench.make_problem(key)
    values = []
    for seed in (0, 0, 1):
        torch.manual_seed(123 + seed)  # the problem must not depend on the global RNG
        task = problem.build(seed, torch.device("cpu"))
        values.append([p.detach().clone() for p in task.model.parameters()] + [task.evaluate()["train_loss"]])
    same = all(torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b for a, b in zip(values[0], values[1]))
    assert same
    assert math.isfinite(values[0][-1])


@pytest.mark.parametrize("key", KEYS)
def test_reference_optimizer_reaches_first_threshold(key):
    problem = lrbench.make_problem(key)
    r = run_one(RunConfig("conformance", problem.spec, problem.reference, 0, "cpu", problem.budget))
    assert r.status == "ok", r.message
    first = str(float(problem.thresholds[0]))
    assert r.steps_to_threshold[first] is not None, (r.final, problem.thresholds)
