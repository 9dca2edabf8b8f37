"""The runner: executes one :class:`~lrbench.spec.RunConfig` and returns a
:class:`~lrbench.spec.RunResult`.

It owns the clock, the seeds, evaluation and oracle accounting; the optimizer sees only
its parameters and the closure. Data lives on the device and batches are taken by
index there. Only the step region (``optimizer.step(closure)``) is timed: with
``perf_counter`` on the CPU, with CUDA events on the GPU. Batch losses stay on the
device and are checked for divergence at each (untimed) evaluation, so the hot loop never
synchronises.
"""

from __future__ import annotations

import gc
import inspect
import math
import random
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lrbench._libc import libc
from lrbench.closure import OracleCounter, make_closure
from lrbench.env import environment
from lrbench.registry import make_problem, optimizer_class
from lrbench.schedules import Schedule
from lrbench.schedules import resolve as resolve_schedule
from lrbench.spec import RunConfig, RunResult

__all__ = ["run_one", "make_result", "failure_message", "resolve_device", "build_optimizer", "DIVERGENCE_FACTOR",
           "CpuPeak", "rss_bytes", "lost_result"]

DIVERGENCE_FACTOR = 1e6
"""A run whose loss exceeds this multiple of its initial loss is marked ``diverged``."""


def resolve_device(device: str) -> torch.device:
    """``auto`` is CUDA when available, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"invalid device: {device!r} (must be auto, cpu or cuda)")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("invalid device: 'cuda' (no CUDA device is available)")
    return torch.device(device)


def build_optimizer(key: str, params, hparams: dict[str, Any], steps_per_epoch: int,
                    total_steps: int = 1) -> tuple[torch.optim.Optimizer, Schedule | None]:
    """Instantiate a registered optimizer and the schedule its spec asks for, if any.

    ``steps_per_epoch`` and ``total_steps`` (the budget) are passed to optimizers whose
    ``__init__`` takes them. A ``schedule`` entry in ``hparams`` (see :mod:`lrbench.schedules`)
    is not an optimizer argument: it becomes the returned :class:`~lrbench.schedules.Schedule`,
    and an optimizer that adapts its own learning rate refuses it.
    """
    cls = optimizer_class(key)
    hp = dict(hparams)
    schedule = None
    if "schedule" in hp:
        spec = hp.pop("schedule")
        if getattr(cls, "adapts_lr", False):
            raise ValueError(f"invalid schedule: {key} adapts its own learning rate and takes no schedule")
        schedule = resolve_schedule(spec, steps_per_epoch, total_steps)
    accepted = inspect.signature(cls.__init__).parameters
    for name, value in (("steps_per_epoch", steps_per_epoch), ("total_steps", total_steps)):
        if name in accepted and name not in hp:
            hp[name] = value
    return cls(params, **hp), schedule


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    # what torch.manual_seed does for the CPU and CUDA, without its queueing of lazy seeding
    # for every other accelerator backend (2 ms a call: it formats a stack trace for each)
    torch.default_generator.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def _state_bytes(state: Any) -> int:
    if isinstance(state, torch.Tensor):
        return state.nelement() * state.element_size()
    if isinstance(state, dict):
        return sum(_state_bytes(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(_state_bytes(v) for v in state)
    return 0


def _peak_rss_bytes() -> int:
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib if sys.platform == "darwin" else kib * 1024


def _status_kib(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``), or None without one."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def rss_bytes() -> int | None:
    """This process's resident memory now (Linux), or None."""
    kib = _status_kib("VmRSS")
    return None if kib is None else kib * 1024


def _trim_heap() -> None:
    """Hand the heap's free pages back to the system (glibc's ``malloc_trim``), so that memory a
    previous run freed but the allocator kept does not count as this process's baseline."""
    try:
        libc().malloc_trim(0)
    except AttributeError:  # not glibc, or no C library
        pass


_WARM: list[bool] = []


def _warm_up() -> None:
    """Once per process, before its first measured run: a tiny training step with torch's
    optimizers, so that what the first step of a process allocates for good (torch._dynamo's
    import, the autograd engine, kernels' caches: 160 MiB on a fresh process, 2026-12-02) is not
    charged to whichever run happens to come first."""
    if _WARM:
        return
    _WARM.append(True)
    with torch.random.fork_rng(devices=[]):
        model = torch.nn.Linear(8, 2)
        for opt in (torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), torch.optim.Adam(model.parameters())):
            loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 8)), torch.tensor([0, 1, 0, 1]))
            loss.backward()
            opt.step()
            opt.zero_grad()


