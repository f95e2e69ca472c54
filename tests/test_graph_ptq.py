"""PTQ on graphs: a qk.nn model quantizes as its traced graph (read off the
Sequential, or run on an example: the same graph, the same bits),
imported CNNs and the MiniLM encoder quantize, the attention mask is never
quantized, and QDQ export runs in ONNX Runtime with the same results."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import qk
from qk import nn
from qk.graph import GraphModule, simplify, trace

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import qk.onnx  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402
from onnx_zoo import (SENTENCES, export, export_minilm, export_seeded_cnn, mobilenet,  # noqa: E402,F401
                      ort_int8_kernels_exact, ort_quantized_session, randomize_bn, resnet, token_feeds, torch_or_skip)


@pytest.fixture(scope="module")
def digits_cnn(digits_cnn_graph):
    return digits_cnn_graph


def test_a_qk_nn_model_quantizes_as_the_graph_traced_on_an_example(digits_cnn):
    model, gm, data = digits_cnn
    calib, xt = data.train[0][:200], data.test[0]
    seq = qk.ptq.convert(qk.ptq.calibrate(qk.ptq.prepare(model), calib, progress=False))
    prepared = qk.ptq.prepare(gm)
    assert len(prepared.observers) == 3  # the inputs of the two convs and the Gemm
    graph_q = qk.ptq.convert(qk.ptq.calibrate(prepared, calib, progress=False))
    # one integer chain, on uint8 from the first conv to the Gemm: conv -> pool -> conv -> pool -> flatten -> Gemm
    assert graph_q.graph.op_histogram() == {"QuantizedConv": 2, "QuantizedMaxPool": 2, "QuantizedFlatten": 1,
                                            "QuantizedLinear": 1}
    assert seq.graph.op_histogram() == graph_q.graph.op_histogram()
    np.testing.assert_array_equal(seq(nn.Tensor(xt)).data, graph_q.run({"input": xt})["output"])


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_qdq_export_runs_in_onnxruntime_with_the_same_results(digits_cnn, mode, tmp_path):
    _, gm, data = digits_cnn
    if mode == "static":
        qm = qk.ptq.convert(qk.ptq.calibrate(qk.ptq.prepare(gm), data.train[0][:200], progress=False))
    else:
        qm = qk.ptq.quantize_dynamic(gm)
    path = tmp_path / "q.onnx"
    qk.onnx.export(qm, path)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    ops = {n.op_type for n in proto.graph.node}
    assert ({"QuantizeLinear", "DequantizeLinear"} if mode == "static" else {"DynamicQuantizeLinear", "ConvInteger",
                                                                            "MatMulInteger"}) <= ops
    xt = data.test[0]
    mine, theirs = qm.run({"input": xt})["output"], ort_quantized_session(path).run(None, {"input": xt})[0]
    # What the file means: ORT's result, or, where ORT's ConvInteger / MatMulInteger
    # saturate (x86 without VNNI: onnx_zoo.ort_int8_kernels_exact; QDQ files run
    # unfused there), ONNX's reference evaluator's. Each computes the same integer
    # layers in its own order: a few activations land one quantum apart, nothing more.
    exact = mode == "static" or ort_int8_kernels_exact()
    meaning = theirs if exact else ReferenceEvaluator(str(path)).run(None, {"input": xt})[0]
    assert np.abs(mine - meaning).max() <= 0.01 * np.abs(mine).max()
    assert (mine.argmax(1) == theirs.argmax(1)).mean() >= 0.99
    # and qk reads its own export back
    back = qk.onnx.load(path)
    assert np.abs(back.run({"input": xt})["output"] - meaning).max() <= 1e-4 * np.abs(meaning).max()


@pytest.mark.parametrize("build", [resnet, mobilenet], ids=["resnet", "mobilenet"])
def test_imported_cnns_quantize_statically(build, tmp_path):
    shape = export_seeded_cnn(build, tmp_path / "m.onnx")
    fp = qk.onnx.load(tmp_path / "m.onnx")
    rng = np.random.default_rng(0)
    calib = [rng.standard_normal((4,) + shape[1:]).astype(np.float32) for _ in range(4)]
    qm = qk.ptq.convert(qk.ptq.calibrate(qk.ptq.prepare(fp), calib, progress=False))
    hist = qm.graph.op_histogram()
    assert hist.get("QuantizedConv", 0) >= 8 and "Conv" not in hist and "Gemm" not in hist
    x = rng.standard_normal((3,) + shape[1:]).astype(np.float32)
    ref, got = fp.run({"x": x})["out"], qm.run({"x": x})["out"]
    sqnr = 10 * np.log10((ref ** 2).sum() / ((ref - got) ** 2).sum())
    assert sqnr > 20, f"SQNR {sqnr:.1f} dB"
    qk.onnx.export(qm, tmp_path / "q.onnx")
    theirs = ort_quantized_session(tmp_path / "q.onnx").run(None, {"x": x})[0]
    assert np.abs(theirs - got).max() <= 0.02 * np.abs(got).max()


@pytest.mark.parametrize("add", [False, True], ids=["float-add", "uint8-add"])
@pytest.mark.parametrize("build", [resnet, mobilenet], ids=["resnet", "mobilenet"])
def test_integer_chains_give_the_unchained_results_bit_for_bit(build, add, isa, tmp_path):
    """Consecutive quantized convs (with a Relu or ReLU6 between) pass uint8 NHWC,
    requantized and clamped in the producer's epilogue; the outputs equal the
    model whose layers each dequantize and requantize, exactly, and saving,
    loading and export see the float values. With the residual Adds
    quantized on request, they join the chains: uint8 in, uint8 out."""
    from qk.quantization.graph import without_chains

    shape = export_seeded_cnn(build, tmp_path / "m.onnx")
    rng = np.random.default_rng(0)
    calib = [rng.standard_normal((4,) + shape[1:]).astype(np.float32) for _ in range(4)]
    layers = {"Add": qk.quant.INT8_STATIC} if add else None
    qm = qk.ptq.convert(qk.ptq.calibrate(qk.ptq.prepare(qk.onnx.load(tmp_path / "m.onnx"), layers=layers), calib,
                                         progress=False))
    chained = [n for n in qm.graph.nodes if "out_nhwc" in n.attrs]
    assert len(chained) >= 3
    adds = [n for n in qm.graph.nodes if n.op_type == "QuantizedAdd"]
    assert bool(adds) == add and "Add" not in (qm.graph.op_histogram() if add else {})
    if add:  # every residual Add reads uint8 NHWC from both sides; all but the last hand theirs on
        assert all(n.attrs.get("in_nhwc") == (True, True) for n in adds)
        assert build is mobilenet or all("out_nhwc" in n.attrs for n in adds)
        if build is resnet:  # the last Add hands uint8 to the global pool, which sums it exactly
            assert "QuantizedGlobalAveragePool" in qm.graph.op_histogram()
    if build is mobilenet:  # the ReLU6 (Clip) became the requantization's clamp
        assert any(tuple(n.attrs.get("absorbed_clip", ()))[1:] == (0.0, 6.0) for n in chained)
        assert qm.graph.op_histogram().get("Clip", 0) < qk.onnx.load(tmp_path / "m.onnx").graph.op_histogram()["Clip"]
    plain = without_chains(qm)
    for batch in (1, 3):
        x = rng.standard_normal((batch,) + shape[1:]).astype(np.float32)
        np.testing.assert_array_equal(qm.run({"x": x})["out"], plain.run({"x": x})["out"])
    qk.ptq.save(qm, tmp_path / "q.npz")
    loaded = qk.ptq.load(tmp_path / "q.npz")
    np.testing.assert_array_equal(loaded.run({"x": x})["out"], qm.run({"x": x})["out"])
    qk.onnx.export(qm, tmp_path / "q.onnx")
    theirs = ort_quantized_session(tmp_path / "q.onnx").run(None, {"x": x})[0]
    assert np.abs(theirs - qm.run({"x": x})["out"]).max() <= 0.02 * np.abs(theirs).max()
    rows = qk.ptq.compare_layers(qk.onnx.load(tmp_path / "m.onnx"), qm, calib[:1])
    assert all(np.isfinite(r["sqnr_db"]) for r in rows)


@pytest.mark.parametrize("build", [resnet, mobilenet], ids=["resnet", "mobilenet"])
def test_a_global_pool_quantized_on_request_joins_the_chain(build, tmp_path):
    """layers={"GlobalAveragePool" or "ReduceMean": INT8_STATIC} observes the
    pool's input: the layer before it requantizes to that grid and the pool
    sums uint8 (MobileNet's last conv then writes no float NCHW output). The
    unchained model gives the same numbers, save/load and QAT's convert the
    same model, the export (QDQ before the float pool) what ORT computes."""
    from qk.quantization.graph import without_chains

    shape = export_seeded_cnn(build, tmp_path / "m.onnx")
    fp = qk.onnx.load(tmp_path / "m.onnx")
    pool = "GlobalAveragePool" if build is resnet else "ReduceMean"
    assert pool in fp.graph.op_histogram()
    rng = np.random.default_rng(0)
    calib = [rng.standard_normal((4,) + shape[1:]).astype(np.float32) for _ in range(4)]
    layers = {"Add": qk.quant.INT8_STATIC, pool: qk.quant.INT8_STATIC}
    prepared = qk.ptq.calibrate(qk.ptq.prepare(fp, layers=layers), calib, progress=False)
    qm = qk.ptq.convert(prepared)
    hist = qm.graph.op_histogram()
    assert pool not in hist and hist["QuantizedGlobalAveragePool"] == 1
    node = next(n for n in qm.graph.nodes if n.op_type == "QuantizedGlobalAveragePool")
    assert node.attrs["in_nhwc"] and "out_nhwc" in qm.graph.producer(node.inputs[0]).attrs
    x = rng.standard_normal((3,) + shape[1:]).astype(np.float32)
    got = qm.run({"x": x})["out"]
    np.testing.assert_array_equal(got, without_chains(qm).run({"x": x})["out"])
    want = fp.run({"x": x})["out"]
    assert np.abs(got - want).max() <= 0.05 * np.abs(want).max()
    qk.ptq.save(qm, tmp_path / "q.npz")
    np.testing.assert_array_equal(qk.ptq.load(tmp_path / "q.npz").run({"x": x})["out"], got)
    np.testing.assert_array_equal(qk.qat.convert(qk.qat.from_ptq(prepared)).run({"x": x})["out"], got)
    qk.onnx.export(qm, tmp_path / "q.onnx")
    theirs = ort_quantized_session(tmp_path / "q.onnx").run(None, {"x": x})[0]
    assert np.abs(theirs - got).max() <= 0.02 * np.abs(theirs).max()
    with pytest.raises(ValueError, match=f"a quantized {pool} needs a static QConfig"):
        qk.ptq.prepare(fp, layers={pool: qk.quant.INT8_DYNAMIC})


@pytest.mark.parametrize("keepdims", [1, 0])
def test_a_spatial_reduce_mean_sums_a_chained_value_like_a_global_pool(keepdims, tmp_path):
    """The ResNet's global pool written as ReduceMean over H and W (axes as an
    input, keepdims 1 before its Flatten, or 0 in its place): it sums the last
    uint8 Add's output exactly like GlobalAveragePool, equal to the unchained
    model bit for bit, and exports as the ReduceMean it was."""
    import onnx
    from onnx import helper
    from qk.quantization.graph import without_chains

    shape = export_seeded_cnn(resnet, tmp_path / "m.onnx")
    proto = onnx.load(tmp_path / "m.onnx")
    nodes = list(proto.graph.node)
    pool = next(i for i, n in enumerate(nodes) if n.op_type == "GlobalAveragePool")
    mean = helper.make_node("ReduceMean", [nodes[pool].input[0], "mean_axes"],
                            [nodes[pool].output[0] if keepdims else nodes[pool + 1].output[0]], keepdims=keepdims)
    assert nodes[pool + 1].op_type == "Flatten"
    nodes[pool:pool + (1 if keepdims else 2)] = [mean]
    proto.graph.ClearField("node")
    proto.graph.node.extend(nodes)
    proto.graph.initializer.append(onnx.numpy_helper.from_array(np.array([2, 3], np.int64), "mean_axes"))
    proto = onnx.version_converter.convert_version(proto, 18)
    onnx.checker.check_model(proto, full_check=True)
    rng = np.random.default_rng(0)
    calib = [rng.standard_normal((4,) + shape[1:]).astype(np.float32) for _ in range(4)]
    qm = qk.ptq.convert(qk.ptq.calibrate(qk.ptq.prepare(qk.onnx.load(proto), layers={"Add": qk.quant.INT8_STATIC}),
                                         calib, progress=False))
    assert "ReduceMean" not in qm.graph.op_histogram()
    assert qm.graph.op_histogram()["QuantizedGlobalAveragePool"] == 1
    x = rng.standard_normal((3,) + shape[1:]).astype(np.float32)
    got = qm.run({"x": x})["out"]
    np.testing.assert_array_equal(got, without_chains(qm).run({"x": x})["out"])
    qk.onnx.export(qm, tmp_path / "q.onnx")
    exported = onnx.load(tmp_path / "q.onnx")
    assert "ReduceMean" in {n.op_type for n in exported.graph.node}
    theirs = ort_quantized_session(exported).run(None, {"x": x})[0]
    assert np.abs(theirs - got).max() <= 0.02 * np.abs(theirs).max()


def test_integer_chains_run_max_pool_and_flatten_on_uint8(digits_cnn, tmp_path):
    """conv -> relu -> MaxPool -> conv -> relu -> MaxPool -> Flatten -> Gemm: the pools
    and the Flatten run on the chain's uint8 NHWC values, the Gemm reads uint8, exactly."""
    from qk.quantization.graph import without_chains

    _, gm, data = digits_cnn
    qm = qk.ptq.convert(qk.ptq.calibrate(qk.ptq.prepare(gm), data.train[0][:128], progress=False))
    ops = [n.op_type for n in qm.graph.nodes]
    assert "QuantizedMaxPool" in ops and "QuantizedFlatten" in ops
    assert [n.attrs.get("in_u8") for n in qm.graph.nodes if n.op_type == "QuantizedLinear"] == [True]
    x = {qm.input_names[0]: data.test[0][:33]}
    want = without_chains(qm).run(x)
    assert {"QuantizedMaxPool", "QuantizedFlatten"}.isdisjoint(without_chains(qm).graph.op_histogram())
    for name, got in qm.run(x).items():
        np.testing.assert_array_equal(got, want[name])
    qk.ptq.save(qm, tmp_path / "cnn.npz")
    for name, got in qk.ptq.load(tmp_path / "cnn.npz").run(x).items():
        np.testing.assert_array_equal(got, want[name])


