"""SGD with a learning-rate schedule built in: the shell of ``sgdr``, ``sgd_step``, ``sgd_exp``.

The schedule is a pure function of the step (:mod:`lrbench.schedules`); the only state is the
step count, kept in the state of the first parameter, so ``state_dict`` round-trips it. Before
each step the group's LR is set to ``initial_lr × multiplier(step)``, so after ``step()``
``group["lr"]`` is the step size applied in it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from lrbench.optimizers import _directions, _validate as v
from lrbench.optimizers._constant import constant_step
from lrbench.optimizers.sgd import SGD
from lrbench.schedules import schedule_fn

_NO_BUDGET = 2**62  # total_steps unknown (outside the runner): budget-relative milestones never come


class ScheduledSGD(SGD):
    """SGD (heavy-ball momentum, as ``torch.optim.SGD``) whose LR follows ``schedule_name``."""

    schedule_name: ClassVar[str]
    options: ClassVar[tuple[str, ...]]  # the schedule's own hyper-parameters

    def __init__(self, params, *, lr: float, momentum: float, weight_decay: float,
                 steps_per_epoch: int | None, total_steps: int | None, options: dict[str, Any]):
        if steps_per_epoch is not None:
            v.positive_int("steps_per_epoch", steps_per_epoch)
        if total_steps is not None:
            v.positive_int("total_steps", total_steps)
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
        extra = dict(options, steps_per_epoch=steps_per_epoch, total_steps=total_steps)
        self.defaults.update(extra)
        for group in self.param_groups:
            group.setdefault("initial_lr", group["lr"])
            for key, value in extra.items():
                group.setdefault(key, value)

    @classmethod
    def multiplier(cls, group: dict, step: int) -> float:
        """The schedule's multiplier of ``initial_lr`` at ``step`` (steps taken before)."""
        fn = schedule_fn(cls.schedule_name)
        return fn(step, steps_per_epoch=group["steps_per_epoch"] or 1,
                  total_steps=group["total_steps"] or _NO_BUDGET, **{k: group[k] for k in cls.options})

    @classmethod
    def update(cls, ops, h, t, params, grads, state, loss, oracle):
        """The scheduled step: η = ``initial_lr`` × multiplier(t), then torch.optim.SGD's step."""
        lr = h["initial_lr"] * cls.multiplier(h, t)
        d, _, state, _ = _directions.sgd(ops, t, params, grads, state, momentum=h["momentum"],
                                         dampening=h["dampening"], nesterov=h["nesterov"],
                                         weight_decay=h["weight_decay"])
        return constant_step(ops, params, d, lr), state, lr

    def step(self, closure=None):
        """Set each group's LR from the schedule, then take one SGD step."""
        state = self.state[self.param_groups[0]["params"][0]]
        t = int(state.get("schedule_step", 0))
        for group in self.param_groups:
            group["lr"] = group["initial_lr"] * self.multiplier(group, t)
        loss = super().step(closure)
        state["schedule_step"] = t + 1
        return loss


__all__ = ["ScheduledSGD"]
