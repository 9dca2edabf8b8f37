"""Built-in optimizers. Importing this package registers each of them.

New methods: subclass :class:`Method` with a step-size rule over one of the ``directions``
(README, "Adding a method"); :class:`Facts` and :class:`Cost` declare what a step costs.
"""

from lrbench.optimizers import _directions as directions
from lrbench.optimizers._core import Cost, Facts, Method

from lrbench.optimizers.adam import Adam
from lrbench.optimizers.adagrad import Adagrad
from lrbench.optimizers.adam_hd import AdamHD
from lrbench.optimizers.adamw import AdamW
from lrbench.optimizers.dadapt_adam import DAdaptAdam
from lrbench.optimizers.dadapt_sgd import DAdaptSGD
from lrbench.optimizers.dog import DoG
from lrbench.optimizers.fd_first_order import FDFirstOrder
from lrbench.optimizers.fd_newton import FDNewton
from lrbench.optimizers.l4_adam import L4Adam
from lrbench.optimizers.l4_mom import L4Mom
from lrbench.optimizers.lqa import LQA
from lrbench.optimizers.marthe import MARTHE
from lrbench.optimizers.momentum import Momentum
from lrbench.optimizers.nesterov import Nesterov
from lrbench.optimizers.prodigy import Prodigy
from lrbench.optimizers.rmsprop import RMSprop
from lrbench.optimizers.rtho import RTHO
from lrbench.optimizers.sgd import SGD
from lrbench.optimizers.sgd_exp import SGDExp
from lrbench.optimizers.sgd_hd import SGDHD
from lrbench.optimizers.sgd_step import SGDStep
from lrbench.optimizers.sf_adamw import SFAdamW
from lrbench.optimizers.sf_sgd import SFSGD
from lrbench.optimizers.sgdr import SGDR
from lrbench.optimizers.sls import SLS
from lrbench.optimizers.sps import SPS
from lrbench.optimizers.tlr import TLR
from lrbench.optimizers.tlr_naive import TLRNaive
from lrbench.optimizers.tlr_pl import TLRPerLayer

__all__ = [
    "Cost", "Facts", "Method", "directions",
    "Adagrad", "Adam", "AdamHD", "AdamW", "DAdaptAdam", "DAdaptSGD", "DoG", "FDFirstOrder", "FDNewton", "L4Adam", "L4Mom", "LQA", "MARTHE",
    "Momentum", "Nesterov", "Prodigy", "RMSprop", "RTHO", "SGD", "SGDExp", "SGDHD", "SFAdamW", "SFSGD", "SGDR", "SGDStep", "SLS", "SPS", "TLR",
    "TLRNaive", "TLRPerLayer",
]
