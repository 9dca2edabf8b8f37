"""The optimizer core: a method is a *direction* combined with a *step-size rule*, and each
rule runs under two drivers written once.

A registered method subclasses :class:`Method` and names its ``update``: a function
``update(ops, h, t, params, grads, state, loss, oracle) -> (params, state, lr)`` that reads
like its paper (the directions are in :mod:`lrbench.optimizers._directions`, the rules next
to their papers' equations in the private modules). ``ops`` decides how it runs:

* :data:`INPLACE` (``step()``, the default): multi-tensor ``torch._foreach_*`` operations that
  update the optimizer's buffers and the parameters in place.
* :data:`PURE` (``functional()``, for ``torch.func.vmap`` over seeds): the same operations out
  of place, per tensor (vmap has no batching rule for the ``_foreach`` kernels).

In both, ``t`` (the steps taken before this one) is a Python int: the seeds of a vectorised
batch share it, so a choice that depends only on the step count (the first step, the end of a
TLR window, a schedule) runs only the branch taken, and bias corrections are Python floats as
in ``torch.optim``.

The update never branches in Python on tensor values (line searches loop through
:meth:`Oracle.search`, which each driver implements), never mutates ``grads`` and treats
``state`` as a value: it returns the state it wants kept. :class:`Method` does everything
else once for all methods: parameter groups (or one global unit where the paper has one step
size for all parameters), lazy state in ``self.state``, hyper-parameter validation,
``state_dict``, ``group["lr"]`` = the step size applied, and the closure protocols of
:mod:`lrbench.closure` (a plain ``loss.backward(); opt.step()``, a plain torch closure, or
``lrbench.make_closure`` with its probe, validation and Hessian-vector-product verbs).

Declared facts (:class:`Facts`, one per key) say what a step costs in oracle calls and what
it needs; the conformance tests (``tests/test_optimizer_core.py``) check every key against
them.
"""

from __future__ import annotations

import abc
import functools
import inspect
import math
import operator
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, NamedTuple

import torch
from torch import Tensor

from lrbench.optimizers._functional import Functional

__all__ = ["Cost", "Facts", "Method", "TorchBacked", "INPLACE", "PURE", "Ops", "Oracle", "cast", "const", "pure_driver"]


# --------------------------------------------------------------------------- declared facts

class Cost(NamedTuple):
    """Oracle calls of one step: forward passes, backward passes, Hessian-vector products.
    ``search=True``: ``forward`` is the least; a line search adds one forward per trial."""

    forward: int
    backward: int
    hvp: int = 0
    search: bool = False


def sgd_floor(h: dict) -> tuple[str, dict]:
    """``torch.optim.SGD`` with the group's momentum, dampening, Nesterov and weight decay."""
    return "sgd", {k: h[k] for k in ("momentum", "dampening", "nesterov", "weight_decay") if k in h}


def adam_floor(h: dict) -> tuple[str, dict]:
    """``torch.optim.Adam`` with the group's β₁, β₂, ε and weight decay."""
    return "adam", {"betas": (h["beta1"], h["beta2"]), "eps": h["eps"], "weight_decay": h.get("weight_decay", 0.0)}


@dataclass(frozen=True)
class Facts:
    """What a method declares about itself (tested for every key).

    Attributes:
        cost: ``cost(h, t) -> Cost`` for hyper-parameters ``h`` (a group dict) at step ``t``
            (0-based), through ``lrbench.make_closure``.
        needs_loss: the step uses the loss value (so ``step()`` without a closure refuses).
        probes: the step evaluates the loss or gradient at other points (a closure is needed).
        lr_scope: ``"group"`` (one step size per parameter group), ``"global"`` (one for all
            parameters: per-group hyper-parameters are refused) or ``"tensor"`` (one per
            parameter tensor; ``group["lr"]`` is their mean).
        vectorizable: has a functional driver (``functional()``); False only for wrapped
            third-party packages.
        one_group: takes exactly one parameter group.
        floor: ``floor(h) -> (torch optimizer name, kwargs)``: the ``torch.optim`` step of the
            method's direction ("sgd" or "adam", with the direction's momentum and weight
            decay), which with the declared oracle calls makes the method's cost floor
            (``bench/test_cost_floor.py``).
    """

    cost: Callable[[dict, int], Cost]
    needs_loss: bool = False
    probes: bool = False
    lr_scope: str = "group"
    vectorizable: bool = True
    one_group: bool = False
    floor: Callable[[dict], tuple[str, dict]] = sgd_floor


