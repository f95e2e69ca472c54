"""qk.nn: a small NumPy autograd with layers, losses, optimizers and a
training loop; models to quantize with qk.ptq and qk.qat."""

from . import functional, models
from .data import DigitsSplit, load_digits
from .functional import conv2d, cross_entropy, custom, linear, log_softmax, max_pool2d, mse_loss, relu
from .modules import (
    GELU,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    Identity,
    LeakyReLU,
    Linear,
    MaxPool2d,
    Module,
    Parameter,
    ReLU,
    Sequential,
    Tanh,
    manual_seed,
)
from .optim import SGD, Adam, AdamW, CosineLR, StepLR
from .tensor import Tensor, no_grad, tensor
from .train import blas_threads, evaluate, fit, predict

__all__ = [
    "Adam", "AdamW", "blas_threads", "BatchNorm1d", "BatchNorm2d", "Conv2d", "CosineLR", "DigitsSplit", "Dropout", "Flatten",
    "GELU", "Identity", "LeakyReLU", "Linear", "MaxPool2d", "Module", "Parameter", "ReLU", "SGD", "Sequential",
    "StepLR", "Tanh", "Tensor", "conv2d", "cross_entropy", "custom", "evaluate", "fit", "functional", "linear",
    "load_digits", "log_softmax", "manual_seed", "max_pool2d", "models", "mse_loss", "no_grad", "predict", "relu",
    "tensor",
]
