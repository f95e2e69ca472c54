"""qk.nn layers, optimizers, training, errors, and parity with PyTorch where installed."""

import numpy as np
import pytest

import qk.nn as nn
from qk.nn import functional as F
from qk.nn.tensor import Tensor


def test_module_traversal_and_replacement():
    nn.manual_seed(0)
    model = nn.models.digits_cnn()
    names = [n for n, _ in model.named_modules()]
    assert names[:3] == ["", "0", "1"]
    assert [n for n, _ in model.named_parameters()][:3] == ["0.weight", "0.bias", "1.weight"]
    assert len(model.parameters()) == 3 * 2 + 2 * 2
    assert isinstance(model.get_submodule("9"), nn.Linear)
    model.set_submodule("2", nn.Identity())
    assert isinstance(model[2], nn.Identity)
    with pytest.raises(KeyError, match="name"):
        model.get_submodule("42")
    with pytest.raises(TypeError, match="new"):
        model.set_submodule("2", "relu")


def test_state_dict_round_trip_and_errors(tmp_path):
    nn.manual_seed(0)
    a = nn.models.digits_cnn()
    a(Tensor(np.random.default_rng(0).random((8, 1, 8, 8), dtype=np.float32)))  # update BN running stats
    path = tmp_path / "cnn.npz"
    a.save(path)
    nn.manual_seed(1)
    b = nn.models.digits_cnn().load(path)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb
        np.testing.assert_array_equal(va, vb)
    assert "1.running_mean" in a.state_dict()
    state = a.state_dict()
    state.pop("0.weight")
    with pytest.raises(ValueError, match="missing keys.*0.weight"):
        b.load_state_dict(state)
    state = a.state_dict()
    state["extra"] = np.zeros(1)
    with pytest.raises(ValueError, match="unexpected keys.*extra"):
        b.load_state_dict(state)
    state = a.state_dict()
    state["9.weight"] = np.zeros((3, 3))
    with pytest.raises(ValueError, match="9.weight"):
        b.load_state_dict(state)


def test_bad_inputs_name_what_is_wrong():
    x = Tensor(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="matmul"):
        x @ Tensor(np.ones((4, 2), np.float32))
    with pytest.raises(ValueError, match="in_features"):
        nn.Linear(4, 2)(x)
    with pytest.raises(ValueError, match="weight"):
        F.conv2d(Tensor(np.ones((1, 2, 5, 5))), Tensor(np.ones((3, 1, 3, 3))))
    with pytest.raises(ValueError, match="input"):
        F.conv2d(Tensor(np.ones((2, 5, 5))), Tensor(np.ones((3, 2, 3, 3))))
    logits = Tensor(np.ones((2, 3)))
    with pytest.raises(TypeError, match="labels"):
        F.cross_entropy(logits, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="labels"):
        F.cross_entropy(logits, np.array([0, 3]))
    with pytest.raises(ValueError, match="labels"):
        F.cross_entropy(logits, np.array([0, 1, 2]))
    y = Tensor(np.ones(3), requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="shape"):
        y.backward()
    with pytest.raises(TypeError, match="input"):
        nn.Linear(3, 2)(np.ones((2, 3)))
    with pytest.raises(ValueError, match="input"):
        nn.BatchNorm2d(4)(Tensor(np.ones((2, 3, 2, 2))))


def test_optimizers_minimize_a_quadratic():
    for make in (lambda p: nn.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-4),
                 lambda p: nn.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
                 lambda p: nn.Adam(p, lr=0.1), lambda p: nn.AdamW(p, lr=0.1)):
        w = nn.Parameter(np.array([3.0, -2.0]))
        opt = make([w])
        sched = nn.CosineLR(opt, 200)
        for _ in range(200):
            opt.zero_grad()
            loss = ((w - 1.0) * (w - 1.0)).sum()
            loss.backward()
            opt.step()
            sched.step()
        np.testing.assert_allclose(w.data, [1, 1], atol=0.05)


