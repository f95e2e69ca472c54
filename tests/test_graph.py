"""qk.graph: the IR's helpers, tracing qk.nn models, gradients through
imported graphs, fine-tuning, import-time fusions, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

import qk
from qk import nn
from qk.graph import Graph, GraphModule, Node, simplify, trace

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import qk.onnx  # noqa: E402

RNG = np.random.default_rng(0)


def _vi(name, shape, t=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, t, shape)


def _model(nodes, inputs, outputs, opset=17, inits=()):
    return helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits)),
                             opset_imports=[helper.make_opsetid("", opset)])


def _init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


# --- the IR -------------------------------------------------------------------------------------


def _chain():
    nodes = [Node("Relu", ["x"], ["a"]), Node("Neg", ["a"], ["b"]), Node("Abs", ["b"], ["y"]),
             Node("Exp", ["a"], ["dead"])]
    return Graph(nodes, ["x"], ["y"])


def test_ir_consumers_chains_and_dead_nodes():
    g = _chain()
    assert [n.op_type for n in g.consumers("a")] == ["Neg", "Exp"]
    assert g.only_consumer("a") is None  # two readers
    assert g.only_consumer("b").op_type == "Abs"
    assert g.match_chain(g.nodes[1], ["Neg", "Abs"]) == g.nodes[1:3]
    assert g.match_chain(g.nodes[0], ["Relu", "Neg"]) is None  # "a" has two readers
    assert g.remove_dead() == 1 and [n.op_type for n in g.nodes] == ["Relu", "Neg", "Abs"]
    g.replace(g.nodes[1:3], [Node("Identity", ["a"], ["y"], {}, "id")])
    assert [n.op_type for n in g.nodes] == ["Relu", "Identity"] and g.producer("y").name == "id"


def test_ir_rejects_bad_order_and_double_producers():
    with pytest.raises(ValueError, match="reads 'b'"):
        Graph([Node("Neg", ["b"], ["c"]), Node("Relu", ["x"], ["b"])], ["x"], ["c"])
    with pytest.raises(ValueError, match="produced by both"):
        Graph([Node("Neg", ["x"], ["c"]), Node("Relu", ["x"], ["c"])], ["x"], ["c"])
    with pytest.raises(ValueError, match="output 'z'"):
        Graph([Node("Neg", ["x"], ["c"])], ["x"], ["z"])


# --- tracing ---------------------------------------------------------------------------------------


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x):
        y = nn.relu(self.bn(self.conv(x))) + x * 0.5
        return self.fc(y.flatten(1)) / 2.0 + self.fc(y.reshape(y.shape[0], 4 * 36)) * 0.1


@pytest.mark.parametrize("build,shape", [(nn.models.digits_mlp, (4, 64)), (nn.models.digits_cnn, (4, 1, 8, 8)),
                                         (Residual, (4, 4, 6, 6))])
def test_trace_runs_like_the_model(build, shape):
    nn.manual_seed(0)
    model = build().eval()
    x = RNG.standard_normal(shape).astype(np.float32)
    g = trace(model, x)
    gm = GraphModule(g)
    assert list(gm.state_dict()) == [k for k, _ in model.named_parameters()]
    for batch in (shape[0], 7):
        xb = RNG.standard_normal((batch,) + shape[1:]).astype(np.float32)
        np.testing.assert_allclose(gm.run({"input": xb})["output"], model(nn.Tensor(xb)).data, rtol=1e-5, atol=1e-6)


def test_traced_sequential_names_nodes_by_module():
    model = nn.models.digits_cnn()
    g = trace(model, np.zeros((1, 1, 8, 8), np.float32))
    assert [n.name for n in g.nodes] == [str(i) for i in range(10)]
    assert [n.op_type for n in g.nodes][:4] == ["Conv", "BatchNormalization", "Relu", "MaxPool"]
    assert simplify(g)["batchnorm_folded"] == ["0", "4"]


@pytest.mark.parametrize("build,shape", [
    (nn.models.digits_mlp, (4, 64)), (nn.models.digits_cnn, (4, 1, 8, 8)),
    (lambda: nn.Sequential(nn.Linear(5, 6), nn.GELU(), nn.Sequential(nn.LeakyReLU(0.2), nn.Dropout(0.5)),
                           nn.Linear(6, 3), nn.Tanh()), (3, 5))])
def test_a_sequential_traces_without_an_example_to_the_same_graph(build, shape):
    nn.manual_seed(1)
    model = build().eval()
    x = RNG.standard_normal(shape).astype(np.float32)
    read, ran = trace(model), trace(model, x[:1])  # read off the layers / run on an example
    assert [(n.op_type, n.name, n.inputs, n.outputs, n.attrs) for n in read.nodes] == \
        [(n.op_type, n.name, n.inputs, n.outputs, n.attrs) for n in ran.nodes]
    assert read.values["input"].shape == (None,) + ((shape[1],) if len(shape) == 2 else (1, None, None))
    np.testing.assert_array_equal(GraphModule(read).run({"input": x})["output"], model(nn.Tensor(x)).data)
    flat_first = nn.Sequential(nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).eval()  # the input is not (N, 144)
    assert trace(flat_first).values["input"].shape is None
    xi = RNG.standard_normal((2, 4, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(GraphModule(trace(flat_first)).run({"input": xi})["output"],
                                  flat_first(nn.Tensor(xi)).data)
    with pytest.raises(ValueError, match="example_inputs"):  # other layers must run to be traced
        trace(nn.Sequential(Residual()))
    with pytest.raises(ValueError, match="example_inputs"):
        trace(Residual())


def test_trace_refuses_untraceable_operations():
    class Odd(nn.Module):
        def forward(self, x):
            return nn.custom(lambda a: (a * 2, None), lambda c, g: (g * 2,), x)

    with pytest.raises(TypeError, match="cannot be traced"):
        trace(Odd(), np.zeros((2, 3), np.float32))
    with pytest.raises(TypeError, match="model"):
        trace(object(), np.zeros(3))


# --- gradients and training ---------------------------------------------------------------------------


def _small_cnn_onnx():
    w1 = RNG.standard_normal((4, 2, 3, 3)).astype(np.float32) * 0.5
    w2 = RNG.standard_normal((4 * 2 * 2, 3)).astype(np.float32) * 0.3
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c"], pads=[1, 0, 1, 2], strides=[2, 2]),
             helper.make_node("BatchNormalization", ["c", "g", "be", "mu", "var"], ["bn"]),
             helper.make_node("Tanh", ["bn"], ["t"]),
             helper.make_node("AveragePool", ["t"], ["p"], kernel_shape=[2, 2], strides=[1, 1], pads=[0, 0, 1, 1]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("MatMul", ["f", "w2"], ["m"]),
             helper.make_node("Add", ["m", "b2"], ["y"])]
    inits = [_init("w1", w1), _init("b1", RNG.standard_normal(4).astype(np.float32)),
             _init("g", np.ones(4, np.float32) * 1.5), _init("be", np.zeros(4, np.float32) + 0.1),
             _init("mu", np.zeros(4, np.float32) + 0.2), _init("var", np.ones(4, np.float32) * 2),
             _init("w2", w2), _init("b2", np.zeros(3, np.float32))]
    return _model(nodes, [_vi("x", ["N", 2, 4, 4])], [_vi("y", None)], 13, inits)


def _check_grads(gm, feeds, loss_of, eps=1e-2, tol=2e-2):
    loss = loss_of(gm(*[nn.Tensor(feeds[n]) for n in gm.input_names]))
    gm.zero_grad()
    loss.backward()
    rng = np.random.default_rng(1)
    for name, p in gm.named_parameters():
        direction = rng.standard_normal(p.shape).astype(np.float32)
        analytic = float((p.grad * direction).sum())
        base = p.data.copy()
        vals = []
        for s in (1, -1):
            p.data = base + s * eps * direction
            vals.append(loss_of(gm(*[nn.Tensor(feeds[n]) for n in gm.input_names])).item())
        p.data = base
        numeric = (vals[0] - vals[1]) / (2 * eps)
        assert abs(numeric - analytic) <= tol * max(1.0, abs(numeric)), (name, numeric, analytic)


def test_gradients_through_an_imported_cnn_match_finite_differences():
    gm = qk.onnx.load(_small_cnn_onnx())
    x = RNG.standard_normal((3, 2, 4, 4)).astype(np.float32)
    _check_grads(gm, {"x": x}, lambda y: (y * y).sum())


def test_gradients_through_attention_layernorm_gelu():
    d = 8
    wq, wk = (RNG.standard_normal((d, d)).astype(np.float32) * 0.3 for _ in range(2))
    nodes = [helper.make_node("MatMul", ["x", "wq"], ["q"]), helper.make_node("MatMul", ["x", "wk"], ["k"]),
             helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["q", "kt"], ["s"]), helper.make_node("Add", ["s", "mask"], ["sm"]),
             helper.make_node("Softmax", ["sm"], ["a"], axis=-1), helper.make_node("MatMul", ["a", "x"], ["h"]),
             helper.make_node("LayerNormalization", ["h", "gamma", "beta"], ["n"], axis=-1),
             helper.make_node("Gelu", ["n"], ["y"])]
    mask = np.zeros((1, 1, 5), np.float32)
    mask[..., -1] = -1e4
    inits = [_init("wq", wq), _init("wk", wk), _init("mask", mask),
             _init("gamma", np.ones(d, np.float32) * 1.2), _init("beta", np.zeros(d, np.float32) + 0.1)]
    gm = qk.onnx.load(_model(nodes, [_vi("x", [2, 5, d])], [_vi("y", None)], 20, inits))
    assert sorted(n for n, _ in gm.named_parameters()) == ["beta", "gamma", "wk", "wq"]
    _check_grads(gm, {"x": RNG.standard_normal((2, 5, d)).astype(np.float32)}, lambda y: (y * y).sum(), eps=1e-3)


def test_fine_tuning_an_imported_cnn_lowers_its_loss():
    gm = qk.onnx.load(_small_cnn_onnx())
    x = RNG.standard_normal((64, 2, 4, 4)).astype(np.float32)
    labels = (x[:, 0, :2, :2].mean(axis=(1, 2)) > 0).astype(np.int64) + (x[:, 1].mean(axis=(1, 2)) > 0)
    before = nn.cross_entropy(gm(nn.Tensor(x)), labels).item()
    opt = nn.Adam(gm.parameters(), lr=1e-2)
    nn.fit(gm, nn.cross_entropy, opt, (x, labels), epochs=20, batch_size=16)
    after = nn.cross_entropy(gm(nn.Tensor(x)), labels).item()
    assert after < 0.7 * before
    # the graph's constants follow the trained parameters
    name, p = next(iter(gm.named_parameters()))
    assert np.array_equal(gm.graph.constants[name], p.data)


# --- import-time fusions -------------------------------------------------------------------------------


def _ort(m, feeds):
    ort = pytest.importorskip("onnxruntime")
    return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]


def test_written_out_layernorm_and_erf_gelu_fuse():
    d = 6
    c = lambda name, v: _init(name, np.asarray(v, np.float32))  # noqa: E731
    nodes = [helper.make_node("ReduceMean", ["x"], ["mu"], axes=[-1]), helper.make_node("Sub", ["x", "mu"], ["d"]),
             helper.make_node("Pow", ["d", "two"], ["d2"]), helper.make_node("ReduceMean", ["d2"], ["var"], axes=[-1]),
             helper.make_node("Add", ["var", "eps"], ["ve"]), helper.make_node("Sqrt", ["ve"], ["sd"]),
             helper.make_node("Div", ["d", "sd"], ["nrm"]), helper.make_node("Mul", ["nrm", "gamma"], ["sc"]),
             helper.make_node("Add", ["sc", "beta"], ["ln"]),
             helper.make_node("Div", ["ln", "sqrt2"], ["z"]), helper.make_node("Erf", ["z"], ["e"]),
             helper.make_node("Add", ["e", "one"], ["e1"]), helper.make_node("Mul", ["ln", "e1"], ["g1"]),
             helper.make_node("Mul", ["g1", "half"], ["y"])]
    inits = [c("two", 2.0), c("eps", 1e-5), c("gamma", RNG.random(d) + 0.5), c("beta", RNG.random(d)),
             c("sqrt2", np.sqrt(2.0)), c("one", 1.0), c("half", 0.5)]
    m = _model(nodes, [_vi("x", [3, 4, d])], [_vi("y", None)], 13, inits)
    gm = qk.onnx.load(m)
    assert gm.graph.op_histogram() == {"Gelu": 1, "LayerNormalization": 1}
    x = RNG.standard_normal((3, 4, d)).astype(np.float32)
    np.testing.assert_allclose(gm.run({"x": x})["y"], _ort(m, {"x": x}), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("form", ["hardsigmoid", "clip_div", "mul_div"])
def test_written_out_hardswish_fuses(form):
    c = lambda name, v: _init(name, np.asarray(v, np.float32))  # noqa: E731
    if form == "hardsigmoid":
        nodes = [helper.make_node("HardSigmoid", ["x"], ["h"], alpha=1 / 6, beta=0.5),
                 helper.make_node("Mul", ["x", "h"], ["y"])]
    elif form == "clip_div":
        nodes = [helper.make_node("Add", ["x", "three"], ["a"]), helper.make_node("Clip", ["a", "zero", "six"], ["cl"]),
                 helper.make_node("Div", ["cl", "six"], ["h"]), helper.make_node("Mul", ["x", "h"], ["y"])]
    else:
        nodes = [helper.make_node("Add", ["x", "three"], ["a"]), helper.make_node("Clip", ["a", "zero", "six"], ["cl"]),
                 helper.make_node("Mul", ["x", "cl"], ["h"]), helper.make_node("Div", ["h", "six"], ["y"])]
    m = _model(nodes, [_vi("x", [2, 9])], [_vi("y", None)], 13, [c("three", 3.0), c("zero", 0.0), c("six", 6.0)])
    gm = qk.onnx.load(m)
    assert gm.graph.op_histogram() == {"HardSwish": 1}
    x = np.linspace(-5, 5, 18, dtype=np.float32).reshape(2, 9)
    np.testing.assert_allclose(gm.run({"x": x})["y"], _ort(m, {"x": x}), rtol=1e-5, atol=1e-6)


def test_attention_mask_softmax_and_nan_guard_fuse():
    """Add(scores, mask) -> Softmax -> Where(IsNaN, 0, .), as exporters write
    attention, becomes one MaskedSoftmax: ORT's numbers (a fully masked row
    gives zeros), and the export writes the ops back."""
    nodes = [helper.make_node("Add", ["x", "mask"], ["s"]), helper.make_node("Softmax", ["s"], ["p"], axis=-1),
             helper.make_node("IsNaN", ["p"], ["bad"]), helper.make_node("Where", ["bad", "zero", "p"], ["y"]),
             helper.make_node("Add", ["x", "mask"], ["s2"]), helper.make_node("Softmax", ["s2"], ["z"], axis=-1)]
    m = _model(nodes, [_vi("x", [2, 3, 4, 5]), _vi("mask", [2, 1, 1, 5])], [_vi("y", None), _vi("z", None)], 13,
               [_init("zero", np.zeros((), np.float32))])
    gm = qk.onnx.load(m)
    assert gm.graph.op_histogram() == {"MaskedSoftmax": 2}
    x = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)
    mask = np.zeros((2, 1, 1, 5), np.float32)
    mask[0, ..., 3:] = -np.inf
    mask[1] = -np.inf  # every key masked: NaN rows, zeroed by the guard
    out = gm.run({"x": x, "mask": mask})
    want = _ort(m, {"x": x, "mask": mask})
    assert not out["y"][1].any() and np.isnan(out["z"][1]).all()
    np.testing.assert_allclose(out["y"], want, rtol=1e-5, atol=1e-7)
    back = qk.onnx.to_onnx(gm)
    assert sorted({n.op_type for n in back.graph.node}) == ["Add", "IsNaN", "Softmax", "Where"]
    np.testing.assert_allclose(_ort(back, {"x": x, "mask": mask}), want, rtol=1e-5, atol=1e-7)


def test_fusion_keeps_values_other_nodes_read():
    """A MatMul whose output has a second reader is not fused into a Linear."""
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"]),
             helper.make_node("Relu", ["m"], ["z"])]
    m = _model(nodes, [_vi("x", [2, 3])], [_vi("y", None), _vi("z", None)], 13,
               [_init("w", np.ones((3, 4), np.float32)), _init("b", np.ones(4, np.float32))])
    assert "Linear" not in qk.onnx.load(m).graph.op_histogram()


def test_metadata_is_kept():
    m = _model([helper.make_node("Relu", ["x"], ["y"])], [_vi("x", [1])], [_vi("y", None)])
    m.producer_name, m.producer_version = "maker", "1.2"
    helper.set_model_props(m, {"author": "qk tests"})
    meta = qk.onnx.load(m).metadata
    assert meta["producer_name"] == "maker" and meta["opset"] == 17 and meta["metadata_props"] == {"author": "qk tests"}


# --- bad input ---------------------------------------------------------------------------------------------


def test_bad_files_are_value_errors(tmp_path):
    good = _small_cnn_onnx().SerializeToString()
    (tmp_path / "trunc.onnx").write_bytes(good[: len(good) // 2])
    (tmp_path / "text.onnx").write_text("not a model at all")
    for name in ("trunc.onnx", "text.onnx"):
        with pytest.raises(ValueError, match="model"):
            qk.onnx.load(tmp_path / name)
    with pytest.raises(ValueError, match="no such file"):
        qk.onnx.load(tmp_path / "missing.onnx")
    with pytest.raises(TypeError, match="model"):
        qk.onnx.load(42)


def test_unsupported_graphs_name_the_node_and_the_reason():
    x, y = _vi("x", [1, 2, 4, 4]), _vi("y", None)
    cases = [
        (helper.make_node("Hardmax", ["x"], ["y"], name="hm"), 17, "'hm' \\(Hardmax\\): qk does not implement"),
        (helper.make_node("Resize", ["x", "", "s"], ["y"], name="rs", mode="cubic"), 13, "'rs'.*mode='cubic'"),
        (helper.make_node("Relu", ["x"], ["y"], name="cr", domain="com.microsoft"), 17, "domain 'com.microsoft'"),
        (helper.make_node("Relu", ["x"], ["y"]), 9, "opset 9 is older"),
    ]
    for node, opset, pattern in cases:
        m = _model([node], [x], [y], opset, [_init("s", np.ones(4, np.float32))])
        if node.domain:
            m.opset_import.append(helper.make_opsetid(node.domain, 1))
        with pytest.raises(ValueError, match=pattern):
            qk.onnx.load(m)
    # an unused opset import of another domain is fine
    m = _model([helper.make_node("Relu", ["x"], ["y"])], [x], [y], 17)
    m.opset_import.append(helper.make_opsetid("ai.onnx.ml", 3))
    assert qk.onnx.load(m).run({"x": np.ones((1, 2, 4, 4), np.float32)})["y"].shape == (1, 2, 4, 4)


def test_run_checks_its_feeds():
    gm = qk.onnx.load(_small_cnn_onnx())
    x = np.zeros((2, 2, 4, 4), np.float32)
    with pytest.raises(ValueError, match="missing \\['x'\\]"):
        gm.run({})
    with pytest.raises(ValueError, match="unexpected \\['z'\\]"):
        gm.run({"x": x, "z": x})
    with pytest.raises(ValueError, match="expected shape \\(\\?, 2, 4, 4\\)"):
        gm.run({"x": np.zeros((2, 3, 4, 4), np.float32)})
    with pytest.raises(TypeError, match="expected dtype float32, got int64"):
        gm.run({"x": x.astype(np.int64)})
    with pytest.raises(TypeError, match="feeds"):
        gm.run([x])
    with pytest.raises(TypeError, match="takes 1 input"):
        gm(nn.Tensor(x), nn.Tensor(x))


def test_float64_models_need_an_explicit_dtype():
    m = _model([helper.make_node("Add", ["x", "c"], ["y"])], [_vi("x", [2], TensorProto.DOUBLE)],
               [_vi("y", None)], 17, [_init("c", np.ones(2))])
    with pytest.raises(ValueError, match="float64.*dtype=np.float32"):
        qk.onnx.load(m)
    gm = qk.onnx.load(m, dtype=np.float32)
    assert gm.run({"x": np.array([1, 2], np.float32)})["y"].dtype == np.float32


def test_input_shapes_fix_symbolic_dimensions():
    m = _small_cnn_onnx()
    gm = qk.onnx.load(m, input_shapes={"x": (3, 2, 4, 4)})
    with pytest.raises(ValueError, match="expected shape \\(3, 2, 4, 4\\)"):
        gm.run({"x": np.zeros((2, 2, 4, 4), np.float32)})
    with pytest.raises(ValueError, match="no inputs \\['nope'\\]"):
        qk.onnx.load(m, input_shapes={"nope": (1,)})
    with pytest.raises(ValueError, match="does not fit"):
        qk.onnx.load(m, input_shapes={"x": (3, 5, 4, 4)})


@pytest.mark.parametrize("density", [0.0, 0.05, 0.5, 1.0])
def test_where_with_a_single_fill_value_equals_np_where(density):
    """Where's copy-and-fill path (a single value chosen at few places, as the
    NaN guard after an attention softmax) gives np.where's result, either side."""
    from qk.graph import ops as graph_ops

    rng = np.random.default_rng(7)
    c = rng.random((4, 3, 16, 16)) < density
    full = rng.standard_normal(c.shape).astype(np.float32)
    fill = np.zeros(1, np.float32)
    where = graph_ops.get("Where")
    assert np.array_equal(where.run({}, c, fill, full), np.where(c, fill, full))
    assert np.array_equal(where.run({}, c, full, fill), np.where(c, full, fill))
    scalar = where.run({}, np.array(True), fill, np.array(2.0, np.float32))  # the fill's (1,) sets the shape
    assert scalar.shape == (1,) and scalar[0] == 0.0


