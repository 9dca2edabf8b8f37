"""Per-tensor Trainable Learning Rate (seed 002, Section 3 "Per-layer learning rate",
Appendix D.2): the paper's ``sgd_tlr_pl``."""

from __future__ import annotations

import torch

from lrbench.optimizers._tlr import tlr_pl_update, window_length
from lrbench.optimizers.tlr import TLR
from lrbench.registry import register_optimizer


@register_optimizer("tlr_pl", adapts_lr=True)
class TLRPerLayer(TLR):
    """Trainable Learning Rate with one learning rate per parameter tensor (sgd_tlr_pl).

    Identical to :class:`lrbench.optimizers.tlr.TLR` (Algorithm 2, eqs. 7-9, the SGD extension
    of Section 4 with the same window) except that "each weight tensor (convolutional, linear or
    bias) has a unique, independent learning rate, which is initialized according to a global
    initial rate" (Appendix D.2): for tensor ``l``,
    ``alpha_l <- alpha_l (1 + <g_l, g_l'> / max(4 <g_l, g_l - g_l'>, c^-1 <g_l, g_l'>))`` with
    ``g_l, g_l'`` that tensor's current and previous window gradients (eq. 5 taken per layer),
    and ``w_l <- w_l - alpha_l d_l``. Each alpha_l obeys the same bounds (at most ``1 + c``
    growth, less than 25% shrinkage per update; ``g_l = 0`` leaves alpha_l unchanged).

    Oracle cost per step: 1 forward, 1 backward.

    ``group["lr"]`` holds the arithmetic mean of the group's per-tensor alphas after the step
    (a 0-d tensor): the benchmark logs one effective learning rate per group, and the mean is
    the simplest summary that equals alpha when all tensors agree (choice; the paper plots each
    tensor's curve, Fig. 7). The per-tensor alphas are in ``state[p]["alpha"]``.

    Args: as :class:`lrbench.optimizers.tlr.TLR` (lr = 0.1 initial rate of every tensor,
        c = 1/4, p = 1/3, momentum = 0.8, weight_decay = 5e-4, steps_per_epoch = None).
    """

    @torch.no_grad()
    def step(self, closure):
        """One per-tensor TLR step; returns the training loss at the starting parameters."""
        with torch.enable_grad():
            loss = closure()
        for group in self.param_groups:
            params, grads, states, head = self._gather(group, per_tensor_alpha=True)
            out = tlr_pl_update(params, grads, [s["momentum_buffer"] for s in states],
                                [s["grad_acc"] for s in states], [s["grad_prev"] for s in states],
                                [s["alpha"] for s in states], head["step"], momentum=group["momentum"],
                                weight_decay=group["weight_decay"], c=group["c"],
                                window=window_length(group["p"], group["steps_per_epoch"]))
            self._write_back(params, states, out)
            for s, q, a in zip(states, out.grad_prev, out.alpha):
                s["grad_prev"] = q
                s["alpha"] = a
            head["step"] = out.step
            group["lr"] = out.lr
        return loss
