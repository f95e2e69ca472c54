"""quantize, dequantize and fake_quantize, per-channel (axis 0) and
per-tensor: qk vs the NumPy expression of the same maths (the FP32 baseline)
vs PyTorch and ONNX Runtime (QuantizeLinear / DequantizeLinear), with
np.copyto of the float32 tensor as the memory-bandwidth yardstick."""

import numpy as np
import pytest

import qk
from _suite import onnx_graph, ort_session, sizes

SHAPES = sizes({"4096x4096": (4096, 4096), "256x1024": (256, 1024)}, {"4096x4096": (4096, 4096)})
IMPLS = ["qk", "numpy", "torch", "onnxruntime", "copy"]


@pytest.fixture(scope="module", params=[(g, s) for g in ("per-channel", "per-tensor") for s in SHAPES],
                ids=lambda p: f"{p[0]}-{p[1]}")
def case(request):
    """(group suffix, x, scale, zero_point, axis, q): scale/zp are 1-D along axis 0 or scalars."""
    granularity, name = request.param
    rows, cols = SHAPES[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, cols), dtype=np.float32)
    if granularity == "per-channel":
        scale, zp, axis = (np.abs(x).max(axis=1) / 127).astype(np.float32), np.zeros(rows, np.int32), 0
    else:
        scale, zp, axis = np.float32(np.abs(x).max() / 127), 0, None
    q = qk.quantize(x, scale, zp, axis=axis)
    return f"{granularity} {name}", x, scale, zp, axis, q


def _bcast(scale, zp, axis):
    if axis is None:
        return np.float32(scale), np.float32(zp)
    return scale[:, None], np.asarray(zp)[:, None].astype(np.float32)


def numpy_quantize(x, scale, zp, axis):
    s, z = _bcast(scale, zp, axis)
    v = np.clip(np.rint(x / s) + z, -128, 127)
    return np.where(np.isnan(x), z, v).astype(np.int8)


def numpy_dequantize(q, scale, zp, axis):
    s, z = _bcast(scale, zp, axis)
    return (q.astype(np.float32) - z) * s


def numpy_fake_quantize(x, scale, zp, axis):
    return numpy_dequantize(numpy_quantize(x, scale, zp, axis), scale, zp, axis)


def _torch_quantize(torch, x, scale, zp, axis):
    xt = torch.from_numpy(x)
    if axis is None:
        return lambda: torch.quantize_per_tensor(xt, float(scale), int(zp), torch.qint8)
    st, zt = torch.from_numpy(scale.astype(np.float64)), torch.from_numpy(zp.astype(np.int64))
    return lambda: torch.quantize_per_channel(xt, st, zt, axis, torch.qint8)


def _ort_qdq(ops, x, scale, zp, axis):
    """An ONNX Runtime session running `ops` (QuantizeLinear and/or DequantizeLinear) in sequence."""
    from onnx import TensorProto, helper

    inits = {"s": np.asarray(scale, np.float32), "z": np.asarray(zp, np.int8)}
    attrs = {} if axis is None else {"axis": axis}
    names = ["in"] + [f"t{i}" for i in range(len(ops))]
    nodes = [helper.make_node(op, [names[i], "s", "z"], [names[i + 1]], **attrs) for i, op in enumerate(ops)]
    in_type = TensorProto.INT8 if ops[0] == "DequantizeLinear" else TensorProto.FLOAT
    out_type = TensorProto.INT8 if ops[-1] == "QuantizeLinear" else TensorProto.FLOAT
    return ort_session(onnx_graph(nodes, [("in", in_type, list(x.shape))], [(names[-1], out_type, list(x.shape))],
                                  inits))


# --- quantize -----------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
def test_quantize(measure, benchmark, case, impl):
    name, x, scale, zp, axis, _ = case
    benchmark.group = f"quantize {name}"
    traffic = x.nbytes + x.size
    if impl == "qk":
        out = np.empty(x.shape, np.int8)
        measure(impl, lambda: qk.quantize(x, scale, zp, axis=axis, out=out), bytes=traffic)
    elif impl == "numpy":
        measure(impl, numpy_quantize, x, scale, zp, axis, bytes=traffic)
    elif impl == "torch":
        measure(impl, _torch_quantize(pytest.importorskip("torch"), x, scale, zp, axis), bytes=traffic)
    elif impl == "onnxruntime":
        sess = _ort_qdq(["QuantizeLinear"], x, scale, zp, axis)
        measure(impl, lambda: sess.run(None, {"in": x}), bytes=traffic)
    else:
        dst = np.empty_like(x)
        measure(impl, np.copyto, dst, x, bytes=2 * x.nbytes)


# --- dequantize ---------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
def test_dequantize(measure, benchmark, case, impl):
    name, x, scale, zp, axis, q = case
    benchmark.group = f"dequantize {name}"
    traffic = q.nbytes + x.nbytes
    if impl == "qk":
        out = np.empty(x.shape, np.float32)
        measure(impl, lambda: qk.dequantize(q, scale, zp, axis=axis, out=out), bytes=traffic)
    elif impl == "numpy":
        measure(impl, numpy_dequantize, q, scale, zp, axis, bytes=traffic)
    elif impl == "torch":
        qt = _torch_quantize(pytest.importorskip("torch"), x, scale, zp, axis)()
        measure(impl, qt.dequantize, bytes=traffic)
    elif impl == "onnxruntime":
        sess = _ort_qdq(["DequantizeLinear"], x, scale, zp, axis)
        measure(impl, lambda: sess.run(None, {"in": q}), bytes=traffic)
    else:
        dst = np.empty_like(x)
        measure(impl, np.copyto, dst, x, bytes=2 * x.nbytes)


# --- fake_quantize ------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
def test_fake_quantize(measure, benchmark, case, impl):
    name, x, scale, zp, axis, _ = case
    benchmark.group = f"fake_quantize {name}"
    traffic = 2 * x.nbytes
    if impl == "qk":
        out = np.empty_like(x)
        measure(impl, lambda: qk.fake_quantize(x, scale, zp, axis=axis, out=out), bytes=traffic)
    elif impl == "numpy":
        measure(impl, numpy_fake_quantize, x, scale, zp, axis, bytes=traffic)
    elif impl == "torch":
        torch = pytest.importorskip("torch")
        xt = torch.from_numpy(x)
        if axis is None:
            fn = lambda: torch.fake_quantize_per_tensor_affine(xt, float(scale), int(zp), -128, 127)  # noqa: E731
        else:
            st, zt = torch.from_numpy(scale), torch.from_numpy(zp)
            fn = lambda: torch.fake_quantize_per_channel_affine(xt, st, zt, axis, -128, 127)  # noqa: E731
        measure(impl, fn, bytes=traffic)
    elif impl == "onnxruntime":
        sess = _ort_qdq(["QuantizeLinear", "DequantizeLinear"], x, scale, zp, axis)
        measure(impl, lambda: sess.run(None, {"in": x}), bytes=traffic)
    else:
        dst = np.empty_like(x)
        measure(impl, np.copyto, dst, x, bytes=2 * x.nbytes)
