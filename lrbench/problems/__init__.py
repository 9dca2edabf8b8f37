"""Built-in problems. Importing this package registers each of them."""

from lrbench.problems._base import SIZES, Params, Problem, Task, forward, tensor
from lrbench.problems.beale import Beale
from lrbench.problems.boston_linreg import BostonLinreg
from lrbench.problems.bukin6 import Bukin6
from lrbench.problems.cifar10_lenet5 import Cifar10Lenet5
from lrbench.problems.cifar10_resnet18 import Cifar10Resnet18
from lrbench.problems.cifar10_vgg11bn import Cifar10Vgg11bn
from lrbench.problems.cifar10_wrn16_4 import Cifar10Wrn16x4
from lrbench.problems.cifar100_resnet18 import Cifar100Resnet18
from lrbench.problems.cifar100_wrn16_4 import Cifar100Wrn16x4
from lrbench.problems.illcond_regression import IllcondRegression
from lrbench.problems.mnist_lenet5 import MnistLenet5
from lrbench.problems.mnist_logreg import MnistLogreg
from lrbench.problems.mnist_mlp_300_100 import MnistMlp300x100
from lrbench.problems.mnist_mlp_500x3 import MnistMlp500x3
from lrbench.problems.mnist_mlp_1000 import MnistMlp1000
from lrbench.problems.mnist_mlp_1000x2 import MnistMlp1000x2
from lrbench.problems.rosenbrock import Rosenbrock

__all__ = [
    "SIZES",
    "Params",
    "Beale",
    "BostonLinreg",
    "Bukin6",
    "Cifar10Lenet5",
    "Cifar10Resnet18",
    "Cifar10Vgg11bn",
    "Cifar10Wrn16x4",
    "Cifar100Resnet18",
    "Cifar100Wrn16x4",
    "IllcondRegression",
    "MnistLenet5",
    "MnistLogreg",
    "MnistMlp300x100",
    "MnistMlp500x3",
    "MnistMlp1000",
    "MnistMlp1000x2",
    "Problem",
    "Rosenbrock",
    "Task",
    "forward",
    "tensor",
]
