"""Built-in optimizers. Importing this package registers each of them."""

from lrbench.optimizers.adam import Adam
from lrbench.optimizers.adam_hd import AdamHD
from lrbench.optimizers.fd_first_order import FDFirstOrder
from lrbench.optimizers.fd_newton import FDNewton
from lrbench.optimizers.l4_adam import L4Adam
from lrbench.optimizers.l4_mom import L4Mom
from lrbench.optimizers.lqa import LQA
from lrbench.optimizers.marthe import MARTHE
from lrbench.optimizers.rtho import RTHO
from lrbench.optimizers.sgd import SGD
from lrbench.optimizers.sgd_hd import SGDHD
from lrbench.optimizers.tlr import TLR
from lrbench.optimizers.tlr_naive import TLRNaive
from lrbench.optimizers.tlr_pl import TLRPerLayer

__all__ = [
    "Adam", "AdamHD", "FDFirstOrder", "FDNewton", "L4Adam", "L4Mom", "LQA", "MARTHE", "RTHO",
    "SGD", "SGDHD", "TLR", "TLRNaive", "TLRPerLayer",
]
