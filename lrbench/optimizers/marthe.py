"""MARTHE: Moving Average Real-Time Hyperparameter Estimation (seed 001, §4, Algorithm 1)."""

from __future__ import annotations

from lrbench.optimizers import _marthe, _validate as v
from lrbench.optimizers._core import Facts, Method
from lrbench.optimizers._marthe import DYNAMICS, OBJECTIVES
from lrbench.registry import register_optimizer


@register_optimizer("marthe", adapts_lr=True)
class MARTHE(Method):
    r"""MARTHE (Donini et al., seed 001, §4 and Algorithm 1): the learning rate follows
    η_t = max(η_{t-1} - β_t Δη_t, 0) (Eq. 5), where Δη_t = Z_t^T ∇E(w_t) (Eq. 11) is a
    discounted sum of hypergradients of increasingly long horizon, kept by the tangent
    system Z_{t+1} = μ_t A_t Z_t + B_t (Eq. 9). μ_t is adapted online by h_μ (Eq. 10 and
    Appendix A) and the hyper-learning rate β_t online by β_{t+1} = β_t + β Δη_{t+1} Δη_t
    (§4). μ = 0 gives HD (Baydin et al. 2018), μ = 1 gives RTHO (Franceschi et al. 2017).
    The update and the A_t, B_t of each inner dynamics (SGD, SGD-momentum, Adam) are derived
    in :mod:`lrbench.optimizers._marthe`; the rule is :func:`~lrbench.optimizers._marthe.marthe_step`,
    the inner dynamics the directions of :mod:`lrbench.optimizers._directions` (``sgd`` without
    momentum, heavy ball ``sgd``, ``adam``).

    Oracle cost per step: ``objective="val"``: 2 forward and 2 backward passes (the
    training gradient, built with ``closure(create_graph=True)``, and the validation gradient)
    plus one Hessian-vector product H_t Z_t (``closure.hvp``, a backward pass through the
    backward graph, about the cost of another forward + backward; counted in
    ``closure.counter.hvp``); ``objective="train"``: 1 forward, 1 backward (with graph) and the
    HVP. Memory: per parameter, the tangent Z^w and the dynamics' buffers with their tangents
    (SGD: none; SGD-momentum: v, Z^v; Adam: m, v, Z^m, Z^v), plus d_{t-1} for the online μ
    (except with SGD-momentum, where d_{t-1} is the momentum buffer).
    No probes: the parameters are only written by the update.

    ``group["lr"]`` holds η_t, the step size applied in the step (a 0-d tensor; for Adam, the
    base step size α before the per-coordinate 1/(√v̂ + ε) scaling). The scalars η, β, μ, c
    and Δη live in the state of the group's first parameter.

    Args:
        params: parameters; one parameter group (MARTHE adapts one learning rate).
        lr: η_0 (default 0.01, the paper's §5 value for SGD; §6 uses 0.1 for SGD-momentum
            and 3e-4 for Adam).
        beta: with ``adapt_beta`` the step size β of the hyper-learning-rate update (the
            paper's "notation override"); without it the fixed hyper-learning rate β of
            Eq. (5) (default 1e-6, see below).
        beta0: β_0, the initial hyper-learning rate when ``adapt_beta`` (default 0, the
            paper's suggestion in §4); unused otherwise.
        adapt_beta: adapt β_t online (default True, as in Algorithm 1).
        mu: a fixed discount μ in [0, 1], or ``None`` (default) for the online h_μ of
            Appendix A.
        objective: ``"val"`` (default, as in the paper) for E = the validation loss
            (``closure(split="val")``), ``"train"`` for E = L, the training loss on the
            current batch (no extra pass).
        dynamics: the inner optimizer Φ: ``"sgd"`` (default, §5), ``"sgdm"`` (heavy ball,
            torch.optim.SGD convention, §6) or ``"adam"`` (§6).
        momentum: heavy-ball coefficient for ``"sgdm"`` (default 0.9, §6).
        beta1, beta2, eps: Adam's coefficients for ``"adam"`` (defaults 0.9, 0.999, 1e-8,
            Adam's standard values, which §6 uses).

    Choices where the paper is ambiguous:
        * Sign of the β update. Algorithm 1 and §4 print β_{t+1} = β_t - β Δη_{t+1}·Δη_t,
          but the derivation they describe (HD applied to β with μ = 0) gives ∂η_t/∂β_t =
          -Δη_t, so the one-step hypergradient of β is -Δη_{t+1}·Δη_t and gradient descent
          on β is β_{t+1} = β_t + β Δη_{t+1}·Δη_t. With the printed sign and β_0 = 0,
          β_t turns negative while consecutive hypergradients agree and η then climbs
          the hypergradient (positive feedback); we use the derived sign. β_t itself is
          not clamped (the paper clamps only η).
        * Exponent of h_μ: Appendix A as printed, μ_t = q̃^{1/(c_{t-1}+1)} with
          c_t = μ_{t-1}(1 + c_{t-1}).
        * q̃ when g'_1 = 0 (so q = 0 and q/g'_1² = 0/0): q̃ = 0, i.e. μ = 0 and the history
          is dropped; the descent condition q > 0 cannot be verified, so we fall back to HD.
        * Order within a step: the hyper-updates that need ∇E(w_{t+1}) (μ_{t+1}, β_{t+1},
          the last two lines of Algorithm 1's iteration t) run at the start of the next
          step, where ∇E at the same weights is needed for η_{t+1} anyway: one
          validation gradient per step instead of two. With a stochastic validation batch
          this evaluates ∇E on the next batch, the same one used for Δη_{t+1}.
        * Default β: the paper gives none (§4: start high and divide by 10 until the run
          does not diverge; appendix C shows fixed β of 1e-7 and 1e-8 on VGG-11). 1e-6 is
          our choice (the paper's HD value in §6).
        * The gradient with respect to E is the gradient of the loss returned by the
          closure; weight decay, if wanted in L, belongs to the problem's loss.
        * ``objective="train"``: ∇E(w_t) is the training gradient on the batch of step t.
    """

    facts = Facts(cost=_marthe.cost, one_group=True, floor=_marthe.floor)
    hvp_key = "z"  # the step asks for H_t Z^w_t: the closure is called with create_graph=True

    def __init__(self, params, lr: float = 0.01, beta: float = 1e-6, beta0: float = 0.0,
                 adapt_beta: bool = True, mu: float | None = None, objective: str = "val",
                 dynamics: str = "sgd", momentum: float = 0.9, beta1: float = 0.9,
                 beta2: float = 0.999, eps: float = 1e-8):
        v.positive("lr", lr)
        v.nonneg("beta", beta)
        v.nonneg("beta0", beta0)
        if mu is not None:
            v.in_range("mu", mu, 0.0, 1.0)
        if objective not in OBJECTIVES:
            raise ValueError(f"invalid objective: {objective!r} (must be one of {OBJECTIVES})")
        if dynamics not in DYNAMICS:
            raise ValueError(f"invalid dynamics: {dynamics!r} (must be one of {DYNAMICS})")
        v.in_range("momentum", momentum, 0.0, 1.0, hi_open=True)
        v.in_range("beta1", beta1, 0.0, 1.0, hi_open=True)
        v.in_range("beta2", beta2, 0.0, 1.0, hi_open=True)
        v.positive("eps", eps)
        super().__init__(params, lr=lr, beta=beta, beta0=beta0, adapt_beta=bool(adapt_beta), mu=mu,
                         objective=objective, dynamics=dynamics, momentum=momentum,
                         beta1=beta1, beta2=beta2, eps=eps)
        if len(self.param_groups) != 1:
            raise ValueError(f"invalid params: {type(self).__name__} adapts one learning rate, "
                             f"so it takes one parameter group (got {len(self.param_groups)})")

    @property
    def uses_validation(self) -> bool:
        """Whether a step calls ``closure(split="val")`` (``objective="val"``): the suite check
        refuses such a method on a problem without a validation batch."""
        return any(g["objective"] == "val" for g in self.param_groups)

    scalars = staticmethod(_marthe.scalars)

    @classmethod
    def keys_for(cls, h: dict) -> tuple[str, ...]:
        return _marthe.state_keys(h)

    update = staticmethod(_marthe.marthe_step)