def one_pass(h: dict, t: int) -> Cost:
    """1 forward, 1 backward: methods that only use the gradient (and the loss)."""
    return Cost(1, 1)


# --------------------------------------------------------------------------- the two drivers' ops

Scalar = float | Tensor


class Ops(abc.ABC):
    """List operations shared by both drivers. Methods named ``set_*`` or ``*_`` update their
    first argument (a list of the optimizer's own buffers or the parameters): in place under
    :data:`INPLACE`, out of place under :data:`PURE`. Both return the updated list, and the
    update always uses the returned value. The other methods allocate their result."""

    inplace: bool

    # ---- updates of buffers / parameters
    @abc.abstractmethod
    def lerp_(self, xs, ys, w: float):
        """x ← x + w (y − x)."""

    @abc.abstractmethod
    def scale_add_(self, xs, a: float, ys, b: float = 1.0):
        """x ← a x + b y."""

    @abc.abstractmethod
    def scale_addcmul_(self, xs, a: float, ys, zs, b: float):
        """x ← a x + b y z."""

    @abc.abstractmethod
    def add_(self, xs, ys, alpha: Scalar = 1.0):
        """x ← x + α y (α a number or a 0-d tensor)."""

    @abc.abstractmethod
    def mul_(self, xs, a: Scalar):
        """x ← a x."""

    @abc.abstractmethod
    def point_(self, xs, base, dirs, s: Scalar):
        """x ← base + (s·dirs), the product rounded first (not a fused multiply-add), so that a
        probe point or a step taken from a saved copy rounds as ``base + s * dirs`` does; in
        place two kernels per tensor and no temporary (``xs`` must not be ``base``). Not fused
        on purpose: a fused point moves fd_newton's five-point second difference (ε = 1e-5) by
        up to 1e+6 relative within 50 steps, and LQA's and TLR-naive's fits by 1e-9 to 1e-3,
        far beyond what a 1e-15 perturbation of the start does (bench/trajectory_check.py)."""

    @abc.abstractmethod
    def sub_scaled_(self, xs, ys, a: Scalar):
        """x ← x − a y (a fused multiply-add; ``a`` a number or a 0-d tensor): the step."""

    @abc.abstractmethod
    def set_(self, xs, ys):
        """x ← y."""

    # ---- new values
    @abc.abstractmethod
    def add(self, xs, ys, alpha: Scalar = 1.0) -> list[Tensor]:
        """x + α y, new tensors."""

    def dot(self, xs, ys) -> Tensor:
        """Σ_tensors Σ x·y (0-d, in the dtype of the tensors): one ``vdot`` per tensor, no
        temporary, the same kernels in both drivers; the per-tensor sums added in turn (two or
        three tensors) or stacked and summed (more: two kernels however many tensors)."""
        ds = self.dots(xs, ys)
        if len(ds) > 3:
            return torch.stack(ds).sum()
        return functools.reduce(operator.add, ds)

    def dots(self, xs, ys) -> list[Tensor]:
        """Per-tensor Σ x·y (a 1-d tensor as it is, others flattened)."""
        out = []
        for x, y in zip(xs, ys):
            fx = x if x.dim() == 1 else self._flat(x)
            out.append(torch.vdot(fx, fx if y is x else (y if y.dim() == 1 else self._flat(y))))
        return out

    @staticmethod
    def _flat(x: Tensor) -> Tensor:
        return x.flatten()

    @staticmethod
    def select(cond: bool, a: Callable[[], Any], b: Callable[[], Any]):
        """``a()`` if ``cond`` else ``b()``, for a condition on the step count (a Python bool):
        only the branch taken runs."""
        return a() if cond else b()


