"""What every run shares, alone (:mod:`lrbench.runner`) or as a batch of seeds
(:mod:`lrbench.vectorized`): the device, the seeding, the batch order, the clock of the step
region, the measured skeleton around training (environment, problem, peak memory, failure
capture: :func:`measure`), the divergence test and the assembly of a
:class:`~lrbench.spec.RunResult`.

The two training loops differ only in how a step and an evaluation are computed (one model
and its optimizer; ``vmap`` over stacked seeds); everything that is measured or recorded
about a run comes from here, so a batched seed and a run of its own are accounted alike.
"""

from __future__ import annotations

import inspect
import math
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch

from lrbench.closure import OracleCounter
from lrbench.env import environment
from lrbench.memory import REPLAY_STEPS, CpuPeak, replayed_peak
from lrbench.registry import make_problem, optimizer_class
from lrbench.schedules import Schedule
from lrbench.schedules import resolve as resolve_schedule
from lrbench.spec import Environment, RunConfig, RunResult

__all__ = ["DIVERGENCE_FACTOR", "Batches", "Clock", "Harness", "Train", "applied_lr", "build_optimizer", "divergence",
           "failure_message", "lost_result", "make_result", "measure", "optimizer_kwargs", "resolve_device",
           "seed_everything", "state_bytes"]

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
    return cls(params, **optimizer_kwargs(cls, hp, steps_per_epoch, total_steps)), schedule


def optimizer_kwargs(cls: type, hparams: dict[str, Any], steps_per_epoch: int, total_steps: int) -> dict[str, Any]:
    """``hparams`` plus ``steps_per_epoch`` and ``total_steps`` (the budget) where ``cls.__init__``
    takes them and the spec does not set them: the keyword arguments of the optimizer (or of its
    ``functional`` form, which takes the same ones)."""
    hp = dict(hparams)
    accepted = inspect.signature(cls.__init__).parameters
    for name, value in (("steps_per_epoch", steps_per_epoch), ("total_steps", total_steps)):
        if name in accepted and name not in hp:
            hp[name] = value
    return hp


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (CPU and CUDA) from a run's seed."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    # what torch.manual_seed does for the CPU and CUDA, without its queueing of lazy seeding
    # for every other accelerator backend (2 ms a call: it formats a stack trace for each)
    torch.default_generator.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def state_bytes(state: Any) -> int:
    """Bytes of the tensors in ``state`` (an optimizer's state: nested dicts, lists, tensors)."""
    if isinstance(state, torch.Tensor):
        return state.nelement() * state.element_size()
    if isinstance(state, dict):
        return sum(state_bytes(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(state_bytes(v) for v in state)
    return 0


class Batches:
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


class Clock:
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


class _Unmeasured:
    """The memory gauge of a timed run on the CPU, whose figure comes from a replay instead."""

    def start(self, warm: Callable[[], object] | None = None) -> None: ...


@dataclass
class Harness:
    """What a training loop is measured with, from :func:`measure`: the device, the environment
    recorded with the run, the problem instance, the clock of the step region and the memory
    gauge (which the loop starts once its data and model are built: a
    :class:`~lrbench.memory.CpuPeak` in the CPU's replay, idle otherwise).
    After training, ``times`` holds the step times and ``peak`` the peak memory."""

    device: torch.device
    env: Environment
    problem: Any
    clock: Clock
    memory: CpuPeak | _Unmeasured = field(default_factory=_Unmeasured)
    times: list[float] = field(default_factory=list)
    peak: int = 0


_R = TypeVar("_R")
Train = Callable[[Harness, "int | None", Any], tuple[str, str]]
"""A training loop: ``train(harness, steps, record)`` trains for the budget's steps (or only the
first ``steps``), writes what it records into ``record`` and returns its status and message."""


def measure(config: RunConfig, train: Train, new_record: Callable[[], _R]) -> tuple[Harness, str, str, _R]:
    """Run the training loop ``train`` inside the measured skeleton that single runs and seed
    batches share; return the harness (step times, peak memory), the status and message, and
    the timed run's record. An exception of the loop (or a plug-in's ``SystemExit``) is the
    status ``failed`` with its one-line message; ``KeyboardInterrupt`` propagates.

    Memory: on CUDA, the allocator's peak over the timed run; on the CPU, the peak resident
    memory of a replay of the first :data:`~lrbench.memory.REPLAY_STEPS` steps after it, into a
    record that is thrown away (:func:`lrbench.memory.replayed_peak` says why).

    Raises:
        ValueError: an invalid device, or a problem key or options that do not build (before
            anything runs, so a sweep refuses them rather than recording failures).
    """
    device = resolve_device(config.device)
    h = Harness(device, environment(device), make_problem(config.problem.key, **config.problem.options),
                Clock(device))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    record = new_record()
    try:
        status, message = train(h, None, record)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - any failure of a run is recorded, the sweep goes on
        status, message = "failed", failure_message(exc)
    h.times = h.clock.resolve()
    if device.type == "cuda":
        h.peak = int(torch.cuda.max_memory_allocated(device))
    else:
        h.peak = replayed_peak(lambda gauge: train(Harness(device, h.env, h.problem, Clock(device), gauge),
                                                   REPLAY_STEPS, new_record()))
    return h, status, message, record


def applied_lr(group: dict) -> float:
    """The step size applied in the last step: ``effective_lr`` where a wrapped third-party
    method records it (its ``lr`` is a multiplier, see ``optimizers/_lrfree.py``), else ``lr``."""
    lr = group.get("effective_lr", group["lr"])
    return float(lr.detach().float().mean()) if isinstance(lr, torch.Tensor) else float(lr)


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