def _mask_model():
    """x @ W where x = scores + an additive mask of -1e4: the MatMul's input is mask-dominated."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Add", ["x", "mask"], ["masked"]), helper.make_node("MatMul", ["masked", "w"], ["y"])]
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3)).astype(np.float32), "w")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4]),
                                       helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["N", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_mask_dominated_values_stay_float_with_a_warning():
    fp = qk.onnx.load(_mask_model())
    x = np.random.default_rng(1).standard_normal((8, 4)).astype(np.float32)
    mask = np.zeros((8, 4), np.float32)
    mask[:, -1] = -1e4
    prepared = qk.ptq.calibrate(qk.ptq.prepare(fp), [{"x": x, "mask": mask}], progress=False)
    with pytest.warns(UserWarning, match="'masked'.*attention mask"):
        qm = qk.ptq.convert(prepared)
    assert "QuantizedLinear" not in qm.graph.op_histogram()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clean = qk.ptq.convert(qk.ptq.calibrate(qk.ptq.prepare(fp), [{"x": x, "mask": 0 * mask}], progress=False))
    assert "QuantizedLinear" in clean.graph.op_histogram()
    # a quantized Add asked for on the mask's Add stays float too, named in the warning
    add = {"Add": qk.quant.INT8_STATIC}
    with pytest.warns(UserWarning, match="'mask'.*attention mask"):
        qm = qk.ptq.convert(qk.ptq.calibrate(qk.ptq.prepare(fp, layers=add), [{"x": x, "mask": mask}], progress=False))
    assert "QuantizedAdd" not in qm.graph.op_histogram() and "Add" in qm.graph.op_histogram()
    clean = qk.ptq.convert(qk.ptq.calibrate(qk.ptq.prepare(fp, layers=add), [{"x": x, "mask": 0 * mask}],
                                            progress=False))
    assert "QuantizedAdd" in clean.graph.op_histogram()
    y, y_fp = clean.run({"x": x, "mask": 0 * mask})["y"], fp.run({"x": x, "mask": 0 * mask})["y"]
    assert np.abs(y - y_fp).max() <= 0.05 * np.abs(y_fp).max()


def test_graph_ptq_errors():
    fp = qk.onnx.load(_mask_model())
    with pytest.raises(ValueError, match="no node or op type \\['nope'\\]"):
        qk.ptq.prepare(fp, exclude=["nope"])
    with pytest.raises(qk.quant.NotCalibratedError, match="never observed"):
        qk.ptq.convert(qk.ptq.prepare(fp))
    with pytest.raises(ValueError, match="dicts"):
        qk.ptq.calibrate(qk.ptq.prepare(fp), [np.zeros((1, 4), np.float32)], progress=False)
    with pytest.raises(ValueError, match="no batches"):
        qk.ptq.calibrate(qk.ptq.prepare(fp), [], progress=False)
    assert "QuantizedLinear" not in qk.ptq.convert(qk.ptq.prepare(fp, exclude=["MatMul"])).graph.op_histogram()
    with pytest.raises(ValueError, match="a quantized Add needs a static QConfig with uint8 activations"):
        qk.ptq.prepare(fp, layers={"Add": qk.quant.INT8_DYNAMIC})


# --- the MiniLM encoder with padded calibration batches -----------------------------------------------


def _embed(hidden, mask):
    m = mask[..., None].astype(np.float32)
    e = (hidden * m).sum(1) / m.sum(1)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def _cosines(run, batches, ref):
    return np.concatenate([(_embed(run(b), b["attention_mask"]) * r).sum(1) for b, r in zip(batches, ref)])


@pytest.fixture(scope="module")
def minilm_setup(tmp_path_factory):
    exports, tok = export_minilm(str(tmp_path_factory.mktemp("minilm_q")))
    fp = qk.onnx.load(exports["torchscript"])
    batches = [token_feeds(tok, SENTENCES[i: i + 4]) for i in range(0, len(SENTENCES), 4)]
    ref = [_embed(fp.run(b)["out"], b["attention_mask"]) for b in batches]
    return exports["torchscript"], fp, batches, ref


def test_minilm_static_int8_with_padded_calibration(minilm_setup, tmp_path):
    path, fp, batches, ref = minilm_setup
    qm = qk.ptq.convert(qk.ptq.calibrate(qk.ptq.prepare(fp), batches, progress=False))
    assert qm.graph.op_histogram()["QuantizedLinear"] == 36  # every projection, and only those
    cos = _cosines(lambda b: qm.run(b)["out"], batches, ref)
    assert cos.min() > 0.97 and cos.mean() > 0.985
    qk.onnx.export(qm, tmp_path / "q.onnx")
    theirs = _cosines(lambda b: ort_quantized_session(tmp_path / "q.onnx").run(None, b)[0], batches, ref)
    assert np.abs(theirs - cos).max() < 0.01


def test_minilm_dynamic_int8(minilm_setup):
    _, fp, batches, ref = minilm_setup
    qm = qk.ptq.quantize_dynamic(fp)
    assert _cosines(lambda b: qm.run(b)["out"], batches, ref).min() > 0.97


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_minilm_smooth_quant_reaches_a_min_cosine_of_099(minilm_setup, mode, tmp_path):
    path, fp, batches, ref = minilm_setup
    smoothed = qk.ptq.smooth_quant(fp, batches, 0.8, progress=False)
    # one Mul per smoothed input and encoder layer: before Q/K/V, the attention output, the FFN up and down
    assert smoothed.graph.op_histogram()["Mul"] - fp.graph.op_histogram()["Mul"] == 4 * 6
    assert np.abs(_cosines(lambda b: smoothed.run(b)["out"], batches, ref) - 1).max() < 1e-5
    if mode == "static":
        qm = qk.ptq.convert(qk.ptq.calibrate(qk.ptq.prepare(smoothed), batches, progress=False))
    else:
        qm = qk.ptq.quantize_dynamic(smoothed)
    cos = _cosines(lambda b: qm.run(b)["out"], batches, ref)
    assert cos.min() > 0.99  # 0.97 without smoothing (test_minilm_static_int8_with_padded_calibration)
    qk.onnx.export(qm, tmp_path / "q.onnx")
    theirs = _cosines(lambda b: ort_quantized_session(tmp_path / "q.onnx").run(None, b)[0], batches, ref)
    assert np.abs(theirs - cos).max() < 0.01


def _outlier_mlp():
    """A traced two-layer MLP and inputs whose channel 3 is 60x the others (an outlier channel)."""
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8))
    x = rng.standard_normal((256, 16)).astype(np.float32)
    x[:, 3] *= 60
    return GraphModule(trace(model, x[:1])), x


def _sqnr(ref, got):
    return 10 * np.log10((ref ** 2).sum() / ((ref - got) ** 2).sum())


def test_smooth_quant_keeps_the_function_and_flattens_outlier_channels():
    gm, x = _outlier_mlp()
    smoothed = qk.ptq.smooth_quant(gm, x, 0.5, progress=False)
    muls = [n for n in smoothed.graph.nodes if n.op_type == "Mul"]
    assert len(muls) == 2  # one per layer input
    ref, got = gm.run({"input": x})["output"], smoothed.run({"input": x})["output"]
    np.testing.assert_allclose(got, ref, atol=1e-5 * np.abs(ref).max())
    peaks = np.abs(smoothed.run({"input": x}, [muls[0].outputs[0]])[muls[0].outputs[0]]).max(0)
    assert peaks.max() / np.median(peaks) < 0.25 * (np.abs(x).max(0).max() / np.median(np.abs(x).max(0)))
    plain = qk.ptq.convert(qk.ptq.calibrate(qk.ptq.prepare(gm), x, progress=False))
    smooth_q = qk.ptq.convert(qk.ptq.calibrate(qk.ptq.prepare(smoothed), x, progress=False))
    assert _sqnr(ref, smooth_q.run({"input": x})["output"]) > _sqnr(ref, plain.run({"input": x})["output"]) + 3
    assert qk.ptq.smooth_quant(gm, x, 0.0, progress=False).run({"input": x})["output"] == pytest.approx(ref, abs=1e-4)


def test_smooth_quant_scales_gemm_weights_in_their_stored_layout():
    rng = np.random.default_rng(2)
    w = rng.standard_normal((5, 6)).astype(np.float32)  # (N, K): transB=1
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)]
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.ones(5, np.float32), "b")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    fp = qk.onnx.load(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    x = rng.standard_normal((32, 6)).astype(np.float32) * np.array([1, 1, 40, 1, 1, 0], np.float32)
    smoothed = qk.ptq.smooth_quant(fp, x, 0.5, progress=False)
    np.testing.assert_allclose(smoothed.run({"x": x})["y"], fp.run({"x": x})["y"], rtol=1e-5, atol=1e-5)
    inv = next(v for k, v in smoothed.graph.constants.items() if k.endswith("_smooth_inv"))
    assert inv[5] == 1.0 and inv[2] < inv[0]  # a channel that was always zero is left alone


def test_smooth_quant_leaves_mask_dominated_inputs_and_rejects_bad_arguments():
    fp = qk.onnx.load(_mask_model())
    x = np.random.default_rng(1).standard_normal((8, 4)).astype(np.float32)
    mask = np.zeros((8, 4), np.float32)
    mask[:, -1] = -1e4
    smoothed = qk.ptq.smooth_quant(fp, [{"x": x, "mask": mask}], progress=False)
    assert "Mul" not in smoothed.graph.op_histogram()
    gm, data = _outlier_mlp()
    for alpha in (-0.1, 1.5, True, "0.5"):
        with pytest.raises(ValueError, match="alpha: expected a number in \\[0, 1\\]"):
            qk.ptq.smooth_quant(gm, data, alpha)
    with pytest.raises(TypeError, match="model: expected a qk.graph.GraphModule"):
        qk.ptq.smooth_quant(nn.Linear(2, 2), data)
    with pytest.raises(ValueError, match="data: smoothing got no batches"):
        qk.ptq.smooth_quant(gm, [], progress=False)
    relu_only = GraphModule(trace(nn.Sequential(nn.ReLU()), data[:1]))
    with pytest.raises(ValueError, match="no Linear/MatMul/Gemm layer"):
        qk.ptq.smooth_quant(relu_only, data)


@pytest.mark.parametrize("method", ["int8 weight-only", "int4 weight-only", "int4 grouped", "fp16"])
def test_weight_only_and_fp16_graphs_match_the_qk_nn_model_and_export(method, tmp_path):
    model, _ = nn.models.train_reference("mlp", epochs=2)
    data = nn.load_digits(images=False)
    g = trace(model, data.train[0][:1])
    gm = GraphModule(g)
    make = {"int8 weight-only": lambda m: qk.ptq.quantize_weight_only(m, 8),
            "int4 weight-only": lambda m: qk.ptq.quantize_weight_only(m, 4),
            "int4 grouped": lambda m: qk.ptq.quantize_weight_only(m, 4, group_size=16),
            "fp16": qk.ptq.quantize_fp16}[method]
    qm = make(gm)
    xt = data.test[0]
    got = qm.run({"input": xt})["output"]
    assert np.array_equal(got, make(model)(nn.Tensor(xt)).data)  # the same cores, bit for bit
    qk.onnx.export(qm, tmp_path / "q.onnx")
    proto = onnx.load(str(tmp_path / "q.onnx"))
    assert ("Cast" if method == "fp16" else "DequantizeLinear") in {n.op_type for n in proto.graph.node}
    theirs = ort_quantized_session(tmp_path / "q.onnx").run(None, {"input": xt})[0]
    assert np.abs(theirs - got).max() <= 0.01 * np.abs(got).max()
    int4 = {i.name for i in proto.graph.initializer if i.data_type == TensorProto.INT4}
    if method.startswith("int4"):  # 4-bit weights stored as INT4, two per byte, at opset 21
        assert proto.opset_import[0].version >= 21 and any(name.endswith("weight_q") for name in int4)
    else:
        assert not int4
    if method.startswith("int4"):  # and qk reads them back (grouped: blocked DequantizeLinear) to the same model
        assert np.array_equal(qk.onnx.load(tmp_path / "q.onnx").run({"input": xt})["output"], got)


def test_quantized_graphs_save_and_load_without_pickle(digits_cnn, tmp_path):
    t = torch_or_skip()
    _, gm, data = digits_cnn
    xt = data.test[0]
    models = {"static": qk.ptq.convert(qk.ptq.calibrate(qk.ptq.prepare(gm), data.train[0][:200], progress=False)),
              "dynamic": qk.ptq.quantize_dynamic(gm), "int4": qk.ptq.quantize_weight_only(gm, 4),
              "fp16": qk.ptq.quantize_fp16(gm), "float": gm}
    for name, qm in models.items():
        qk.ptq.save(qm, tmp_path / name)  # ".npz" added, and load finds it
        back = qk.ptq.load(tmp_path / name)
        assert isinstance(back, GraphModule)
        assert np.array_equal(back.run({"input": xt})["output"], qm.run({"input": xt})["output"]), name
    # a depthwise static MobileNet and an int8 embedding table round-trip too
    t.manual_seed(0)
    model, shape = mobilenet()
    export(model, (t.randn(*shape),), tmp_path / "m.onnx", False, ["x"], None)
    fp = qk.onnx.load(tmp_path / "m.onnx")
    x = np.random.default_rng(0).standard_normal((2,) + shape[1:]).astype(np.float32)
    qm = qk.ptq.convert(qk.ptq.calibrate(qk.ptq.prepare(fp), [x], progress=False))
    qk.ptq.save(qm, tmp_path / "mb.npz")
    assert np.array_equal(qk.ptq.load(tmp_path / "mb.npz").run({"x": x})["out"], qm.run({"x": x})["out"])
    with np.load(tmp_path / "mb.npz", allow_pickle=False) as f:  # loads with pickle disabled
        assert "__qk_model__" in f.files


def test_damaged_graph_files_are_value_errors(digits_cnn, tmp_path):
    _, gm, _ = digits_cnn
    qk.ptq.save(qk.ptq.quantize_dynamic(gm), tmp_path / "q.npz")
    with np.load(tmp_path / "q.npz") as f:
        arrays = {k: f[k] for k in f.files}
    damaged = dict(arrays)
    damaged.pop(next(k for k in arrays if k.startswith("n")))  # a core's array is missing
    np.savez(tmp_path / "missing.npz", **damaged)
    bad_json = dict(arrays, __qk_model__=np.frombuffer(b"{not json", np.uint8))
    np.savez(tmp_path / "json.npz", **bad_json)
    (tmp_path / "trunc.npz").write_bytes((tmp_path / "q.npz").read_bytes()[:200])
    for name in ("missing.npz", "json.npz", "trunc.npz"):
        with pytest.raises(ValueError, match="path"):
            qk.ptq.load(tmp_path / name)


def test_graph_analysis_helpers(digits_cnn):
    _, gm, data = digits_cnn
    calib, (xt, yt) = data.train[0][:200], data.test
    sizes = {m: qk.ptq.model_size(f(gm)) for m, f in (("fp32", lambda g: g), ("int8", qk.ptq.quantize_dynamic),
                                                       ("int4", lambda g: qk.ptq.quantize_weight_only(g, 4)))}
    assert sizes["int4"] < sizes["int8"] < sizes["fp32"]

    def accuracy(m):
        return float((m.run({"input": xt})["output"].argmax(1) == yt).mean())

    rows = qk.ptq.sensitivity(gm, [calib], accuracy)
    assert sorted(r["layer"] for r in rows) == sorted(qk.quantization.graph.quantizable_nodes(gm))
    qm, report = qk.ptq.auto_mixed_precision(gm, [calib], accuracy, max_drop=0.0)
    assert report["drop"] <= 0.0 + 1e-12
    layers = qk.ptq.compare_layers(gm, qk.ptq.convert(qk.ptq.calibrate(qk.ptq.prepare(gm), calib, progress=False)),
                                   xt)
    assert len(layers) == 3 and all(r["sqnr_db"] > 15 and r["cosine"] > 0.99 for r in layers)


def test_activation_matmuls_quantize_on_request(minilm_setup, tmp_path):
    path, fp, batches, ref = minilm_setup
    prepared = qk.ptq.calibrate(qk.ptq.prepare(fp, activation_matmul=True), batches, progress=False)
    qm = qk.ptq.convert(prepared)
    assert qm.graph.op_histogram()["QuantizedMatMul"] == 12  # QK^T and PV in six layers
    cos = _cosines(lambda b: qm.run(b)["out"], batches, ref)
    assert cos.mean() > 0.98
    qk.onnx.export(qm, tmp_path / "q.onnx")
    theirs = _cosines(lambda b: ort_quantized_session(tmp_path / "q.onnx").run(None, b)[0], batches, ref)
    assert np.abs(theirs - cos).max() < 0.02
    mlp = qk.ptq.prepare(nn.models.digits_mlp(), activation_matmul=True)  # none to quantize: the same plan
    assert mlp.quant_plan == qk.ptq.prepare(nn.models.digits_mlp()).quant_plan


@pytest.mark.parametrize("shapes", [((1, 1, 1), (1, 1, 1)), ((2, 3, 5, 7), (2, 3, 7, 4)), ((4, 17, 33), (33, 9)),
                                    ((3, 1, 16, 64), (1, 2, 64, 16)), ((2, 0, 8), (2, 8, 3)), ((5, 130, 70), (5, 70, 19))],
                         ids=["1x1", "4d", "broadcast-b", "broadcast-both", "empty", "tiles"])
def test_a_quantized_activation_matmul_is_exact(shapes, isa):
    """QuantizedMatMul on the native batched GEMM equals the reference
    formulation: both operands quantized, exact integer products, x sa * sb."""
    from qk.graph import ops as graph_ops

    rng = np.random.default_rng(len(shapes[0]) * 10 + shapes[0][-1])
    a = (3 * rng.standard_normal(shapes[0])).astype(np.float32)
    b = rng.standard_normal(shapes[1]).astype(np.float32)
    sa, za, sb = 0.05, 37, 0.02
    got = graph_ops.data_of(graph_ops.get("QuantizedMatMul").run({"a_qparams": (sa, za), "b_scale": sb}, a, b))
    aq = qk.quantize(a, sa, za, dtype=np.uint8).astype(np.int64) - za
    bq = qk.quantize(b, sb, 0, dtype=np.int8).astype(np.int64)
    want = np.matmul(aq, bq).astype(np.float32) * (np.float32(sa) * np.float32(sb))
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_a_quantized_activation_matmul_reads_transposed_views(isa):
    """Attention's operands are views: the heads of Q (8, 128, 12, 32) ->
    (8, 12, 128, 32) and K^T (-> (8, 12, 32, 128)); the same products as on copies."""
    from qk.graph import ops as graph_ops

    rng = np.random.default_rng(9)
    q = rng.standard_normal((2, 9, 3, 5)).astype(np.float32).transpose(0, 2, 1, 3)
    k = rng.standard_normal((2, 9, 3, 5)).astype(np.float32).transpose(0, 2, 3, 1)
    run = graph_ops.get("QuantizedMatMul").run
    attrs = {"a_qparams": (0.03, 120), "b_scale": 0.02}
    got = graph_ops.data_of(run(attrs, q, k))
    want = graph_ops.data_of(run(attrs, np.ascontiguousarray(q), np.ascontiguousarray(k)))
    np.testing.assert_array_equal(got, want)
    assert got.shape == (2, 3, 9, 9)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
@pytest.mark.parametrize("options", [dict(rounding="gptq"), dict(bias_correction=True)], ids=["gptq", "bias-corr"])
def test_gptq_and_bias_correction_on_graphs_match_the_qk_nn_path(name, options):
    model, _ = nn.models.train_reference(name, epochs=2)
    data = nn.load_digits(images=name == "cnn")
    g = trace(model, data.train[0][:1])
    simplify(g)
    gm = GraphModule(g)
    cfg = qk.quant.QConfig(weight=qk.quant.QScheme(4, signed=True, symmetric=True, axis=0),
                           activation=qk.quant.UINT8_ACTIVATION, mode="static")
    calib, xt = data.train[0][:200], data.test[0]
    seq = qk.ptq.convert(qk.ptq.calibrate(qk.ptq.prepare(model, cfg, **options), calib, progress=False))
    graph_q = qk.ptq.convert(qk.ptq.calibrate(qk.ptq.prepare(gm, cfg, **options), calib, progress=False))
    np.testing.assert_array_equal(seq(nn.Tensor(xt)).data, graph_q.run({"input": xt})["output"])
    b = graph_q.run({"input": xt})["output"]
    plain = qk.ptq.convert(qk.ptq.calibrate(qk.ptq.prepare(gm, cfg), calib, progress=False))
    assert not np.array_equal(plain.run({"input": xt})["output"], b)  # the option changed something


def test_blocked_dequantize_linear():
    """Opset 21's block_size: one scale and zero point per block of the axis
    (the last block short), and a named error for a scale of the wrong shape."""
    from qk.graph import ops as graph_ops

    dq = graph_ops.get("DequantizeLinear")
    q = np.arange(12, dtype=np.int8).reshape(2, 6)
    scale, zp = np.array([[1, 2], [3, 4]], np.float32), np.array([[0, 1], [2, 3]], np.int8)
    got = graph_ops.data_of(dq.run({"axis": 1, "block_size": 4}, q, scale, zp))
    want = (q - np.repeat(zp, 4, axis=1)[:, :6]) * np.repeat(scale, 4, axis=1)[:, :6]
    np.testing.assert_array_equal(got, want.astype(np.float32))
    with pytest.raises(ValueError, match=r"scale: blocked DequantizeLinear \(block_size=4, axis=1\) of an input of "
                                         r"shape \(2, 6\) needs shape \(2, 2\), got \(2, 3\)"):
        dq.run({"axis": 1, "block_size": 4}, q, np.ones((2, 3), np.float32))


def _conv_transpose_model(attrs, c_in=5, c_out=4, k=(3, 2), group=1, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((c_in, c_out // group) + k).astype(np.float32)
    b = rng.standard_normal(c_out).astype(np.float32)
    nodes = [helper.make_node("ConvTranspose", ["x", "w", "b"], ["t"], group=group, **attrs),
             helper.make_node("Relu", ["t"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", c_in, 6, 7])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _int_conv_transpose(xc, w, strides, pads, dilations, output_padding):
    """The exact int64 scatter of x (N, C, H, W) through w (C, O, KH, KW): ONNX ConvTranspose, naively."""
    n, c, h, wd = xc.shape
    _, o, kh, kw = w.shape
    oh = (h - 1) * strides[0] - pads[0] - pads[2] + dilations[0] * (kh - 1) + output_padding[0] + 1
    ow = (wd - 1) * strides[1] - pads[1] - pads[3] + dilations[1] * (kw - 1) + output_padding[1] + 1
    out = np.zeros((n, o, oh, ow), np.int64)
    for i in range(kh):
        for j in range(kw):
            contrib = np.einsum("nchw,co->nohw", xc, w[:, :, i, j])
            for y in range(h):
                ty = y * strides[0] - pads[0] + i * dilations[0]
                if not 0 <= ty < oh:
                    continue
                for x in range(wd):
                    tx = x * strides[1] - pads[1] + j * dilations[1]
                    if 0 <= tx < ow:
                        out[:, :, ty, tx] += contrib[:, :, y, x]
    return out


@pytest.mark.parametrize("attrs", [dict(strides=[2, 2], pads=[1, 0, 0, 1], output_padding=[1, 0]),
                                   dict(strides=[1, 2], dilations=[2, 1]), dict()],
                         ids=["strided-padded", "dilated", "plain"])
def test_conv_transpose_quantizes_statically_in_exact_integers(attrs, tmp_path):
    fp = qk.onnx.load(_conv_transpose_model(attrs))
    x = np.random.default_rng(1).standard_normal((3, 5, 6, 7)).astype(np.float32)
    qm = qk.ptq.convert(qk.ptq.calibrate(qk.ptq.prepare(fp), x, progress=False))
    assert qm.graph.op_histogram() == {"QuantizedConvTranspose": 1}  # the Relu fused
    node = qm.graph.nodes[0]
    core = node.attrs["core"]
    got = qm.run({"x": x})["y"]
    # the same bits as the integer formulation: exact sums, then the float32 epilogue
    c_in, c_out, kh, kw = node.attrs["weight_shape"]
    w = core.weight_q.reshape(c_out, c_in, kh, kw).transpose(1, 0, 2, 3).astype(np.int64)
    xc = core.prepare_input(x).astype(np.int64) - core.x_zero_point
    acc = _int_conv_transpose(xc, w, attrs.get("strides", [1, 1]), attrs.get("pads", [0] * 4),
                              attrs.get("dilations", [1, 1]), attrs.get("output_padding", [0, 0]))
    scale = (np.float32(core.x_scale) * core.w_scale).astype(np.float32)
    want = np.maximum(acc.astype(np.float32) * scale[None, :, None, None] + core.bias[None, :, None, None], 0)
    np.testing.assert_array_equal(got, want)
    ref = fp.run({"x": x})["y"]
    assert np.abs(got - ref).max() <= 0.03 * np.abs(ref).max()
    qk.onnx.export(qm, tmp_path / "q.onnx")
    onnx.checker.check_model(onnx.load(str(tmp_path / "q.onnx")), full_check=True)
    theirs = ort_quantized_session(tmp_path / "q.onnx").run(None, {"x": x})[0]
    assert np.abs(theirs - got).max() <= 0.01 * np.abs(got).max()
    qk.ptq.save(qm, tmp_path / "q")
    assert np.array_equal(qk.ptq.load(tmp_path / "q").run({"x": x})["y"], got)


def test_conv_transpose_stays_float_where_no_kernel_serves_it():
    grouped = qk.onnx.load(_conv_transpose_model({}, c_in=4, group=2))
    x = np.random.default_rng(2).standard_normal((2, 4, 6, 7)).astype(np.float32)
    assert "QuantizedConvTranspose" not in qk.ptq.convert(
        qk.ptq.calibrate(qk.ptq.prepare(grouped), x, progress=False)).graph.op_histogram()
    plain = qk.onnx.load(_conv_transpose_model({}))
    for qm in (qk.ptq.quantize_dynamic(plain), qk.ptq.quantize_weight_only(plain, 8)):  # static INT8 only
        assert qm.graph.op_histogram().get("ConvTranspose") == 1


def test_untrained_qat_of_a_conv_transpose_converts_to_the_ptq_graph():
    """QAT fake-quantizes a ConvTranspose's weight per output channel (its axis 1) as PTQ does."""
    fp = qk.onnx.load(_conv_transpose_model(dict(strides=[2, 2])))
    x = np.random.default_rng(3).standard_normal((4, 5, 6, 7)).astype(np.float32)
    prepared = qk.ptq.calibrate(qk.ptq.prepare(fp), x, progress=False)
    qat = qk.qat.freeze_observers(qk.qat.from_ptq(prepared))
    assert np.array_equal(qk.qat.convert(qat).run({"x": x})["y"], qk.ptq.convert(prepared).run({"x": x})["y"])