class _InPlace(Ops):
    inplace = True

    @staticmethod
    def _flat(x):  # one view op (flatten dispatches three) for the contiguous tensors of step()
        return x.view(-1) if x.is_contiguous() else x.reshape(-1)

    def lerp_(self, xs, ys, w):
        torch._foreach_lerp_(xs, ys, w)
        return xs

    def scale_add_(self, xs, a, ys, b=1.0):
        if a != 1.0:
            torch._foreach_mul_(xs, a)
        torch._foreach_add_(xs, ys, alpha=b)
        return xs

    def scale_addcmul_(self, xs, a, ys, zs, b):
        if a != 1.0:
            torch._foreach_mul_(xs, a)
        torch._foreach_addcmul_(xs, ys, zs, value=b)
        return xs

    def add_(self, xs, ys, alpha=1.0):
        if isinstance(alpha, Tensor):  # x + α y with a 0-d tensor α: one kernel per tensor, no temporary
            torch._foreach_addcmul_(xs, ys, [alpha] * len(xs))
        else:
            torch._foreach_add_(xs, ys, alpha=alpha)
        return xs

    def mul_(self, xs, a):
        torch._foreach_mul_(xs, a)
        return xs

    def point_(self, xs, base, dirs, s):
        for x, b, d in zip(xs, base, dirs):
            torch.mul(d, s, out=x)
            x.add_(b)
        return xs

    def sub_scaled_(self, xs, ys, a):
        if isinstance(a, Tensor):
            torch._foreach_addcmul_(xs, ys, [a] * len(xs), value=-1.0)
        else:
            torch._foreach_add_(xs, ys, alpha=-a)
        return xs

    def set_(self, xs, ys):
        torch._foreach_copy_(xs, ys)
        return xs

    def add(self, xs, ys, alpha=1.0):
        if isinstance(alpha, Tensor):
            return [torch.addcmul(x, y, alpha) for x, y in zip(xs, ys)]
        return torch._foreach_add(xs, ys, alpha=alpha)


class _Pure(Ops):
    inplace = False

    def lerp_(self, xs, ys, w):
        return [torch.lerp(x, y, w) for x, y in zip(xs, ys)]

    def scale_add_(self, xs, a, ys, b=1.0):  # the in-place kernels' rounding: mul, then add with alpha
        return [torch.add(x * a if a != 1.0 else x, y, alpha=b) for x, y in zip(xs, ys)]

    def scale_addcmul_(self, xs, a, ys, zs, b):
        return [torch.addcmul(x * a if a != 1.0 else x, y, z, value=b) for x, y, z in zip(xs, ys, zs)]

    def add_(self, xs, ys, alpha=1.0):
        return self.add(xs, ys, alpha)

    def mul_(self, xs, a):
        return [x * a for x in xs]

    def point_(self, xs, base, dirs, s):
        return [b + d * s for b, d in zip(base, dirs)]

    def sub_scaled_(self, xs, ys, a):
        if isinstance(a, Tensor):
            return [torch.addcmul(x, y, a, value=-1.0) for x, y in zip(xs, ys)]
        return [torch.add(x, y, alpha=-a) for x, y in zip(xs, ys)]

    def set_(self, xs, ys):
        return list(ys)

    def add(self, xs, ys, alpha=1.0):
        if isinstance(alpha, Tensor):
            return [torch.addcmul(x, y, alpha) for x, y in zip(xs, ys)]
        return [torch.add(x, y, alpha=alpha) for x, y in zip(xs, ys)]


_CONSTANTS: dict[tuple, Tensor] = {}


def const(value: float, like: Tensor) -> Tensor:
    """``value`` as a 0-d tensor of ``like``'s dtype and device, made once and cached (never
    modified). A 0-d operation with a Python number costs about twice one with a tensor on the
    CPU (torch wraps the number and converts it on every call); the result is the same, since
    torch rounds the number to the op's compute type either way (float32 for the 16-bit types,
    so their constants are float32 0-d tensors, which do not promote the result)."""
    key = (value, like.dtype, like.device) if value else (value, math.copysign(1.0, value), like.dtype, like.device)
    c = _CONSTANTS.get(key)  # (0.0 and -0.0 are equal keys: the sign tells them apart)
    if c is None:
        if value != value:  # NaN: never equal to a key, so not cached
            return torch.tensor(value, dtype=like.dtype, device=like.device)
        dtype = like.dtype if like.dtype in (torch.float32, torch.float64) else torch.float32
        c = _CONSTANTS[key] = torch.tensor(float(value), dtype=dtype, device=like.device)
    return c


def cast(x: Tensor, dtype: torch.dtype) -> Tensor:
    """``x`` in ``dtype``, without a dispatch when it already is (a 0-d ``.to`` costs as much
    as an arithmetic op)."""
    return x if x.dtype == dtype else x.to(dtype)


