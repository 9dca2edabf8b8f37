"""Naive GD-TLR (seed 002, Algorithm 1) with the SGD extension of Section 4."""

from __future__ import annotations

import torch

from lrbench.optimizers import _validate as v
from lrbench.optimizers._tlr import TLRBase, naive_lookahead, tlr_naive_update, window_length
from lrbench.registry import register_optimizer


@register_optimizer("tlr_naive", adapts_lr=True)
class TLRNaive(TLRBase):
    """Trainable Learning Rate, naive variant (Algorithm 1): gradient descent on the learning rate.

    With ``L_alpha(alpha; w) = L(w - alpha * g)`` (eq. 2) and ``u = w_t - alpha_t g_t``:

    * Algorithm 1 line 4 (second pass): ``dL_alpha/dalpha = -<grad L(u), g_t>`` (eq. 5 for one
      layer; the chain rule in general), computed from one extra forward-backward pass at ``u``;
    * line 5 / eq. 3: ``alpha_{t+1} = max(0, alpha_t - eta * dL_alpha/dalpha)``;
    * line 6 / eq. 1: ``w_{t+1} = w_t - alpha_{t+1} d_t``, where ``d_t = mu d_{t-1} + g_t +
      lambda w_t`` is the SGD direction with momentum and coupled weight decay (Appendix D).
      The lookahead and the probe use ``d_t`` in place of ``g_t`` (they coincide for
      ``momentum = weight_decay = 0``), so ``L_alpha`` is the loss after the step actually taken.

    SGD extension (Section 4, eq. 10): ``g_t`` is the mean of the update directions ``d_k``
    (momentum and weight decay included) over a window of ``round(p * steps_per_epoch)`` steps;
    alpha is updated, and the extra pass made, once per window at its last step, on that step's
    batch. ``steps_per_epoch=None``: a window of one step, Algorithm 1 as written (full batch).
    See :mod:`lrbench.optimizers._tlr` for the shared choices.

    Oracle cost per step: 1 forward + 1 backward, plus 1 forward + 1 backward (the probe at
    ``u``) on each alpha-update step, i.e. every step when ``steps_per_epoch`` is None. The
    parameters (and their ``.grad``) are restored bit-exactly after the probe.
    ``group["lr"]`` is the alpha applied in the step (0-d tensor).

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
    * With several parameter groups (one alpha each), one probe moves every group that updates
      its alpha this step, giving each such alpha its partial derivative.

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

    def __init__(self, params, lr: float = 0.1, eta: float = 1e-4, p: float = 1.0 / 3.0,
                 momentum: float = 0.8, weight_decay: float = 5e-4,
                 steps_per_epoch: int | None = None):
        v.nonneg("eta", eta)
        super().__init__(params, dict(lr=lr, eta=eta, p=p, momentum=momentum, weight_decay=weight_decay,
                                      steps_per_epoch=steps_per_epoch))

    @torch.no_grad()
    def step(self, closure):
        """One naive TLR step; returns the training loss at the starting parameters."""
        with torch.enable_grad():
            loss = closure()
        todo = []
        for group in self.param_groups:
            params, grads, states, head = self._gather(group, keep_prev=False)
            window = window_length(group["p"], group["steps_per_epoch"])
            updates = int(head["step"]) % window == window - 1  # host sync, decides whether to probe
            todo.append((group, params, grads, states, head, window, updates))

        probes = {}
        if any(t[-1] for t in todo):
            saved = {}  # group index -> copies of its parameters, to restore bit-exactly
            for i, (group, params, grads, states, head, window, updates) in enumerate(todo):
                if updates:
                    look = naive_lookahead(params, grads, [s["momentum_buffer"] for s in states],
                                           [s["grad_acc"] for s in states], head["alpha"],
                                           momentum=group["momentum"],
                                           weight_decay=group["weight_decay"], window=window)
                    saved[i] = [p.detach().clone() for p in params]
                    for p, u in zip(params, look):
                        p.copy_(u)
            old_grads = [[p.grad for p in t[1]] for t in todo]
            with torch.enable_grad():
                closure()
            for i, copies in saved.items():
                params = todo[i][1]
                probes[i] = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
                for p, w in zip(params, copies):
                    p.copy_(w)
            for t, gs in zip(todo, old_grads):
                for p, g in zip(t[1], gs):
                    p.grad = g

        for i, (group, params, grads, states, head, window, _) in enumerate(todo):
            out = tlr_naive_update(params, grads, [s["momentum_buffer"] for s in states],
                                   [s["grad_acc"] for s in states], head["alpha"], head["step"],
                                   probes.get(i), eta=group["eta"], momentum=group["momentum"],
                                   weight_decay=group["weight_decay"], window=window)
            self._write_back(params, states, out)
            head["alpha"] = out.alpha
            head["step"] = out.step
            group["lr"] = out.lr
        return loss