def test_a_clip_after_a_float_output_layer_is_applied_by_the_layer(tmp_path):
    """ReLU6 (Clip 0..6) after the convolutions of a dynamic INT8 MobileNet, and
    a one-sided Clip after a static Gemm, run inside the layer node, with the
    results of the separate Clip (which without_chains and export put back)."""
    from qk.quantization.graph import without_chains

    shape = export_seeded_cnn(mobilenet, tmp_path / "m.onnx")
    fp = qk.onnx.load(tmp_path / "m.onnx")
    qm = qk.ptq.quantize_dynamic(fp)
    assert fp.graph.op_histogram()["Clip"] == 8 and "Clip" not in qm.graph.op_histogram()
    x = np.random.default_rng(0).standard_normal((2,) + shape[1:]).astype(np.float32)
    plain = without_chains(qm)
    assert plain.graph.op_histogram()["Clip"] == 8
    np.testing.assert_array_equal(qm.run({"x": x})["out"], plain.run({"x": x})["out"])
    rng = np.random.default_rng(4)
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["g"], transB=1), helper.make_node("Clip", ["g", "lo", ""], ["y"])]
    inits = [numpy_helper.from_array(rng.standard_normal((5, 6)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(5).astype(np.float32), "b"),
             numpy_helper.from_array(np.array(-0.5, np.float32), "lo")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    gemm = qk.onnx.load(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]))
    xs = rng.standard_normal((16, 6)).astype(np.float32)
    qg = qk.ptq.convert(qk.ptq.calibrate(qk.ptq.prepare(gemm), xs, progress=False))
    assert qg.graph.op_histogram() == {"QuantizedLinear": 1}
    got = qg.run({"x": xs})["y"]
    assert got.min() >= -0.5 and np.array_equal(got, without_chains(qg).run({"x": xs})["y"])
    qk.onnx.export(qg, tmp_path / "g.onnx")
    theirs = ort_quantized_session(tmp_path / "g.onnx").run(None, {"x": xs})[0]
    assert np.abs(theirs - got).max() <= 0.01 * np.abs(got).max()


