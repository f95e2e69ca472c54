"""qk.ptq on the digits models: accuracy, equivalence with a float simulation, helpers, save/load, errors."""

import json

import numpy as np
import pytest

import qk
from qk import nn, ptq
from qk.quant import INT8_STATIC, QConfig, QScheme, UINT8_ACTIVATION

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def mlp():
    return nn.models.train_reference("mlp", seed=0)[0], nn.load_digits()


@pytest.fixture(scope="module")
def cnn():
    return nn.models.train_reference("cnn", seed=0, epochs=8)[0], nn.load_digits(images=True)


def layer_nodes(q):
    """{node name: node} of a quantized graph's integer layers (QuantizedLinear / QuantizedConv)."""
    from qk.quantization.graph import node_cores

    return {n.name: n for n in q.graph.nodes if node_cores(n)}


def static(model, data, qconfig=INT8_STATIC, **options):
    prepared = ptq.prepare(model, qconfig, **options)
    ptq.calibrate(prepared, data.calibration, progress=False)
    return ptq.convert(prepared)


@pytest.mark.parametrize("which", ["mlp", "cnn"])
def test_int8_static_within_half_a_point(which, request):
    model, data = request.getfixturevalue(which)
    fp32 = nn.evaluate(model, data.test)
    q = static(model, data)
    assert isinstance(q, qk.graph.GraphModule) and "0" in layer_nodes(q)  # node names are module names
    assert nn.evaluate(q, data.test) >= fp32 - 0.005
    assert ptq.model_size(q) < ptq.model_size(model) / 3


def test_converted_layers_equal_the_float_simulation(cnn):
    """Each converted layer equals dequantized weights and activations through
    NumPy to within one output quantum of float rounding."""
    model, data = cnn
    prepared = ptq.prepare(model)
    ptq.calibrate(prepared, data.calibration, progress=False)
    q = ptq.convert(prepared)
    x = data.test[0][:32]
    from qk.quantization.graph import without_chains

    floats = without_chains(q)  # every value between layers in float, as the layers see them
    for name, node in layer_nodes(floats).items():
        core = node.attrs["core"] if "core" in node.attrs else node.attrs["cores"][0]
        got = floats.run({"input": x}, [node.inputs[0], node.outputs[0]])
        xin, y = got[node.inputs[0]], got[node.outputs[0]]
        x_deq = (core.prepare_input(xin).astype(np.float32) - core.x_zero_point) * core.x_scale
        w_deq = core.weight_q.astype(np.float32) * core.w_scale[:, None]
        if node.op_type == "QuantizedLinear":
            sim = x_deq @ w_deq.T + core.bias
        else:
            w4 = w_deq.reshape((-1, xin.shape[1]) + tuple(node.attrs["kernel"]))
            sim = nn.functional.conv2d(nn.Tensor(x_deq), nn.Tensor(w4), nn.Tensor(core.bias),
                                       tuple(node.attrs["strides"]), tuple(node.attrs["pads"][:2])).data
        if core.relu:
            sim = np.maximum(sim, 0)
        np.testing.assert_allclose(y, sim, rtol=1e-4, atol=1e-4 * np.abs(sim).max())


def test_dynamic_weight_only_fp16_and_gptq(mlp):
    model, data = mlp
    fp32 = nn.evaluate(model, data.test)
    assert nn.evaluate(ptq.quantize_dynamic(model), data.test) >= fp32 - 0.005
    assert nn.evaluate(ptq.quantize_fp16(model), data.test) >= fp32 - 0.003
    w8 = ptq.quantize_weight_only(model, bits=8)
    assert nn.evaluate(w8, data.test) >= fp32 - 0.005
    w4 = ptq.quantize_weight_only(model, bits=4, group_size=16)
    stored = layer_nodes(w4)["0"].attrs["core"].stored
    assert stored.dtype == np.uint8 and stored.shape == (256, 32)  # two per byte
    assert nn.evaluate(w4, data.test) >= fp32 - 0.02
    int2 = QConfig(weight=QScheme(2, signed=True, symmetric=True, axis=0), activation=UINT8_ACTIVATION)
    nearest = nn.evaluate(static(model, data, int2), data.test)
    gptq = nn.evaluate(static(model, data, int2, rounding="gptq"), data.test)
    assert gptq >= nearest
    corrected = nn.evaluate(static(model, data, int2, bias_correction=True), data.test)
    assert corrected > 0.5


def test_int4_pack_round_trip():
    from qk.ptq.layers import pack_int4, unpack_int4

    q = np.random.default_rng(0).integers(-8, 8, (5, 7)).astype(np.int8)
    np.testing.assert_array_equal(unpack_int4(pack_int4(q), 7), q)


def test_sensitivity_mixed_precision_and_layer_report(mlp):
    model, data = mlp
    x, y = data.test

    def accuracy(m):
        return nn.evaluate(m, (x, y))

    int2 = QConfig(weight=QScheme(2, signed=True, symmetric=True, axis=0), activation=UINT8_ACTIVATION)
    rows = ptq.sensitivity(model, data.calibration, accuracy, int2)
    assert [r["layer"] for r in rows] and sorted(r["layer"] for r in rows) == ["0", "2", "4"]
    assert rows[0]["drop"] >= rows[-1]["drop"]
    qmodel, report = ptq.auto_mixed_precision(model, data.calibration, accuracy, int2, max_drop=0.005)
    assert report["drop"] <= 0.005 or len(report["kept"]) == 3
    for name in report["kept"]:
        assert name not in layer_nodes(qmodel)  # kept in float: still a Gemm
        assert any(n.name == name and n.op_type == "Gemm" for n in qmodel.graph.nodes)
    layers = ptq.compare_layers(model, static(model, data), x[:64])
    assert [r["layer"] for r in layers] == ["0", "2", "4"]
    assert all(r["sqnr_db"] > 25 and r["cosine"] > 0.99 for r in layers)


