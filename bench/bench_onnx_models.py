"""Imported FP32 models: the ResNet-style and MobileNet-style CNNs at batch 1
and 32 and the MiniLM encoder at batch 8 x 128 tokens, run by qk (qk.onnx.load
+ run, NumPy underneath), ONNX Runtime (the same file) and torch (the model
it was exported from), side by side at the pinned thread count. FP32 has no
target: these rows say where qk's graph executor stands before quantization.
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

    return model, onnx.load(exports["torchscript"]), tok


@pytest.mark.parametrize("impl", IMPLS)
def test_imported_minilm(measure, benchmark, minilm, impl):
    model, proto, tok = minilm
    batch, seq = (2, 32) if quick() else (8, 128)
    benchmark.group = f"onnx minilm {batch}x{seq} tokens"
    rng = np.random.default_rng(0)
    feeds = {"input_ids": rng.integers(1000, 20000, (batch, seq)).astype(np.int64),
             "attention_mask": np.ones((batch, seq), np.int64)}
    feeds["attention_mask"][1, seq // 2:] = 0  # one padded sentence

    class Encoder:
        def __call__(self, ids, mask):
            return model(input_ids=ids, attention_mask=mask).last_hidden_state

    run = _runners(impl, Encoder(), proto, feeds)
    run()
    measure(impl, run)
