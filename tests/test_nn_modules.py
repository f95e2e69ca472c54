"""qk.nn modules, state dicts, optimizers, training loop, data and error messages."""

import io

import numpy as np
import pytest

import qk.nn as nn
from qk.nn import functional as F


def small_cnn():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(4 * 4 * 4, 10),
    )


def test_named_modules_parameters_and_replacement():
    nn.manual_seed(0)
    model = small_cnn()
    names = [n for n, _ in model.named_modules()]
    assert names == ["", "0", "1", "2", "3", "4", "5"]
    pnames = [n for n, _ in model.named_parameters()]
    assert pnames == ["0.weight", "0.bias", "1.weight", "1.bias", "5.weight", "5.bias"]
    assert len(model.parameters()) == 6
    assert isinstance(model.get_submodule("0"), nn.Conv2d)
    model.set_submodule("1", nn.Identity())
    assert isinstance(model[1], nn.Identity)
    assert "1.weight" not in dict(model.named_parameters())
    model[5] = nn.Linear(64, 3)
    assert model(nn.Tensor(np.zeros((2, 1, 8, 8)))).shape == (2, 3)
    with pytest.raises(AttributeError, match="no submodule 'x'"):
        model.get_submodule("x.y")

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            return self.head(self.features(x))

    net = Net()
    assert [n for n, _ in net.named_modules()] == ["", "features", "features.0", "features.1", "head"]
    net.set_submodule("features.0", nn.Linear(3, 4, bias=False))
    assert net.features[0].bias is None
    assert [n for n, _ in net.named_parameters()] == ["features.0.weight", "head.weight", "head.bias"]


def test_batchnorm_train_eval_statistics():
    bn = nn.BatchNorm1d(3, momentum=0.5)
    x = np.random.default_rng(0).normal(2.0, 3.0, size=(64, 3)).astype(np.float32)
    y = bn(nn.Tensor(x)).data
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(y.std(0), 1, atol=1e-3)
    np.testing.assert_allclose(bn.running_mean, 0.5 * x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(bn.running_var, 0.5 + 0.5 * x.var(0, ddof=1), rtol=1e-5)
    bn.eval()
    y = bn(nn.Tensor(x)).data
    expected = (x - bn.running_mean) / np.sqrt(bn.running_var + bn.eps)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
    before = bn.running_mean.copy()
    bn(nn.Tensor(x))
    np.testing.assert_array_equal(before, bn.running_mean)  # eval does not update
    with pytest.raises(ValueError, match="channels"):
        bn(nn.Tensor(np.zeros((4, 5))))
    with pytest.raises(ValueError, match="dimensions"):
        nn.BatchNorm2d(3)(nn.Tensor(np.zeros((4, 3))))


def test_train_eval_flags_and_dropout():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    model.eval()
    assert not any(m.training for m in model.modules())
    x = nn.Tensor(np.ones((3, 4)))
    np.testing.assert_array_equal(model(x).data, model[0](x).data)
    model.train()
    assert all(m.training for m in model.modules())


def test_state_dict_roundtrip_and_errors(tmp_path):
    nn.manual_seed(0)
    a = small_cnn()
    a(nn.Tensor(np.random.default_rng(0).normal(size=(4, 1, 8, 8))))  # move running stats
    state = a.state_dict()
    assert set(state) == {"0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                          "5.weight", "5.bias"}
    nn.manual_seed(1)
    b = small_cnn()
    path = tmp_path / "m.npz"
    nn.save(a, path)
    nn.load(b, path)
    for k, v in b.state_dict().items():
        np.testing.assert_array_equal(v, state[k])
    state["0.weight"][...] = 7  # state_dict holds copies
    assert not np.any(a[0].weight.data == 7)

    good = a.state_dict()
    missing = dict(good)
    del missing["5.bias"]
    with pytest.raises(KeyError, match=r"missing keys: \['5.bias'\]"):
        b.load_state_dict(missing)
    extra = dict(good, extra=np.zeros(1))
    with pytest.raises(KeyError, match=r"unexpected keys: \['extra'\]"):
        b.load_state_dict(extra)
    b.load_state_dict(extra, strict=False)
    wrong = dict(good)
    wrong["5.weight"] = np.zeros((3, 3))
    before = b.state_dict()
    with pytest.raises(ValueError, match=r"5.weight: expected \(10, 64\), got \(3, 3\)"):
        b.load_state_dict(wrong)
    for k, v in b.state_dict().items():  # nothing was modified
        np.testing.assert_array_equal(v, before[k])


def test_shape_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"a.shape\[-1\]=4 != b.shape\[-2\]=5"):
        F.matmul(nn.Tensor(np.zeros((3, 4))), nn.Tensor(np.zeros((5, 2))))
    with pytest.raises(ValueError, match="input has 3 channels .* weight expects 2"):
        F.conv2d(nn.Tensor(np.zeros((1, 3, 5, 5))), nn.Tensor(np.zeros((4, 2, 3, 3))))
    with pytest.raises(ValueError, match="4-D"):
        F.conv2d(nn.Tensor(np.zeros((3, 5, 5))), nn.Tensor(np.zeros((4, 3, 3, 3))))
    with pytest.raises(ValueError, match="larger than the padded input"):
        F.conv2d(nn.Tensor(np.zeros((1, 1, 2, 2))), nn.Tensor(np.zeros((1, 1, 3, 3))))
    with pytest.raises(ValueError, match="input has 5 features"):
        nn.Linear(4, 2)(nn.Tensor(np.zeros((3, 5))))
    with pytest.raises(ValueError, match="cannot be broadcast"):
        nn.Tensor(np.zeros(3)) + nn.Tensor(np.zeros(4))
    logits = nn.Tensor(np.zeros((3, 4)), requires_grad=True)
    with pytest.raises(TypeError, match="integer"):
        F.cross_entropy(logits, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"label 4 is out of range \[0, 4\)"):
        F.cross_entropy(logits, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match="out of range"):
        F.cross_entropy(logits, np.array([0, -1, 1]))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        F.cross_entropy(logits, np.array([0, 1]))
    with pytest.raises(ValueError, match="mse_loss"):
        F.mse_loss(logits, np.zeros((3, 3)))


def test_optimizers_reduce_a_quadratic():
    for make in [lambda p: nn.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-4),
                 lambda p: nn.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
                 lambda p: nn.Adam(p, lr=0.1), lambda p: nn.AdamW(p, lr=0.1)]:
        w = nn.Parameter(np.full(3, 5.0))
        opt = make([w])
        for _ in range(200):
            opt.zero_grad()
            F.sum(w * w).backward()
            opt.step()
        assert np.abs(w.data).max() < 0.1


