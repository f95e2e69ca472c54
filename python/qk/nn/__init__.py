"""qk.nn: a small NumPy autograd with layers, optimizers and a training loop.

Independent of the C++ kernels.  See README ("Define and train a model").
"""

from . import functional, models, optim
from .data import DigitsSplit, load_digits
from .functional import (
    add, batch_norm, conv2d, cross_entropy, custom, div, dropout, exp, flatten, gelu, leaky_relu,
    linear, log, log_softmax, matmul, max_pool2d, mean, mse_loss, mul, neg, relu, reshape, softmax,
    sub, sum, tanh, transpose,
)
from .modules import (
    GELU, BatchNorm1d, BatchNorm2d, Conv2d, Dropout, Flatten, Identity, LeakyReLU, Linear, MaxPool2d,
    Module, Parameter, ReLU, Sequential, Tanh,
)
from .optim import SGD, Adam, AdamW, CosineLR, StepLR
from .random import manual_seed
from .tensor import Tensor, as_tensor, is_grad_enabled, no_grad
from .train import blas_threads, evaluate, fit, predict


def save(model, path) -> None:
    """Save ``model.state_dict()`` to ``path`` (.npz)."""
    import numpy as np

    np.savez(path, **model.state_dict())


def load(model, path, strict: bool = True):
    """Load a ``.npz`` written by ``save`` into ``model`` (same checks as ``load_state_dict``)."""
    import numpy as np

    with np.load(path) as archive:
        model.load_state_dict({k: archive[k] for k in archive.files}, strict=strict)
    return model