class CpuPeak:
    """The peak resident memory of a run's training steps above what its process holds once the
    run's data and model are built and evaluated once: ``start()`` there, ``pause()`` /
    ``resume()`` around each later evaluation, ``peak()`` at the end.

    Where Linux lets a process reset its own high-water mark (``/proc/self/clear_refs`` ``5``,
    then ``VmHWM``), ``start`` freezes what the process holds (``gc.freeze``), frees what the
    run's collector and the heap hold unused (``gc.collect``, ``malloc_trim``), resets the mark
    and takes ``VmRSS`` as the baseline; the figure is the highest mark of the stretches of
    steps between evaluations, so neither what ran earlier in the process nor the evaluation of
    the whole training set (the harness's work, not the method's) is in it. Elsewhere it falls
    back to the growth of the process's peak RSS (``getrusage``), which is 0 for every run that
    needs less than an earlier one in the process.
    """

    def __init__(self) -> None:
        self.base = _peak_rss_bytes()
        self.exact = False
        self.best = 0
        self.frozen = False

    def _reset(self) -> bool:
        gc.collect()
        _trim_heap()
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            return False
        return _status_kib("VmHWM") is not None

    def start(self) -> None:
        _warm_up()
        # Only the young generations: a full collection walks every object the process holds
        # (torch, pandas, earlier runs: 0.2 s per run in a benchmark process, 2026-12-03, a
        # fifth of a 1000-step logistic regression). What the process held before is then out
        # of the collector's sight during the run, so when a collection frees the run's
        # reference cycles depends on the run alone, not on how many objects earlier runs left.
        gc.collect(1)
        gc.freeze()
        self.frozen = True
        base = _status_kib("VmRSS") if self._reset() else None
        self.exact = base is not None
        self.base = base * 1024 if self.exact else _peak_rss_bytes()

    def pause(self) -> None:
        """Before an evaluation: the mark of the steps since ``start`` / ``resume``."""
        if self.exact:
            self.best = max(self.best, _status_kib("VmHWM") * 1024 - self.base)

    def resume(self) -> None:
        """After an evaluation: its memory handed back, the mark reset."""
        if self.exact:
            self._reset()

    def peak(self) -> int:
        if self.frozen:
            gc.unfreeze()
            self.frozen = False
        if self.exact:
            self.pause()
            return max(0, self.best)
        return max(0, _peak_rss_bytes() - self.base)


class _Batches:
    """Epoch-wise random permutations of the training indices, on the device, from a
    generator seeded by the run's seed alone (equal seeds see equal batch orders,
    whatever the optimizer). Full-batch problems get ``None``."""

    def __init__(self, n: int, batch_size: int | None, seed: int, device: torch.device) -> None:
        self.n, self.bs, self.device = n, batch_size, device
        self.gen = torch.Generator(device=device).manual_seed(seed)
        self.perm: torch.Tensor | None = None
        self.pos = n

    def next(self) -> torch.Tensor | None:
        if self.bs is None:
            return None
        if self.pos + self.bs > self.n:
            self.perm = torch.randperm(self.n, generator=self.gen, device=self.device)
            self.pos = 0
        idx = self.perm[self.pos : self.pos + self.bs]
        self.pos += self.bs
        return idx


class _Clock:
    """Per-step timings of the step region; CUDA events on the GPU, resolved lazily."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.times: list[float] = []
        self.pending: list[tuple[Any, Any]] = []

    def start(self):
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            return ev
        return time.perf_counter()

    def stop(self, t0) -> None:
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            self.pending.append((t0, ev))
        else:
            self.times.append(time.perf_counter() - t0)

    def resolve(self) -> list[float]:
        if self.pending:
            torch.cuda.synchronize()
            self.times.extend(a.elapsed_time(b) / 1e3 for a, b in self.pending)
            self.pending.clear()
        return self.times


def _lr(group: dict) -> float:
    """The step size applied in the last step: ``effective_lr`` where a wrapped third-party
    method records it (its ``lr`` is a multiplier, see ``optimizers/_lrfree.py``), else ``lr``."""
    lr = group.get("effective_lr", group["lr"])
    return float(lr.detach().float().mean()) if isinstance(lr, torch.Tensor) else float(lr)


def run_one(config: RunConfig) -> RunResult:
    """Execute one run. Never raises for a failing optimizer or problem: the result's
    status is then ``failed`` with the exception's text; a plug-in's ``SystemExit`` is a
    failure too (``KeyboardInterrupt`` propagates)."""
    device = resolve_device(config.device)
    env = environment(device)
    problem = make_problem(config.problem.key, **config.problem.options)
    memory = CpuPeak()
    state: dict[str, Any] = {"steps": 0, "counter": OracleCounter(), "opt": None, "memory": memory}
    curves: dict[str, list] = {}
    clock = _Clock(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        status, message = _train(config, problem, device, curves, clock, state)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - any failure of a run is recorded, the sweep goes on
        status, message = "failed", failure_message(exc)
    times = clock.resolve()
    if device.type == "cuda":
        peak = int(torch.cuda.max_memory_allocated(device))
    else:
        peak = memory.peak()
    opt = state["opt"]
    return make_result(config, problem, status, message, state["steps"], curves, times, peak,
                       _state_bytes(dict(opt.state)) if opt is not None else 0, state["counter"], env)


def lost_result(config: RunConfig, status: str, message: str) -> RunResult:
    """The record of a run that returned nothing: stopped at its time limit (``timeout``) or
    lost with its worker (``failed``); no steps, no curves, this process's environment."""
    problem = make_problem(config.problem.key, **config.problem.options)
    device = torch.device("cuda" if config.device != "cpu" and torch.cuda.is_available() else "cpu")
    return make_result(config, problem, status, message, 0, {}, [], 0, 0, OracleCounter(), environment(device))


