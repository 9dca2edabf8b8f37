"""Optimizer step cost: one full training step (forward, backward, the optimizer's step with
its probes) of every registered optimizer on two fixed models with random data.

* ``mlp``: 784-1000-1000-10 (ReLU), batch 128;
* ``lenet5``: LeNet-5 on 28×28 single-channel images, batch 128.

Each benchmark records, besides the time, the oracle calls per step, the optimizer-state bytes
per parameter and (on CUDA) the peak memory, for ``reports/timing.md``. Every round of a step
is paired with a round of the ``sgd`` step on its own copy of the same model and data
(``bench/_paired.py``); the gate (``bench/gate.py``) gates the median of those per-round ratios.
"""

from __future__ import annotations

import pytest
import torch
from _paired import paired

from lrbench.closure import OracleCounter, make_closure
from lrbench.problems._cnn import lenet5
from lrbench.problems._mlp import mlp
from lrbench.registry import optimizer_class, optimizer_keys
from lrbench.core import build_optimizer, state_bytes

MODELS = {"mlp": lambda: mlp(784, (1000, 1000), 10), "lenet5": lambda: lenet5()}
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
KEYS = [k for k in optimizer_keys() if getattr(optimizer_class(k), "available", True)] + ["_fixture:FixtureSGD"]
ROUNDS = 21


def _params(key: str):
    return pytest.param(key, id=key.replace("_fixture:FixtureSGD", "fixture_sgd"))


def _training_step(key: str, model_name: str, dev: torch.device):
    """One optimizer on a fresh copy of the model (same initialisation for every key) with
    fixed random data: ``(step, opt, params, counter)``."""
    torch.manual_seed(0)
    model = MODELS[model_name]().to(dev)
    g = torch.Generator(device=dev).manual_seed(0)
    x = torch.rand(128, 784, generator=g, device=dev)
    y = torch.randint(0, 10, (128,), generator=g, device=dev)
    xv = torch.rand(128, 784, generator=g, device=dev)
    yv = torch.randint(0, 10, (128,), generator=g, device=dev)
    params = [p for p in model.parameters()]
    counter = OracleCounter()
    loss_fn = torch.nn.functional.cross_entropy
    closure = make_closure(lambda: loss_fn(model(x), y), params, counter,
                           compute_val_loss=lambda: loss_fn(model(xv), yv))
    opt, _ = build_optimizer(key, params, {}, steps_per_epoch=100, total_steps=1000)

    def step():
        opt.step(closure)
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(2):  # state allocated, lazy initialisation done
        step()
    return step, opt, params, counter


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("model_name", list(MODELS))
@pytest.mark.parametrize("key", [_params(k) for k in KEYS])
def test_step(benchmark, key, model_name, device):
    dev = torch.device(device)
    step, opt, params, counter = _training_step(key, model_name, dev)
    sgd_step = _training_step("sgd", model_name, dev)[0]
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    before = (counter.forward, counter.backward)
    benchmark.group = f"step/{model_name}/{device}"
    paired(benchmark, step, sgd_step, f"sgd step ({model_name}, {device})", rounds=ROUNDS, warmup_rounds=2)
    calls = ROUNDS + 2
    n_params = sum(p.numel() for p in params)
    benchmark.extra_info.update({
        "forward_per_step": (counter.forward - before[0]) / calls,
        "backward_per_step": (counter.backward - before[1]) / calls,
        "state_bytes_per_param": state_bytes(dict(opt.state)) / n_params,
        "n_params": n_params,
        "peak_memory_bytes": int(torch.cuda.max_memory_allocated(dev)) if dev.type == "cuda" else None,
    })
