"""All seeds of one (problem, optimizer, hyper-parameters) as one batched computation.

Each seed builds its own task exactly as :func:`lrbench.runner.run_one` would (same global
seeding, same initialisation, same batch order); their parameters and buffers are stacked.
A step is three batched calls: ``torch.func.vmap`` of the problem's own loss through
``torch.func.functional_call`` (the seeds' batch losses), one ordinary backward pass of their
sum (seed i's parameters enter only seed i's loss, so this yields every seed's own gradient),
and ``vmap`` of the optimizer's pure update (its ``functional()``,
:class:`~lrbench.optimizers._functional.Functional`). Evaluation is ``vmap`` of the problem's
``evaluate`` the same way. Each seed is still stored as its own run, with the numbers of a
per-seed run up to float rounding (``tests/test_vectorized.py``). The divergence test of the
runner is applied to all seeds at once every ``_CHECK_EVERY`` steps, over the evaluations kept
since; a seed that diverged ends at the evaluation where it diverged (curve, steps, oracle
counts), as on its own, while the others go on.

Why it is written this way: at 100 seeds of a 2-D function a step is a few dozen operations
on 200-element tensors, so the cost is Python and dispatch, not arithmetic. ``grad`` under
``vmap`` and nested pytree arguments cost more than the three flat calls above, and per-seed
Python at every evaluation cost as much as the steps (``bench/vectorized_seeds.py``).

What vectorises (:func:`supports`): problems that declare ``vectorizable = True`` (their
``loss`` and ``evaluate`` are tensor code without Python branching on values, ``float()`` or
``.item()``, and every per-seed tensor is a parameter or buffer of ``task.model``), and
optimizers with a ``functional`` classmethod (every built-in key but the wrapped
learning-rate-free packages), without a ``schedule``. Everything else runs seed by seed.

The optimizer's extra oracle calls (probes, validation gradients, Hessian-vector products)
are pure functions of the parameters here (``torch.func`` transforms of the problem's loss),
counted once per batched call, i.e. per seed; a line search runs its loop outside ``vmap``
(each trial one batched probe) until every seed has accepted.

Accounting: times are the batch's divided by the number of seeds (the cost per run), the
peak memory is the batch's, optimizer-state bytes are per seed; each result carries
``vectorized`` = the batch size.
"""

from __future__ import annotations

import inspect

import torch
from torch.func import functional_call, grad, grad_and_value, jvp, vmap

from lrbench.closure import OracleCounter
from lrbench.env import environment
from lrbench.registry import make_problem, optimizer_class, problem_class
from lrbench.runner import (
    DIVERGENCE_FACTOR,
    _Batches,
    _Clock,
    CpuPeak,
    _seed_everything,
    _state_bytes,
    divergence,
    failure_message,
    make_result,
    resolve_device,
)
from lrbench.spec import RunConfig, RunResult

__all__ = ["supports", "run_seeds"]

_CHECK_EVERY = 64  # steps between divergence tests of the batch (a diverged seed keeps stepping till then)


