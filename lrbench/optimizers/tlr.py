"""Efficient GD-TLR (seed 002, Algorithm 2) with the SGD extension of Section 4: ``sgd_tlr``."""

from __future__ import annotations

from lrbench.optimizers import _directions, _validate as v
from lrbench.optimizers._core import Facts, Method, one_pass
from lrbench.optimizers._tlr import alpha_state, tlr_step, validate, window_length
from lrbench.registry import register_optimizer


@register_optimizer("tlr", adapts_lr=True)
class TLR(Method):
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
      ``torch.optim.SGD``'s heavy-ball direction with dampening 0; ``d_t = g_t`` for
      ``momentum = weight_decay = 0``, Algorithm 2 as written).

    alpha grows when consecutive gradients align and shrinks when they oppose; it grows by at
    most a factor ``1 + c`` and shrinks by less than 25% per update (see
    :func:`lrbench.optimizers._tlr.newton_factor`, which also maps ``g_t = 0`` to no change).
    With ``g_{-1} = 0`` the first update leaves alpha unchanged (Algorithm 2 line 2).

    SGD extension (Section 4, eq. 10): ``g_t`` is the mean of the update directions ``d_k``
    (momentum and weight decay included) over a window of ``round(p * steps_per_epoch)`` steps,
    and alpha is updated once per window, at its last step, before that step's weight update.
    ``steps_per_epoch=None`` means a window of one step, i.e. Algorithm 2 as written for
    full-batch GD. See :mod:`lrbench.optimizers._tlr` for the choices made there (window mean
    rather than weight difference, sign, rounding) and the rule (:func:`~lrbench.optimizers._tlr.tlr_step`).

    Oracle cost per step: 1 forward, 1 backward (the alpha update uses stored directions only),
    so ``step()`` also works without a closure after ``loss.backward()``.
    ``group["lr"]`` is the alpha applied in the step (0-d tensor). State: per tensor
    ``momentum_buffer`` (``d_{t-1}``; only with momentum), ``grad_acc`` (window sum so far),
    ``grad_prev`` (``g_{t-1}``); per group (on the group's first parameter) ``alpha`` and
    ``step`` (a Python int). Parameters whose ``grad`` is None are skipped (as in
    ``torch.optim.SGD``): no update, no contribution to the inner products.

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

    facts = Facts(one_pass, lr_scope="group")

    def __init__(self, params, lr: float = 0.1, c: float = 0.25, p: float = 1.0 / 3.0,
                 momentum: float = 0.8, weight_decay: float = 5e-4,
                 steps_per_epoch: int | None = None):
        v.positive("c", c)
        validate(lr, momentum, weight_decay, p, steps_per_epoch)
        super().__init__(params, lr=lr, c=c, p=p, momentum=momentum, weight_decay=weight_decay,
                         steps_per_epoch=steps_per_epoch)

    @classmethod
    def keys_for(cls, h: dict) -> tuple[str, ...]:
        return (_directions.SGD_KEYS if h["momentum"] else ()) + ("grad_acc", "grad_prev")

    scalars = staticmethod(alpha_state)

    @staticmethod
    def update(ops, h, t, params, grads, state, loss, oracle):
        return tlr_step(ops, h, t, params, grads, state, window=window_length(h["p"], h["steps_per_epoch"]))
