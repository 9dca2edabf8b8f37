"""MARTHE: Moving Average Real-Time Hyperparameter Estimation (seed 001, §4, Algorithm 1)."""

from __future__ import annotations

import torch

from lrbench.optimizers import _validate as v
from lrbench.optimizers._marthe import DYNAMICS, OBJECTIVES, PER_PARAM_KEYS, SCALAR_KEYS, marthe_update
from lrbench.registry import register_optimizer


def _hvp(graph_grads: list[torch.Tensor], params: list[torch.Tensor], vs: list[torch.Tensor]) -> list[torch.Tensor]:
    """H v by double backward through gradients built with ``create_graph=True``."""
    idx = [i for i, g in enumerate(graph_grads) if g.requires_grad]
    if not idx:  # the loss is linear in the parameters: H = 0
        return [torch.zeros_like(p) for p in params]
    hv = torch.autograd.grad([graph_grads[i] for i in idx], params,
                             grad_outputs=[vs[i] for i in idx], allow_unused=True)
    return [torch.zeros_like(p) if h is None else h for h, p in zip(hv, params)]


@register_optimizer("marthe", adapts_lr=True)
class MARTHE(torch.optim.Optimizer):
    r"""MARTHE (Donini et al., seed 001, §4 and Algorithm 1): the learning rate follows
    η_t = max(η_{t-1} - β_t Δη_t, 0) (Eq. 5), where Δη_t = Z_t^T ∇E(w_t) (Eq. 11) is a
    discounted sum of hypergradients of increasingly long horizon, kept by the tangent
    system Z_{t+1} = μ_t A_t Z_t + B_t (Eq. 9). μ_t is adapted online by h_μ (Eq. 10 and
    Appendix A) and the hyper-learning rate β_t online by β_{t+1} = β_t + β Δη_{t+1} Δη_t
    (§4). μ = 0 gives HD (Baydin et al. 2018), μ = 1 gives RTHO (Franceschi et al. 2017).
    The update and the A_t, B_t of each inner dynamics (SGD, SGD-momentum, Adam) are derived
    in :mod:`lrbench.optimizers._marthe`; the math is :func:`~lrbench.optimizers._marthe.marthe_update`.

    Oracle cost per step: ``objective="val"``: 2 forward and 2 backward passes (the
    training gradient, built with ``create_graph=True``, and the validation gradient) plus
    one Hessian-vector product H_t Z_t (a backward pass through the backward graph, about
    the cost of another forward + backward); ``objective="train"``: 1 forward, 1 backward
    (with graph) and the HVP. The HVP is added to ``closure.counter.backward`` when the
    closure has a counter, so counted costs are 2 forwards + 3 backwards (val) or
    1 + 2 (train). Memory: one tangent per parameter (SGD), two (SGD-momentum), three (Adam).
    No probes: the parameters are only written by the update.

    ``group["lr"]`` holds η_t, the step size applied in the step (for Adam, the base step
    size α before the per-coordinate 1/(√v̂ + ε) scaling).

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
        defaults = dict(lr=lr, beta=beta, beta0=beta0, adapt_beta=bool(adapt_beta), mu=mu,
                        objective=objective, dynamics=dynamics, momentum=momentum,
                        beta1=beta1, beta2=beta2, eps=eps)
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError(f"invalid params: {type(self).__name__} adapts one learning rate, "
                             f"so it takes one parameter group (got {len(self.param_groups)})")

    @property
    def uses_validation(self) -> bool:
        """Whether a step calls ``closure(split="val")`` (``objective="val"``): the suite check
        refuses such a method on a problem without a validation batch."""
        return any(g["objective"] == "val" for g in self.param_groups)

    def _init_state(self, group: dict) -> None:
        params = group["params"]
        for p in params:
            for key in PER_PARAM_KEYS[group["dynamics"]]:
                self.state[p][key] = torch.zeros_like(p, memory_format=torch.preserve_format)
        p0 = params[0]
        scalar = lambda x: torch.tensor(x, dtype=p0.dtype, device=p0.device)  # noqa: E731
        first = self.state[p0]
        first["lr"] = scalar(group["lr"])
        first["hyper_lr"] = scalar(group["beta0"] if group["adapt_beta"] else group["beta"])
        first["mu"] = scalar(0.0 if group["mu"] is None else group["mu"])
        first["c"] = scalar(0.0)
        first["d_eta"] = scalar(0.0)
        if group["dynamics"] == "adam":
            first["t"] = scalar(0.0)

    @torch.no_grad()
    def step(self, closure):
        """One MARTHE step; ``closure`` follows :mod:`lrbench.closure` (``create_graph`` and,
        for ``objective="val"``, ``split="val"``). Returns the training loss at w_t."""
        group = self.param_groups[0]
        params = group["params"]
        dyn = group["dynamics"]
        if "z" not in self.state[params[0]]:
            self._init_state(group)
        per_param = {k: [self.state[p][k] for p in params] for k in PER_PARAM_KEYS[dyn]}
        scalars = {k: self.state[params[0]][k] for k in SCALAR_KEYS[dyn]}

        with torch.enable_grad():
            loss = closure(create_graph=True)
            graph_grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in params]
            hvps = _hvp(graph_grads, params, per_param["z"])
        counter = getattr(closure, "counter", None)
        if counter is not None:
            counter.backward += 1  # the Hessian-vector product
        grads = [g.detach() for g in graph_grads]
        del graph_grads
        if group["objective"] == "val":
            with torch.enable_grad():
                closure(split="val")
            e_grads = [torch.zeros_like(p) if p.grad is None else p.grad.detach() for p in params]
        else:
            e_grads = grads
        for p, g in zip(params, grads):  # leave the training gradient, without its graph
            p.grad = g

        new_params, new_state, lr = marthe_update(
            params, grads, hvps, e_grads, {**per_param, **scalars},
            dynamics=dyn, beta=group["beta"], adapt_beta=group["adapt_beta"], mu=group["mu"],
            momentum=group["momentum"], beta1=group["beta1"], beta2=group["beta2"], eps=group["eps"])

        for i, p in enumerate(params):
            p.copy_(new_params[i])
            for k in PER_PARAM_KEYS[dyn]:
                self.state[p][k] = new_state[k][i]
        for k in SCALAR_KEYS[dyn]:
            self.state[params[0]][k] = new_state[k]
        group["lr"] = lr.clone()
        return loss