def _linear_chain_model(rng, rank: int):
    """MatMul -> Clip(0, 6) -> Gemm-like MatMul + bias -> Relu -> MatMul -> (read twice) MatMul, MatMul:
    linear layers feeding linear layers, on rows of a `rank`-D input."""
    dims = [12, 20, 16, 9]
    nodes = [helper.make_node("MatMul", ["x", "w0"], ["h0"]), helper.make_node("Clip", ["h0", "zero", "six"], ["a0"]),
             helper.make_node("MatMul", ["a0", "w1"], ["m1"]), helper.make_node("Add", ["m1", "b1"], ["h1"]),
             helper.make_node("Relu", ["h1"], ["a1"]), helper.make_node("MatMul", ["a1", "w2"], ["h2"]),
             helper.make_node("MatMul", ["h2", "w3"], ["y"]), helper.make_node("MatMul", ["h2", "w4"], ["z"])]
    inits = [numpy_helper.from_array((rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32), f"w{i}")
             for i, (a, b) in enumerate(zip(dims, dims[1:]))]
    inits += [numpy_helper.from_array(rng.standard_normal((9, 5)).astype(np.float32), "w3"),
              numpy_helper.from_array(rng.standard_normal((9, 4)).astype(np.float32), "w4"),
              numpy_helper.from_array(rng.standard_normal(16).astype(np.float32), "b1"),
              numpy_helper.from_array(np.array(0, np.float32), "zero"),
              numpy_helper.from_array(np.array(6, np.float32), "six")]
    lead = ["N", 3][:rank - 1]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, lead + [12])],
                          [helper.make_tensor_value_info(v, TensorProto.FLOAT, None) for v in ("y", "z")],
                          initializer=inits)
    return qk.onnx.load(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]))


