"""Cost floors (issue 15): every composed method's full training step against the least it
could cost, measured in the same rounds.

A method's *floor* is derived from what it declares (:class:`lrbench.optimizers._core.Facts`):
the ``torch.optim`` step of its direction (``facts.floor``: SGD, SGD-momentum or Adam, with
``foreach=True`` and the direction's coefficients) after the oracle calls its ``facts.cost``
declares for that step, on its own copy of the same model and batch: the training gradient
(``closure()``, or ``closure(create_graph=True)`` and one Hessian-vector product for HVP methods),
each extra forward-and-backward (a validation gradient: ``closure(split="val")``; a TLR
lookahead: ``closure()``) and each extra forward probe (``closure(grad=False)``). For a line
search the probes are the trials the method's previous step took. Each round times the floor
step and then the method's step (``bench/_paired.py``); ``paired_ratio`` is the median of the
per-round ratios method / floor, and ``reports/timing.md`` prints it beside the floor's parts.

Models (CPU, batch 128, random data): ``mlp`` 784-1000-1000-10 and ``softmax``, softmax
regression 784→10. Targets: ≤ 1.05 (MLP) and ≤ 1.10 (softmax) for the one-forward-one-backward
methods, ≤ 1.10 for the probing ones.
"""

from __future__ import annotations

import pytest
import torch
from _paired import paired

from lrbench.closure import OracleCounter, make_closure
from lrbench.optimizers._core import Method
from lrbench.problems._mlp import mlp
from lrbench.registry import optimizer_class, optimizer_keys
from lrbench.core import build_optimizer

MODELS = {"mlp": lambda: mlp(784, (1000, 1000), 10), "softmax": lambda: torch.nn.Linear(784, 10)}
KEYS = [k for k in optimizer_keys() if issubclass(optimizer_class(k), Method)]
ROUNDS = {"mlp": 21, "softmax": 101}
FLOORS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}


def _setup(model_name: str, key: str | None):
    """A fresh copy of the model (same initialisation for every key), fixed random data and a
    counting closure: ``(model, params, closure)``."""
    torch.manual_seed(0)
    model = MODELS[model_name]()
    g = torch.Generator().manual_seed(0)
    x, xv = torch.rand(128, 784, generator=g), torch.rand(128, 784, generator=g)
    y, yv = torch.randint(0, 10, (128,), generator=g), torch.randint(0, 10, (128,), generator=g)
    params = list(model.parameters())
    ce = torch.nn.functional.cross_entropy
    closure = make_closure(lambda: ce(model(x), y), params, OracleCounter(), compute_val_loss=lambda: ce(model(xv), yv))
    return model, params, closure


def _step_index(opt) -> int:
    p = opt.param_groups[0]["params"][0]
    return int(opt.state.get(p, {}).get("step", 0))


def _floor(key: str, opt, model_name: str):
    """The floor step of ``key``'s step number ``t`` (read from ``opt`` before each round)."""
    facts = optimizer_class(key).facts
    name, kwargs = facts.floor(dict(opt.param_groups[0]))
    _, params, closure = _setup(model_name, None)
    floor_opt = FLOORS[name](params, lr=1e-3, foreach=True, **kwargs)
    vs = [torch.randn_like(p) for p in params]
    last_trials = [1]

    def step():
        cost = facts.cost(dict(opt.param_groups[0]), _step_index(opt))
        if cost.hvp:
            closure(create_graph=True)
            for _ in range(cost.hvp):
                closure.hvp(vs)
            closure.release()
        else:
            closure()
        for _ in range(cost.backward - 1):
            closure(split="val") if _uses_val(opt) else closure()
        probes = cost.forward - cost.backward + (last_trials[0] if cost.search else 0)
        for _ in range(probes):
            closure(grad=False)
        floor_opt.step()

    return step, last_trials, (name, kwargs)


def _uses_val(opt) -> bool:
    return bool(getattr(opt, "uses_validation", False))


@pytest.mark.parametrize("model_name", list(MODELS))
@pytest.mark.parametrize("key", KEYS)
def test_floor(benchmark, key, model_name):
    _, params, closure = _setup(model_name, key)
    opt, _ = build_optimizer(key, params, {}, steps_per_epoch=100, total_steps=100_000)
    floor_step, last_trials, (floor_name, floor_kwargs) = _floor(key, opt, model_name)
    counter = closure.counter

    def step():
        before = counter.forward
        opt.step(closure)
        if optimizer_class(key).facts.cost(dict(opt.param_groups[0]), 0).search:
            last_trials[0] = counter.forward - before - 1

    for _ in range(3):  # state allocated, lazy initialisation done
        step()
        floor_step()
    benchmark.group = f"floor/{model_name}/cpu"
    paired(benchmark, step, floor_step, f"floor of {key}", rounds=ROUNDS[model_name], warmup_rounds=2)
    cost = optimizer_class(key).facts.cost(dict(opt.param_groups[0]), 1)
    benchmark.extra_info.update({
        "floor": f"torch {floor_name}{'-momentum' if floor_kwargs.get('momentum') else ''} (foreach)",
        "oracle": f"{cost.forward}F {cost.backward}B" + (f" {cost.hvp}HVP" if cost.hvp else "")
                  + (f" +{last_trials[0]} trial F" if cost.search else ""),
        "probing": bool(optimizer_class(key).facts.probes or cost.forward > 1 or cost.hvp),
    })
