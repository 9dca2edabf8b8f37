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

What vectorises: optimizers with a ``functional`` classmethod (every built-in key but the
wrapped learning-rate-free packages), without a ``schedule`` (:func:`supports`), on a problem
whose ``vectorize_min_seeds`` the batch reaches (a speed policy, applied by the sweep), and
whose tasks pass a check when the batch starts: the problem's loss and evaluation are functions
of explicit tensors (:class:`~lrbench.problems._base.Task`), and before the first step the
batched loss, gradients and evaluation must equal each seed's own (:func:`_disagreement`,
within 1e-4 relative: batched kernels round differently). A problem whose functions cannot be
``vmap``-ed (Python branching on values, ``.item()``, random masks), or that keeps a per-seed
tensor outside its model's parameters and buffers (all seeds would share seed 0's), fails the
check, and its seeds run one by one (:func:`lrbench.runner.run_one`): nothing is declared.

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
from torch.func import grad, grad_and_value, vjp, vmap

from lrbench.closure import OracleCounter
from lrbench.core import (
    DIVERGENCE_FACTOR,
    Batches,
    Harness,
    divergence,
    make_result,
    measure,
    optimizer_kwargs,
    seed_everything,
    state_bytes,
)
from lrbench.registry import optimizer_class, problem_class
from lrbench.runner import run_one
from lrbench.spec import RunConfig, RunResult

__all__ = ["supports", "run_seeds"]

_CHECK_EVERY = 64  # steps between divergence tests of the batch (a diverged seed keeps stepping till then)


def supports(config: RunConfig) -> bool:
    """Whether ``config``'s problem and optimizer can run vectorised."""
    try:
        prob, opt = problem_class(config.problem.key), optimizer_class(config.optimizer.key)
    except Exception:  # noqa: BLE001 - unknown keys run (and fail) seed by seed
        return False
    del prob  # a known problem; whether its tasks vectorise is checked when a batch starts
    facts = getattr(opt, "facts", None)
    return (callable(getattr(opt, "functional", None)) and (facts is None or facts.vectorizable)
            and "schedule" not in config.optimizer.hparams)


def _functional(config: RunConfig, steps_per_epoch: int):
    cls = optimizer_class(config.optimizer.key)
    return cls.functional(**optimizer_kwargs(cls, config.optimizer.hparams, steps_per_epoch, config.budget.steps))


def run_seeds(configs: list[RunConfig]) -> list[RunResult]:
    """Run configs that differ only in their seed as one batch; one result per config, in order.

    A failure of the batch as a whole (an exception) marks every run ``failed``. A batch whose
    tasks fail the check at its start (see the module's docstring) runs its seeds one by one
    instead: those results have ``vectorized`` = 1."""
    first = configs[0]
    assert all(c.optimizer == first.optimizer and c.problem == first.problem and c.budget == first.budget
               and c.device == first.device and c.suite == first.suite for c in configs), "seeds only"
    n = len(configs)
    h, status, failure, rec = measure(first, lambda h, steps, rec: _train(configs, h, steps, rec),
                                      lambda: _Record(n))
    if status == _REFUSED:
        return [run_one(c) for c in configs]
    if status == "failed":
        rec.check()  # seeds that diverged before the failure are recorded as diverged
    times = [t / n for t in h.times]
    results = []
    for i, (c, curves) in enumerate(zip(configs, rec.curves())):
        status, msg = rec.ended[i] or (("failed", failure) if failure else ("ok", ""))
        steps = rec.steps(i)
        f, b, hv = rec.calls[steps]
        counter = OracleCounter(forward=steps + f, backward=steps + b, hvp=hv)
        results.append(make_result(c, h.problem, status, msg, steps, curves, times[:steps], h.peak,
                                   rec.state_bytes, counter, h.env, vectorized=n))
    return results


