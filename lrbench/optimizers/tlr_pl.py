"""Per-tensor Trainable Learning Rate (seed 002, Section 3 "Per-layer learning rate",
Appendix D.2): the paper's ``sgd_tlr_pl``."""

from __future__ import annotations

import torch

from lrbench.optimizers._core import Facts, one_pass
from lrbench.optimizers._functional import Functional
from lrbench.optimizers._tlr import tlr_pl_step, window_length
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
    growth, less than 25% shrinkage per update; ``g_l = 0`` leaves alpha_l unchanged). The rule
    is :func:`lrbench.optimizers._tlr.tlr_pl_step`.

    Oracle cost per step: 1 forward, 1 backward.

    ``group["lr"]`` holds the arithmetic mean of the group's per-tensor alphas after the step
    (a 0-d tensor): the benchmark logs one effective learning rate per group, and the mean is
    the simplest summary that equals alpha when all tensors agree (choice; the paper plots each
    tensor's curve, Fig. 7). The per-tensor alphas are in ``state[p]["alpha"]`` (0-d tensors,
    set to the initial rate at the first step).

    Args: as :class:`lrbench.optimizers.tlr.TLR` (lr = 0.1 initial rate of every tensor,
        c = 1/4, p = 1/3, momentum = 0.8, weight_decay = 5e-4, steps_per_epoch = None).
    """

    facts = Facts(one_pass, lr_scope="tensor")

    @classmethod
    def keys_for(cls, h: dict) -> tuple[str, ...]:
        return TLR.keys_for(h) + ("alpha",)

    @staticmethod
    def scalars(h, like):
        return {}

    @staticmethod
    def update(ops, h, t, params, grads, state, loss, oracle):
        return tlr_pl_step(ops, h, t, params, grads, state, window=window_length(h["p"], h["steps_per_epoch"]),
                           fresh=t == 0)

    @classmethod
    def functional(cls, **hparams) -> Functional:
        """The pure driver, with the per-tensor alphas started as 0-d tensors at ``lr`` (the
        buffers the driver creates are shaped like the parameters), so that the state has the
        layout and size of ``step()``'s after its first step."""
        pure = super().functional(**hparams)
        lr = cls([torch.zeros(1, requires_grad=True)], **hparams).defaults["lr"]

        def init(params):
            state = pure.init(params)
            state["alpha"] = [torch.as_tensor(lr, dtype=p.dtype, device=p.device) for p in params]
            return state

        return Functional(init, pure.step)