def test_schedules():
    opt = nn.SGD([nn.Parameter(np.zeros(1))], lr=1.0)
    sched = nn.CosineLR(opt, total=4)
    lrs = []
    for _ in range(5):
        sched.step()
        lrs.append(opt.lr)
    np.testing.assert_allclose(lrs, [0.8535534, 0.5, 0.1464466, 0.0, 0.0], atol=1e-6)
    opt = nn.SGD([nn.Parameter(np.zeros(1))], lr=1.0)
    sched = nn.StepLR(opt, step_size=2, gamma=0.5)
    lrs = []
    for _ in range(4):
        sched.step()
        lrs.append(opt.lr)
    assert lrs == [1.0, 0.5, 0.5, 0.25]


def _toy_data(n=200):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(n, 1, 8, 8)).astype(np.float32)
    y = (x[:, 0, :4].sum(axis=(1, 2)) > 0).astype(np.int64)
    return x, y


def test_training_is_deterministic_for_a_seed(capsys):
    data = _toy_data()
    results = []
    for _ in range(2):
        nn.manual_seed(11)
        model = small_cnn()
        opt = nn.SGD(model.parameters(), lr=0.05, momentum=0.9)
        hist = nn.fit(model, F.cross_entropy, opt, data, epochs=2, batch_size=32, seed=3,
                      val_data=data, progress=False)
        results.append((hist[-1]["loss"], model.state_dict()))
    assert results[0][0] == results[1][0]
    for k in results[0][1]:
        np.testing.assert_array_equal(results[0][1][k], results[1][1][k])
    assert capsys.readouterr().err == ""
    assert 0 <= hist[-1]["val_accuracy"] <= 1


def test_fit_progress_line_and_evaluate(capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tqdm(name, *args, **kwargs):
        if name.startswith("tqdm"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    x, y = _toy_data(64)
    nn.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    nn.fit(model, F.cross_entropy, nn.Adam(model.parameters(), lr=0.01), (x, y), epochs=1)
    assert "epoch 1/1  loss" in capsys.readouterr().err
    acc = nn.evaluate(model, (x, y))
    assert 0 <= acc <= 1 and model.training
    with pytest.raises(ValueError, match="64 inputs but 3 labels"):
        nn.evaluate(model, (x, y[:3]))


def test_digits_split():
    pytest.importorskip("sklearn")
    d = nn.load_digits()
    assert d.train[0].shape == (1257, 64) and d.calib[0].shape == (180, 64) and d.test[0].shape == (360, 64)
    assert d.train[0].dtype == np.float32 and d.train[1].dtype == np.int64
    assert 0 <= d.train[0].min() and d.train[0].max() <= 1
    d2 = nn.load_digits(images=True)
    assert d2.test[0].shape == (360, 1, 8, 8)
    np.testing.assert_array_equal(d2.test[0].reshape(360, 64), d.test[0])
    np.testing.assert_array_equal(nn.load_digits().test[1], d.test[1])
    assert len(d.train[0]) + len(d.calib[0]) + len(d.test[0]) == 1797
    assert set(np.unique(d.test[1])) == set(range(10))


def test_digits_needs_sklearn_message(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(ImportError, match=r"qk\[demo\]"):
        nn.load_digits()


def test_import_qk_does_not_import_optional_deps():
    import subprocess
    import sys

    code = "import sys, qk, qk.nn; print(any(m in sys.modules for m in ('sklearn', 'torch', 'tqdm')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
