"""INT8 GEMM: qk (packed and unpacked), quantized_linear and dynamic_linear
against NumPy FP32 `a @ b` on the same shapes, and against ONNX Runtime
(MatMulInteger with the weight as a constant initializer, so it is
pre-packed; DynamicQuantizeMatMul) and PyTorch (torch._int_mm; a
dynamic-quantized nn.Linear) when installed."""

import numpy as np
import pytest

import qk
from _suite import ort_session, sizes

SHAPES = sizes([(1, 4096, 4096), (16, 4096, 4096), (128, 768, 3072), (512, 1024, 1024), (1024, 1024, 1024),
                (2048, 2048, 2048)], [(1, 1024, 1024), (256, 1024, 1024)])


@pytest.fixture(scope="module", params=SHAPES, ids=lambda s: "x".join(map(str, s)))
def case(request):
    m, k, n = request.param
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (m, k)).astype(np.uint8)
    b = rng.integers(-127, 128, (k, n)).astype(np.int8)
    x = rng.standard_normal((m, k)).astype(np.float32)
    w_scale = np.full(n, 0.01, np.float32)
    return request.param, a, b, x, w_scale


def _ort_session(graph_fn):
    pytest.importorskip("onnxruntime")
    return ort_session(graph_fn(pytest.importorskip("onnx")))


def _matmul_integer(b):
    def graph(onnx):
        from onnx import TensorProto, helper, numpy_helper

        k, n = b.shape
        node = helper.make_node("MatMulInteger", ["A", "B"], ["Y"])
        g = helper.make_graph([node], "mmi", [helper.make_tensor_value_info("A", TensorProto.UINT8, [None, k])],
                              [helper.make_tensor_value_info("Y", TensorProto.INT32, [None, n])],
                              initializer=[numpy_helper.from_array(b, "B")])
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])

    return graph


def _matmul_integer_to_float(b, w_scale, x_scale, x_zero_point, bias):
    def graph(onnx):
        from onnx import TensorProto, helper, numpy_helper

        k, n = b.shape
        names = ["A", "B", "SA", "SB", "ZA", "ZB", "bias"]
        node = helper.make_node("MatMulIntegerToFloat", names, ["Y"], domain="com.microsoft")
        inits = [numpy_helper.from_array(v, name) for name, v in zip(names[1:], [
            b, np.float32([x_scale]), w_scale, np.uint8([x_zero_point]), np.zeros(n, np.int8), bias])]
        relu = helper.make_node("Relu", ["Y"], ["R"])
        g = helper.make_graph([node, relu], "mmitf", [helper.make_tensor_value_info("A", TensorProto.UINT8, [None, k])],
                              [helper.make_tensor_value_info("R", TensorProto.FLOAT, [None, n])], initializer=inits)
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)])

    return graph


def _dynamic_quantize_matmul(b, w_scale):
    def graph(onnx):
        from onnx import TensorProto, helper, numpy_helper

        k, n = b.shape
        node = helper.make_node("DynamicQuantizeMatMul", ["A", "B", "S", "Z"], ["Y"], domain="com.microsoft")
        inits = [numpy_helper.from_array(b, "B"), numpy_helper.from_array(w_scale, "S"),
                 numpy_helper.from_array(np.zeros(n, np.int8), "Z")]
        g = helper.make_graph([node], "dqmm", [helper.make_tensor_value_info("A", TensorProto.FLOAT, [None, k])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, n])], initializer=inits)
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)])

    return graph


def _max_error(result, a, b) -> float:
    """Largest distance from the exact product (float64 is exact at these sizes). ORT's u8 x s8
    kernels on CPUs without VNNI use vpmaddubsw, whose int16 pair sums saturate; the report
    prints this beside the times."""
    return float(np.abs(result - a.astype(np.float64) @ b.astype(np.float64)).max())


