"""Registry-wide tests of the optimizer core (issue 15): every key, from its declared facts.

For each registered optimizer (third-party ones registered in ``conftest.py`` included):

* the functional driver (``functional()``, pure, vmap-able) and the in-place driver
  (``step()``) give the same trajectory, in float64 to 1e-12 and float32 to 1e-4 relative,
  with a parameter whose grad is None on the in-place side;
* the functional step is pure (it mutates none of its inputs) and ``vmap`` over seeds equals
  seed-by-seed calls;
* the in-place step allocates fewer parameter-sized temporaries than the pure one (so an
  in-place driver replaced by the pure one plus copies fails here);
* the declared oracle cost equals the one the closure counts;
* several parameter groups, with grad-None parameters and a group without gradients, work as
  ``lr_scope`` says;
* standalone use: ``loss.backward(); opt.step()`` where only the gradient is needed, a plain
  torch closure where the loss or probes are (same trajectory), one-line refusals otherwise.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.func import grad_and_value, jvp, vmap
from torch.utils._python_dispatch import TorchDispatchMode

from lrbench.closure import make_closure
from lrbench.optimizers._core import Cost, Facts, Method
from lrbench.registry import optimizer_class, optimizer_keys

ALL = [k for k in optimizer_keys() if getattr(optimizer_class(k), "available", True)]
VECTORIZABLE = [k for k in ALL if getattr(optimizer_class(k), "facts", Facts(None)).vectorizable]
STEPS = 30

#: hyper-parameters that make each method move visibly on the test net within a few dozen steps
#: (defaults are tuned for large models: e.g. a hyper-learning rate of 1e-7 barely moves η here)
LIVELY = {"adam_hd": {"hypergrad_lr": 1e-3}, "marthe": {"beta": 1e-3}, "rtho": {"beta": 1e-3},
          "tlr_naive": {"eta": 1e-2}, "fd_first_order": {"alpha": 1e-2}}


def _facts(key: str) -> Facts:
    return optimizer_class(key).facts


def _data(dtype):
    g = torch.Generator().manual_seed(0)
    x, xv = torch.randn(48, 5, generator=g, dtype=dtype), torch.randn(48, 5, generator=g, dtype=dtype)
    y, yv = torch.randint(0, 3, (48,), generator=g), torch.randint(0, 3, (48,), generator=g)
    init = [0.5 * torch.randn(5, 4, generator=g, dtype=dtype), torch.zeros(4, dtype=dtype),
            0.5 * torch.randn(4, 3, generator=g, dtype=dtype), torch.zeros(3, dtype=dtype)]
    return (x, y), (xv, yv), init


def _loss(ps, batch):
    w1, b1, w2, b2 = ps
    x, y = batch
    return torch.nn.functional.cross_entropy(torch.tanh(x @ w1 + b1) @ w2 + b2, y)


def _pure_oracle(train, val):
    batches = {"train": train, "val": val}

    def loss(ps, split="train"):
        return _loss(ps, batches[split])

    def grad(ps, split="train"):
        gs, value = grad_and_value(lambda q: _loss(q, batches[split]))(list(ps))
        return value, list(gs)

    def hvp(ps, vs):
        return list(jvp(lambda q: grad_and_value(lambda r: _loss(r, train))(q)[0], (list(ps),), (list(vs),))[1])

    return {"loss": loss, "grad": grad, "hvp": hvp}


def _lively(key: str) -> dict:
    return dict(LIVELY.get(key, {}))


def _in_place_run(key, dtype, steps=STEPS, hp=None):
    train, val, init = _data(dtype)
    params = [p.clone().requires_grad_() for p in init]
    unused = torch.ones(2, dtype=dtype, requires_grad=True)  # never in the loss: grad stays None
    closure = make_closure(lambda: _loss(params, train), params + [unused],
                           compute_val_loss=lambda: _loss(params, val))
    opt = optimizer_class(key)(params + [unused], **(hp if hp is not None else _lively(key)))
    xs, lrs = [], []
    for _ in range(steps):
        opt.step(closure)
        xs.append(torch.cat([p.detach().reshape(-1) for p in params]))
        lrs.append(float(opt.param_groups[0]["lr"]))
    assert torch.equal(unused.detach(), torch.ones(2, dtype=dtype))
    assert unused not in opt.state or not isinstance(opt, Method)  # (torch's Adagrad makes state eagerly)
    return torch.stack(xs), lrs


def _functional_run(key, dtype, steps=STEPS):
    train, val, init = _data(dtype)
    fopt = optimizer_class(key).functional(**_lively(key))
    oracle = _pure_oracle(train, val)
    ps = [p.clone() for p in init]
    state = fopt.init(ps)
    xs, lrs = [], []
    for t in range(steps):
        loss, grads = oracle["grad"](ps)
        ps, state, lr = fopt.step(ps, grads, loss.detach(), state, oracle, t)
        xs.append(torch.cat([p.reshape(-1) for p in ps]))
        lrs.append(float(lr))
    return torch.stack(xs), lrs


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-12), (torch.float32, 1e-4)])
@pytest.mark.parametrize("key", VECTORIZABLE)
def test_functional_and_in_place_drivers_agree(key, dtype, rtol):
    xs, lrs = _in_place_run(key, dtype)
    fxs, flrs = _functional_run(key, dtype)
    scale = xs.abs().max(dim=1).values.clamp_min(1e-30)
    rel = ((xs - fxs).abs().max(dim=1).values / scale).max().item()
    assert rel <= rtol, f"{key}: trajectories differ by {rel:.2e} (relative)"
    assert flrs == pytest.approx(lrs, rel=rtol * 10, abs=1e-30)
    assert not torch.equal(xs[0], xs[-1]), "the method did not move"


TWO_GROUPS = [k for k in VECTORIZABLE if not _facts(k).one_group and not _facts(k).probes]


@pytest.mark.parametrize("key", TWO_GROUPS)
def test_drivers_agree_on_two_parameter_groups(key):
    """Two groups (first layer | second layer), with a grad-None parameter in the first: the
    in-place driver against the functional one run per group (``lr_scope`` "group"/"tensor":
    each group's step sees only its own tensors) or over all tensors at once ("global")."""
    facts = _facts(key)
    train, val, init = _data(torch.float64)
    params = [p.clone().requires_grad_() for p in init]
    unused = torch.ones(2, dtype=torch.float64, requires_grad=True)
    closure = make_closure(lambda: _loss(params, train), params + [unused], compute_val_loss=lambda: _loss(params, val))
    opt = optimizer_class(key)([{"params": params[:2] + [unused]}, {"params": params[2:]}], **_lively(key))
    fopt = optimizer_class(key).functional(**_lively(key))
    oracle = _pure_oracle(train, val)
    units = [[0, 1, 2, 3]] if facts.lr_scope == "global" else [[0, 1], [2, 3]]
    ps = [p.clone() for p in init]
    states = [fopt.init([ps[i] for i in u]) for u in units]
    for t in range(STEPS):
        opt.step(closure)
        loss, grads = oracle["grad"](ps)
        for j, u in enumerate(units):
            new, states[j], _ = fopt.step([ps[i] for i in u], [grads[i] for i in u], loss, states[j], oracle, t)
            for i, q in zip(u, new):
                ps[i] = q
    for p, q in zip(params, ps):
        torch.testing.assert_close(p.detach(), q, rtol=1e-12, atol=1e-13)
    assert torch.equal(unused.detach(), torch.ones(2, dtype=torch.float64))


@pytest.mark.parametrize("key", VECTORIZABLE)
def test_functional_step_is_pure_and_vmaps_over_seeds(key):
    train, val, init = _data(torch.float64)
    fopt = optimizer_class(key).functional(**_lively(key))
    oracle = _pure_oracle(train, val)
    seeds = [[p + 0.1 * i for p in init] for i in range(3)]
    states = [fopt.init(ps) for ps in seeds]
    for t in range(3):  # a few steps in, so that the state is not all zeros
        for i in range(3):
            loss, grads = oracle["grad"](seeds[i])
            seeds[i], states[i], _ = fopt.step(seeds[i], grads, loss, states[i], oracle, t)
    inputs = []
    for ps, st in zip(seeds, states):
        loss, grads = oracle["grad"](ps)
        inputs.append((ps, grads, loss, st))
    copies = [torch.utils._pytree.tree_map(lambda x: x.clone(), list(inp)) for inp in inputs]
    singles = [fopt.step(*inp[:4], oracle, 3) for inp in inputs]
    for inp, cp in zip(inputs, copies):  # nothing mutated
        for a, b in zip(torch.utils._pytree.tree_leaves(list(inp)), torch.utils._pytree.tree_leaves(cp)):
            assert torch.equal(a, b), f"{key}: functional step mutated an input"
    stack = lambda *xs: torch.stack(xs)  # noqa: E731
    batched = torch.utils._pytree.tree_map(stack, *[list(inp) for inp in inputs])
    out = vmap(lambda ps, gs, loss, st: fopt.step(ps, gs, loss, st, oracle, 3))(*batched)
    # A method that probes takes differences of loss values, which amplify the few-ulp rounding
    # differences of a batched forward pass (fd_newton's second difference by ~ulp/(4ε²)).
    rtol = 1e-4 if _facts(key).probes else 1e-12
    for i, single in enumerate(singles):
        for a, b in zip(torch.utils._pytree.tree_leaves(out), torch.utils._pytree.tree_leaves(single)):
            torch.testing.assert_close(a[i], b, rtol=rtol, atol=1e-14)


class _Allocations(TorchDispatchMode):
    """Counts elements of new (non-view, out-of-place) tensors shaped like a parameter, made
    outside the oracle calls (which :meth:`paused` wraps): what the update itself allocates."""

    def __init__(self, shapes):
        super().__init__()
        self.shapes, self.elements, self.pause = set(shapes), 0, 0

    def paused(self, fn):
        def call(*args, **kwargs):
            self.pause += 1
            try:
                return fn(*args, **kwargs)
            finally:
                self.pause -= 1
        return call

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not self.pause and not func._schema.is_mutable and not func.is_view:
            for t in torch.utils._pytree.tree_leaves(out):
                if isinstance(t, torch.Tensor) and tuple(t.shape) in self.shapes:
                    self.elements += t.numel()
        return out


@pytest.mark.parametrize("key", VECTORIZABLE)
def test_in_place_step_allocates_less_than_the_pure_one(key):
    """The foreach driver updates buffers and parameters in place; replacing it by the pure
    update plus copies would allocate every new buffer and parameter, and fail here. Only the
    update's own allocations count (the closure's and the oracle's passes are paused)."""
    train, val, init = _data(torch.float64)
    shapes = [tuple(p.shape) for p in init]
    params = [p.clone().requires_grad_() for p in init]
    closure = make_closure(lambda: _loss(params, train), params, compute_val_loss=lambda: _loss(params, val))
    opt = optimizer_class(key)(params, **_lively(key))
    for _ in range(3):
        opt.step(closure)
    in_place = _Allocations(shapes)
    wrapped = in_place.paused(closure)
    wrapped.counter, wrapped.hvp, wrapped.release = closure.counter, in_place.paused(closure.hvp), closure.release
    with in_place:
        opt.step(wrapped)
    fopt = optimizer_class(key).functional(**_lively(key))
    pure = _Allocations(shapes)
    oracle = {k: pure.paused(f) for k, f in _pure_oracle(train, val).items()}
    ps = [p.detach().clone() for p in params]
    state = fopt.init(ps)
    for t in range(3):
        loss, grads = oracle["grad"](ps)
        ps, state, _ = fopt.step(ps, grads, loss, state, oracle, t)
    loss, grads = oracle["grad"](ps)
    with pure:
        fopt.step(ps, grads, loss, state, oracle, 3)
    assert in_place.elements < pure.elements, (in_place.elements, pure.elements)


def _counted(key, steps=6, hp=None):
    train, val, init = _data(torch.float64)
    params = [p.clone().requires_grad_() for p in init]
    closure = make_closure(lambda: _loss(params, train), params, compute_val_loss=lambda: _loss(params, val))
    opt = optimizer_class(key)(params, **(hp or {}))
    c, per_step = closure.counter, []
    for t in range(steps):
        before = (c.forward, c.backward, c.hvp)
        opt.step(closure)
        per_step.append((t, dict(opt.param_groups[0]), (c.forward - before[0], c.backward - before[1],
                                                         c.hvp - before[2])))
    return per_step


def _variants(key):
    """The defaults, plus the variants whose declared cost differs."""
    out = [{}]
    cls = optimizer_class(key)
    import inspect
    sig = inspect.signature(cls.__init__).parameters
    if "validation" in sig:
        out.append({"validation": True})
    if "objective" in sig:
        out.append({"objective": "train"})
    if "steps_per_epoch" in sig:
        out.append({"steps_per_epoch": 4})
    return out


@pytest.mark.parametrize("key", ALL)
def test_declared_oracle_cost_is_the_counted_one(key):
    facts = _facts(key)
    assert isinstance(facts, Facts), f"{key} declares no facts"
    for hp in _variants(key):
        for t, h, (f, b, hv) in _counted(key, hp=hp):
            cost = facts.cost(h, t)
            assert isinstance(cost, Cost)
            assert (b, hv) == (cost.backward, cost.hvp), (key, hp, t, cost, (f, b, hv))
            if cost.search:
                assert f >= cost.forward + 1, (key, hp, t, cost, f)
            else:
                assert f == cost.forward, (key, hp, t, cost, (f, b, hv))


@pytest.mark.parametrize("key", VECTORIZABLE)
def test_parameter_groups_with_missing_gradients(key):
    """Three groups: two with gradients (one also holding a grad-None parameter), one without
    any; the grad-None parameters stay put and get no state, ``lr_scope`` holds."""
    facts = _facts(key)
    train, val, init = _data(torch.float64)
    params = [p.clone().requires_grad_() for p in init]
    spare, idle = torch.ones(3, dtype=torch.float64, requires_grad=True), torch.ones(2, dtype=torch.float64,
                                                                                         requires_grad=True)
    groups = [{"params": params[:2] + [spare]}, {"params": params[2:]}, {"params": [idle]}]
    closure = make_closure(lambda: _loss(params, train), params + [spare, idle],
                           compute_val_loss=lambda: _loss(params, val))
    cls = optimizer_class(key)
    if facts.one_group:
        with pytest.raises(ValueError, match="invalid params"):
            cls(groups, **_lively(key))
        return
    opt = cls(groups, **_lively(key))
    for _ in range(5):
        opt.step(closure)
    for p, n in ((spare, 3), (idle, 2)):
        assert torch.equal(p.detach(), torch.ones(n, dtype=torch.float64))
        assert p not in opt.state or not isinstance(opt, Method)
    lrs = [float(g["lr"]) for g in opt.param_groups[:2]]
    assert all(math.isfinite(v) for v in lrs)
    if facts.lr_scope == "global":
        assert lrs[0] == lrs[1]
        with pytest.raises(ValueError, match="per-group"):
            opt.add_param_group({"params": [torch.zeros(1, requires_grad=True)], **_changed(opt.defaults)})


def _changed(defaults: dict) -> dict:
    for k, v in defaults.items():
        if isinstance(v, float) and not isinstance(v, bool) and k != "lr" and v > 0:
            return {k: v * 0.5}
    return {"lr": 0.123}


@pytest.mark.parametrize("key", VECTORIZABLE)
def test_standalone_use_like_torch_optim(key):
    """Gradient-only methods run after a plain ``loss.backward()``; methods that need the loss
    or probes run with a plain torch closure (same trajectory as lrbench's closure) or refuse
    it with one line saying how to call them."""
    facts, cls = _facts(key), optimizer_class(key)
    ref, ref_lrs = _in_place_run(key, torch.float64, steps=8)
    train, val, init = _data(torch.float64)
    params = [p.clone().requires_grad_() for p in init]
    opt = cls(params, **_lively(key))

    def plain():
        opt.zero_grad()
        loss = _loss(params, train)
        loss.backward()
        return loss

    if facts.needs_loss or facts.probes or getattr(cls, "hvp_key", None):
        with pytest.raises(ValueError, match=r"step\(closure\)"):
            plain()
            opt.step()
    try:
        for i in range(8):
            if facts.needs_loss or facts.probes or getattr(cls, "hvp_key", None):
                opt.step(plain)
            else:
                plain()
                opt.step()
    except ValueError as exc:  # a method that cannot work with a plain closure says so in one line
        assert "\n" not in str(exc) and "make_closure" in str(exc), str(exc)
        return
    xs = torch.cat([p.detach().reshape(-1) for p in params])
    torch.testing.assert_close(xs, ref[7], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("key", [k for k in VECTORIZABLE if issubclass(optimizer_class(k), Method)])
def test_the_allocation_test_fails_without_the_foreach_driver(key, monkeypatch):
    """The mutation that the allocation test guards against: ``step()`` running the pure update
    (and copying its results back) instead of the in-place foreach one."""
    import lrbench.optimizers._core as core

    monkeypatch.setattr(core, "INPLACE", core.PURE)
    with pytest.raises(AssertionError):
        test_in_place_step_allocates_less_than_the_pure_one(key)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cached_constants_give_the_python_numbers_results(dtype):
    from lrbench.optimizers._core import const
    g = torch.Generator().manual_seed(0)
    for value in (0.1, 1.0 / 3.0, 2.0 ** 0.01, 1e-12, -7.5, 0.0):
        x = torch.randn((), generator=g, dtype=dtype)
        c = const(value, x)
        assert c.dtype == dtype and c.dim() == 0 and const(value, x) is c  # made once
        for op in (torch.mul, torch.add, torch.div, torch.sub, torch.fmin, torch.maximum):
            if op in (torch.fmin, torch.maximum):
                assert torch.equal(op(x, c), op(x, torch.tensor(value, dtype=dtype)))
            else:
                assert torch.equal(op(x, c), op(x, value)), (op, value)
    assert str(const(-0.0, x)) != str(const(0.0, x))  # -0.0 is its own constant
    assert const(0.5, x) is not const(0.5, x.float() if dtype == torch.float64 else x.double())
