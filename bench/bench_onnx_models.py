"""Imported models: the ResNet-style and MobileNet-style CNNs at batch 1
and 32 and the MiniLM encoder at batch 8 x 128 tokens, run by qk (qk.onnx.load
+ run, NumPy underneath), ONNX Runtime (the same file) and torch (the model
it was exported from), side by side at the pinned thread count. FP32 has no
target: these rows say where qk's graph executor stands before quantization.
The MiniLM INT8 rows put qk's dynamic and static models beside ORT's
quantize_dynamic of the same file. The static INT8 rows (64 x 64 images) put qk's converted model (with the
residual Adds and the global pool in float, and quantized to uint8 on request) beside qk's FP32
model and ONNX Runtime's FP32 and own static QDQ models of the same net.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import onnx_zoo  # noqa: E402

import qk.onnx  # noqa: E402
from _suite import THREADS, ort_session, quick  # noqa: E402

IMPLS = ["qk", "onnxruntime", "torch"]
CNN_BATCHES = [1, 8] if quick() else [1, 32]


@pytest.fixture(scope="module", params=["resnet", "mobilenet"])
def cnn(request, tmp_path_factory):
    torch = onnx_zoo.torch_or_skip()
    torch.manual_seed(0)
    model, shape = getattr(onnx_zoo, request.param)()
    onnx_zoo.randomize_bn(model, 1)
    path = tmp_path_factory.mktemp("cnn") / f"{request.param}.onnx"
    proto = onnx_zoo.export(model, (torch.randn(*shape),), path, False, ["x"], None)
    return request.param, model.eval(), proto, shape


def _runners(impl, torch_model, proto, feeds):
    if impl == "qk":
        qm = qk.onnx.load(proto)
        return lambda: qm.run(feeds)
    if impl == "onnxruntime":
        sess = ort_session(proto)
        return lambda: sess.run(None, feeds)
    torch = onnx_zoo.torch_or_skip()
    torch.set_num_threads(THREADS)
    args = [torch.from_numpy(v) for v in feeds.values()]

    def run():
        with torch.no_grad():
            return torch_model(*args)
    return run


@pytest.mark.parametrize("batch", CNN_BATCHES)
@pytest.mark.parametrize("impl", IMPLS)
def test_imported_cnn(measure, benchmark, cnn, batch, impl):
    name, model, proto, shape = cnn
    benchmark.group = f"onnx {name} batch {batch}"
    x = np.random.default_rng(0).standard_normal((batch,) + shape[1:]).astype(np.float32)
    run = _runners(impl, model, proto, {"x": x})
    run()
    measure(impl, run)


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    exports, tok = onnx_zoo.export_minilm(str(tmp_path_factory.mktemp("minilm")))
    model, _ = onnx_zoo.minilm()
    import onnx

    return model, onnx.load(exports["torchscript"]), tok, exports["torchscript"]


@pytest.mark.parametrize("impl", IMPLS)
def test_imported_minilm(measure, benchmark, minilm, impl):
    model, proto, tok, _ = minilm
    batch, seq = (2, 32) if quick() else (8, 128)
    benchmark.group = f"onnx minilm {batch}x{seq} tokens"
    feeds = _minilm_feeds(batch, seq)

    class Encoder:
        def __call__(self, ids, mask):
            return model(input_ids=ids, attention_mask=mask).last_hidden_state

    run = _runners(impl, Encoder(), proto, feeds)
    run()
    measure(impl, run)


def _minilm_feeds(batch, seq):
    rng = np.random.default_rng(0)
    feeds = {"input_ids": rng.integers(1000, 20000, (batch, seq)).astype(np.int64),
             "attention_mask": np.ones((batch, seq), np.int64)}
    feeds["attention_mask"][1, seq // 2:] = 0  # one padded sentence
    return feeds


MINILM_INT8_IMPLS = ["qk int8 dynamic", "qk int8 static", "qk int8 static + int8 attention", "onnxruntime int8 dynamic"]


@pytest.fixture(scope="module")
def minilm_int8(minilm, tmp_path_factory):
    """qk's dynamic and static INT8 MiniLM (static: calibrated on padded batches of
    real sentences; "+ int8 attention": its QK^T and PV MatMuls too,
    activation_matmul=True) and ORT's quantize_dynamic (per-channel int8) of the same file."""
    ort_q = pytest.importorskip("onnxruntime.quantization")
    _, proto, tok, path = minilm
    fp = qk.onnx.load(proto)
    calib = [onnx_zoo.token_feeds(tok, onnx_zoo.ENGLISH[i:i + 8]) for i in range(0, 32, 8)]
    static = qk.ptq.convert(qk.ptq.calibrate(qk.ptq.prepare(fp), calib, progress=False))
    attention = qk.ptq.convert(qk.ptq.calibrate(qk.ptq.prepare(fp, activation_matmul=True), calib, progress=False))
    out = tmp_path_factory.mktemp("minilm_int8") / "dynamic.onnx"
    ort_q.quantize_dynamic(path, str(out), per_channel=True, weight_type=ort_q.QuantType.QInt8)
    import onnx

    sess = ort_session(onnx.load(str(out)))
    return {"qk int8 dynamic": qk.ptq.quantize_dynamic(fp).run, "qk int8 static": static.run,
            "qk int8 static + int8 attention": attention.run,
            "onnxruntime int8 dynamic": lambda feeds: sess.run(None, feeds)}


