"""qk: CPU quantization toolkit with hand-written SIMD kernels."""

from . import _qk
from . import quant
from . import nn, ptq
from ._quant_ops import dequantize, fake_quantize, quantize
from ._runtime import (
    available_isas,
    cpu_features,
    get_isa,
    get_num_threads,
    kernel_paths,
    set_isa,
    set_num_threads,
)

__version__ = _qk.__version__

__all__ = [
    "available_isas",
    "cpu_features",
    "dequantize",
    "fake_quantize",
    "get_isa",
    "get_num_threads",
    "kernel_paths",
    "quantize",
    "set_isa",
    "set_num_threads",
]