@pytest.mark.parametrize("shape", [(1, 16, 8, 8), (3, 5, 7, 2), (2, 3, 9)], ids=str)
def test_relu_and_global_pool_at_inference_give_the_recorded_values(shape):
    """Relu and GlobalAveragePool take a shortcut when no gradient is recorded:
    the same values as F.relu and Tensor.mean, NaN, infinities and the signs
    of zeros included."""
    from qk.graph import ops as graph_ops

    rng = np.random.default_rng(len(shape))
    x = rng.standard_normal(shape).astype(np.float32)
    x.reshape(-1)[:6] = [np.nan, -0.0, 0.0, -np.inf, np.inf, -1.0]
    recorded = nn.Tensor(x, requires_grad=True)
    want_relu = nn.functional.relu(recorded).data
    want_pool = recorded.mean(axis=tuple(range(2, x.ndim)), keepdims=True).data
    with nn.no_grad():
        relu = graph_ops.data_of(graph_ops.get("Relu").run({}, nn.Tensor(x)))
        pool = graph_ops.data_of(graph_ops.get("GlobalAveragePool").run({}, nn.Tensor(x)))
    assert relu.dtype == pool.dtype == np.float32
    np.testing.assert_array_equal(relu, want_relu)
    np.testing.assert_array_equal(np.signbit(relu), np.signbit(want_relu))
    np.testing.assert_array_equal(pool, want_pool)
    assert graph_ops.get("Relu").run({}, recorded).requires_grad  # recording still records
