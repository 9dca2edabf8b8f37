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
def test_loss_and_evaluation_compute_with_the_tensors_they_are_given(key):
    """``Task.loss(params, idx)``, ``evaluate(params)`` and ``val_loss(params)`` with stand-in
    tensors (the model's own, moved by 1 %) equal the model's own functions after the same
    tensors are copied into the model, and the loss's gradient reaches the stand-ins: what a
    batch of seeds relies on (``lrbench.vectorized`` vmaps over ``params``)."""
    task = smoke(key).build(0, torch.device("cpu"))
    model = task.model
    names = [k for k, p in model.named_parameters() if p.requires_grad]
    given = {k: (v.detach() * 1.01 if k in names else v.detach()).clone() for k, v in
             [*model.named_parameters(), *model.named_buffers()]}
    model.eval()
    theirs = {k: float(v) for k, v in task.evaluate(dict(given)).items()}
    val = None if task.val_loss is None else float(task.val_loss(dict(given)))
    with torch.no_grad():
        for k, v in [*model.named_parameters(), *model.named_buffers()]:
            v.copy_(given[k])
    own = {k: float(v) for k, v in task.evaluate(None).items()}
    assert theirs == pytest.approx(own, rel=1e-6, abs=1e-9)
    if val is not None:
        assert val == pytest.approx(float(task.val_loss(None)), rel=1e-6, abs=1e-9)
    model.train()
    idx = None if task.batch_size is None else torch.arange(min(task.batch_size, task.n_train))
    leaves = {k: v.clone().requires_grad_(k in names) for k, v in given.items()}
    loss = task.loss(leaves, idx)  # first: a fresh batch (dropout masks drawn, batch-norm statistics)
    grads = torch.autograd.grad(loss, [leaves[k] for k in names])
    mine = task.loss(None, idx)  # the same batch again: the same masks, statistics left alone
    own_grads = torch.autograd.grad(mine, [p for p in model.parameters() if p.requires_grad])
    assert float(loss) == pytest.approx(float(mine), rel=1e-6, abs=1e-9)
    for g, o in zip(grads, own_grads):
        torch.testing.assert_close(g, o, rtol=1e-5, atol=1e-7)


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