@pytest.mark.parametrize("impl", ["qk", "qk-unpacked", "numpy", "onnxruntime", "torch"])
def test_int8_matmul(measure, benchmark, case, impl):
    (m, k, n), a, b, _, _ = case
    benchmark.group = f"int8_matmul {m}x{k}x{n}"
    ops = 2 * m * k * n
    if impl == "qk":
        w = qk.pack_int8_weight(b)
        out = np.empty((m, n), np.int32)
        benchmark.extra_info["max_abs_error"] = _max_error(qk.int8_matmul(a, w), a, b)
        measure(impl, lambda: qk.int8_matmul(a, w, out=out), ops=ops)
    elif impl == "qk-unpacked":
        measure(impl, qk.int8_matmul, a, b, ops=ops)
    elif impl == "numpy":
        af, bf = a.astype(np.float32), b.astype(np.float32)
        measure(impl, np.matmul, af, bf, ops=ops)
    elif impl == "onnxruntime":
        sess = _ort_session(_matmul_integer(b))
        benchmark.extra_info["max_abs_error"] = _max_error(sess.run(None, {"A": a})[0], a, b)
        measure(impl, lambda: sess.run(None, {"A": a}), ops=ops)
    else:
        torch = pytest.importorskip("torch")
        at, bt = torch.from_numpy(a.astype(np.int8)), torch.from_numpy(b)
        try:
            torch._int_mm(at, bt)
        except RuntimeError as e:
            pytest.skip(f"torch._int_mm does not take this shape: {e}")
        measure(impl, torch._int_mm, at, bt, ops=ops)


@pytest.mark.parametrize("impl", ["qk", "numpy", "onnxruntime", "torch"])
def test_quantized_linear(measure, benchmark, case, impl):
    (m, k, n), a, b, x, w_scale = case
    benchmark.group = f"quantized_linear {m}x{k}x{n}"
    ops = 2 * m * k * n
    bias = np.zeros(n, np.float32)
    if impl == "qk":
        w = qk.pack_int8_weight(b)
        out = np.empty((m, n), np.float32)
        measure(impl, lambda: qk.quantized_linear(a, w, x_scale=0.02, x_zero_point=128, w_scale=w_scale, bias=bias,
                                                  relu=True, out=out), ops=ops)
    elif impl == "numpy":
        bf = b.astype(np.float32) * w_scale
        measure(impl, lambda: np.maximum(x @ bf + bias, 0), ops=ops)
    elif impl == "onnxruntime":
        # MatMulIntegerToFloat + Relu: the same uint8 x int8 -> float32 epilogue.
        sess = _ort_session(_matmul_integer_to_float(b, w_scale, 0.02, 128, bias))
        measure(impl, lambda: sess.run(None, {"A": a}), ops=ops)
    else:
        # torch's static quantized linear (ReLU fused) takes a quantized tensor and returns one
        # requantized to quint8: the closest PyTorch has to this kernel.
        torch = pytest.importorskip("torch")
        wq = torch.quantize_per_channel(torch.from_numpy(b.T.astype(np.float32) * w_scale[:, None]),
                                        torch.from_numpy(w_scale.astype(np.float64)), torch.zeros(n, dtype=torch.int64),
                                        0, torch.qint8)
        packed = torch.ops.quantized.linear_prepack(wq, torch.from_numpy(bias))
        xq = torch.quantize_per_tensor(torch.from_numpy(a.astype(np.float32) * 0.02 - 0.02 * 128), 0.02, 128, torch.quint8)
        measure(impl, torch.ops.quantized.linear_relu, xq, packed, 1.0, 0, ops=ops)


@pytest.mark.parametrize("impl", ["qk", "numpy", "onnxruntime", "torch"])
def test_dynamic_linear(measure, benchmark, case, impl):
    (m, k, n), _, b, x, w_scale = case
    benchmark.group = f"dynamic_linear {m}x{k}x{n}"
    ops = 2 * m * k * n
    if impl == "qk":
        w = qk.pack_int8_weight(b)
        measure(impl, qk.dynamic_linear, x, w, w_scale, ops=ops)
    elif impl == "numpy":
        bf = b.astype(np.float32) * w_scale
        measure(impl, np.matmul, x, bf, ops=ops)
    elif impl == "onnxruntime":
        sess = _ort_session(_dynamic_quantize_matmul(b, w_scale))
        measure(impl, lambda: sess.run(None, {"A": x}), ops=ops)
    else:
        torch = pytest.importorskip("torch")
        linear = torch.nn.Linear(k, n, bias=False)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy((b.astype(np.float32) * w_scale).T))
        qlinear = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(linear), {torch.nn.Linear},
                                                         dtype=torch.qint8)
        xt = torch.from_numpy(x)
        with torch.no_grad():
            measure(impl, qlinear, xt, ops=ops)
