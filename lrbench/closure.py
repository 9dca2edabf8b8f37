"""The closure protocol every optimizer in lrbench is driven by.

``optimizer.step(closure)`` where ``closure(grad: bool = True) -> loss``:

* ``closure()`` / ``closure(grad=True)``: zero the gradients (set to ``None``), compute the
  loss on the current batch at the current parameters and call ``backward()``. Costs one
  forward and one backward pass.
* ``closure(grad=False)``: only evaluate the loss on the current batch, under
  ``torch.no_grad()``. Costs one forward pass. Methods that probe the loss at perturbed
  parameters use this, and restore the parameters bit-exactly afterwards.

* ``closure(grad=True, create_graph=True)``: backward with ``create_graph=True``, so each
  ``p.grad`` carries a graph and Hessian-vector products follow from
  ``torch.autograd.grad(grads, params, grad_outputs=v)`` (MARTHE, RTHO).
* ``closure(grad, split="val")``: the same on a validation batch supplied by the problem
  (held-out training data, never the test set), for methods whose objective is a
  validation loss (MARTHE, the validation variant of finite-difference LR learning).
  Raises ``ValueError`` when the problem supplies no validation batch.

The returned loss is a detached 0-d tensor. ``torch.optim`` optimizers work with it
unchanged (they call ``closure()``). The runner builds the closure with
:func:`make_closure`, which also counts the oracle calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Protocol

import torch

__all__ = ["Closure", "OracleCounter", "make_closure"]


class Closure(Protocol):
    def __call__(self, grad: bool = True, split: str = "train", create_graph: bool = False) -> torch.Tensor: ...


@dataclass
class OracleCounter:
    """Forward and backward passes made through a closure."""

    forward: int = 0
    backward: int = 0


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
        if not grad:
            with torch.no_grad():
                return fn()
        for p in params:
            p.grad = None
        with torch.enable_grad():
            loss = fn()
            loss.backward(create_graph=create_graph)
        counter.backward += 1
        return loss.detach()

    closure.counter = counter  # type: ignore[attr-defined]
    return closure