def test_step_lr():
    opt = nn.SGD([nn.Parameter(np.zeros(1))], lr=1.0)
    sched = nn.StepLR(opt, step_size=2, gamma=0.5)
    lrs = []
    for _ in range(5):
        sched.step()
        lrs.append(opt.lr)
    assert lrs == [1.0, 0.5, 0.5, 0.25, 0.25]


def test_training_is_deterministic_for_a_seed():
    def run():
        nn.manual_seed(3)
        model = nn.models.digits_mlp()
        data = nn.load_digits()
        opt = nn.Adam(model.parameters(), lr=1e-3)
        return nn.fit(model, F.cross_entropy, opt, data.train, epochs=2, seed=5, progress=False), model.state_dict()

    pytest.importorskip("sklearn")
    (h1, s1), (h2, s2) = run(), run()
    assert h1 == h2
    for k in s1:
        np.testing.assert_array_equal(s1[k], s2[k])


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_reference_models_reach_97_percent(name, tmp_path):
    pytest.importorskip("sklearn")
    model, accuracy = nn.models.train_reference(name, seed=0, path=tmp_path / f"{name}.npz")
    assert accuracy >= 0.97
    reloaded = nn.models.REFERENCE[name]["build"]().load(tmp_path / f"{name}.npz")
    data = nn.load_digits(images=name == "cnn")
    assert nn.evaluate(reloaded, data.test) == accuracy


def test_digits_split_is_fixed_and_disjoint():
    pytest.importorskip("sklearn")
    a, b = nn.load_digits(), nn.load_digits(images=True)
    assert a.train[0].shape[1:] == (64,) and b.train[0].shape[1:] == (1, 8, 8)
    np.testing.assert_array_equal(a.test[1], b.test[1])
    assert len(a.test[0]) == 359 and len(a.calibration[0]) == 200
    assert a.train[0].dtype == np.float32 and a.train[1].dtype == np.int64


# --- parity with PyTorch ------------------------------------------------------


def _torch_param(torch, array):
    return torch.nn.Parameter(torch.from_numpy(np.array(array, dtype=np.float32)))


def test_linear_conv_bn_cross_entropy_match_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 3, 7, 7)).astype(np.float32)
    labels = rng.integers(0, 5, 6)
    nn.manual_seed(0)
    conv, bn, lin = nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4), nn.Linear(4 * 4 * 4, 5)

    tconv = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1)
    tbn = torch.nn.BatchNorm2d(4)
    tlin = torch.nn.Linear(64, 5)
    with torch.no_grad():
        tconv.weight.copy_(torch.from_numpy(conv.weight.data))
        tconv.bias.copy_(torch.from_numpy(conv.bias.data))
        tlin.weight.copy_(torch.from_numpy(lin.weight.data))
        tlin.bias.copy_(torch.from_numpy(lin.bias.data))

    xt = torch.from_numpy(x).requires_grad_(True)
    tloss = torch.nn.functional.cross_entropy(tlin(torch.relu(tbn(tconv(xt))).flatten(1)), torch.from_numpy(labels))
    tloss.backward()

    xq = Tensor(x, requires_grad=True)
    loss = F.cross_entropy(lin(F.relu(bn(conv(xq))).flatten(1)), labels)
    loss.backward()

    def close(a, b):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-5, atol=1e-6)

    close(loss.data, tloss)
    close(xq.grad, xt.grad)
    close(conv.weight.grad, tconv.weight.grad)
    close(conv.bias.grad, tconv.bias.grad)
    close(bn.weight.grad, tbn.weight.grad)
    close(bn.bias.grad, tbn.bias.grad)
    close(lin.weight.grad, tlin.weight.grad)
    close(bn.running_mean, tbn.running_mean)
    close(bn.running_var, tbn.running_var)
    bn.eval()
    tbn.eval()
    with torch.no_grad():
        close(bn(conv(Tensor(x))).data, tbn(tconv(torch.from_numpy(x))))
