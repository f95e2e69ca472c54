"""qk.qat: STE and LSQ gradients, QAT layers, prepare/from_ptq/calibrate/freeze/convert, errors."""

import copy

import numpy as np
import pytest

import qk
from qk import nn, ptq, qat
from qk.quantization import qat_graph
from qk.quant import (
    INT8_DYNAMIC, INT8_STATIC, UINT8_ACTIVATION, MinMaxObserver, NotCalibratedError, QConfig, QScheme,
)

pytest.importorskip("sklearn")


def weight_cfg(bits, axis=0):
    return QConfig(weight=QScheme(bits, signed=True, symmetric=True, axis=axis), activation=UINT8_ACTIVATION,
                   mode="static")


@pytest.fixture(scope="module")
def mlp():
    return nn.models.train_reference("mlp", seed=0)[0], nn.load_digits()


@pytest.fixture(scope="module")
def cnn():
    return nn.models.train_reference("cnn", seed=0, epochs=3)[0], nn.load_digits(images=True)


@pytest.fixture(scope="module")
def reference_cnn():
    return nn.models.train_reference("cnn", seed=0)


def short_fit(model, data, steps=6, lr=1e-3, seed=0, after_step=None, batch_size=32):
    x, y = data.train
    opt = nn.Adam(model.parameters(), lr=lr)
    nn.fit(model, nn.cross_entropy, opt, (x[: steps * batch_size], y[: steps * batch_size]), epochs=1,
           batch_size=batch_size, seed=seed, progress=False, after_step=after_step, blas_threads=1)
    return model


# --- the straight-through estimator --------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ste_forward_is_the_kernel_and_gradient_is_the_clamp_mask(dtype):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((5, 40)) * 2).astype(dtype)
    scale, zp, qmin, qmax = 0.03, 3, -8, 7  # range [(qmin - zp) * s, (qmax - zp) * s] = [-0.33, 0.12]
    t = nn.Tensor(x, requires_grad=True)
    y = qat.fake_quantize(t, scale, zp, qmin, qmax)
    expected = qk.fake_quantize(x.astype(np.float32), scale, zp, qmin=qmin, qmax=qmax)
    np.testing.assert_array_equal(y.data, expected.astype(dtype))
    g = rng.standard_normal(x.shape).astype(dtype)
    y.backward(g)
    lo, hi = np.float32(qmin - zp) * np.float32(scale), np.float32(qmax - zp) * np.float32(scale)
    inside = (x >= lo) & (x <= hi)
    assert inside.any() and (~inside).any()
    np.testing.assert_array_equal(t.grad[inside], g[inside])   # identity inside
    assert not t.grad[~inside].any()                           # zero outside


def test_ste_gradient_numerically_per_channel():
    """Finite differences of a smooth function of the *clamped* input agree with
    the STE gradient: the STE is the gradient of clip(x, lo, hi)."""
    rng = np.random.default_rng(1)
    x = rng.uniform(-2, 2, (3, 4, 5)).astype(np.float64)
    scale = np.array([0.01, 0.02, 0.005, 0.03])
    zp = np.array([0, 10, -5, 3])
    t = nn.Tensor(x, requires_grad=True)
    y = qat.fake_quantize(t, scale, zp, -128, 127, axis=1)
    w = rng.standard_normal(x.shape)
    (y * nn.Tensor(w)).sum().backward()
    lo = ((-128 - zp) * scale)[None, :, None]
    hi = ((127 - zp) * scale)[None, :, None]
    h = 1e-6

    def f(v):
        return (np.clip(v, lo, hi) * w).sum()

    numeric = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        numeric[idx] = (f(x + e) - f(x - e)) / (2 * h)
    np.testing.assert_allclose(t.grad, numeric, atol=1e-6)


# --- LSQ ---------------------------------------------------------------------------------


def paper_lsq_grads(x, s, g, qn, qp):
    """Esser et al. 2019, eq. 3 (symmetric, zero point 0), in float64."""
    v = x / s
    ds = np.where(v <= -qn, -qn, np.where(v >= qp, qp, np.rint(v) - v))
    dx = np.where((v > -qn) & (v < qp), 1.0, 0.0)
    return g * dx, (g * ds).sum()


