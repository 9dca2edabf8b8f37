"""The frozen, JSON-round-trippable dataclasses that cross module boundaries.

Everything else in lrbench takes and returns these. ``to_dict``/``from_dict`` give plain
JSON types; a :class:`RunConfig`'s ``run_key`` is a hash of its canonical JSON, so the
same experiment always has the same key, and its ``name`` is built from sorted keys
(``adam[lr=0.001]``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = [
    "OptimizerSpec",
    "ProblemSpec",
    "Budget",
    "RunConfig",
    "Environment",
    "RunResult",
    "Suite",
    "SuiteEntry",
    "TuningProtocol",
    "RobustnessSweep",
    "Execution",
    "BACKENDS",
    "log_grid",
    "STATUSES",
    "canonical_json",
]

STATUSES = ("ok", "diverged", "failed", "timeout")
BACKENDS = ("local", "ray")
"""Executors of a sweep (:mod:`lrbench.executors`)."""

REPORT_FORMATS = ("md", "html", "all")
"""What ``lrbench report --format`` writes: ``leaderboard.md``, ``index.html``, or both."""
MAX_STEPS = 10**7
"""The largest budget a run may have (the runner keeps one float per step on the device)."""
MAX_GRID = 1000
"""The most points a learning-rate grid or a crossed search space may have."""


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: the basis of run keys."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True)


def _name(key: str, params: Mapping[str, Any]) -> str:
    if not params:
        return key
    inner = ",".join(f"{k}={_fmt(params[k])}" for k in sorted(params))
    return f"{key}[{inner}]"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, bool):
        return str(v).lower()
    return str(v)


def _plain(v: Any) -> Any:
    if isinstance(v, _Frozen):
        return v.to_dict()
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


class _Frozen:
    """Hashing by canonical JSON (the dict fields make the default hash impossible).

    Fields named in ``_omit_if_default`` are left out of ``to_dict`` while they hold their
    default, so adding such a field later does not change the run keys recorded before it.
    """

    _omit_if_default: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.name in self._omit_if_default and value == f.default:
                continue
            out[f.name] = _plain(value)
        return out

    def __hash__(self) -> int:
        return hash(canonical_json(self.to_dict()))


@dataclass(frozen=True, eq=True)
class OptimizerSpec(_Frozen):
    """A registry key and its hyper-parameters.

    ``tuned`` marks hyper-parameters picked by the tuning protocol (:mod:`lrbench.tuning`):
    such a spec is named ``key*`` (e.g. ``adam*``) whatever values were picked, since the
    pick may differ per problem; the values themselves are in ``hparams`` and the run key.
    """

    key: str
    hparams: dict[str, Any] = field(default_factory=dict)
    tuned: bool = False

    _omit_if_default = ("tuned",)

    @property
    def name(self) -> str:
        """Readable name from sorted hyper-parameters, e.g. ``adam[lr=0.001]``; ``adam*`` when tuned."""
        return f"{self.key}*" if self.tuned else _name(self.key, self.hparams)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "OptimizerSpec":
        return cls(d["key"], dict(d.get("hparams", {})), bool(d.get("tuned", False)))

    __hash__ = _Frozen.__hash__


@dataclass(frozen=True, eq=True)
class ProblemSpec(_Frozen):
    """A registry key and its options (size, data source, ...)."""

    key: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return _name(self.key, self.options)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ProblemSpec":
        return cls(d["key"], dict(d.get("options", {})))

    __hash__ = _Frozen.__hash__


@dataclass(frozen=True)
class Budget(_Frozen):
    """Training steps, and the period (in steps) of the untimed evaluation."""

    steps: int
    eval_every: int

    def __post_init__(self) -> None:
        for name in ("steps", "eval_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_STEPS:
                raise ValueError(f"invalid {name}: {value!r} (must be an integer from 1 to {MAX_STEPS:,})")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Budget":
        return cls(int(d["steps"]), int(d["eval_every"]))

    __hash__ = _Frozen.__hash__


@dataclass(frozen=True, eq=True)
class RunConfig(_Frozen):
    """One run: a problem, an optimizer, a seed, a device and a budget, in a suite."""

    suite: str
    problem: ProblemSpec
    optimizer: OptimizerSpec
    seed: int
    device: str
    budget: Budget

    @property
    def run_key(self) -> str:
        """Stable identifier: the first 16 hex digits of SHA-256 of the canonical JSON."""
        return hashlib.sha256(canonical_json(self.to_dict()).encode()).hexdigest()[:16]

    @property
    def name(self) -> str:
        return f"{self.problem.name}/{self.optimizer.name}/seed={self.seed}"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RunConfig":
        return cls(
            suite=d["suite"],
            problem=ProblemSpec.from_dict(d["problem"]),
            optimizer=OptimizerSpec.from_dict(d["optimizer"]),
            seed=int(d["seed"]),
            device=d["device"],
            budget=Budget.from_dict(d["budget"]),
        )

    __hash__ = _Frozen.__hash__


@dataclass(frozen=True)
class Environment(_Frozen):
    """Where a run ran."""

    lrbench_version: str
    torch_version: str
    python_version: str
    platform: str
    device_name: str
    git_commit: str | None
    #: torch's intra-op threads during the run (CPU results depend on it: a matrix product
    #: splits its sums by thread); ``None`` in records made before it was recorded
    threads: int | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Environment":
        return cls(**d)


@dataclass(frozen=True)
class RunResult(_Frozen):
    """Everything recorded about one finished run.

    Attributes:
        status: ``ok``, ``diverged`` (non-finite loss or > 1e6 × the initial loss),
            ``failed`` (an exception, a worker that died, a memory limit; the cause is in
            ``message``) or ``timeout`` (stopped at the per-run wall-time limit).
        steps: training steps completed.
        final: metrics at the last evaluation (``train_loss`` and the problem's others).
        best: best value of each metric over the evaluations (min or max by its sense).
        thresholds: the problem's train-loss thresholds, easy to hard.
        steps_to_threshold: for each threshold (as ``str(float)``), the first evaluated
            step at which ``train_loss <= threshold``, or ``None``.
        wall_time_s: total time of the timed step region.
        median_step_s: median time of one step.
        peak_memory_bytes: CUDA max allocated; on the CPU the peak resident memory of a
            replay of the run's first steps above its process's resident memory once the
            replay's data and model were built (``lrbench.memory.replayed_peak``), so it does
            not depend on what ran before.
        state_bytes: bytes of the tensors in ``optimizer.state`` at the end.
        forward, backward: oracle calls made through the closure.
        curves: column name -> values at each evaluation (``step``, ``time_s``,
            ``train_loss``, metrics, ``lr_<group>``).
        vectorized: how many seeds ran as one batched computation (:mod:`lrbench.vectorized`);
            1 for a run of its own. When > 1, the times are the batch's divided by it and
            ``peak_memory_bytes`` is the batch's.
    """

    config: RunConfig
    status: str
    message: str
    steps: int
    final: dict[str, float]
    best: dict[str, float]
    thresholds: tuple[float, ...]
    steps_to_threshold: dict[str, int | None]
    wall_time_s: float
    median_step_s: float
    peak_memory_bytes: int
    state_bytes: int
    forward: int
    backward: int
    curves: dict[str, list]
    env: Environment
    vectorized: int = 1

    _omit_if_default = ("vectorized",)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RunResult":
        d = dict(d)
        d["config"] = RunConfig.from_dict(d["config"])
        d["env"] = Environment.from_dict(d["env"])
        d["thresholds"] = tuple(d["thresholds"])
        return cls(**d)


def log_grid(low: float, high: float, per_decade: int) -> tuple[float, ...]:
    """``per_decade`` points per decade from ``low`` to ``high`` inclusive, each rounded to 6
    significant digits so that names and run keys read ``0.000316`` rather than a float tail.
    ``log_grid(1e-4, 1, 2)`` = 1e-4, 3.16e-4, 1e-3, …, 1 (9 points)."""
    for name, v in (("low", low), ("high", high)):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"invalid grid: {name}={v!r} (must be a number)")
    if not (0 < low <= high and math.isfinite(high)):
        raise ValueError(f"invalid grid: low={low!r}, high={high!r} (need 0 < low <= high)")
    if isinstance(per_decade, bool) or not isinstance(per_decade, int) or per_decade < 1:
        raise ValueError(f"invalid per_decade: {per_decade!r} (must be an integer >= 1)")
    decades = math.log10(high) - math.log10(low)  # never overflows, unlike high / low
    n = round(decades * per_decade)
    if n + 1 > MAX_GRID:
        raise ValueError(f"invalid grid: {n + 1} points from {low:g} to {high:g} (at most {MAX_GRID})")
    return tuple(float(f"{_grid_point(low, i / per_decade):.6g}") for i in range(n + 1))


def _grid_point(low: float, decades: float) -> float:
    """``low · 10^decades``; through logarithms only where ``10^decades`` alone would overflow
    (so that the points of ordinary grids, hence run keys, stay as they always were)."""
    try:
        return low * 10**decades
    except OverflowError:
        return 10 ** (math.log10(low) + decades)


@dataclass(frozen=True)
class SuiteEntry(_Frozen):
    """One (problem, budget, optimizer) cell of a suite, crossed with the suite's seeds.

    ``tune`` is the cell's search space (hyper-parameter -> candidate values, crossed), or
    ``None`` when its hyper-parameters are used as given.
    """

    problem: ProblemSpec
    budget: Budget
    optimizer: OptimizerSpec
    tune: dict[str, tuple] | None = None

    __hash__ = _Frozen.__hash__


@dataclass(frozen=True)
class TuningProtocol(_Frozen):
    """How a suite tunes the entries that declare a search space (:mod:`lrbench.tuning`).

    Attributes:
        seeds: seeds of the tuning runs; by default 1000-1002, disjoint from the main runs'
            seeds so that a tuned result is not measured on the seeds it was picked on.
        criterion: a ``load_runs`` column (``final_<metric>`` / ``best_<metric>``), or
            ``None`` for each problem's own (``Problem.tune_criterion``).
        sense: ``"min"`` or ``"max"`` (with ``criterion``).
    """

    seeds: tuple[int, ...] = (1000, 1001, 1002)
    criterion: str | None = None
    sense: str | None = None


@dataclass(frozen=True)
class RobustnessSweep(_Frozen):
    """The LR-robustness sweep: every optimizer of the suite at each point of a log grid of
    its (initial) learning rate, ``per_decade`` points per decade from ``low`` to ``high``."""

    low: float = 1e-4
    high: float = 1.0
    per_decade: int = 2
    seeds: tuple[int, ...] = (2000, 2001, 2002)

    @property
    def grid(self) -> tuple[float, ...]:
        return log_grid(self.low, self.high, self.per_decade)


@dataclass(frozen=True)
class Execution(_Frozen):
    """How a sweep runs (:mod:`lrbench.executors`): not part of any run key.

    Attributes:
        backend: ``"local"`` (worker processes on this machine) or ``"ray"``.
        workers: runs at a time; ``None``: one per CPU core, or one per visible GPU on CUDA
            (on Ray: as many as the cluster's resources hold). ``1`` runs in this process, as
            lrbench always did, unless a limit needs a worker process.
        threads: torch intra-op threads per run; ``None``: the cores divided among the
            workers. CPU numbers are identical across executors at equal ``threads``.
        address: the Ray cluster (``"auto"`` or ``"HOST:PORT"``); ``None`` starts a local one.
        timeout_s: per-run wall-time limit (a run past it is stopped, status ``timeout``).
        max_memory_mb: per-run resident-memory limit, enforced in the worker (status
            ``failed``, message ``memory limit ...``).
        resources: Ray resources of one run, e.g. ``(("cpu", 1.0), ("gpu", 0.25))``.
    """

    backend: str = "local"
    workers: int | None = None
    threads: int | None = None
    address: str | None = None
    timeout_s: float | None = None
    max_memory_mb: float | None = None
    resources: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"invalid backend: {self.backend!r} (one of {', '.join(BACKENDS)})")
        for name in ("workers", "threads"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"invalid {name}: {value!r} (must be an integer >= 1)")
        for name in ("timeout_s", "max_memory_mb"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value) or value <= 0):
                raise ValueError(f"invalid {name}: {value!r} (must be a number > 0)")
        for k, v in self.resources:
            if k not in ("cpu", "gpu") or isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1e6:
                raise ValueError(f"invalid resources: {k} = {v!r} (cpu and gpu, numbers > 0)")
        if self.address is not None and self.backend != "ray":
            raise ValueError("invalid address: only the ray backend takes one")

    def resource(self, name: str, default: float) -> float:
        return dict(self.resources).get(name, default)

    __hash__ = _Frozen.__hash__


@dataclass(frozen=True)
class Suite(_Frozen):
    """A named set of entries, seeds and a device: expands to :class:`RunConfig` s.

    ``tuning`` and ``robustness`` are the suite's tuning protocol and LR-robustness sweep, if
    it asks for them; :mod:`lrbench.tuning` turns them into runs.
    """

    name: str
    entries: tuple[SuiteEntry, ...]
    seeds: tuple[int, ...]
    device: str = "auto"
    tuning: TuningProtocol = TuningProtocol()
    robustness: RobustnessSweep | None = None
    execution: Execution = Execution()

    def configs(self) -> list[RunConfig]:
        """Every run of the suite's entries with their hyper-parameters as given, seeds
        innermost (the tuned runs come from :func:`lrbench.tuning.main_configs`)."""
        return [
            RunConfig(self.name, e.problem, e.optimizer, seed, self.device, e.budget)
            for e in self.entries
            for seed in self.seeds
        ]

    __hash__ = _Frozen.__hash__
