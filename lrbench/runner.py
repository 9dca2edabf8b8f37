"""The runner: executes one :class:`~lrbench.spec.RunConfig` and returns a
:class:`~lrbench.spec.RunResult`.

It owns the clock, the seeds, evaluation and oracle accounting; the optimizer sees only
its parameters and the closure. Data lives on the device and batches are taken by
index there. Only the step region (``optimizer.step(closure)``) is timed: with
``perf_counter`` on the CPU, with CUDA events on the GPU. Batch losses stay on the
device and are checked for divergence at each (untimed) evaluation, so the hot loop never
synchronises. What is measured and recorded around the loop (:func:`lrbench.core.measure`,
:func:`lrbench.core.make_result`) is shared with the vectorised seeds of
:mod:`lrbench.vectorized`.
"""

from __future__ import annotations

from typing import Any

import torch

from lrbench.closure import OracleCounter, make_closure
from lrbench.core import Batches, Harness, applied_lr, build_optimizer, divergence, make_result, measure, \
    seed_everything, state_bytes
from lrbench.spec import RunConfig, RunResult

__all__ = ["run_one"]


def run_one(config: RunConfig) -> RunResult:
    """Execute one run. Never raises for a failing optimizer or problem: the result's
    status is then ``failed`` with the exception's text; a plug-in's ``SystemExit`` is a
    failure too (``KeyboardInterrupt`` propagates)."""
    state: dict[str, Any] = {"steps": 0, "counter": OracleCounter(), "opt": None}
    curves: dict[str, list] = {}
    h, status, message = measure(config, lambda h: _train(config, h, curves, state))
    opt = state["opt"]
    return make_result(config, h.problem, status, message, state["steps"], curves, h.times, h.peak,
                       state_bytes(dict(opt.state)) if opt is not None else 0, state["counter"], h.env)


def _train(config: RunConfig, h: Harness, curves: dict[str, list], state: dict[str, Any]) -> tuple[str, str]:
    seed_everything(config.seed)
    device, clock, memory = h.device, h.clock, h.memory
    task = h.problem.build(config.seed, device)
    params = [p for p in task.model.parameters() if p.requires_grad]
    batch = [None]
    closure = make_closure(lambda: task.loss(None, batch[0]), params, state["counter"],
                           compute_val_loss=None if task.val_loss is None else lambda: task.val_loss(None))
    opt, schedule = build_optimizer(config.optimizer.key, params, config.optimizer.hparams,
                                    task.steps_per_epoch, config.budget.steps)
    state["opt"] = opt
    base_lrs = [g["lr"] for g in opt.param_groups]
    modal = callable(getattr(opt, "train", None)) and callable(getattr(opt, "eval", None))
    batches = Batches(task.n_train, task.batch_size, config.seed, device)
    steps, every = config.budget.steps, config.budget.eval_every
    losses = torch.empty(steps, device=device)
    checked = 0

    def evaluate(step: int) -> str | None:
        """Record one curve point; return a divergence message, if any."""
        nonlocal checked
        memory.pause()
        task.model.eval()
        if modal:  # Schedule-Free: evaluate at the averaged iterate x, train at y
            opt.eval()
        point = {"step": step, "time_s": sum(clock.resolve())}
        point.update({k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v)
                      for k, v in task.evaluate(None).items()})
        for i, g in enumerate(opt.param_groups):
            point[f"lr_{i}"] = applied_lr(g)
        task.model.train()
        if modal:
            opt.train()
        for k, v in point.items():
            curves.setdefault(k, []).append(v)
        seen = losses[checked:step].cpu()
        msg = divergence(seen, checked, point["train_loss"], step, curves["train_loss"][0])
        checked = step
        memory.resume()
        return msg

    msg = evaluate(0)
    if msg:
        return "diverged", msg
    # the data and the model are in memory and have been evaluated once (which is when a process
    # first allocates for good what this problem's kernels cache): the run's own memory from here
    memory.start()
    for step in range(1, steps + 1):
        batch[0] = batches.next()
        t0 = clock.start()
        if schedule is not None:  # a pure function of the step: LR = base × multiplier
            m = schedule(step - 1)
            for g, base in zip(opt.param_groups, base_lrs):
                g["lr"] = base * m
        loss = opt.step(closure)
        clock.stop(t0)
        losses[step - 1] = loss
        state["steps"] = step
        if step % every == 0 or step == steps:
            msg = evaluate(step)
            if msg:
                return "diverged", msg
    return "ok", ""
