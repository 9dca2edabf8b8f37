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

from dataclasses import dataclass, field

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
    h, status, message, rec = measure(config, lambda h, steps, rec: _train(config, h, steps, rec), _Record)
    return make_result(config, h.problem, status, message, rec.steps, rec.curves, h.times, h.peak,
                       rec.state_bytes, rec.counter, h.env)


@dataclass
class _Record:
    """What a run recorded: its curves, the steps taken, its oracle calls, its optimizer's state."""

    curves: dict[str, list] = field(default_factory=dict)
    steps: int = 0
    counter: OracleCounter = field(default_factory=OracleCounter)
    state_bytes: int = 0


def _train(config: RunConfig, h: Harness, only: int | None, rec: _Record) -> tuple[str, str]:
    """The training loop (see :data:`lrbench.core.Train`): the budget's steps, or the first ``only``."""
    curves = rec.curves
    seed_everything(config.seed)
    device, clock, memory = h.device, h.clock, h.memory
    task = h.problem.build(config.seed, device)
    params = [p for p in task.model.parameters() if p.requires_grad]
    batch = [None]
    closure = make_closure(lambda: task.loss(None, batch[0]), params, rec.counter,
                           compute_val_loss=None if task.val_loss is None else lambda: task.val_loss(None))
    opt, schedule = build_optimizer(config.optimizer.key, params, config.optimizer.hparams,
                                    task.steps_per_epoch, config.budget.steps)
    try:
        base_lrs = [g["lr"] for g in opt.param_groups]
        modal = callable(getattr(opt, "train", None)) and callable(getattr(opt, "eval", None))
        batches = Batches(task.n_train, task.batch_size, config.seed, device)
        steps, every = config.budget.steps, config.budget.eval_every
        if only is not None:
            steps = min(steps, only)
        losses = torch.empty(steps, device=device)
        checked = 0

        def evaluate(step: int) -> str | None:
            """Record one curve point; return a divergence message, if any."""
            nonlocal checked
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
            return msg

        replay = only is not None  # the memory replay takes steps only: no evaluations
        msg = None if replay else evaluate(0)
        if msg:
            return "diverged", msg
        # the data and the model are in memory: the run's own memory from here, once a backward pass
        # has created the kernels that a process keeps (the replay runs on one thread, which the
        # timed runs of this process may not have used)
        memory.start(lambda: torch.autograd.grad(task.loss(None, None if task.batch_size is None else
                                                           torch.arange(min(task.batch_size, task.n_train),
                                                                        device=device)), params))
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
            rec.steps = step
            if not replay and (step % every == 0 or step == steps):
                msg = evaluate(step)
                if msg:
                    return "diverged", msg
        return "ok", ""
    finally:  # the state at the end; the optimizer itself is not kept (memory is replayed next)
        rec.state_bytes = state_bytes(dict(opt.state))