@pytest.mark.parametrize("rank", [2, 3])
def test_linear_layers_feeding_linear_layers_pass_uint8_bit_for_bit(rank, isa, tmp_path):
    """Each quantized MatMul / Gemm whose readers are all quantized linear layers
    requantizes its output to their input grid in its epilogue (the ReLU6 between
    as the clamp) and hands them uint8: the same outputs as the model whose layers
    dequantize and requantize, exactly; save, load and export see float values."""
    from qk.quantization.graph import without_chains

    rng = np.random.default_rng(5)
    fp = _linear_chain_model(rng, rank)
    shape = (7, 3, 12)[-rank:]
    calib = [(3 * rng.standard_normal(shape)).astype(np.float32) for _ in range(4)]
    qm = qk.ptq.convert(qk.ptq.calibrate(qk.ptq.prepare(fp), calib, progress=False))
    nodes = {n.name: n for n in qm.graph.nodes}
    producers = [n for n in qm.graph.nodes if "out_u8" in n.attrs]
    assert len(producers) == 3 and qm.graph.op_histogram() == {"QuantizedLinear": 5}
    assert sum(bool(n.attrs.get("in_u8")) for n in nodes.values()) == 4
    assert [tuple(n.attrs["absorbed_clip"][1:]) for n in producers if "absorbed_clip" in n.attrs] == [(0.0, 6.0)]
    plain = without_chains(qm)
    assert plain.graph.op_histogram()["Clip"] == 1
    for batch in (1, 5):
        x = {"x": (3 * rng.standard_normal((batch, *shape[1:]))).astype(np.float32)}
        got, want = qm.run(x), plain.run(x)
        for name in ("y", "z"):
            np.testing.assert_array_equal(got[name], want[name])
    qk.ptq.save(qm, tmp_path / "q.npz")
    loaded = qk.ptq.load(tmp_path / "q.npz")
    np.testing.assert_array_equal(loaded.run(x)["y"], got["y"])
    qk.onnx.export(qm, tmp_path / "q.onnx")
    theirs = ort_quantized_session(tmp_path / "q.onnx").run(["y"], x)[0]
    assert np.abs(theirs - got["y"]).max() <= 0.02 * np.abs(got["y"]).max()
    rows = qk.ptq.compare_layers(fp, qm, calib[:1])
    assert len(rows) == 5 and all(np.isfinite(r["sqnr_db"]) for r in rows)
