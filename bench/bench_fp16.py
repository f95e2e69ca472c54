"""FP32 <-> FP16 and FP32 <-> BF16 conversion: qk vs NumPy astype (FP16) or
the NumPy bit-manipulation expression (BF16, which NumPy lacks) vs PyTorch,
with np.copyto of the float32 tensor as the memory-bandwidth yardstick.

"qk" allocates its result like astype and torch do; "qk out=" writes into a
preallocated array like np.copyto does. ONNX Runtime runs a Cast node where
its Python API can feed and fetch the types (FP16; BF16 is skipped if not).
"""

import numpy as np
import pytest

import qk
from _suite import onnx_graph, ort_session, sizes

SHAPES = sizes({"4096x4096": (4096, 4096), "256x1024": (256, 1024)}, {"4096x4096": (4096, 4096)})
IMPLS = ["qk", "qk out=", "numpy", "torch", "onnxruntime", "copy"]


@pytest.fixture(scope="module", params=list(SHAPES))
def case(request):
    x = np.random.default_rng(0).standard_normal(SHAPES[request.param], dtype=np.float32)
    return request.param, x, x.astype(np.float16), qk.fp32_to_bf16(x)


def numpy_fp32_to_bf16(x):
    u = x.view(np.uint32)
    rounded = (u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
    nan = (u & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    return np.where(nan, (u >> np.uint32(16)) | np.uint32(0x40), rounded).astype(np.uint16)


def numpy_bf16_to_fp32(b):
    return (b.astype(np.uint32) << np.uint32(16)).view(np.float32)


def _ort_cast(src, onnx_from, onnx_to):
    """A session casting `src` (onnx.TensorProto type names) to `onnx_to`, run
    once here: skips if ORT cannot take these types from Python."""
    from onnx import TensorProto, helper

    onnx_from, onnx_to = getattr(TensorProto, onnx_from), getattr(TensorProto, onnx_to)
    node = helper.make_node("Cast", ["in"], ["out"], to=onnx_to)
    try:
        sess = ort_session(onnx_graph([node], [("in", onnx_from, list(src.shape))], [("out", onnx_to, list(src.shape))]))
        sess.run(None, {"in": src})
    except Exception as e:  # noqa: BLE001 - ORT raises several types for unsupported casts
        pytest.skip(f"ONNX Runtime cannot run this Cast from Python: {str(e)[:120]}")
    return lambda: sess.run(None, {"in": src})


def _run(measure, benchmark, group, impl, src, qk_fn, out_dtype, numpy_fn, torch_fn, x, onnx_types):
    benchmark.group = f"{group}"
    traffic = src.nbytes + src.size * np.dtype(out_dtype).itemsize
    if impl == "qk":
        measure(impl, qk_fn, src, bytes=traffic)
    elif impl == "qk out=":
        out = np.empty(src.shape, out_dtype)
        measure(impl, lambda: qk_fn(src, out=out), bytes=traffic)
    elif impl == "numpy":
        measure(impl, numpy_fn, src, bytes=traffic)
    elif impl == "torch":
        torch = pytest.importorskip("torch")
        measure(impl, torch_fn(torch), bytes=traffic)
    elif impl == "onnxruntime":
        pytest.importorskip("onnx")
        measure(impl, _ort_cast(src, *onnx_types), bytes=traffic)
    else:
        dst = np.empty_like(x)
        measure(impl, np.copyto, dst, x, bytes=2 * x.nbytes)


@pytest.mark.parametrize("impl", IMPLS)
def test_fp32_to_fp16(measure, benchmark, case, impl):
    name, x, h, _ = case
    _run(measure, benchmark, f"fp32->fp16 {name}", impl, x, qk.fp32_to_fp16, np.float16,
         lambda a: a.astype(np.float16), lambda torch: torch.from_numpy(x).half, x, ("FLOAT", "FLOAT16"))


@pytest.mark.parametrize("impl", IMPLS)
def test_fp16_to_fp32(measure, benchmark, case, impl):
    name, x, h, _ = case
    _run(measure, benchmark, f"fp16->fp32 {name}", impl, h, qk.fp16_to_fp32, np.float32,
         lambda a: a.astype(np.float32), lambda torch: torch.from_numpy(h).float, x, ("FLOAT16", "FLOAT"))


@pytest.mark.parametrize("impl", IMPLS)
def test_fp32_to_bf16(measure, benchmark, case, impl):
    name, x, _, b = case
    _run(measure, benchmark, f"fp32->bf16 {name}", impl, x, qk.fp32_to_bf16, np.uint16,
         numpy_fp32_to_bf16, lambda torch: torch.from_numpy(x).bfloat16, x, ("FLOAT", "BFLOAT16"))


@pytest.mark.parametrize("impl", IMPLS)
def test_bf16_to_fp32(measure, benchmark, case, impl):
    name, x, _, b = case
    _run(measure, benchmark, f"bf16->fp32 {name}", impl, b, qk.bf16_to_fp32, np.float32,
         numpy_bf16_to_fp32, lambda torch: torch.from_numpy(b).view(torch.bfloat16).float, x,
         ("BFLOAT16", "FLOAT"))