def test_lsq_gradients_against_the_paper_by_hand():
    x = np.array([-3.0, -1.2, 0.3, 0.74, 1.6, 2.5], np.float32)
    s = nn.Tensor(np.float32(0.5), requires_grad=True)
    t = nn.Tensor(x, requires_grad=True)
    y = qat.lsq_fake_quantize(t, s, 0, -4, 3)  # 3-bit signed: Qn = 4, Qp = 3
    np.testing.assert_array_equal(y.data, [-2.0, -1.0, 0.5, 0.5, 1.5, 1.5])
    y.sum().backward()
    # v = x / s = [-6, -2.4, 0.6, 1.48, 3.2, 5] -> ds = [-4, 0.4, 0.4, -0.48, 3, 3], sum 2.32
    g = 1 / np.sqrt(6 * 3)
    np.testing.assert_allclose(s.grad, 2.32 * g, rtol=1e-6)
    np.testing.assert_array_equal(t.grad, [0, 1, 1, 1, 0, 0])


@pytest.mark.parametrize("axis", [None, 0])
def test_lsq_gradients_match_the_formula(axis):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 30)).astype(np.float32)
    s0 = np.array([0.05, 0.1, 0.2, 0.02], np.float32) if axis == 0 else np.float32(0.1)
    s = nn.Tensor(s0, requires_grad=True)
    t = nn.Tensor(x, requires_grad=True)
    g = rng.standard_normal(x.shape).astype(np.float32)
    qat.lsq_fake_quantize(t, s, 0, -8, 7, axis=axis, grad_scale=1.0).backward(g)
    if axis is None:
        dx, ds = paper_lsq_grads(x.astype(np.float64), float(s0), g, 8, 7)
        np.testing.assert_allclose(s.grad, ds, rtol=1e-4)
    else:
        rows = [paper_lsq_grads(x[i].astype(np.float64), float(s0[i]), g[i], 8, 7) for i in range(4)]
        dx = np.stack([r[0] for r in rows])
        np.testing.assert_allclose(s.grad, [r[1] for r in rows], rtol=1e-4)
    np.testing.assert_array_equal(t.grad, dx)


def test_lsq_zero_point_gradient_and_affine_scale():
    x = np.array([-1.0, 0.1, 0.6, 2.0], np.float32)
    s = nn.Tensor(np.float32(0.25), requires_grad=True)
    zp = nn.Tensor(np.float32(2.2), requires_grad=True)  # rounds to 2; grid [0, 7] -> range [-0.5, 1.25]
    y = qat.lsq_fake_quantize(nn.Tensor(x), s, zp, 0, 7, grad_scale=1.0)
    np.testing.assert_allclose(y.data, [-0.5, 0.0, 0.5, 1.25])
    y.sum().backward()
    # v + zp = [-2, 2.4, 4.4, 10]: below, inside, inside, above
    np.testing.assert_allclose(s.grad, (0 - 2) + (0 - 0.4) + (2 - 2.4) + (7 - 2), rtol=1e-6)
    np.testing.assert_allclose(zp.grad, -0.25 - 0.25, rtol=1e-6)