_REFUSED = "not vectorisable"  # the status of a batch that failed its check: its seeds run one by one


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
        """The runner's divergence test (:func:`lrbench.core.divergence`) of every evaluation
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


def _train(configs: list[RunConfig], h: Harness, only: int | None, rec: _Record) -> tuple[str, str]:
    """The batched training loop (see :data:`lrbench.core.Train`): the budget's steps, or the
    first ``only``."""
    device, clock, memory = h.device, h.clock, h.memory
    tasks = []
    for c in configs:  # exactly as run_one builds each seed's task
        seed_everything(c.seed)
        tasks.append(h.problem.build(c.seed, device))
    task = tasks[0]
    names = [k for k, p in task.model.named_parameters() if p.requires_grad]
    bnames = [k for k, _ in task.model.named_buffers()]
    params = [torch.stack([dict(t.model.named_parameters())[k].detach() for t in tasks]) for k in names]
    buffers = [torch.stack([dict(t.model.named_buffers())[k] for t in tasks]) for k in bnames]
    keys = names + bnames
    fopt = _functional(configs[0], task.steps_per_epoch)
    n, np_, nb = len(configs), len(names), len(bnames)
    state = vmap(fopt.init)(params)
    flat_state, layout = _pack(state)
    calls = [0, 0, 0]  # extra forward, backward, hvp of the current step (counted while tracing: per seed)
    now = [0]  # the step count t the functional step is called with

    # Every vmapped function takes and returns flat lists of tensors: vmap flattens its
    # arguments' pytrees on every call, and that Python work dominates a step of a tiny model.
    def loss_at(flat, idx):  # flat: parameters, buffers
        return task.loss(dict(zip(keys, flat)), idx)

    def update(flat, idx):  # flat: parameters, gradients, loss, buffers, optimizer state
        ps, grads, loss = flat[:np_], flat[np_:2 * np_], flat[2 * np_]
        bs, st = flat[2 * np_ + 1:2 * np_ + 1 + nb], _unpack(flat[2 * np_ + 1 + nb:], layout)

        def split_loss(qs, split):
            if split == "train":
                return loss_at(list(qs) + bs, idx)
            if task.val_loss is None:
                raise ValueError("this problem supplies no validation batch (closure split='val')")
            return task.val_loss(dict(zip(keys, list(qs) + bs)))

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
            # reverse over reverse, as the closure's hvp (autograd.grad of the gradient): under
            # vmap about half the time of forward over reverse (jvp) on Beale, 100 seeds
            g_of = lambda q: grad(lambda r: split_loss(r, "train"))(q)  # noqa: E731
            _, back = vjp(g_of, list(qs))
            return [h.detach() for h in back(list(vs))[0]]

        oracle = {"loss": f_loss, "grad": f_grad, "hvp": f_hvp}
        new, st, lr = fopt.step(ps, grads, loss, st, oracle, now[0])
        packed, new_layout = _pack(st)
        assert new_layout == layout, "a functional step must keep its state's layout"
        return [*new, lr, *packed]

    def metrics(flat):
        with torch.no_grad():
            return {k: torch.as_tensor(v) for k, v in task.evaluate(dict(zip(keys, flat))).items()}

    batches = [Batches(t.n_train, t.batch_size, c.seed, device) for t, c in zip(tasks, configs)]
    full_batch = task.batch_size is None
    idx_dim = None if full_batch else 0
    vloss = vmap(loss_at, in_dims=(0, idx_dim))
    vupdate = vmap(update, in_dims=(0, idx_dim))
    vmetrics = vmap(metrics)
    rec.state_bytes = state_bytes(state) // n
    steps, every = configs[0].budget.steps, configs[0].budget.eval_every
    if only is not None:
        steps = min(steps, only)
    lr = torch.tensor([_initial_lr(c) for c in configs], dtype=torch.float64)
    rec.losses = torch.empty(steps, n, device=device)
    elapsed, last_eval, checked_step = 0.0, 0, 0
    for m in (t.model for t in tasks):
        m.train()

    def evaluate(step: int) -> None:
        nonlocal elapsed, last_eval, checked_step
        task.model.eval()
        values = {k: v.detach().cpu() for k, v in vmetrics(params + buffers).items()}
        task.model.train()
        elapsed += sum(clock.resolve()[last_eval:step]) / n  # the step region only, per seed
        last_eval = step
        rec.add(step, elapsed, {**values, "lr_0": lr.detach().double().cpu()})
        if step == 0 or step - checked_step >= _CHECK_EVERY or step == steps:
            rec.check()
            checked_step = step

    why = _disagreement(tasks, vloss, vmetrics, params, buffers)
    if why is not None:
        return _REFUSED, why
    replay = only is not None  # the memory replay takes steps only: no evaluations
    if not replay:
        evaluate(0)
    memory.start()  # after the check's batched forward and backward pass, which created the kernels
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
        if not replay and (step % every == 0 or step == steps):
            evaluate(step)
    return "ok", ""


_RTOL = 1e-4  # batched and per-seed kernels round differently; a wrong batch is off by far more


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to batched rounding (a non-finite value must be equal: else the seeds run alone)."""
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return a.shape == b.shape and (torch.equal(a, b) or bool((a - b).norm() <= _RTOL * b.norm()))


def _disagreement(tasks, vloss, vmetrics, params, buffers) -> str | None:
    """Why a batch of seeds would not compute each seed's own run, or ``None``: before the first
    step, the batched loss on a batch per seed, its gradients and the batched evaluation must
    equal what each seed's task computes with its own model (the single-run path). An exception
    of the batched computation counts as a disagreement. Buffers are left as they were (a
    batch-norm forward pass would update them). Costs one step and one evaluation per seed."""
    n, task = len(tasks), tasks[0]
    idx = None
    if task.batch_size is not None:
        bs = min(task.batch_size, task.n_train)
        base = torch.arange(bs, device=params[0].device)
        idx = torch.stack([(base + i * bs) % task.n_train for i in range(n)])
    try:
        leaves = [p.detach().requires_grad_() for p in params]
        loss = vloss(leaves + [b.clone() for b in buffers], idx)
        grads = torch.autograd.grad(loss.sum(), leaves)
        loss = loss.detach()
        task.model.eval()  # evaluations run in eval mode, as the runner's
        values = {k: v.detach() for k, v in vmetrics([*params, *(b.clone() for b in buffers)]).items()}
        task.model.train()
    except Exception as exc:  # noqa: BLE001 - a problem whose functions do not vmap runs seed by seed
        return f"the batched computation fails: {type(exc).__name__}: {exc}".splitlines()[0]
    for i, t in enumerate(tasks):
        own = [p for p in t.model.parameters() if p.requires_grad]
        saved = [b.clone() for b in t.model.buffers()]
        value = t.loss(None, None if idx is None else idx[i])
        own_grads = torch.autograd.grad(value, own)
        value = value.detach()
        with torch.no_grad():
            for b, v in zip(t.model.buffers(), saved):
                b.copy_(v)
        if not _close(loss[i], value):
            return f"seed {i}: batched loss {float(loss[i]):.6g}, its own {float(value):.6g}"
        if not all(_close(g[i], o) for g, o in zip(grads, own_grads)):
            return f"seed {i}: the batched gradient is not its own"
        t.model.eval()
        mine = {k: torch.as_tensor(v) for k, v in t.evaluate(None).items()}
        t.model.train()
        if mine.keys() != values.keys() or not all(_close(values[k][i], mine[k]) for k in mine):
            return f"seed {i}: the batched evaluation is not its own"
    return None


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
