"""Built-in optimizers. Importing this package registers each of them."""

from lrbench.optimizers.adam import Adam
from lrbench.optimizers.sgd import SGD

__all__ = ["Adam", "SGD"]
