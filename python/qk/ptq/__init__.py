"""qk.ptq: post-training quantization of any model, on its graph.

    prepared = qk.ptq.prepare(model, qk.quant.INT8_STATIC)   # a graph: BatchNorm folded, observers on values
    qk.ptq.calibrate(prepared, calibration_inputs)          # ranges recorded
    qmodel = qk.ptq.convert(prepared)                        # a GraphModule: layers on int8 kernels, ReLU fused

`model` is a GraphModule (e.g. from `qk.onnx.load`) or a qk.nn model, which
is traced first (`qk.graph.trace`): a Sequential of standard layers as it
is, any other model on `example_inputs`. Node names are module names.

One-call variants need no calibration data: `quantize_dynamic`,
`quantize_weight_only`, `quantize_fp16`. Helpers: `sensitivity`,
`auto_mixed_precision`, `compare_layers`, `model_size`, `save`, `load`;
on graphs, `smooth_quant` (activation outliers moved into the weights
before quantizing a transformer).
"""

from ..quantization.smooth import smooth_quant
from .analysis import auto_mixed_precision, compare_layers, model_size, sensitivity
from .io import load, save
from .workflow import (
    as_graph,
    calibrate,
    convert,
    prepare,
    quantize_dynamic,
    quantize_fp16,
    quantize_weight_only,
)

__all__ = [
    "as_graph", "auto_mixed_precision", "calibrate", "compare_layers", "convert", "load", "model_size", "prepare",
    "quantize_dynamic", "quantize_fp16", "quantize_weight_only", "save", "sensitivity", "smooth_quant",
]
