"""Efficient GD-TLR (seed 002, Algorithm 2) with the SGD extension of Section 4: ``sgd_tlr``."""

from __future__ import annotations

import torch

from lrbench.optimizers import _validate as v
from lrbench.optimizers._tlr import TLRBase, tlr_update, window_length
from lrbench.registry import register_optimizer


@register_optimizer("tlr", adapts_lr=True)
class TLR(TLRBase):
    """Trainable Learning Rate, efficient single-pass variant (Algorithm 2, the paper's sgd_tlr).

    One learning rate alpha per parameter group, updated by a bounded Newton step on
    ``L_alpha(alpha) = L(w - alpha * grad L(w))`` (eq. 2) whose derivatives come from two
    consecutive gradients only:

    * eq. 7: ``dL_alpha/dalpha = -<g_t, g_{t-1}>``;
    * eq. 8: ``d2L_alpha/dalpha2 = (4 / alpha_t) <g_t, g_t - g_{t-1}>``;
    * eq. 9: ``eta_t = alpha_t / max(4 <g_t, g_t - g_{t-1}>, c^-1 <g_t, g_{t-1}>)``;
    * Algorithm 2 line 5: ``alpha_{t+1} = alpha_t + eta_t <g_t, g_{t-1}>``, i.e.
      ``alpha_t (1 + min(<g_t, g_{t-1}> / max(4 <g_t, g_t - g_{t-1}>, 0), c))``;
    * line 6 / eq. 1: ``w_{t+1} = w_t - alpha_{t+1} d_t``, where ``d_t = mu d_{t-1} + g_t +
      lambda w_t`` is the SGD direction with momentum and coupled weight decay (Appendix D;
      ``d_t = g_t`` for ``momentum = weight_decay = 0``, Algorithm 2 as written).

    alpha grows when consecutive gradients align and shrinks when they oppose; it grows by at
    most a factor ``1 + c`` and shrinks by less than 25% per update (see
    :func:`lrbench.optimizers._tlr.newton_factor`, which also maps ``g_t = 0`` to no change).
    With ``g_{-1} = 0`` the first update leaves alpha unchanged (Algorithm 2 line 2).

    SGD extension (Section 4, eq. 10): ``g_t`` is the mean of the update directions ``d_k``
    (momentum and weight decay included) over a window of ``round(p * steps_per_epoch)`` steps,
    and alpha is updated once per window, at its last step, before that step's weight update.
    ``steps_per_epoch=None`` means a window of one step, i.e. Algorithm 2 as written for
    full-batch GD. See :mod:`lrbench.optimizers._tlr` for the choices made there (window mean
    rather than weight difference, sign, rounding).

    Oracle cost per step: 1 forward, 1 backward (the alpha update uses stored directions only).
    ``group["lr"]`` is the alpha applied in the step (0-d tensor). State: per tensor
    ``momentum_buffer``, ``grad_acc`` (window sum so far), ``grad_prev`` (``g_{t-1}``); per group
    (on the group's first parameter) ``alpha`` and ``step``.

    Args:
        params: parameters or parameter groups.
        lr: initial learning rate alpha_0 (default 0.1). The paper gives no single default: it
            reports robustness over {0.001, 0.01, 0.1} (Fig. 1) and uses 0.1 as initial rate in
            its ablations (Figs. 6, 8, 9) and as "a typical well-performing setting for CIFAR".
        c: bound of eq. 9, alpha_{t+1} <= (1 + c) alpha_t (default 1/4, Section 3 "we select
            c = 1/4").
        p: learning-rate update period as a fraction of an epoch (default 1/3, Section 4 and
            Appendix D).
        momentum: heavy-ball coefficient in [0, 1) (default 0.8, Appendix D).
        weight_decay: coupled L2 coefficient (default 5e-4, Appendix D).
        steps_per_epoch: N of eq. 10, steps per epoch (the runner passes the problem's value);
            None gives full-batch behaviour, one alpha update per step.
    """

    def __init__(self, params, lr: float = 0.1, c: float = 0.25, p: float = 1.0 / 3.0,
                 momentum: float = 0.8, weight_decay: float = 5e-4,
                 steps_per_epoch: int | None = None):
        v.positive("c", c)
        super().__init__(params, dict(lr=lr, c=c, p=p, momentum=momentum, weight_decay=weight_decay,
                                      steps_per_epoch=steps_per_epoch))

    @torch.no_grad()
    def step(self, closure):
        """One TLR step; returns the training loss at the starting parameters."""
        with torch.enable_grad():
            loss = closure()
        for group in self.param_groups:
            params, grads, states, head = self._gather(group)
            out = tlr_update(params, grads, [s["momentum_buffer"] for s in states],
                             [s["grad_acc"] for s in states], [s["grad_prev"] for s in states],
                             head["alpha"], head["step"], momentum=group["momentum"],
                             weight_decay=group["weight_decay"], c=group["c"],
                             window=window_length(group["p"], group["steps_per_epoch"]))
            self._write_back(params, states, out)
            for s, q in zip(states, out.grad_prev):
                s["grad_prev"] = q
            head["alpha"] = out.alpha
            head["step"] = out.step
            group["lr"] = out.lr
        return loss
