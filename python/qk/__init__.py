"""qk: CPU quantization toolkit with hand-written SIMD kernels."""

from . import _qk
from ._fp16_ops import bf16_to_fp32, fp16_to_fp32, fp32_to_bf16, fp32_to_fp16
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
    "bf16_to_fp32",
    "cpu_features",
    "dequantize",
    "fake_quantize",
    "fp16_to_fp32",
    "fp32_to_bf16",
    "fp32_to_fp16",
    "get_isa",
    "get_num_threads",
    "kernel_paths",
    "quantize",
    "set_isa",
    "set_num_threads",
]
