"""QAT on graphs: FakeQuant nodes on layer inputs and weights, STE/LSQ
training with qk.nn.fit, and convert to the integer graph PTQ gives."""

from __future__ import annotations

import numpy as np
import pytest

import qk
from qk import nn
from qk.quant import UINT8_ACTIVATION, QConfig, QScheme

from onnx_zoo import ort_quantized_session


@pytest.fixture(scope="module")
def digits(digits_cnn_graph):
    _, gm, data = digits_cnn_graph
    return gm, data


def _acc(m, data):
    x, y = data.test
    return float((m.run({"input": x})["output"].argmax(1) == y).mean())


def _cfg(bits):
    return QConfig(weight=QScheme(bits, signed=True, symmetric=True, axis=0), activation=UINT8_ACTIVATION,
                   mode="static")


def test_untrained_qat_converts_to_exactly_the_ptq_graph(digits):
    gm, data = digits
    prepared = qk.ptq.calibrate(qk.ptq.prepare(gm), data.train[0][:200], progress=False)
    qat = qk.qat.freeze_observers(qk.qat.from_ptq(prepared))
    assert qat.graph.op_histogram()["FakeQuant"] == 6  # 3 inputs + 3 weights
    assert len(qat.parameters()) == 6  # the (folded) weights and biases train
    a = qk.ptq.convert(prepared).run({"input": data.test[0]})["output"]
    b = qk.qat.convert(qat).run({"input": data.test[0]})["output"]
    assert np.array_equal(a, b)


def test_qat_recovers_two_bit_weights(digits):
    gm, data = digits
    prepared = qk.ptq.calibrate(qk.ptq.prepare(gm, _cfg(2)), data.train[0][:200], progress=False)
    ptq_acc = _acc(qk.ptq.convert(prepared), data)
    qat = qk.qat.from_ptq(prepared)
    nn.manual_seed(0)
    nn.fit(qat, nn.cross_entropy, nn.Adam(qat.parameters(), lr=2e-3), data.train, epochs=4, batch_size=64,
           seed=0, after_step=qk.qat.freeze_observers_after(40), progress=False)
    qat_acc = _acc(qk.qat.convert(qat), data)
    assert qat_acc > ptq_acc + 0.05 and qat_acc > _acc(gm, data) - 0.03, (ptq_acc, qat_acc)


def test_lsq_scales_are_parameters_and_learn(digits):
    gm, data = digits
    prepared = qk.ptq.calibrate(qk.ptq.prepare(gm, _cfg(4)), data.train[0][:200], progress=False)
    qat = qk.qat.from_ptq(prepared, lsq=True)
    names = [n for n, _ in qat.named_parameters()]
    assert sum(n.endswith(".scale") for n in names) == 6
    before = {n: p.data.copy() for n, p in qat.named_parameters() if n.endswith(".scale")}
    nn.fit(qat, nn.cross_entropy, nn.Adam(qat.parameters(), lr=1e-3), data.train, epochs=1, batch_size=64,
           progress=False)
    after = {n: p.data for n, p in qat.named_parameters() if n.endswith(".scale")}
    assert any(not np.array_equal(before[n], after[n]) for n in before)
    assert _acc(qk.qat.convert(qat), data) > 0.9


def _digits_onnx_cnn():
    """An untrained ONNX CNN for (N, 1, 8, 8) digits, built with onnx.helper."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def w(name, *shape):
        return numpy_helper.from_array((rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))).astype(np.float32),
                                       name)

    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], group=2),
             helper.make_node("Relu", ["c2"], ["r2"]), helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]), helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1)]
    inits = [w("w1", 16, 1, 3, 3), numpy_helper.from_array(np.zeros(16, np.float32), "b1"), w("w2", 32, 8, 3, 3),
             numpy_helper.from_array(np.zeros(32, np.float32), "b2"), w("w3", 10, 32),
             numpy_helper.from_array(np.zeros(10, np.float32), "b3")]
    g = helper.make_graph(nodes, "digits", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def test_imported_onnx_cnn_trains_then_qat_recovers_int4(tmp_path):
    """An ONNX model imported untrained, trained in FP32 with qk.nn.fit, then
    4-bit QAT, converted, exported as QDQ and run by ONNX Runtime."""
    import qk.onnx

    data = nn.load_digits(images=True)
    x, y = data.train
    fp = qk.onnx.load(_digits_onnx_cnn())
    nn.fit(fp, nn.cross_entropy, nn.Adam(fp.parameters(), lr=1e-2), data.train, epochs=12, batch_size=64,
           progress=False)
    xt, yt = data.test
    fp_acc = float((fp.run({"x": xt})["y"].argmax(1) == yt).mean())
    assert fp_acc > 0.9
    prepared = qk.ptq.calibrate(qk.ptq.prepare(fp, _cfg(4)), x[:200], progress=False)
    qat = qk.qat.from_ptq(prepared)
    nn.fit(qat, nn.cross_entropy, nn.Adam(qat.parameters(), lr=2e-3), data.train, epochs=3, batch_size=64,
           after_step=qk.qat.freeze_observers_after(30), progress=False)
    qm = qk.qat.convert(qat)
    assert "FakeQuant" not in qm.graph.op_histogram() and qm.graph.op_histogram()["QuantizedConv"] == 2
    qat_acc = float((qm.run({"x": xt})["y"].argmax(1) == yt).mean())
    assert qat_acc >= fp_acc - 0.01, (fp_acc, qat_acc)
    pytest.importorskip("onnxruntime")
    qk.onnx.export(qm, tmp_path / "q.onnx")
    theirs = ort_quantized_session(tmp_path / "q.onnx").run(None, {"x": xt})[0]
    assert (theirs.argmax(1) == qm.run({"x": xt})["y"].argmax(1)).mean() > 0.98


def test_qat_with_quantized_adds_converts_to_the_ptq_graph(tmp_path):
    """With the residual Adds quantized (layers={"Add": ...}), QAT fake-quantizes
    both inputs and the (ReLU'd) output of each Add, trains, and converts to
    the integer graph PTQ builds: the same QuantizedAdds, bit for bit untrained."""
    from onnx_zoo import export_seeded_cnn, resnet

    shape = export_seeded_cnn(resnet, tmp_path / "m.onnx")
    fp = qk.onnx.load(tmp_path / "m.onnx")
    rng = np.random.default_rng(0)
    calib = [rng.standard_normal((4,) + shape[1:]).astype(np.float32) for _ in range(3)]
    layers = {"Add": qk.quant.INT8_STATIC}
    prepared = qk.ptq.calibrate(qk.ptq.prepare(fp, layers=layers), calib, progress=False)
    ptq = qk.ptq.convert(prepared)
    qat = qk.qat.freeze_observers(qk.qat.from_ptq(prepared))
    assert qat.graph.op_histogram()["Add"] == ptq.graph.op_histogram()["QuantizedAdd"] == 3
    converted = qk.qat.convert(qat)
    assert converted.graph.op_histogram() == ptq.graph.op_histogram()
    x = rng.standard_normal((2,) + shape[1:]).astype(np.float32)
    assert np.array_equal(converted.run({"x": x})["out"], ptq.run({"x": x})["out"])
    # trained from scratch (qat.prepare), the Adds still convert to QuantizedAdd
    fresh = qk.qat.prepare(fp, layers=layers)
    qk.qat.calibrate(fresh, calib)
    assert qk.qat.convert(fresh).graph.op_histogram()["QuantizedAdd"] == 3