def test_lsq_matches_torch():
    """PyTorch's learnable fake-quantize tests the *rounded* value against the
    grid, so inputs within half a step beyond it differ from the paper's rule
    (which qk follows); away from that band the gradients agree."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 20)).astype(np.float32)
    v = x / np.float32(0.07)
    x[(v > 7) & (v < 7.5)] += 0.07
    x[(v < -8) & (v > -8.5)] -= 0.07
    g = rng.standard_normal(x.shape).astype(np.float32)
    tx = torch.tensor(x, requires_grad=True)
    ts = torch.tensor([0.07], requires_grad=True)
    tz = torch.tensor([0.0], requires_grad=True)
    factor = 1 / np.sqrt(x.size * 7)
    torch._fake_quantize_learnable_per_tensor_affine(tx, ts, tz, -8, 7, factor).backward(torch.tensor(g))
    s = nn.Tensor(np.float32(0.07), requires_grad=True)
    t = nn.Tensor(x, requires_grad=True)
    qat.lsq_fake_quantize(t, s, 0, -8, 7).backward(g)
    np.testing.assert_allclose(t.grad, tx.grad.numpy())
    np.testing.assert_allclose(s.grad, ts.grad.numpy()[0], rtol=1e-4)


# --- FakeQuantize --------------------------------------------------------------------------


def test_fake_quantize_module_observes_in_training_until_frozen():
    fq = qat.FakeQuantize(UINT8_ACTIVATION)
    with pytest.raises(NotCalibratedError, match="no range"):
        fq.eval()(nn.Tensor(np.ones(3, np.float32)))
    fq.train()
    fq(nn.Tensor(np.array([0.0, 1.0], np.float32)))
    first = fq.qparams()
    fq(nn.Tensor(np.array([0.0, 3.0], np.float32)))  # moving average: the range moves a little
    assert fq.qparams()[0] > first[0]
    fq.freeze()
    frozen = fq.qparams()
    fq(nn.Tensor(np.array([-5.0, 9.0], np.float32)))
    assert fq.qparams() == frozen
    fq.eval()(nn.Tensor(np.array([100.0], np.float32)))  # eval never observes
    assert fq.qparams() == frozen


def test_lsq_scale_is_learned_and_stays_positive():
    fq = qat.FakeQuantize(QScheme(4, signed=True, symmetric=True), lsq=True)
    x = nn.Tensor(np.linspace(-1, 1, 50, dtype=np.float32))
    fq.train()(x)
    fq.freeze()
    assert isinstance(fq.scale, nn.Parameter)
    before = float(fq.scale.data)
    fq(x).sum().backward()
    assert fq.scale.grad is not None
    fq.scale.data = np.float32(-1.0)  # a wild optimizer step
    fq(x)
    assert fq.scale.data > 0 and fq.qparams()[0] > 0
    assert before > 0


# --- prepare / convert on models -----------------------------------------------------------


def layer_nodes(qmodel):
    """The integer layer nodes of a converted graph, with float values between them."""
    from qk.quantization.graph import node_cores, without_chains

    return [n for n in without_chains(qmodel).graph.nodes if node_cores(n)]


def core_of(node):
    return node.attrs["core"] if "core" in node.attrs else node.attrs["cores"][0]


def input_fq(q, layer: str):
    """The FakeQuantize on the input of node `layer` of a QAT graph."""
    g = q.graph
    node = next(n for n in g.nodes if n.name == layer)
    return g.producer(node.inputs[0]).attrs["fq"]


def test_prepare_folds_batchnorm_and_leaves_the_model_alone(cnn):
    model, data = cnn
    state = copy.deepcopy(model.state_dict())
    q = qat.prepare(model)
    assert isinstance(q, qat_graph.QATGraph)
    assert [n.op_type for n in q.graph.nodes if n.op_type != "FakeQuant"] == \
        ["Conv", "Relu", "MaxPool", "Conv", "Relu", "MaxPool", "Flatten", "Gemm"]  # BN folded away
    assert sorted(q.weight_fq) == ["0", "4", "9"]  # node names are the module names
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, state[k])


def test_8bit_frozen_qat_equals_ptq(mlp):
    model, data = mlp
    prepared = ptq.prepare(model, INT8_STATIC)
    ptq.calibrate(prepared, data.calibration, progress=False)
    ref = nn.predict(ptq.convert(prepared), data.test[0])

    # From the PTQ observers.
    q = qat.freeze_observers(qat.from_ptq(prepared))
    np.testing.assert_array_equal(nn.predict(qat.convert(q), data.test[0]), ref)
    # The fake-quantized model predicts the same classes.
    assert (nn.predict(q, data.test[0]).argmax(1) == ref.argmax(1)).mean() >= 0.995

    # From prepare + calibrate with the same observer as PTQ: later layers observe
    # the fake-quantized outputs of earlier ones (PTQ observes float ones), so the
    # ranges differ slightly, and so do a few logits, not the predictions.
    cfg = QConfig(weight=INT8_STATIC.weight, activation=UINT8_ACTIVATION, activation_observer=MinMaxObserver)
    q2 = qat.calibrate(qat.prepare(model, cfg), data.calibration)
    assert input_fq(q2, "0").qparams() == prepared.observers["input"].qparams()  # the first layer: the same data
    got = nn.predict(qat.convert(qat.freeze_observers(q2)), data.test[0])
    assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.995


def _within_one_quantum(qat_model, qmodel, x):
    """Each converted layer equals its QAT layer on the same input to well under
    one output quantum (x_scale * w_scale), and the models agree end to end."""
    from qk.graph.module import run_node

    qnodes = layer_nodes(qmodel)
    assert [n.name for n in qnodes] == list(qat_model.weight_fq)
    values = qat_model.eval().run({"input": x}, [v for n in qnodes for v in (n.inputs[0], n.outputs[0])])
    for node in qnodes:
        want = values[node.outputs[0]]  # the QAT layer (and the ReLU fused into the integer one)
        with nn.no_grad():
            got = np.asarray(qk.graph.ops.data_of(run_node(node, [values[node.inputs[0]]])[0]))
        core = core_of(node)
        quantum = core.x_scale * core.w_scale.reshape((1, -1) + (1,) * (want.ndim - 2))
        assert np.all(np.abs(got - want) <= quantum), node.name
    # End to end, float rounding upstream can move an input of the last layer
    # across a rounding boundary (one activation quantum): that is the bound.
    fq = nn.predict(qat_model, x)
    qm = nn.predict(qmodel, x)
    last = core_of(qnodes[-1])
    w_deq = np.abs(last.weight_q.astype(np.float32)) * np.reshape(last.w_scale, (-1, 1))
    assert np.abs(fq - qm).max() <= 2 * last.x_scale * w_deq.max()
    assert (np.abs(fq - qm) > 1e-4 * np.abs(fq).max()).mean() < 0.05
    assert (fq.argmax(1) == qm.argmax(1)).mean() >= 0.99


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6, 7, 8])
@pytest.mark.parametrize("axis", [0, None], ids=["per-channel", "per-tensor"])
def test_convert_within_one_quantum_of_fake_quant(mlp, bits, axis):
    model, data = mlp
    q = qat.prepare(model, weight_cfg(bits, axis))
    qat.calibrate(q, data.calibration)
    short_fit(q, data, steps=4)
    qm = qat.convert(q)
    for node in layer_nodes(qm):
        core = core_of(node)
        w = core.weight_q
        assert w.min() >= -(1 << (bits - 1)) and w.max() <= (1 << (bits - 1)) - 1
        assert core.bits == bits
        if axis is None:
            assert np.unique(core.w_scale).size == 1
    _within_one_quantum(q, qm, data.test[0])


@pytest.mark.parametrize("lsq", [False, True])
def test_cnn_convert_within_one_quantum(cnn, lsq):
    model, data = cnn
    prepared = ptq.prepare(model, weight_cfg(4))
    ptq.calibrate(prepared, data.calibration, progress=False)
    q = qat.from_ptq(prepared, lsq=lsq)
    short_fit(q, data, steps=4)
    qm = qat.convert(q)
    first = layer_nodes(qm)[0]
    assert first.name == "0" and core_of(first).relu and "Relu" not in qm.graph.op_histogram()  # ReLUs fused
    _within_one_quantum(q, qm, data.test[0][:200])


def recipe(model, data, bits, lsq=False, epochs=10, seed=0):
    """The recipe of the qk.qat docstring."""
    prepared = ptq.prepare(model, weight_cfg(bits))
    ptq.calibrate(prepared, data.calibration, progress=False)
    q = qat.from_ptq(prepared, lsq=lsq)
    steps = epochs * -(-len(data.train[0]) // 64)
    opt = nn.Adam(q.parameters(), lr=1e-3)
    nn.fit(q, nn.cross_entropy, opt, data.train, epochs, batch_size=64, seed=seed, scheduler=nn.CosineLR(opt, steps),
           progress=False, blas_threads=1, after_step=qat.freeze_observers_after(steps // 2))
    return nn.evaluate(qat.convert(q), data.test), nn.evaluate(ptq.convert(prepared), data.test)


def test_int4_recipe_within_a_point_of_fp32(mlp):
    model, data = mlp
    qat_acc, ptq_acc = recipe(model, data, 4)
    assert qat_acc >= nn.evaluate(model, data.test) - 0.01
    qat_acc, ptq_acc = recipe(model, data, 2, epochs=5)
    assert qat_acc > ptq_acc + 0.01  # 2 bits: PTQ loses points, QAT wins them back


@pytest.mark.slow
@pytest.mark.parametrize("bits", [2, 3, 4])
@pytest.mark.parametrize("lsq", [False, True])
def test_cnn_recipe_within_a_point_of_fp32(reference_cnn, bits, lsq):
    model, fp32 = reference_cnn
    qat_acc, _ = recipe(model, nn.load_digits(images=True), bits, lsq=lsq)
    assert qat_acc >= fp32 - (0.01 if bits >= 3 else 0.02)


def test_state_dict_round_trip_and_saving_the_converted_model(cnn, tmp_path):
    model, data = cnn
    a = qat.calibrate(qat.prepare(model, weight_cfg(4), lsq=True), data.calibration)
    short_fit(qat.freeze_observers(a), data, steps=2)
    b = qat.freeze_observers(qat.calibrate(qat.prepare(model, weight_cfg(4), lsq=True), data.calibration[0][:10]))
    b.load_state_dict(a.state_dict())
    x = data.test[0][:50]
    np.testing.assert_array_equal(nn.predict(a, x), nn.predict(b, x))
    ptq.save(qat.convert(a), tmp_path / "q.npz")
    np.testing.assert_array_equal(nn.predict(ptq.load(tmp_path / "q.npz"), x), nn.predict(qat.convert(a), x))


def test_training_is_deterministic(cnn):
    model, data = cnn

    def run():
        q = qat.calibrate(qat.prepare(model, weight_cfg(4), lsq=True), data.calibration)
        short_fit(q, data, steps=5, after_step=qat.freeze_observers_after(2))
        return q

    a, b = run(), run()
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        np.testing.assert_array_equal(va, vb, err_msg=k)
    np.testing.assert_array_equal(nn.predict(qat.convert(a), data.test[0]), nn.predict(qat.convert(b), data.test[0]))


def test_observers_update_in_training_until_frozen_after_n_steps(mlp):
    model, data = mlp
    q = qat.calibrate(qat.prepare(model), data.calibration)
    fq = input_fq(q, "0")
    seen = []
    hook = qat.freeze_observers_after(3)

    def after(step):
        hook(step)
        seen.append(float(input_fq(q, "2").qparams()[0]))

    assert fq.observer_enabled
    short_fit(q, data, steps=6, after_step=after)
    assert len(set(seen[:3])) == 3           # ranges move while observing
    assert len(set(seen[2:])) == 1           # and stop after step 3
    assert all(not m.observer_enabled for _, m in q.named_modules() if isinstance(m, qat.FakeQuantize))
    # An explicit model works too, and other QAT models are left alone.
    other = qat.calibrate(qat.prepare(model), data.calibration)
    q2 = qat.calibrate(qat.prepare(model), data.calibration)
    short_fit(q2, data, steps=2, after_step=qat.freeze_observers_after(1, model=q2))
    assert not input_fq(q2, "0").observer_enabled and input_fq(other, "0").observer_enabled


def test_from_ptq_starts_from_the_ptq_ranges(mlp):
    model, data = mlp
    prepared = ptq.prepare(model, weight_cfg(4))
    ptq.calibrate(prepared, data.calibration, progress=False)
    before = prepared.graph.op_histogram()
    q = qat.from_ptq(prepared)
    assert len(q.activation_fq) == 3
    for value, fq in q.activation_fq.items():
        s, z = prepared.observers[value].qparams()
        qs, qz = fq.qparams()
        assert qs == s and qz == z
        assert fq.observer_enabled
    # The QAT observer continues from the PTQ range (choose_qparams of that range gives it back).
    fq = input_fq(q, "0")
    s2, z2 = fq.observer.qparams()
    assert abs(s2 - fq.qparams()[0]) <= 1e-6 * fq.qparams()[0] and z2 == fq.qparams()[1]
    assert prepared.graph.op_histogram() == before and "FakeQuant" not in before  # prepared untouched
    lq = qat.from_ptq(prepared, lsq=True)
    assert not input_fq(lq, "0").observer_enabled and isinstance(input_fq(lq, "0").scale, nn.Parameter)
    assert len(lq.parameters()) == len(model.parameters()) + 2 * 3


def test_layers_override_keeps_float(mlp):
    model, data = mlp
    q = qat.prepare(model, weight_cfg(4), layers={"4": None, "2": weight_cfg(8)})
    assert sorted(q.weight_fq) == ["0", "2"] and q.weight_fq["2"].scheme.bits == 8
    qm = qat.convert(qat.calibrate(q, data.calibration))
    ops = {n.name: n.op_type for n in qm.graph.nodes}
    assert ops["4"] == "Gemm" and ops["0"] == "QuantizedLinear" and core_of(layer_nodes(qm)[1]).bits == 8


def test_bad_input_gives_clear_errors(mlp):
    model, data = mlp
    with pytest.raises(ValueError, match="bits"):
        QScheme(9, signed=True, symmetric=True)
    with pytest.raises(ValueError, match="bits"):
        QScheme(1, signed=True, symmetric=True)
    with pytest.raises(ValueError, match="mode='static'"):
        qat.prepare(model, INT8_DYNAMIC)
    with pytest.raises(TypeError, match="qconfig"):
        qat.prepare(model, "int8")
    with pytest.raises(TypeError, match="model"):
        qat.prepare("model")
    with pytest.raises(ValueError, match="signed symmetric"):
        qat.prepare(model, QConfig(weight=UINT8_ACTIVATION, activation=UINT8_ACTIVATION))
    with pytest.raises(ValueError, match="layers"):
        qat.prepare(model, layers={"nope": None})
    with pytest.raises(ValueError, match="mode='static'"):
        qat.prepare(model, layers={"0": INT8_DYNAMIC})
    fresh = qat.prepare(model)
    with pytest.raises(NotCalibratedError, match="observed no data"):
        qat.freeze_observers(fresh)
    with pytest.raises(NotCalibratedError, match="no range"):
        qat.convert(fresh)
    with pytest.raises(TypeError, match="QAT model"):
        qat.convert(model)
    with pytest.raises(TypeError, match="QAT model"):
        qat.calibrate(model, data.calibration)
    with pytest.raises(ValueError, match="no batches"):
        qat.calibrate(fresh, np.zeros((0, 64), np.float32))
    with pytest.raises(TypeError, match="prepared"):
        qat.from_ptq(model)
    with pytest.raises(NotCalibratedError, match="calibrate"):
        qat.from_ptq(ptq.prepare(model))
    with pytest.raises(ValueError, match="n_steps"):
        qat.freeze_observers_after(-1)
    with pytest.raises(TypeError, match="x"):
        qat.fake_quantize(np.ones(3, np.float32), 0.1, 0, -128, 127)
    with pytest.raises(ValueError, match="qmin"):
        qat.fake_quantize(nn.Tensor(np.ones(3, np.float32)), 0.1, 0, 5, 5)
    with pytest.raises(ValueError, match="scale"):
        qat.fake_quantize(nn.Tensor(np.ones(3, np.float32)), 0.0, 0, -128, 127)
    with pytest.raises(ValueError, match="scale"):
        qat.lsq_fake_quantize(nn.Tensor(np.ones((2, 3), np.float32)), nn.Tensor(np.ones(3, np.float32)), 0,
                              -8, 7, axis=0)
    with pytest.raises(ValueError, match="learn_zero_point"):
        qat.FakeQuantize(QScheme(8, signed=True, symmetric=True), lsq=True, learn_zero_point=True)