def failure_message(exc: BaseException) -> str:
    """The one line recorded for a failed run: the exception's type and first line."""
    text = f"{type(exc).__name__}: {exc}".splitlines()
    return text[0] if text else type(exc).__name__


def make_result(config: RunConfig, problem, status: str, message: str, steps: int, curves: dict[str, list],
                times: list[float], peak: int, state_bytes: int, counter: OracleCounter, env,
                vectorized: int = 1) -> RunResult:
    """Assemble a :class:`RunResult` from what a run recorded (shared with the vectorised runner)."""
    thresholds = tuple(float(t) for t in problem.thresholds)
    final, best = _summaries(curves, problem.metrics)
    stt = {}
    for t in thresholds:
        hit = [s for s, v in zip(curves.get("step", []), curves.get("train_loss", [])) if v <= t]
        stt[str(t)] = hit[0] if hit else None
    return RunResult(
        config=config,
        status=status,
        message=message,
        steps=steps,
        final=final,
        best=best,
        thresholds=thresholds,
        steps_to_threshold=stt,
        wall_time_s=float(sum(times)),
        median_step_s=float(statistics.median(times)) if times else float("nan"),
        peak_memory_bytes=peak,
        state_bytes=state_bytes,
        forward=counter.forward,
        backward=counter.backward + counter.hvp,  # an HVP is recorded as a backward pass, as before
        curves=curves,
        env=env,
        vectorized=vectorized,
    )


def divergence(batch_losses: torch.Tensor, start: int, train_loss: float, step: int, initial: float) -> str | None:
    """Why a run diverged at this evaluation, or ``None``: a batch loss of steps ``start+1 ..
    step`` (``batch_losses``, on the CPU) or the evaluated train loss is not finite or exceeds
    :data:`DIVERGENCE_FACTOR` × the initial train loss."""
    limit = DIVERGENCE_FACTOR * abs(initial)
    bad = ~torch.isfinite(batch_losses) | (batch_losses > limit)
    if bad.any():
        return f"loss {float(batch_losses[bad][0]):.3g} at step {start + int(bad.nonzero()[0]) + 1}"
    if not math.isfinite(train_loss) or train_loss > limit:
        return f"train loss {train_loss:.3g} at step {step}"
    return None


def _summaries(curves: dict[str, list], metrics: dict[str, str]) -> tuple[dict, dict]:
    final, best = {}, {}
    for name, sense in metrics.items():
        vals = curves.get(name)
        if not vals:
            continue
        final[name] = vals[-1]
        finite = [v for v in vals if math.isfinite(v)]
        if sense in ("min", "max") and finite:
            best[name] = min(finite) if sense == "min" else max(finite)
    return final, best


def _train(config, problem, device, curves, clock, state) -> tuple[str, str]:
    _seed_everything(config.seed)
    task = problem.build(config.seed, device)
    params = [p for p in task.model.parameters() if p.requires_grad]
    batch = [None]
    closure = make_closure(lambda: task.loss(batch[0]), params, state["counter"],
                           compute_val_loss=task.val_loss)
    opt, schedule = build_optimizer(config.optimizer.key, params, config.optimizer.hparams,
                                    task.steps_per_epoch, config.budget.steps)
    state["opt"] = opt
    base_lrs = [g["lr"] for g in opt.param_groups]
    modal = callable(getattr(opt, "train", None)) and callable(getattr(opt, "eval", None))
    batches = _Batches(task.n_train, task.batch_size, config.seed, device)
    steps, every = config.budget.steps, config.budget.eval_every
    losses = torch.empty(steps, device=device)
    checked = 0

    def evaluate(step: int) -> str | None:
        """Record one curve point; return a divergence message, if any."""
        nonlocal checked
        state["memory"].pause()
        task.model.eval()
        if modal:  # Schedule-Free: evaluate at the averaged iterate x, train at y
            opt.eval()
        point = {"step": step, "time_s": sum(clock.resolve())}
        point.update({k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v)
                      for k, v in task.evaluate().items()})
        for i, g in enumerate(opt.param_groups):
            point[f"lr_{i}"] = _lr(g)
        task.model.train()
        if modal:
            opt.train()
        for k, v in point.items():
            curves.setdefault(k, []).append(v)
        seen = losses[checked:step].cpu()
        msg = divergence(seen, checked, point["train_loss"], step, curves["train_loss"][0])
        checked = step
        state["memory"].resume()
        return msg

    msg = evaluate(0)
    if msg:
        return "diverged", msg
    # the data and the model are in memory and have been evaluated once (which is when a process
    # first allocates for good what this problem's kernels cache): the run's own memory from here
    state["memory"].start()
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
