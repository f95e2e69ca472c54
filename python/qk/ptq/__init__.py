"""qk.ptq: post-training quantization of qk.nn models.

    prepared = qk.ptq.prepare(model, qk.quant.INT8_STATIC)   # BatchNorm folded, observers attached
    qk.ptq.calibrate(prepared, calibration_inputs)          # ranges recorded
    qmodel = qk.ptq.convert(prepared)                        # Linear/Conv2d on int8 kernels, ReLU fused

One-call variants need no calibration data: `quantize_dynamic`,
`quantize_weight_only`, `quantize_fp16`. Helpers: `sensitivity`,
`auto_mixed_precision`, `compare_layers`, `model_size`, `save`, `load`;
on graphs, `smooth_quant` (activation outliers moved into the weights
before quantizing a transformer).
"""

from ..quantization.smooth import smooth_quant
from .analysis import auto_mixed_precision, compare_layers, model_size, sensitivity
from .graph import fold_batchnorm, quantizable_layers, relu_follows
from .io import load, save
from .layers import QuantizedLayer
from .workflow import (
    ObservedLayer,
    calibrate,
    convert,
    prepare,
    quantize_dynamic,
    quantize_fp16,
    quantize_weight_only,
)

__all__ = [
    "ObservedLayer", "QuantizedLayer", "auto_mixed_precision", "calibrate", "compare_layers", "convert",
    "fold_batchnorm", "load", "model_size", "prepare", "quantizable_layers", "quantize_dynamic", "quantize_fp16",
    "quantize_weight_only", "relu_follows", "save", "sensitivity", "smooth_quant",
]
