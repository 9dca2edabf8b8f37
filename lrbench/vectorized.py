"""All seeds of one (problem, optimizer, hyper-parameters) as one batched computation.

Each seed builds its own task exactly as :func:`lrbench.runner.run_one` would (same global
seeding, same initialisation, same batch order); their parameters and buffers are stacked,
and every step is ``torch.func.vmap`` of one seed's step: the loss through
``torch.func.functional_call`` of the problem's own loss, its gradient by
``torch.func.grad_and_value``, and the optimizer's pure update (its ``functional()``,
:class:`~lrbench.optimizers._functional.Functional`). Evaluation is ``vmap`` of the
problem's ``evaluate`` the same way. Each seed is still stored as its own run, with the
numbers of a per-seed run up to float rounding (``tests/test_vectorized.py``); a seed that
diverges is recorded at the evaluation where it diverged, as on its own, while the others go on.

What vectorises (:func:`supports`): problems that declare ``vectorizable = True`` (their
``loss`` and ``evaluate`` are tensor code without Python branching on values, ``float()`` or
``.item()``, and every per-seed tensor is a parameter or buffer of ``task.model``), and
optimizers with a ``functional`` classmethod, without a ``schedule``. Everything else runs
seed by seed.

Accounting: times are the batch's divided by the number of seeds (the cost per run), the
peak memory is the batch's, optimizer-state bytes are per seed; each result carries
``vectorized`` = the batch size.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch.func import functional_call, grad_and_value, vmap

from lrbench.closure import OracleCounter
from lrbench.env import environment
from lrbench.registry import make_problem, optimizer_class, problem_class
from lrbench.runner import (
    DIVERGENCE_FACTOR,
    _Batches,
    _Clock,
    _peak_rss_bytes,
    _seed_everything,
    _state_bytes,
    divergence,
    make_result,
    resolve_device,
)
from lrbench.spec import RunConfig, RunResult

__all__ = ["supports", "run_seeds"]


def supports(config: RunConfig) -> bool:
    """Whether ``config``'s problem and optimizer can run vectorised."""
    try:
        prob, opt = problem_class(config.problem.key), optimizer_class(config.optimizer.key)
    except Exception:  # noqa: BLE001 - unknown keys run (and fail) seed by seed
        return False
    return (getattr(prob, "vectorizable", False) and callable(getattr(opt, "functional", None))
            and "schedule" not in config.optimizer.hparams)


class _Call(torch.nn.Module):
    """A module whose forward is a task function, so that ``functional_call`` swaps in
    the stacked seed's parameters and buffers of ``model`` for the duration of the call."""

    def __init__(self, model: torch.nn.Module, fn) -> None:
        super().__init__()
        self.model, self.fn = model, fn

    def forward(self, *args):
        return self.fn(*args)


def _functional(config: RunConfig, steps_per_epoch: int):
    cls = optimizer_class(config.optimizer.key)
    hp = dict(config.optimizer.hparams)
    accepted = inspect.signature(cls.__init__).parameters
    for name, value in (("steps_per_epoch", steps_per_epoch), ("total_steps", config.budget.steps)):
        if name in accepted and name not in hp:
            hp[name] = value
    return cls.functional(**hp)


