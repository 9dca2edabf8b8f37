"""Learning-rate schedules: pure functions of the step that return a multiplier of the base LR.

Every schedule is ``f(step, *, steps_per_epoch, total_steps, **options) -> float`` where ``step``
is the number of optimizer steps taken before the one about to be made (0 for the first step).
The LR applied in that step is ``base_lr * f(step, ...)``. Nothing here holds state, so a
schedule can be evaluated at any step, in any order, and ``state_dict`` round trips need
nothing but the step count.

A schedule composes with any base optimizer that does not adapt its own learning rate, through
the ``schedule`` entry of the optimizer's spec (a name, or a table with ``name`` and options)::

    [[optimizers]]
    key = "adam"
    lr = 0.001
    schedule = { name = "sgdr", t0 = 10, t_mult = 2 }

The runner then writes ``group["lr"] = base_lr * f(step)`` before each step. The registered
optimizers ``sgdr``, ``sgd_step`` and ``sgd_exp`` are SGD with these schedules built in.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

__all__ = ["register_schedule", "schedule_fn", "schedule_keys", "resolve", "Schedule",
           "sgdr", "multistep", "staircase", "exponential"]

ScheduleFn = Callable[..., float]
Check = Callable[[str, Any], Any]
_SCHEDULES: dict[str, ScheduleFn] = {}
_CHECKS: dict[str, dict[str, Check]] = {}


def register_schedule(name: str, checks: Mapping[str, Check] | None = None) -> Callable[[ScheduleFn], ScheduleFn]:
    """Decorator: register a schedule function under ``name``; ``checks`` maps each option to
    a validator ``check(name, value)`` that raises ``ValueError("invalid <name>: …")``."""

    def deco(fn: ScheduleFn) -> ScheduleFn:
        _SCHEDULES[name] = fn
        _CHECKS[name] = dict(checks or {})
        return fn

    return deco


def _number(name: str, value: Any, ok: Callable[[float], bool], rule: str) -> float:
    """``value`` if it is a number for which ``ok`` holds (NaN never does), else ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(float(value)):
        raise ValueError(f"invalid {name}: {value!r} ({rule})")
    return float(value)


def _positive(name: str, value: Any) -> float:
    return _number(name, value, lambda x: 0.0 < x < math.inf, "must be > 0")


def _at_least_one(name: str, value: Any) -> float:
    return _number(name, value, lambda x: 1.0 <= x < math.inf, "must be >= 1")


def _fraction(name: str, value: Any) -> float:
    return _number(name, value, lambda x: 0.0 <= x <= 1.0, "must be in [0, 1]")


def _decay(name: str, value: Any) -> float:
    return _number(name, value, lambda x: 0.0 < x <= 1.0, "must be in (0, 1]")


def _milestones(name: str, value: Any) -> tuple:
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"invalid {name}: {value!r} (a non-empty list of budget fractions in (0, 1])")
    for m in value:
        _decay(name, m)
    return value


def schedule_keys() -> list[str]:
    return sorted(_SCHEDULES)


def schedule_fn(name: str) -> ScheduleFn:
    if name not in _SCHEDULES:
        raise ValueError(f"invalid schedule: {name!r} (known: {', '.join(schedule_keys())})")
    return _SCHEDULES[name]


def _epochs(step: int, steps_per_epoch: int) -> float:
    return step / max(1, int(steps_per_epoch))


@register_schedule("sgdr", {"t0": _positive, "t_mult": _at_least_one, "min_factor": _fraction})
def sgdr(step: int, *, steps_per_epoch: int, total_steps: int, t0: float = 10.0, t_mult: float = 2.0,
         min_factor: float = 0.0) -> float:
    """Cosine annealing with warm restarts (Loshchilov & Hutter 2017, eq. 5).

    η_t = η_min + ½(η_max − η_min)(1 + cos(π T_cur / T_i)) with T_cur the (fractional) number of
    epochs since the last restart, updated every step, and T_i = t0·t_mult^i the length of cycle
    i. Restarts fall at epochs t0, t0(1 + t_mult), … (10, 30, 70, … for the defaults t0 = 10,
    t_mult = 2 of seed 001 §6). ``min_factor`` is η_min / η_max (default 0).
    """
    e = _epochs(step, steps_per_epoch)
    if t_mult == 1.0:
        t_i, t_cur = t0, math.fmod(e, t0)
    else:
        # number of completed cycles: largest i with t0 (t_mult^i − 1)/(t_mult − 1) <= e
        i = int(math.floor(math.log(e * (t_mult - 1.0) / t0 + 1.0, t_mult) + 1e-12))
        start = t0 * (t_mult**i - 1.0) / (t_mult - 1.0)
        if start > e:  # guard against rounding in the logarithm
            i -= 1
            start = t0 * (t_mult**i - 1.0) / (t_mult - 1.0)
        t_i, t_cur = t0 * t_mult**i, e - start
    return min_factor + 0.5 * (1.0 - min_factor) * (1.0 + math.cos(math.pi * t_cur / t_i))