def test_save_and_load_without_the_fp32_model(cnn, tmp_path):
    model, data = cnn
    q = static(model, data)
    path = tmp_path / "q.npz"
    ptq.save(q, path)
    loaded = ptq.load(path)
    x = data.test[0][:50]
    np.testing.assert_array_equal(nn.predict(loaded, x), nn.predict(q, x))
    with pytest.raises(ValueError, match="path"):
        model.save(tmp_path / "plain.npz")
        ptq.load(tmp_path / "plain.npz")
    header = {"format": "qk.ptq/1", "model": {"type": "Sequential", "children": []}}  # what qk < 0.3 wrote
    np.savez(tmp_path / "old.npz", __qk_model__=np.frombuffer(json.dumps(header).encode(), np.uint8))
    with pytest.raises(ValueError, match="quantize the model again"):
        ptq.load(tmp_path / "old.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="path"):
        ptq.load(tmp_path / "junk.npz")


@pytest.mark.parametrize("bits", [2, 3, 4])
@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_low_bit_weights_stored_two_per_byte(mlp, tmp_path, bits, mode):
    model, data = mlp
    weight = QScheme(bits, signed=True, symmetric=True, axis=0)
    q8 = static(model, data) if mode == "static" else ptq.quantize_dynamic(model)
    if mode == "static":
        q = static(model, data, QConfig(weight=weight, activation=UINT8_ACTIVATION))
    else:
        q = ptq.quantize_dynamic(model, QConfig(weight=weight, activation=UINT8_ACTIVATION, mode="dynamic"))
    weights8 = sum(n.attrs["core"].weight_q.nbytes for n in layer_nodes(q8).values())
    # 64-256-128-10: every K is even, so packing halves the weight bytes exactly.
    assert ptq.model_size(q8) - ptq.model_size(q) == weights8 // 2
    ptq.save(q, tmp_path / "q.npz")
    loaded = ptq.load(tmp_path / "q.npz")
    x = data.test[0][:50]
    np.testing.assert_array_equal(nn.predict(loaded, x), nn.predict(q, x))
    for a, b in zip(layer_nodes(q).values(), layer_nodes(loaded).values()):
        np.testing.assert_array_equal(a.attrs["core"].weight_q, b.attrs["core"].weight_q)


def test_bad_use_gives_clear_errors(mlp):
    model, data = mlp
    prepared = ptq.prepare(model)
    with pytest.raises(ValueError, match="calibrat"):
        ptq.convert(prepared)
    with pytest.raises(ValueError, match="data"):
        ptq.calibrate(prepared, np.zeros((0, 64), np.float32), progress=False)
    with pytest.raises(TypeError, match="prepared"):
        ptq.convert(model)
    with pytest.raises(TypeError, match="qconfig"):
        ptq.prepare(model, "int8")
    with pytest.raises(ValueError, match="layers"):
        ptq.prepare(model, layers={"nope": None})
    with pytest.raises(ValueError, match="rounding"):
        ptq.prepare(model, rounding="up")

    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(np.ones(64))

        def forward(self, x):
            return x * self.scale

    with_custom = nn.Sequential(Custom(), model)
    with pytest.raises(ValueError, match="example_inputs"):  # not a standard layer: traced by running it
        ptq.prepare(with_custom, unsupported="ignore")
    x = data.calibration[0][:4]
    with pytest.warns(UserWarning, match="float32"):
        prepared = ptq.prepare(with_custom, example_inputs=x)
    assert "1.0" in prepared.quant_plan  # the model's own layers are still found, under their module names
    with pytest.raises(ValueError, match="model"):
        ptq.prepare(with_custom, unsupported="error", example_inputs=x)


@pytest.mark.parametrize("signed", [False, True])
def test_cores_call_the_kernels_directly_with_the_wrappers_results(signed):
    """StaticInt8Core / DynamicInt8Core skip the public wrappers' checks for
    inputs the kernel takes in one call; the results stay the wrappers' bits,
    other inputs still go through the wrappers (and their errors)."""
    from qk.ptq.layers import DynamicInt8Core, StaticInt8Core

    rng = np.random.default_rng(5)
    w = rng.integers(-127, 128, (24, 40)).astype(np.int8)
    w_scale = rng.uniform(0.01, 0.1, 24).astype(np.float32)
    bias = rng.standard_normal(24).astype(np.float32)
    x_range = (-128, 127) if signed else (0, 255)
    core = StaticInt8Core(w, w_scale, bias, 0.05, 0 if signed else 7, True, 8, x_range)
    x = rng.standard_normal((9, 40)).astype(np.float32)
    xq = core.prepare_input(x)
    want = qk.quantized_linear(xq, core.packed, x_scale=core.x_scale, x_zero_point=core.x_zero_point,
                               w_scale=w_scale, bias=bias, relu=True)
    assert np.array_equal(core.matmul(xq), want)
    assert np.array_equal(core.matmul(np.asfortranarray(xq)), want)  # not C-contiguous: the wrapper
    dyn = DynamicInt8Core(w, w_scale, bias, False)
    assert np.array_equal(dyn.matmul(x), qk.dynamic_linear(x, dyn.packed, w_scale, bias))
    x[2, 3] = np.nan
    with pytest.raises(ValueError, match="x: contains NaN or infinity"):
        dyn.matmul(x)