@pytest.mark.parametrize("impl", MINILM_INT8_IMPLS)
def test_quantized_minilm(measure, benchmark, minilm_int8, impl):
    batch, seq = (2, 32) if quick() else (8, 128)
    benchmark.group = f"onnx minilm {batch}x{seq} tokens"  # beside the FP32 rows
    feeds = _minilm_feeds(batch, seq)
    run = minilm_int8[impl]
    run(feeds)
    measure(impl, run, feeds)


# --- static INT8 on 64 x 64 images -------------------------------------------------------------------

INT8_IMPLS = ["qk int8", "qk int8 uint8 add+pool", "qk fp32", "onnxruntime int8", "onnxruntime fp32"]


@pytest.fixture(scope="module", params=["resnet", "mobilenet"])
def cnn_int8(request, tmp_path_factory):
    """(name, {impl: model runner factory}) for a CNN at 64 x 64: qk's static INT8
    (qk.ptq on the imported graph, per-channel int8 weights, uint8 activations)
    and ORT's own static QDQ model of the same file (quantize_static, the same
    u8/s8 per-channel scheme, MinMax), both calibrated on the same 32 images."""
    torch = onnx_zoo.torch_or_skip()
    ort_q = pytest.importorskip("onnxruntime.quantization")
    torch.manual_seed(0)
    model, _ = getattr(onnx_zoo, request.param)()
    onnx_zoo.randomize_bn(model, 1)
    work = tmp_path_factory.mktemp("cnn_int8")
    path = work / f"{request.param}.onnx"
    proto = onnx_zoo.export(model, (torch.randn(2, 3, 64, 64),), path, False, ["x"], None)
    calib = np.random.default_rng(1).standard_normal((32, 3, 64, 64)).astype(np.float32)
    fp = qk.onnx.load(proto)
    qm = qk.ptq.convert(qk.ptq.calibrate(qk.ptq.prepare(fp), calib, progress=False))
    # the residual Adds and the global pool quantized too (uint8, inside the integer chains), as ORT's
    # quantizer does with the Adds by default
    pool = "GlobalAveragePool" if "GlobalAveragePool" in fp.graph.op_histogram() else "ReduceMean"
    layers = {"Add": qk.quant.INT8_STATIC, pool: qk.quant.INT8_STATIC}
    qm_add = qk.ptq.convert(qk.ptq.calibrate(qk.ptq.prepare(fp, layers=layers), calib, progress=False))

    class Reader(ort_q.CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"x": calib[i:i + 8]} for i in range(0, len(calib), 8)])

        def get_next(self):
            return next(self.batches, None)

    out = work / f"{request.param}.qdq.onnx"
    ort_q.quantize_static(str(path), str(out), Reader(), quant_format=ort_q.QuantFormat.QDQ, per_channel=True,
                          activation_type=ort_q.QuantType.QUInt8, weight_type=ort_q.QuantType.QInt8)
    import onnx

    ort_int8, ort_fp32 = ort_session(onnx.load(str(out))), ort_session(proto)
    return request.param, {
        "qk int8": lambda feeds: lambda: qm.run(feeds),
        "qk int8 uint8 add+pool": lambda feeds: lambda: qm_add.run(feeds),
        "qk fp32": lambda feeds: lambda: fp.run(feeds),
        "onnxruntime int8": lambda feeds: lambda: ort_int8.run(None, feeds),
        "onnxruntime fp32": lambda feeds: lambda: ort_fp32.run(None, feeds),
    }


@pytest.mark.parametrize("batch", CNN_BATCHES)
@pytest.mark.parametrize("impl", INT8_IMPLS)
def test_quantized_cnn(measure, benchmark, cnn_int8, batch, impl):
    name, runners = cnn_int8
    benchmark.group = f"int8 {name} 64x64 batch {batch}"
    x = np.random.default_rng(0).standard_normal((batch, 3, 64, 64)).astype(np.float32)
    run = runners[impl]({"x": x})
    run()
    measure(impl, run)
