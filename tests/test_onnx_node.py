"""ONNX's own backend node tests, run through qk.onnx.load + GraphModule.run.

Every node test of the installed `onnx` package whose graph uses only ops
qk implements is included; the cases listed in EXCLUDED are left out, each
with the reason. Models older than opset 11 are first upgraded with ONNX's
version converter (as qk.onnx.load's error message advises users to do).
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx.backend.base import Backend, BackendRep  # noqa: E402
from onnx.backend.test.loader import load_model_tests  # noqa: E402
from onnx.backend.test.runner import Runner  # noqa: E402

import qk.onnx  # noqa: E402
from qk.graph import OPS  # noqa: E402

# regex on the case name -> why qk does not run it
EXCLUDED = {
    r"^test_cast_.*(FLOAT8|FLOAT4|INT4|UINT4|INT2|UINT2|BFLOAT16|e8m0)": "low-precision types NumPy has no dtype for",
    r"^test_castlike_.*(FLOAT8|FLOAT4|INT4|UINT4|INT2|UINT2|BFLOAT16)": "low-precision types NumPy has no dtype for",
    r"^test_cast(like)?_(FLOAT|FLOAT16|DOUBLE)_to_(FLOAT|FLOAT16|DOUBLE)":
        "float64 or float16 inputs (float64 models need dtype=; these test data are stored as strings)",
    r"reduce_log_sum_exp_.*_expanded": "the expanded graphs compute in float64 (refused without dtype=)",
    r"DOUBLE|_double|float64": "float64 models are refused unless dtype=np.float32 is given (then outputs are float32)",
    r"fp16|float16": "float16 tensors are computed in float32 by the float ops",
    r"_bfloat16_": "bfloat16 is not supported",
    r"_3d|3d_": "3-D convolution and pooling windows are not supported (1-D and 2-D are)",
    r"training_mode": "BatchNormalization and Dropout in training mode are not supported on import",
    r"cubic": "Resize mode 'cubic' is not supported",
    r"tf_crop_and_resize": "Resize coordinate mode 'tf_crop_and_resize' is not supported",
    r"not_larger|not_smaller": "Resize keep_aspect_ratio_policy other than 'stretch' is not supported",
    r"antialias": "Resize antialias=1 is not supported",
    r"with_argmax": "MaxPool's Indices output is not supported",
    r"maxpool_2d_uint8": "integer pooling belongs to the integer-inference path",
    r"quantizelinear_.*(e4m3|e5m2|float4|int4|uint4|int2|uint2)": "low-precision types NumPy has no dtype for",
    r"^test_quantizelinear_blocked": "blocked (block_size) QuantizeLinear is not supported (DequantizeLinear is)",
    r"_string": "string tensors are not supported",
    r"identity_sequence|identity_opt": "sequence and optional types are not supported",
    r"^test_dropout_.*mask|^test_training_dropout": "Dropout runs as inference identity",
}

_SUPPORTED = set(OPS) | {"Constant"}


def _cases():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = load_model_tests(kind="node")
    return [c for c in cases if c.model.graph.node and {n.op_type for n in c.model.graph.node} <= _SUPPORTED
            and all(n.domain in ("", "ai.onnx") for n in c.model.graph.node)]


def _excluded(name):
    return next((why for pat, why in EXCLUDED.items() if re.search(pat, name)), None)


class QkRep(BackendRep):
    def __init__(self, model):
        self.model = model

    def run(self, inputs, **kwargs):
        feeds = dict(zip(self.model.input_names, inputs))
        out = self.model.run(feeds)
        return tuple(out[name] for name in self.model.output_names)


class QkBackend(Backend):
    @classmethod
    def prepare(cls, model, device="CPU", **kwargs):
        opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
        if opset < qk.onnx.importer.MIN_OPSET:
            model = onnx.version_converter.convert_version(model, 13)
        return QkRep(qk.onnx.load(model))

    @classmethod
    def supports_device(cls, device):
        return device == "CPU"


CASES = _cases()
INCLUDED = [c.name for c in CASES if _excluded(c.name) is None]

backend_test = Runner(QkBackend, __name__)
for name in INCLUDED:
    backend_test.include(rf"^{re.escape(name)}_cpu$")
globals().update(backend_test.test_cases)


def test_node_test_selection_is_meaningful():
    """Most ops qk claims are exercised by at least one included node test."""
    covered = set()
    for c in CASES:
        if c.name in INCLUDED:
            covered.update(n.op_type for n in c.model.graph.node)
    claimed = {"Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Exp",
               "Log", "Erf", "Neg", "Abs", "Reciprocal", "Min", "Max", "Relu", "LeakyRelu", "PRelu", "Clip",
               "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Gelu", "Softmax", "LogSoftmax",
               "LayerNormalization", "BatchNormalization", "MaxPool", "AveragePool", "GlobalAveragePool",
               "GlobalMaxPool", "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "Flatten", "Reshape",
               "Transpose", "Squeeze", "Unsqueeze", "Concat", "Split", "Slice", "Gather", "GatherND", "Where",
               "Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "And", "Or", "Not", "IsNaN", "Cast",
               "Shape", "Size", "Expand", "ConstantOfShape", "Range", "Tile", "Identity", "Dropout", "Pad",
               "Resize", "Constant"}
    missing = claimed - covered
    assert not missing, f"no included node test covers {sorted(missing)}"
    assert len(INCLUDED) > 650
    assert np.all([_excluded(n) is None for n in INCLUDED])
