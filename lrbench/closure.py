"""The closure protocol every optimizer in lrbench is driven by.

``optimizer.step(closure)`` where ``closure(grad: bool = True) -> loss``:

* ``closure()`` / ``closure(grad=True)``: zero the gradients (set to ``None``), compute the
  loss on the current batch at the current parameters and call ``backward()``. Costs one
  forward and one backward pass.
* ``closure(grad=False)``: only evaluate the loss on the current batch, under
  ``torch.no_grad()``. Costs one forward pass. Methods that probe the loss at perturbed
  parameters use this, and restore the parameters bit-exactly afterwards.

* ``closure(grad=True, create_graph=True)``: the gradient with its graph kept, so that
  ``closure.hvp(vs, params)`` can follow: the Hessian-vector products H·v at the same point
  and batch (one HVP, counted as such; MARTHE, RTHO). The ``p.grad`` are detached.
* ``closure(grad, split="val")``: the same on a validation batch supplied by the problem
  (held-out training data, never the test set), for methods whose objective is a
  validation loss (MARTHE, the validation variant of finite-difference LR learning).
  Raises ``ValueError`` when the problem supplies no validation batch.

The returned loss is a detached 0-d tensor. ``torch.optim`` optimizers work with it
unchanged (they call ``closure()``). The runner builds the closure with
:func:`make_closure`, which also counts the oracle calls: forward passes, backward passes and
Hessian-vector products (``OracleCounter.hvp``), the three costs the optimizers declare
(:class:`lrbench.optimizers._core.Facts`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Protocol

import torch

__all__ = ["Closure", "OracleCounter", "make_closure"]


class Closure(Protocol):
    def __call__(self, grad: bool = True, split: str = "train", create_graph: bool = False) -> torch.Tensor: ...

    def hvp(self, vs: list[torch.Tensor], params: list[torch.Tensor] | None = None) -> list[torch.Tensor]: ...


@dataclass
class OracleCounter:
    """Forward passes, backward passes and Hessian-vector products made through a closure."""

    forward: int = 0
    backward: int = 0
    hvp: int = 0


def make_closure(
    compute_loss: Callable[[], torch.Tensor],
    params: Iterable[torch.Tensor],
    counter: OracleCounter | None = None,
    compute_val_loss: Callable[[], torch.Tensor] | None = None,
) -> Closure:
    """Wrap ``compute_loss`` (a function of the current parameters) in the closure protocol.

    Args:
        compute_loss: returns the scalar loss on the current batch, differentiable
            with respect to ``params``.
        params: the tensors whose gradients the closure zeroes and fills.
        counter: incremented once per forward pass and once per backward pass
            (validation passes included).
        compute_val_loss: the loss on the validation batch, or ``None`` when the
            problem has no validation split.
    """
    params = list(params)
    counter = counter if counter is not None else OracleCounter()
    graph: dict[int, torch.Tensor] = {}  # id(param) -> its gradient with graph, after create_graph=True

    def closure(grad: bool = True, split: str = "train", create_graph: bool = False) -> torch.Tensor:
        if split == "train":
            fn = compute_loss
        elif split == "val":
            if compute_val_loss is None:
                raise ValueError("this problem supplies no validation batch (closure split='val')")
            fn = compute_val_loss
        else:
            raise ValueError(f"invalid split: {split!r} (must be 'train' or 'val')")
        counter.forward += 1
        graph.clear()
        if not grad:
            with torch.no_grad():
                return fn()
        for p in params:
            p.grad = None
        with torch.enable_grad():
            loss = fn()
            if create_graph:  # autograd.grad, not backward(create_graph): no param <-> grad cycle
                wrt = [p for p in params if p.requires_grad]
                gs = torch.autograd.grad(loss, wrt, create_graph=True, allow_unused=True)
                for p, g in zip(wrt, gs):
                    if g is not None:
                        graph[id(p)] = g
                        p.grad = g.detach()
            else:
                loss.backward()
        counter.backward += 1
        return loss.detach()

    def hvp(vs: list[torch.Tensor], wrt: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """H·v for the parameters ``wrt`` (default: all) at the point and batch of the last
        ``closure(create_graph=True)``: one Hessian-vector product (a backward pass through the
        backward graph). A parameter the loss does not depend on twice gets 0."""
        wrt = params if wrt is None else list(wrt)
        if not graph:
            raise ValueError("closure.hvp needs a preceding closure(create_graph=True)")
        idx = [i for i, p in enumerate(wrt) if id(p) in graph and graph[id(p)].requires_grad]
        counter.hvp += 1
        if not idx:  # the loss is linear in the parameters: H = 0
            return [torch.zeros_like(p) for p in wrt]
        with torch.enable_grad():
            hv = torch.autograd.grad([graph[id(wrt[i])] for i in idx], wrt, grad_outputs=[vs[i] for i in idx],
                                     retain_graph=True, allow_unused=True)
        return [torch.zeros_like(p) if h is None else h for h, p in zip(hv, wrt)]

    closure.counter = counter  # type: ignore[attr-defined]
    closure.hvp = hvp  # type: ignore[attr-defined]
    closure.release = graph.clear  # type: ignore[attr-defined]  # drop the kept graph
    return closure
