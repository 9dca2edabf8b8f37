"""Naive GD-TLR (seed 002, Algorithm 1) with the SGD extension of Section 4."""

from __future__ import annotations

from lrbench.optimizers import _directions, _validate as v
from lrbench.optimizers._core import Facts, Method
from lrbench.optimizers._tlr import alpha_state, naive_cost, tlr_naive_step, validate, window_length
from lrbench.registry import register_optimizer


@register_optimizer("tlr_naive", adapts_lr=True)
class TLRNaive(Method):
    """Trainable Learning Rate, naive variant (Algorithm 1): gradient descent on the learning rate.

    With ``L_alpha(alpha; w) = L(w - alpha * g)`` (eq. 2) and ``u = w_t - alpha_t g_t``:

    * Algorithm 1 line 4 (second pass): ``dL_alpha/dalpha = -<grad L(u), g_t>`` (eq. 5 for one
      layer; the chain rule in general), computed from one extra forward-backward pass at ``u``;
    * line 5 / eq. 3: ``alpha_{t+1} = max(0, alpha_t - eta * dL_alpha/dalpha)``;
    * line 6 / eq. 1: ``w_{t+1} = w_t - alpha_{t+1} d_t``, where ``d_t = mu d_{t-1} + g_t +
      lambda w_t`` is the SGD direction with momentum and coupled weight decay (Appendix D;
      ``torch.optim.SGD``'s heavy-ball direction with dampening 0).
      The lookahead and the probe use ``d_t`` in place of ``g_t`` (they coincide for
      ``momentum = weight_decay = 0``), so ``L_alpha`` is the loss after the step actually taken.

    SGD extension (Section 4, eq. 10): ``g_t`` is the mean of the update directions ``d_k``
    (momentum and weight decay included) over a window of ``round(p * steps_per_epoch)`` steps;
    alpha is updated, and the extra pass made, once per window at its last step, on that step's
    batch. ``steps_per_epoch=None``: a window of one step, Algorithm 1 as written (full batch).
    See :mod:`lrbench.optimizers._tlr` for the shared choices and the rule
    (:func:`~lrbench.optimizers._tlr.tlr_naive_step`).

    Oracle cost per step and parameter group: 1 forward + 1 backward, plus 1 forward + 1
    backward (the probe at ``u``) on each alpha-update step, i.e. every step when
    ``steps_per_epoch`` is None; ``step(closure)`` needs the closure for the probe. The
    parameters are put back bit-exactly (from a copy) after the probe and then stepped; their
    ``.grad`` is restored. ``group["lr"]`` is the alpha applied in the step (0-d tensor). State:
    per tensor ``momentum_buffer`` (only with momentum) and ``grad_acc``; per group ``alpha``
    and ``step``. Parameters whose ``grad`` is None are skipped.

    Choices where the paper is silent:

    * ``alpha`` is clipped at 0 (``max(0, .)``), as in the paper's own fixed-eta rule of
      Appendix D.4; Algorithm 1 has no clip, but a negative step size would ascend the loss.
    * With weight decay the objective is ``L + lambda/2 |w|^2``, so the probe gradient includes
      ``lambda * u``.
    * ``eta`` default 1e-4: the paper gives none; it is the middle of the sweep
      {1e-5, 1e-4, 1e-3} of Fig. 2 for Baydin et al.'s beta, which the paper states is
      "equivalent to our eta of Eq. 3". Note that alpha changes by ``eta * <grad L(u), g_t>``,
      which depends on the scale of the loss: the paper's point (Section 3, D.4) is that this
      variant is sensitive to eta.
    * With several parameter groups (one alpha each), the groups are stepped one after the
      other, and each group that updates its alpha this step makes its own probe: only that
      group moved to its lookahead point, the groups before it already at their new weights,
      the ones after it at their current weights (one extra forward-backward pass per such
      group; a coordinate-wise version of the joint derivative).

    Args:
        params: parameters or parameter groups.
        lr: initial learning rate alpha_0 (default 0.1, as :class:`lrbench.optimizers.tlr.TLR`).
        eta: meta learning rate of eq. 3 (default 1e-4, see above).
        p: learning-rate update period as a fraction of an epoch (default 1/3, Section 4).
        momentum: heavy-ball coefficient in [0, 1) (default 0.8, Appendix D).
        weight_decay: coupled L2 coefficient (default 5e-4, Appendix D).
        steps_per_epoch: N of eq. 10 (the runner passes the problem's value); None: update
            alpha every step.
    """

    facts = Facts(naive_cost, probes=True, lr_scope="group")

    def __init__(self, params, lr: float = 0.1, eta: float = 1e-4, p: float = 1.0 / 3.0,
                 momentum: float = 0.8, weight_decay: float = 5e-4,
                 steps_per_epoch: int | None = None):
        v.nonneg("eta", eta)
        validate(lr, momentum, weight_decay, p, steps_per_epoch)
        super().__init__(params, lr=lr, eta=eta, p=p, momentum=momentum, weight_decay=weight_decay,
                         steps_per_epoch=steps_per_epoch)

    @classmethod
    def keys_for(cls, h: dict) -> tuple[str, ...]:
        return (_directions.SGD_KEYS if h["momentum"] else ()) + ("grad_acc",)

    scalars = staticmethod(alpha_state)

    @staticmethod
    def update(ops, h, t, params, grads, state, loss, oracle):
        return tlr_naive_step(ops, h, t, params, grads, state, oracle,
                              window=window_length(h["p"], h["steps_per_epoch"]))
