"""Built-in problems. Importing this package registers each of them."""

from lrbench.problems._base import Problem, Task
from lrbench.problems.beale import Beale
from lrbench.problems.bukin6 import Bukin6
from lrbench.problems.illcond_regression import IllcondRegression
from lrbench.problems.mnist_logreg import MnistLogreg

__all__ = ["Beale", "Bukin6", "IllcondRegression", "MnistLogreg", "Problem", "Task"]