@register_schedule("multistep", {"milestones": _milestones, "gamma": _decay})
def multistep(step: int, *, steps_per_epoch: int, total_steps: int,
              milestones: tuple[float, ...] = (0.5, 0.75), gamma: float = 0.1) -> float:
    """×gamma at each milestone, given as fractions of the budget (seed 002's ``sgd_mstep``:
    ×0.1 at 50 % and 75 %). The step at ``round(m·total_steps)`` already uses the decayed LR."""
    passed = sum(step >= round(m * total_steps) for m in milestones)
    return gamma**passed


@register_schedule("staircase", {"every_epochs": _positive, "gamma": _decay})
def staircase(step: int, *, steps_per_epoch: int, total_steps: int, every_epochs: float = 60.0,
              gamma: float = 0.1) -> float:
    """×gamma every ``every_epochs`` epochs (seed 001 §6: "decay the learning rate by 90% after
    every 60 epochs")."""
    return gamma ** math.floor(_epochs(step, steps_per_epoch) / every_epochs + 1e-12)


@register_schedule("exponential", {"gamma": _decay})
def exponential(step: int, *, steps_per_epoch: int, total_steps: int, gamma: float = 0.99) -> float:
    """×gamma per completed epoch (seed 001 §6: "a decay factor of 0.99 per epoch"). The paper
    decays once per epoch, so the multiplier is a staircase in whole epochs (a choice: seed 001
    does not say whether it interpolates within an epoch)."""
    return gamma ** math.floor(_epochs(step, steps_per_epoch) + 1e-12)


class Schedule:
    """A named schedule with its options, bound to a problem's epoch length and budget."""

    def __init__(self, name: str, options: Mapping[str, Any], steps_per_epoch: int, total_steps: int):
        self.fn = schedule_fn(name)
        self.name, self.options = name, dict(options)
        checks = _CHECKS.get(name, {})
        for option, value in self.options.items():
            if option not in checks and checks:
                raise ValueError(f"invalid schedule option for {name!r}: {option!r} "
                                 f"(it takes {', '.join(sorted(checks))})")
            if option in checks:
                checks[option](option, value)
        self.steps_per_epoch, self.total_steps = int(steps_per_epoch), int(total_steps)
        self(0)  # an unknown option fails here, before any run starts
        self(max(0, self.total_steps - 1))

    def __call__(self, step: int) -> float:
        try:
            return float(self.fn(step, steps_per_epoch=self.steps_per_epoch,
                                 total_steps=self.total_steps, **self.options))
        except TypeError as exc:
            raise ValueError(f"invalid schedule option for {self.name!r}: {exc}") from None
        except ArithmeticError as exc:  # an option that the checks let through still overflows
            raise ValueError(f"invalid schedule options for {self.name!r}: {exc}") from None


def resolve(spec: Any, steps_per_epoch: int, total_steps: int) -> Schedule:
    """A :class:`Schedule` from a spec value: a name, or a mapping with ``name`` and options."""
    if isinstance(spec, str):
        return Schedule(spec, {}, steps_per_epoch, total_steps)
    if isinstance(spec, Mapping) and isinstance(spec.get("name"), str):
        opts = {k: (tuple(v) if isinstance(v, list) else v) for k, v in spec.items() if k != "name"}
        return Schedule(spec["name"], opts, steps_per_epoch, total_steps)
    raise ValueError(f"invalid schedule: {spec!r} (a name, or a table with 'name' and options)")
