"""Whole-model inference: the digits MLP and CNN (qk.nn.models reference
models) in FP32 (qk.nn on NumPy: the baseline row "numpy") vs the same model
converted by qk.ptq (INT8 static, INT8 dynamic, INT4 weight-only, FP16
weights), at batch 1 and 256; PyTorch (the same weights in an nn.Sequential,
FP32 and dynamic-quantized INT8) and ONNX Runtime (the same graph, FP32 and
onnxruntime.quantization's dynamic INT8) when installed.

Training the reference models takes a while, so their weights are cached in
QK_BENCH_CACHE (default ~/.cache/qk/bench). Quick mode trains one epoch:
the timings do not depend on how well the weights were trained.
"""

import os
from pathlib import Path

import numpy as np
import pytest

import qk
from qk import nn
from _suite import onnx_graph, ort_session, quick

BATCHES = [1, 256]
QK_IMPLS = {
    "qk int8 static": lambda m, calib: qk.ptq.convert(qk.ptq.calibrate(qk.ptq.prepare(m), calib, progress=False)),
    "qk int8 dynamic": lambda m, calib: qk.ptq.quantize_dynamic(m),
    "qk int4 weight-only": lambda m, calib: qk.ptq.quantize_weight_only(m, 4),
    "qk fp16": lambda m, calib: qk.ptq.quantize_fp16(m),
}
IMPLS = ["numpy", *QK_IMPLS, "torch", "torch int8 dynamic", "onnxruntime", "onnxruntime int8 dynamic"]


def _cache_dir() -> Path:
    return Path(os.environ.get("QK_BENCH_CACHE", Path.home() / ".cache" / "qk" / "bench"))


@pytest.fixture(scope="module", params=["mlp", "cnn"])
def reference(request):
    """(name, FP32 model in eval mode, digits split), weights cached on disk."""
    name = request.param
    spec = nn.models.REFERENCE[name]
    epochs = 1 if quick() else spec["epochs"]
    path = _cache_dir() / f"digits_{name}_seed0_{epochs}ep_qk{qk.__version__}.npz"
    model = spec["build"]()
    if path.exists():
        model.load(path)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        model, _ = nn.models.train_reference(name, seed=0, epochs=epochs)
        model.save(path)
    return name, model.eval(), nn.load_digits(images=spec["images"])


def torch_mirror(model):
    """A torch.nn.Sequential with the same layers and weights as a qk.nn.Sequential."""
    torch = pytest.importorskip("torch")
    layers = []
    for m in model:
        if isinstance(m, nn.Linear):
            t = torch.nn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
        elif isinstance(m, nn.Conv2d):
            t = torch.nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, bias=m.bias is not None)
        elif isinstance(m, nn.BatchNorm2d):
            t = torch.nn.BatchNorm2d(m.num_features, eps=m.eps)
        elif isinstance(m, nn.ReLU):
            t = torch.nn.ReLU()
        elif isinstance(m, nn.MaxPool2d):
            t = torch.nn.MaxPool2d(m.kernel_size, m.stride)
        elif isinstance(m, nn.Flatten):
            t = torch.nn.Flatten()
        else:
            pytest.skip(f"no torch mirror for {type(m).__name__}")
        state = {k: torch.from_numpy(np.asarray(v)) for k, v in m.state_dict().items()}
        t.load_state_dict(state, strict=False)
        layers.append(t)
    return torch.nn.Sequential(*layers).eval()


def onnx_mirror(model, input_shape):
    """The same model as an ONNX graph (Gemm, Conv, BatchNormalization, Relu, MaxPool, Flatten)."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    nodes, inits, x = [], {}, "x"
    for i, m in enumerate(model):
        y, p = f"h{i}", f"l{i}."
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            inits[p + "w"] = m.weight.data
            args = [x, p + "w"] + ([p + "b"] if m.bias is not None else [])
            if m.bias is not None:
                inits[p + "b"] = m.bias.data
            if isinstance(m, nn.Linear):
                nodes.append(helper.make_node("Gemm", args, [y], transB=1))
            else:
                nodes.append(helper.make_node("Conv", args, [y], strides=[m.stride] * 2, pads=[m.padding] * 4))
        elif isinstance(m, nn.BatchNorm2d):
            for k in ("weight", "bias", "running_mean", "running_var"):
                inits[p + k] = np.asarray(m.state_dict()[k], np.float32)
            nodes.append(helper.make_node("BatchNormalization", [x] + [p + k for k in ("weight", "bias", "running_mean",
                                                                                       "running_var")], [y], epsilon=m.eps))
        elif isinstance(m, nn.ReLU):
            nodes.append(helper.make_node("Relu", [x], [y]))
        elif isinstance(m, nn.MaxPool2d):
            k = m.kernel_size
            nodes.append(helper.make_node("MaxPool", [x], [y], kernel_shape=[k, k], strides=[m.stride or k] * 2))
        elif isinstance(m, nn.Flatten):
            nodes.append(helper.make_node("Flatten", [x], [y]))
        else:
            pytest.skip(f"no ONNX mirror for {type(m).__name__}")
        x = y
    return onnx_graph(nodes, [("x", TensorProto.FLOAT, [None, *input_shape[1:]])], [(x, TensorProto.FLOAT, None)],
                      {k: np.asarray(v, np.float32) for k, v in inits.items()})


def _ort_dynamic(model_proto, tmp_path):
    pytest.importorskip("onnxruntime")
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, dst = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    onnx.save(model_proto, src)
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    return onnx.load(dst)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("impl", IMPLS)
def test_model_inference(measure, benchmark, reference, batch, impl, tmp_path):
    name, model, data = reference
    benchmark.group = f"model {name} batch {batch}"
    x = data.test[0][:batch]
    if impl == "numpy":
        with nn.no_grad():
            measure(impl, lambda: model(nn.Tensor(x)))
    elif impl in QK_IMPLS:
        qmodel = QK_IMPLS[impl](model, data.calibration)
        with nn.no_grad():
            measure(impl, lambda: qmodel(nn.Tensor(x)))
    elif impl.startswith("torch"):
        torch = pytest.importorskip("torch")
        tmodel = torch_mirror(model)
        if impl == "torch int8 dynamic":
            tmodel = torch.ao.quantization.quantize_dynamic(tmodel, {torch.nn.Linear}, dtype=torch.qint8)
        xt = torch.from_numpy(x)
        with torch.inference_mode():
            measure(impl, tmodel, xt)
    else:
        proto = onnx_mirror(model, x.shape)
        if impl == "onnxruntime int8 dynamic":
            proto = _ort_dynamic(proto, tmp_path)
        sess = ort_session(proto)
        measure(impl, lambda: sess.run(None, {"x": x}))


def test_mirrors_agree(reference):
    """The peers run the same function: their FP32 outputs match qk.nn's."""
    name, model, data = reference
    x = data.test[0][:8]
    with nn.no_grad():
        want = model(nn.Tensor(x)).data
    torch = pytest.importorskip("torch")
    with torch.inference_mode():
        np.testing.assert_allclose(torch_mirror(model)(torch.from_numpy(x)).numpy(), want, rtol=1e-4, atol=1e-4)
    pytest.importorskip("onnxruntime")
    np.testing.assert_allclose(ort_session(onnx_mirror(model, x.shape)).run(None, {"x": x})[0], want, rtol=1e-4,
                               atol=1e-4)