def run_seeds(configs: list[RunConfig]) -> list[RunResult]:
    """Run configs that differ only in their seed as one batch; one result per config, in order.

    A failure of the batch as a whole (an exception) marks every run ``failed``."""
    first = configs[0]
    assert all(c.optimizer == first.optimizer and c.problem == first.problem and c.budget == first.budget
               and c.device == first.device and c.suite == first.suite for c in configs), "seeds only"
    device = resolve_device(first.device)
    env = environment(device)
    problem = make_problem(first.problem.key, **first.problem.options)
    n = len(configs)
    counters = [OracleCounter() for _ in configs]
    curves: list[dict[str, list]] = [{} for _ in configs]
    clock = _Clock(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss0 = _peak_rss_bytes()
    out: dict[str, Any] = {"ended": [None] * n, "steps": [0] * n, "state_bytes": 0}
    try:
        _train(configs, problem, device, curves, clock, counters, out)
        statuses = [e or ("ok", "") for e in out["ended"]]
    except Exception as exc:  # noqa: BLE001 - recorded as failed runs, the sweep goes on
        msg = f"{type(exc).__name__}: {exc}".splitlines()[0]
        statuses = [e or ("failed", msg) for e in out["ended"]]
    times = [t / n for t in clock.resolve()]
    peak = int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else max(0, _peak_rss_bytes() - rss0)
    return [make_result(c, problem, st, msg, out["steps"][i], curves[i], times[: out["steps"][i]], peak,
                        out["state_bytes"], counters[i], env, vectorized=n)
            for i, (c, (st, msg)) in enumerate(zip(configs, statuses))]


def _train(configs, problem, device, curves, clock, counters, out) -> None:
    tasks = []
    for c in configs:  # exactly as run_one builds each seed's task
        _seed_everything(c.seed)
        tasks.append(problem.build(c.seed, device))
    task = tasks[0]
    names = [k for k, p in task.model.named_parameters() if p.requires_grad]
    bnames = [k for k, _ in task.model.named_buffers()]
    params = [torch.stack([dict(t.model.named_parameters())[k].detach() for t in tasks]) for k in names]
    buffers = {f"model.{k}": torch.stack([dict(t.model.named_buffers())[k] for t in tasks]) for k in bnames}
    fopt = _functional(configs[0], task.steps_per_epoch)
    loss_mod, eval_mod = _Call(task.model, task.loss), _Call(task.model, task.evaluate)
    probes = [0]

    def state_of(ps, bs):
        return {**{f"model.{k}": p for k, p in zip(names, ps)}, **bs}

    def loss_at(ps, bs, idx):
        return functional_call(loss_mod, state_of(ps, bs), (idx,))

    def one_step(ps, bs, st, idx):
        grads, loss = grad_and_value(loss_at)(ps, bs, idx)

        def probe(qs):
            probes[0] += 1  # counted while tracing: once per batched step, i.e. per seed
            with torch.no_grad():
                return loss_at([q.detach() for q in qs], bs, idx)

        new, st, lr = fopt.step(ps, grads, loss.detach(), st, probe)
        return new, st, lr, loss.detach()

    def metrics(ps, bs):
        with torch.no_grad():
            return {k: torch.as_tensor(v) for k, v in functional_call(eval_mod, state_of(ps, bs), ()).items()}

    batches = [_Batches(t.n_train, t.batch_size, c.seed, device) for t, c in zip(tasks, configs)]
    full_batch = task.batch_size is None
    vstep = vmap(one_step, in_dims=(0, 0, 0, None if full_batch else 0))
    vmetrics = vmap(metrics)
    state = vmap(fopt.init)(params)
    out["state_bytes"] = _state_bytes(state) // len(configs)
    steps, every = configs[0].budget.steps, configs[0].budget.eval_every
    losses = torch.empty(steps, len(configs), device=device)
    lr = torch.full((len(configs),), float("nan"), device=device)
    checked = 0
    for m in (t.model for t in tasks):
        m.train()

    def evaluate(step: int) -> None:
        nonlocal checked
        task.model.eval()
        values = {k: v.detach().cpu().tolist() for k, v in vmetrics(params, buffers).items()}
        task.model.train()
        lrs = lr.cpu().tolist() if step else [_initial_lr(c) for c in configs]
        seen = losses[checked:step].cpu()
        elapsed = sum(clock.resolve()) / len(configs)
        for i, cv in enumerate(curves):
            if not out["ended"][i]:
                cv.setdefault("step", []).append(step)
                cv.setdefault("time_s", []).append(elapsed)
                for k, v in values.items():
                    cv.setdefault(k, []).append(float(v[i]))
                cv.setdefault("lr_0", []).append(lrs[i])
        # the divergence test of all seeds at once; the message of each diverged seed as alone
        initial = torch.tensor([cv["train_loss"][0] for cv in curves]).abs() * DIVERGENCE_FACTOR
        now = torch.tensor(values["train_loss"])
        suspect = (~torch.isfinite(seen) | (seen > initial)).any(0) | ~torch.isfinite(now) | (now > initial)
        for i in suspect.nonzero().flatten().tolist():
            if not out["ended"][i]:
                msg = divergence(seen[:, i], checked, curves[i]["train_loss"][-1], step, curves[i]["train_loss"][0])
                out["ended"][i] = ("diverged", msg) if msg else None
        checked = step

    evaluate(0)
    for step in range(1, steps + 1):
        if all(out["ended"]):
            break
        idx = None if full_batch else torch.stack([b.next() for b in batches])
        t0 = clock.start()
        params, state, lr, loss = vstep(params, buffers, state, idx)
        clock.stop(t0)
        losses[step - 1] = loss
        for i, c in enumerate(counters):
            if not out["ended"][i]:
                c.forward += 1 + probes[0]
                c.backward += 1
                out["steps"][i] = step
        probes[0] = 0
        if step % every == 0 or step == steps:
            evaluate(step)


def _initial_lr(config: RunConfig) -> float:
    """What the per-seed runner logs before the first step: the group's ``lr`` as built."""
    cls = optimizer_class(config.optimizer.key)
    hp = config.optimizer.hparams
    if "lr" in hp:
        return float(hp["lr"])
    default = inspect.signature(cls.__init__).parameters.get("lr")
    return float(default.default) if default is not None else float("nan")