def _merge(cond, a, b):
    if isinstance(a, Tensor):
        return torch.where(cond, a, b)
    if isinstance(a, (list, tuple)):
        return type(a)(_merge(cond, x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return {k: _merge(cond, a[k], b[k]) for k in a}
    return a if a == b else torch.where(cond, torch.as_tensor(a), torch.as_tensor(b))


INPLACE: Ops = _InPlace()
PURE: Ops = _Pure()


# --------------------------------------------------------------------------- oracles

class Oracle:
    """What an update may ask of the objective beyond the gradient it was given. Each costs
    oracle calls (counted by the closure, declared in :class:`Facts`).

    * ``loss_at(base, dirs, s, split)``: the batch loss at ``base + s·dirs`` (1 forward; the
      point rounded as :meth:`Ops.point_` computes it).
    * ``grad_at(base, dirs, s, split)``: ``(loss, grads)`` there (1 forward, 1 backward).
    * ``grad(split)``: ``(loss, grads)`` at the current parameters (e.g. ``split="val"``).
    * ``hvp(vs)``: ``H·vs`` at the current parameters on the training batch (1 HVP; the
      driver obtained the gradient in a way that allows it).
    * ``search(carry, trial, accept, shrink, max_trials)``: a backtracking loop (see
      :class:`_InPlaceOracle`).

    In place, ``kept`` is a dict the rule may use to remember, across steps, the version
    counters of gradient tensors it keeps by reference instead of copying (``grads_are_fresh``:
    the closure sets ``p.grad`` to None before each backward, so they are not written again).
    """

    kept: dict | None = None
    grads_are_fresh = False

    def check_kept(self, xs, what: str) -> None:
        """Raise ``ValueError`` when a gradient tensor that :meth:`keep` kept last step (``xs``,
        read back from the state) was changed in place since."""
        kept = self.kept
        if kept and any(kept.get(id(x), x._version) != x._version for x in xs):
            raise ValueError(f"{what}: the previous step's gradient, kept for this step, was changed in place "
                             "after step(); set gradients to None instead (zero_grad(set_to_none=True))")

    def keep(self, ops: Ops, buf, xs):
        """This step's gradient ``xs`` as the state ``buf`` of the next step: the tensors
        themselves, without a copy, where the closure sets ``p.grad`` to None before every
        backward (``grads_are_fresh``: they are not written again; their version counters are
        remembered for :meth:`check_kept`), else copied into ``buf`` (``ops.set_``)."""
        if self.kept is not None and self.grads_are_fresh:
            self.kept.clear()
            self.kept.update((id(x), x._version) for x in xs)
            return list(xs)
        return ops.set_(buf, xs)


class _InPlaceOracle(Oracle):
    """The oracle of ``step()``: it moves the parameters themselves to the probe points.
    After a probe the parameters are wherever the last probe put them; the update's final
    ``ops.set_``/``ops.add_`` on the parameters puts them where the step ends.

    One oracle serves all units of a step (:meth:`unit` gives each its view): ``grad(split)``
    is the gradient at the step's starting point w_t, computed once for every parameter
    (the first unit asks before any unit moved) and shared, so that several parameter groups
    cost one validation pass, as in the papers' single-vector setting. Every closure call
    restores the gradients of all parameters, so a later unit still steps along its own."""

    def __init__(self, params: list[Tensor], closure, name: str, everything=None):
        self.params, self.closure, self.name = params, closure, name
        self._everything = everything  # every parameter with a gradient (or a function giving them)
        self.cache: dict[str, tuple[Tensor, dict[int, Tensor]]] = {}

    @functools.cached_property
    def plain(self) -> bool:
        return self.closure is not None and _is_plain(self.closure)

    @property
    def grads_are_fresh(self) -> bool:
        """Whether the closure is :func:`lrbench.make_closure`'s, which sets every ``p.grad`` to
        None before its backward: a rule may then keep this step's gradient tensors."""
        return hasattr(self.closure, "counter")

    @functools.cached_property
    def everything(self) -> list[Tensor]:
        e = self._everything
        return self.params if e is None else (e() if callable(e) else e)

    def unit(self, params: list[Tensor]) -> "_InPlaceOracle":
        """The view of one unit (a parameter group): its own parameters, the shared cache."""
        view = _InPlaceOracle(params, self.closure, self.name, lambda: self.everything)
        view.cache = self.cache
        view.kept = self.kept.setdefault(id(params[0]), {})  # per unit
        return view

    def _need(self, what: str):
        if self.closure is None:
            raise ValueError(f"{self.name} {what}: call step(closure)")

    def _move(self, base, dirs, s):
        if dirs is None:
            INPLACE.set_(self.params, base)
        else:
            INPLACE.point_(self.params, base, dirs, s)

    def loss_at(self, base, dirs, s, split="train"):
        self._need("probes the loss")
        self._move(base, dirs, s)
        if self.plain:
            saved = [p.grad for p in self.everything]
            loss = _plain_call(self.closure, self.params, self.name, split).detach()
            for p, g in zip(self.everything, saved):
                p.grad = g
            return loss
        return self.closure(grad=False, split=split).detach()

    def grad_at(self, base, dirs, s, split="train"):
        self._need("probes the gradient")
        self._move(base, dirs, s)
        loss, grads = self._gradient(split)
        return loss, [grads[id(p)] for p in self.params]

    def grad(self, split="train"):
        self._need("needs another gradient")
        if split not in self.cache:
            self.cache[split] = self._gradient(split)
        loss, grads = self.cache[split]
        return loss, [grads[id(p)] for p in self.params]

    def _gradient(self, split):
        saved = [p.grad for p in self.everything]
        with torch.enable_grad():
            loss = (_plain_call(self.closure, self.params, self.name, split) if self.plain
                    else self.closure(split=split)).detach()
        grads = {id(p): torch.zeros_like(p) if p.grad is None else p.grad for p in self.everything}
        for p, g in zip(self.everything, saved):
            p.grad = g
        return loss, grads

    def hvp(self, vs):
        return self.closure.hvp(vs, self.params)

    def search(self, carry, trial, accept, shrink, max_trials: int):
        """``for k < max_trials: loss = trial(carry); if accept(carry, loss): break;
        carry = shrink(carry)`` (the last trial is kept when none is accepted). ``accept``
        returns a 0-d bool tensor; reading it is the one host sync of a line search."""
        for k in range(max_trials):
            loss = trial(carry)
            if bool(accept(carry, loss)) or k == max_trials - 1:
                return carry
            carry = shrink(carry)
        return carry


class _PureOracle(Oracle):
    """The oracle of ``functional()``: pure functions of the parameters, supplied by the
    vectorised runner (``loss(ps, split)``, ``grad(ps, split)``, ``hvp(ps, vs)``)."""

    def __init__(self, params, fns: dict[str, Callable]):
        self.params, self.fns = params, fns

    def _point(self, base, dirs, s):
        return list(base) if dirs is None else PURE.point_(None, base, dirs, s)

    def loss_at(self, base, dirs, s, split="train"):
        return self.fns["loss"](self._point(base, dirs, s), split)

    def grad_at(self, base, dirs, s, split="train"):
        return self.fns["grad"](self._point(base, dirs, s), split)

    def grad(self, split="train"):
        return self.fns["grad"](list(self.params), split)

    def hvp(self, vs):
        return self.fns["hvp"](list(self.params), vs)

    def search(self, carry, trial, accept, shrink, max_trials: int):
        """The backtracking loop with a 'done' mask: a seed that has accepted keeps its carry
        while the others shrink theirs. The loop stops once every seed has accepted; that test
        reads the mask's values through ``vmap``'s wrapper (:func:`_all_done`), which decides
        only when to stop, not what any seed computes, so the result equals running all
        ``max_trials`` trials. Each trial is one batched probe: a seed is charged the trials of
        the batch (the work done), which may be more than it would take on its own."""
        done = None
        for k in range(max_trials):
            loss = trial(carry)
            ok = accept(carry, loss)
            done = ok if done is None else done | ok
            if k == max_trials - 1 or _all_done(done):
                break
            carry = _merge(done, carry, shrink(carry))
        return carry


def _all_done(mask: Tensor) -> bool:
    """Whether ``mask`` holds for every seed, also inside ``torch.func.vmap`` (where ``mask``
    is a batched tensor whose per-seed values are not visible to Python)."""
    from torch._C._functorch import get_unwrapped, is_batchedtensor

    while is_batchedtensor(mask):
        mask = get_unwrapped(mask)
    return bool(mask.all())


def _is_plain(closure) -> bool:
    """A plain torch closure (no arguments) rather than lrbench's protocol."""
    if hasattr(closure, "counter"):
        return False
    try:
        return not inspect.signature(closure).parameters
    except (TypeError, ValueError):
        return False


def _plain_call(closure, params, name: str, split: str) -> Tensor:
    if split != "train":
        raise ValueError(f"{name} needs a validation batch: build the closure with lrbench.make_closure")
    with torch.enable_grad():
        return closure()


# --------------------------------------------------------------------------- the shell

class Method(torch.optim.Optimizer):
    """One ``torch.optim.Optimizer`` shell for every composed method.

    Subclasses set ``update`` (the rule, a staticmethod), ``facts``, ``param_keys`` (the
    per-parameter buffers the rule keeps, created as zeros) and ``scalars(h, like)`` (the
    per-unit 0-d state, created from the hyper-parameters), and write an ``__init__`` with the
    key's hyper-parameters and defaults, which calls ``super().__init__(params, **hparams)``
    after validating them.

    State: per-parameter buffers in ``self.state[p]``; the unit's scalars and its step count
    ``"step"`` (a Python int) in the state of the unit's first parameter (the group's, or the
    first group's for ``lr_scope="global"``). After ``step()``, ``group["lr"]`` is the step
    size applied (a 0-d tensor; for ``lr_scope="tensor"`` the mean of the tensors'); the value
    given to the constructor stays in ``group["initial_lr"]`` for rules that need it every step.
    """

    facts: ClassVar[Facts] = Facts(one_pass)
    param_keys: ClassVar[tuple[str, ...]] = ()
    update: ClassVar[Callable]
    hvp_key: ClassVar[str | None] = None  # the state list whose HVP the update asks for

    def __init__(self, params, **hparams):
        super().__init__(params, hparams)

    @staticmethod
    def scalars(h: dict, like: Tensor) -> dict[str, Tensor]:
        return {}

    @classmethod
    def keys_for(cls, h: dict) -> tuple[str, ...]:
        """Per-parameter buffers for hyper-parameters ``h`` (default: ``param_keys``)."""
        return cls.param_keys

    # ---- groups
    def add_param_group(self, param_group: dict) -> None:
        if self.facts.lr_scope == "global" and self.param_groups:
            for key, value in param_group.items():
                if key in self.defaults and value != self.defaults[key]:
                    raise ValueError(f"invalid {key}: {value!r} ({self._name()} uses one step size for all "
                                     "parameters, so per-group hyper-parameters are not supported)")
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        if "lr" in group:  # group["lr"] becomes the applied step size; the given value stays here
            group.setdefault("initial_lr", group["lr"])

    def _name(self) -> str:
        return getattr(type(self), "registry_key", type(self).__name__)

    def _units(self):
        """Parameter lists that share one step size: each group, or all groups at once."""
        if self.facts.lr_scope == "global":
            yield self.param_groups[0], [p for g in self.param_groups for p in g["params"]], self.param_groups
        else:
            for g in self.param_groups:
                yield g, g["params"], [g]

    def _unit_state(self, h: dict, params: list[Tensor]) -> dict:
        head = self.state[params[0]]
        if "step" not in head:
            head.update(self.scalars(h, params[0]))
            head["step"] = 0
        return head

    # ---- the in-place driver
    @torch.no_grad()
    def step(self, closure=None):
        """One step. ``closure`` as in :mod:`lrbench.closure` (or a plain torch closure, or
        None after ``loss.backward()`` for methods that need only the gradient). Returns the
        loss at the starting parameters (None without a closure)."""
        name = self._name()
        if closure is None and (self.facts.needs_loss or self.facts.probes or self.hvp_key):
            raise ValueError(f"{name} needs the loss{' and probes' if self.facts.probes else ''}: call "
                             "step(closure), with closure() returning the loss after backward()")
        if closure is not None and self.hvp_key and _is_plain(closure):
            raise ValueError(f"{name} needs Hessian-vector products: build the closure with "
                             "lrbench.make_closure(loss_fn, params)")
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure(create_graph=True) if self.hvp_key else closure()
            if isinstance(loss, Tensor) and loss.requires_grad:
                loss = loss.detach()
        if self.facts.needs_loss and loss is None:
            raise ValueError(f"{name} needs the loss value: the closure returned None")
        shared = _InPlaceOracle([], closure, name, lambda: [p for g in self.param_groups for p in g["params"]
                                                            if p.grad is not None])
        shared.kept = self.__dict__.setdefault("_kept_versions", {})  # see Oracle.kept
        for h, params, groups in self._units():
            params = [p for p in params if p.grad is not None]
            if not params:
                continue
            head = self._unit_state(h, params)
            keys = self.keys_for(h)
            for p in params:
                st = self.state[p]
                if keys and keys[0] not in st:
                    for k in keys:
                        st[k] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state = {k: [self.state[p][k] for p in params] for k in keys}
            state.update({k: v for k, v in head.items() if k != "step" and k not in keys})
            grads = [p.grad for p in params]
            oracle = shared.unit(params)
            l_in = loss if loss is None or loss.dtype == params[0].dtype else loss.to(params[0].dtype)
            new_params, new_state, lr = self.update(INPLACE, h, head["step"], params, grads, state, l_in, oracle)
            if new_params is not params:
                INPLACE.set_(params, new_params)
            for k in keys:
                for p, x in zip(params, new_state[k]):
                    self.state[p][k] = x
            for k, x in new_state.items():
                if k not in keys:
                    head[k] = x
            head["step"] += 1
            for g in groups:  # a rule returns a new η each step (never updated in place): no copy
                g["lr"] = lr
        if self.hvp_key and hasattr(closure, "release"):
            closure.release()  # free the gradient's graph now rather than at the next call
        return loss

    # ---- the pure driver
    @classmethod
    def functional(cls, **hparams) -> Functional:
        """This method's update as pure functions of one run (one parameter group), for
        ``torch.func.vmap`` over seeds: the same ``update`` under :data:`PURE`."""
        return pure_driver(cls, **hparams)


class TorchBacked:
    """Mixin for the keys whose ``step()`` is ``torch.optim``'s own (SGD, Adam, …: the floors
    the composed methods are measured against): their ``functional()`` is their direction under
    :data:`PURE` with the constant (or scheduled) step size, checked against torch's step by the
    registry-wide tests."""

    facts: ClassVar[Facts] = Facts(one_pass)
    param_keys: ClassVar[tuple[str, ...]] = ()
    #: torch keeps a float32 step count per parameter (Adam, AdamW, Adagrad, RMSprop): so does
    #: the pure state, so that a vectorised run holds (and records) the same state bytes
    step_counts: ClassVar[bool] = False

    @classmethod
    def keys_for(cls, h: dict) -> tuple[str, ...]:
        return cls.param_keys

    @staticmethod
    def scalars(h: dict, like: Tensor) -> dict[str, Tensor]:
        return {}

    @classmethod
    def functional(cls, **hparams) -> Functional:
        """``torch.optim``'s step as pure functions of one run, for ``torch.func.vmap``."""
        return pure_driver(cls, **hparams)


def pure_driver(cls, **hparams) -> Functional:
    """The pure driver of ``cls.update`` (one parameter group built with ``hparams``)."""
    h = dict(cls([torch.zeros(1, requires_grad=True)], **hparams).param_groups[0])
    h.pop("params")

    counts = getattr(cls, "step_counts", False)

    def init(params):
        state = {k: [torch.zeros_like(p) for p in params] for k in cls.keys_for(h)}
        state.update(cls.scalars(h, params[0]))
        if counts:
            state["step"] = [torch.zeros((), dtype=torch.float32, device=p.device) for p in params]
        return state

    def step(params, grads, loss, state, oracle, t: int):
        fns = oracle if isinstance(oracle, dict) else {"loss": lambda ps, split="train": oracle(ps)}
        new_params, new_state, lr = cls.update(PURE, h, t, list(params), list(grads), dict(state),
                                               cast(loss, params[0].dtype), _PureOracle(params, fns))
        new_state = dict(new_state)
        if counts:
            new_state["step"] = [s + 1 for s in state["step"]]
        lr = torch.as_tensor(lr, dtype=torch.float64) if not isinstance(lr, Tensor) else lr
        return list(new_params), new_state, lr

    return Functional(init, step)
