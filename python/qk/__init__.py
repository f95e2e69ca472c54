"""qk: CPU quantization toolkit with hand-written SIMD kernels."""

from . import _qk
from ._conv_ops import Int8ConvWeight, int8_conv2d, pack_int8_conv_weight
from ._fp16_ops import bf16_to_fp32, fp16_to_fp32, fp32_to_bf16, fp32_to_fp16
from ._gemm_ops import PackedInt8Weight, dynamic_linear, int8_matmul, pack_int8_weight, quantized_linear
from ._memory import memory_pool_stats, set_memory_pool_limit
from ._quant_ops import dequantize, fake_quantize, quantize, quantized_add
from ._runtime import (
    available_isas,
    cpu_features,
    get_isa,
    get_num_threads,
    kernel_paths,
    set_isa,
    set_num_threads,
)

# Python layers over the kernels (import after the kernel API they use).
from . import quant  # noqa: E402
from . import graph, nn, ptq, qat  # noqa: E402

__version__ = _qk.__version__

__all__ = [
    "Int8ConvWeight",
    "PackedInt8Weight",
    "available_isas",
    "bf16_to_fp32",
    "cpu_features",
    "dequantize",
    "dynamic_linear",
    "fake_quantize",
    "fp16_to_fp32",
    "fp32_to_bf16",
    "fp32_to_fp16",
    "get_isa",
    "get_num_threads",
    "graph",
    "int8_conv2d",
    "int8_matmul",
    "kernel_paths",
    "memory_pool_stats",
    "nn",
    "pack_int8_conv_weight",
    "pack_int8_weight",
    "ptq",
    "qat",
    "quant",
    "quantize",
    "quantized_add",
    "quantized_linear",
    "set_isa",
    "set_memory_pool_limit",
    "set_num_threads",
]
