"""RTHO: Real-Time Hyperparameter Optimization (Franceschi et al. 2017) as presented in seed 001, §3."""

from __future__ import annotations

from lrbench.optimizers.marthe import MARTHE
from lrbench.registry import register_optimizer


@register_optimizer("rtho", adapts_lr=True)
class RTHO(MARTHE):
    """RTHO (seed 001, §3, Eq. 5-6): η_t = max(η_{t-1} - β Δ^RTHO η_t, 0) with
    Δ^RTHO η_t = [Σ_{i<t} P_{i+1}^{t-1} B_i]^T ∇E(w_t), i.e. MARTHE with μ = 1 and a fixed
    hyper-learning rate β (§4: "Δ^RTHO η_t = S_{t,1}"). The undiscounted tangent
    Z_{t+1} = A_t Z_t + B_t is the exact derivative dw_{t+1}/dη of the weights with respect
    to a learning rate held constant along the trajectory so far (forward-mode
    differentiation, Eq. 3). Update math and the tangents of each inner dynamics:
    :mod:`lrbench.optimizers._marthe`.

    Oracle cost per step: as MARTHE: ``objective="val"``: 2 forward, 2 backward passes
    (training gradient with graph + validation gradient) and one Hessian-vector product
    (``closure.hvp``, counted in ``closure.counter.hvp``); ``objective="train"``: 1 forward,
    1 backward and the HVP. With the fixed μ = 1 no copy of d_{t-1} is kept (it only feeds
    MARTHE's h_μ).

    Args:
        params: parameters; one parameter group.
        lr: η_0 (default 0.01, the paper's §5 value for SGD).
        beta: hyper-learning rate β >= 0 (default 1e-8, the paper's §6 value for RTHO).
        objective: ``"val"`` (default) or ``"train"``, as in MARTHE.
        dynamics: ``"sgd"`` (default), ``"sgdm"`` or ``"adam"``, as in MARTHE.
        momentum, beta1, beta2, eps: coefficients of the inner dynamics, as in MARTHE.

    Choices where the paper is ambiguous: the hyper-learning rate is updated every step
    (K = 1, seed 001 footnote 4; Franceschi et al. update it every K steps), which is what
    the paper compares against.
    """

    def __init__(self, params, lr: float = 0.01, beta: float = 1e-8, objective: str = "val",
                 dynamics: str = "sgd", momentum: float = 0.9, beta1: float = 0.9,
                 beta2: float = 0.999, eps: float = 1e-8):
        super().__init__(params, lr=lr, beta=beta, adapt_beta=False, mu=1.0, objective=objective,
                         dynamics=dynamics, momentum=momentum, beta1=beta1, beta2=beta2, eps=eps)
