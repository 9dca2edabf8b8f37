"""The functional form of an optimizer, for the vectorised runner (:mod:`lrbench.vectorized`).

An optimizer class that offers one defines ``functional(**hparams) -> Functional``: the same
update as its ``step()``, as pure functions of one run's tensors, which ``torch.func.vmap``
maps over the stacked seeds of a sweep. Every built-in key gets it from the pure driver of
:mod:`lrbench.optimizers._core`.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

from torch import Tensor

__all__ = ["Functional"]


class Functional(NamedTuple):
    """``init(params) -> state`` and ``step(params, grads, loss, state, oracle, t) -> (params,
    state, lr)``: ``state`` is a dict of tensors (or lists of tensors), ``loss`` the batch loss
    at ``params``, ``t`` the steps taken before (a Python int, shared by the seeds of a batch),
    ``lr`` the step size applied (0-d). ``oracle`` is ``probe(ps)`` (the batch loss at other
    parameters ``ps``) or a dict of pure functions: ``"loss": (ps, split) -> loss``,
    ``"grad": (ps, split) -> (loss, grads)``, ``"hvp": (ps, vs) -> H·vs`` and optionally
    ``"search"`` (see :class:`lrbench.optimizers._core.Oracle`); the runner counts each call."""

    init: Callable[[list[Tensor]], dict[str, Any]]
    step: Callable[..., tuple[list[Tensor], dict[str, Any], Tensor]]