def supports(config: RunConfig) -> bool:
    """Whether ``config``'s problem and optimizer can run vectorised."""
    try:
        prob, opt = problem_class(config.problem.key), optimizer_class(config.optimizer.key)
    except Exception:  # noqa: BLE001 - unknown keys run (and fail) seed by seed
        return False
    facts = getattr(opt, "facts", None)
    return (getattr(prob, "vectorizable", False) and callable(getattr(opt, "functional", None))
            and (facts is None or facts.vectorizable) and "schedule" not in config.optimizer.hparams)


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
    rec = _Record(n)
    clock = _Clock(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    memory = CpuPeak()
    try:
        _train(configs, problem, device, rec, clock, memory)
        failure = None
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - recorded as failed runs, the sweep goes on
        failure = failure_message(exc)
        rec.check()  # seeds that diverged before the failure are recorded as diverged
    times = [t / n for t in clock.resolve()]
    peak = int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else memory.peak()
    results = []
    for i, (c, curves) in enumerate(zip(configs, rec.curves())):
        status, msg = rec.ended[i] or (("failed", failure) if failure else ("ok", ""))
        steps = rec.steps(i)
        f, b, hv = rec.calls[steps]
        counter = OracleCounter(forward=steps + f, backward=steps + b, hvp=hv)
        results.append(make_result(c, problem, status, msg, steps, curves, times[:steps], peak, rec.state_bytes,
                                   counter, env, vectorized=n))
    return results


class _Record:
    """What a batch of seeds recorded, kept as one row of ``n`` values per evaluation (no
    per-seed Python work per step), turned into per-seed curves at the end. A seed that ended
    (diverged) keeps the rows up to and including the evaluation where it ended."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.rows: dict[str, list] = {}  # "step"/"time_s": scalars; metrics and "lr_0": [n] tensors
        self.ended: list[tuple[str, str] | None] = [None] * n
        self.ended_row: list[int | None] = [None] * n  # the evaluation where a seed ended
        self.alive = torch.ones(n, dtype=torch.bool)
        self.last_step = 0
        self.calls = [(0, 0, 0)]  # calls[s]: extra (forward, backward, hvp) per seed in steps 1..s
        self.state_bytes = 0
        self.losses: torch.Tensor | None = None  # [steps, n]: the batch loss of every step and seed
        self.checked = 0  # evaluations whose divergence test is done

    def add(self, step: int, time_s: float, values: dict[str, torch.Tensor]) -> None:
        self.rows.setdefault("step", []).append(step)
        self.rows.setdefault("time_s", []).append(time_s)
        for k, v in values.items():
            self.rows.setdefault(k, []).append(v)

    def end(self, i: int, status: str, message: str, row: int) -> None:
        self.ended[i] = (status, message)
        self.ended_row[i] = row
        self.alive[i] = False

    def check(self) -> None:
        """The runner's divergence test (:func:`lrbench.runner.divergence`) of every evaluation
        not yet checked, for all seeds at once: a seed diverged at the first evaluation whose
        window of batch losses, or whose train loss, is not finite or over the limit. Done in
        chunks rather than at each evaluation, since the rows are kept anyway; a seed's curve,
        steps and oracle counts end where it diverged, as they would on its own."""
        steps = self.rows.get("step", [])
        r0, r1 = self.checked, len(steps)
        if r0 == r1:
            return
        initial = self.rows["train_loss"][0]
        limit = DIVERGENCE_FACTOR * initial.double().abs()  # in float64, as divergence() computes it
        train = torch.stack(self.rows["train_loss"][r0:r1]).double()  # [rows, n]
        base = steps[r0 - 1] if r0 else 0
        seen = self.losses[base:steps[r1 - 1]].cpu()  # batch losses of steps base+1 .. last row's step
        bad = ~torch.isfinite(seen) | (seen > limit.to(seen.dtype))
        cum = torch.cat([torch.zeros(1, self.n, dtype=torch.long), bad.long().cumsum(0)])
        ends = torch.tensor(steps[r0:r1]) - base
        starts = torch.cat([torch.zeros(1, dtype=torch.long), ends[:-1]])
        bad_rows = ((cum[ends] - cum[starts]) > 0) | ~torch.isfinite(train) | (train > limit)
        bad_rows &= self.alive
        first = bad_rows.long().argmax(0)
        for i in bad_rows.any(0).nonzero().flatten().tolist():
            j = int(first[i])
            s0, s1 = base + int(starts[j]), steps[r0 + j]
            msg = divergence(self.losses[s0:s1, i].cpu(), s0, float(train[j, i]), s1, float(initial[i]))
            if msg:
                self.end(i, "diverged", msg, r0 + j)
        self.checked = r1

    def steps(self, i: int) -> int:
        row = self.ended_row[i]
        return self.last_step if row is None else self.rows["step"][row]

    def curves(self) -> list[dict[str, list]]:
        if not self.rows:
            return [{} for _ in range(self.n)]
        cols = {k: (v if k in ("step", "time_s") else torch.stack(v).T.tolist()) for k, v in self.rows.items()}
        out = []
        for i in range(self.n):
            stop = None if self.ended_row[i] is None else self.ended_row[i] + 1
            out.append({k: (v[:stop] if k in ("step", "time_s") else v[i][:stop]) for k, v in cols.items()})
        return out


def _train(configs, problem, device, rec: _Record, clock, memory: CpuPeak) -> None:
    tasks = []
    for c in configs:  # exactly as run_one builds each seed's task
        _seed_everything(c.seed)
        tasks.append(problem.build(c.seed, device))
    task = tasks[0]
    names = [k for k, p in task.model.named_parameters() if p.requires_grad]
    bnames = [k for k, _ in task.model.named_buffers()]
    params = [torch.stack([dict(t.model.named_parameters())[k].detach() for t in tasks]) for k in names]
    buffers = [torch.stack([dict(t.model.named_buffers())[k] for t in tasks]) for k in bnames]
    keys = [f"model.{k}" for k in names + bnames]
    fopt = _functional(configs[0], task.steps_per_epoch)
    loss_mod, eval_mod = _Call(task.model, task.loss), _Call(task.model, task.evaluate)
    val_mod = _Call(task.model, task.val_loss) if task.val_loss is not None else None
    n, np_, nb = len(configs), len(names), len(bnames)
    state = vmap(fopt.init)(params)
    flat_state, layout = _pack(state)
    calls = [0, 0, 0]  # extra forward, backward, hvp of the current step (counted while tracing: per seed)
    now = [0]  # the step count t the functional step is called with

    # Every vmapped function takes and returns flat lists of tensors: vmap flattens its
    # arguments' pytrees on every call, and that Python work dominates a step of a tiny model.
    def loss_at(flat, idx):  # flat: parameters, buffers
        return functional_call(loss_mod, dict(zip(keys, flat)), (idx,))

    def update(flat, idx):  # flat: parameters, gradients, loss, buffers, optimizer state
        ps, grads, loss = flat[:np_], flat[np_:2 * np_], flat[2 * np_]
        bs, st = flat[2 * np_ + 1:2 * np_ + 1 + nb], _unpack(flat[2 * np_ + 1 + nb:], layout)

        def split_loss(qs, split):
            if split == "train":
                return loss_at(list(qs) + bs, idx)
            if val_mod is None:
                raise ValueError("this problem supplies no validation batch (closure split='val')")
            return functional_call(val_mod, dict(zip(keys, list(qs) + bs)), ())

        def f_loss(qs, split="train"):
            calls[0] += 1
            with torch.no_grad():
                return split_loss([q.detach() for q in qs], split)

        def f_grad(qs, split="train"):
            calls[0] += 1
            calls[1] += 1
            gs, value = grad_and_value(lambda q: split_loss(q, split))(list(qs))
            return value.detach(), [g.detach() for g in gs]

        def f_hvp(qs, vs):
            calls[2] += 1
            g_of = lambda q: grad(lambda r: split_loss(r, "train"))(q)  # noqa: E731
            return [h.detach() for h in jvp(g_of, (list(qs),), (list(vs),))[1]]

        oracle = {"loss": f_loss, "grad": f_grad, "hvp": f_hvp}
        new, st, lr = fopt.step(ps, grads, loss, st, oracle, now[0])
        packed, new_layout = _pack(st)
        assert new_layout == layout, "a functional step must keep its state's layout"
        return [*new, lr, *packed]

    def metrics(flat):
        with torch.no_grad():
            return {k: torch.as_tensor(v) for k, v in functional_call(eval_mod, dict(zip(keys, flat)), ()).items()}

    batches = [_Batches(t.n_train, t.batch_size, c.seed, device) for t, c in zip(tasks, configs)]
    full_batch = task.batch_size is None
    idx_dim = None if full_batch else 0
    vloss = vmap(loss_at, in_dims=(0, idx_dim))
    vupdate = vmap(update, in_dims=(0, idx_dim))
    vmetrics = vmap(metrics)
    rec.state_bytes = _state_bytes(state) // n
    steps, every = configs[0].budget.steps, configs[0].budget.eval_every
    lr = torch.tensor([_initial_lr(c) for c in configs], dtype=torch.float64)
    rec.losses = torch.empty(steps, n, device=device)
    elapsed, last_eval, checked_step = 0.0, 0, 0
    for m in (t.model for t in tasks):
        m.train()

    def evaluate(step: int) -> None:
        nonlocal elapsed, last_eval, checked_step
        memory.pause()
        task.model.eval()
        values = {k: v.detach().cpu() for k, v in vmetrics(params + buffers).items()}
        task.model.train()
        elapsed += sum(clock.resolve()[last_eval:step]) / n  # the step region only, per seed
        last_eval = step
        rec.add(step, elapsed, {**values, "lr_0": lr.detach().double().cpu()})
        if step == 0 or step - checked_step >= _CHECK_EVERY or step == steps:
            rec.check()
            checked_step = step
        memory.resume()

    evaluate(0)
    memory.start()  # as in the runner: after the data, the models and a first evaluation
    for step in range(1, steps + 1):
        if not rec.alive.any():
            break
        idx = None if full_batch else torch.stack([b.next() for b in batches])
        t0 = clock.start()
        now[0] = step - 1
        params, flat_state, lr, loss = _step(vloss, vupdate, params, buffers, flat_state, idx)
        clock.stop(t0)
        rec.losses[step - 1] = loss
        rec.calls.append(tuple(a + b for a, b in zip(rec.calls[-1], calls)))
        rec.last_step = step
        calls[:] = [0, 0, 0]
        if step % every == 0 or step == steps:
            evaluate(step)


def _step(vloss, vupdate, params, buffers, flat_state, idx):
    """One step of every seed: the seeds' losses by ``vmap`` of the forward pass, their
    gradients by one ordinary backward pass of the losses' sum (seed i's parameters enter only
    its own loss, so this is each seed's gradient, computed as a batch; it costs less than
    ``grad`` under ``vmap``), then ``vmap`` of the optimizer's pure update."""
    leaves = [p.detach().requires_grad_() for p in params]
    loss = vloss(leaves + buffers, idx)
    grads = torch.autograd.grad(loss.sum(), leaves)
    loss = loss.detach()
    out = vupdate([*params, *grads, loss, *buffers, *flat_state], idx)
    k = len(params)
    return out[:k], out[k + 1:], out[k], loss


def _pack(state: dict) -> tuple[list[torch.Tensor], list[tuple[str, int | None]]]:
    """A functional optimizer's state (a dict of tensors or lists of tensors) as a flat list
    and its layout: (key, None) for a tensor, (key, length) for a list."""
    flat, layout = [], []
    for k, v in state.items():
        if isinstance(v, (list, tuple)):
            flat.extend(v)
            layout.append((k, len(v)))
        else:
            flat.append(v)
            layout.append((k, None))
    return flat, layout


def _unpack(flat: list[torch.Tensor], layout: list[tuple[str, int | None]]) -> dict:
    state, i = {}, 0
    for k, length in layout:
        if length is None:
            state[k], i = flat[i], i + 1
        else:
            state[k], i = list(flat[i:i + length]), i + length
    return state


def _initial_lr(config: RunConfig) -> float:
    """What the per-seed runner logs before the first step: the group's ``lr`` as built."""
    cls = optimizer_class(config.optimizer.key)
    hp = config.optimizer.hparams
    if "lr" in hp:
        return float(hp["lr"])
    default = inspect.signature(cls.__init__).parameters.get("lr")
    return float(default.default) if default is not None else float("nan")
