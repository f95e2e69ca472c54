"""qk.nn forward and backward against PyTorch on the same weights (skipped without torch)."""

import numpy as np
import pytest

import qk.nn as nn
from qk.nn import functional as F

torch = pytest.importorskip("torch")

RTOL = 1e-5


def close(ours, theirs, atol=1e-6):
    theirs = theirs.detach().numpy()
    scale = max(np.abs(theirs).max(), 1e-3)
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=max(atol, RTOL * scale * 1e-1))


@pytest.fixture(autouse=True)
def _double():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def rand(*shape, seed=0):
    return np.random.default_rng(seed + len(shape)).normal(size=shape)


def test_linear_matches_torch():
    x, w, b = rand(5, 7), rand(3, 7, seed=1), rand(3, seed=2)
    g = rand(5, 3, seed=3)
    tx = torch.tensor(x, requires_grad=True)
    tl = torch.nn.Linear(7, 3)
    with torch.no_grad():
        tl.weight.copy_(torch.tensor(w))
        tl.bias.copy_(torch.tensor(b))
    ty = tl(tx)
    ty.backward(torch.tensor(g))

    qx = nn.Tensor(x, requires_grad=True, dtype=np.float64)
    qw = nn.Tensor(w, requires_grad=True, dtype=np.float64)
    qb = nn.Tensor(b, requires_grad=True, dtype=np.float64)
    qy = F.linear(qx, qw, qb)
    qy.backward(g)
    close(qy.data, ty)
    close(qx.grad, tx.grad)
    close(qw.grad, tl.weight.grad)
    close(qb.grad, tl.bias.grad)


@pytest.mark.parametrize("stride,padding", [(1, 0), (1, 1), (2, 1)])
def test_conv2d_matches_torch(stride, padding):
    x, w, b = rand(2, 3, 9, 7), rand(4, 3, 3, 3, seed=1), rand(4, seed=2)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.conv2d(tx, tw, tb, stride=stride, padding=padding)
    g = rand(*ty.shape, seed=5)
    ty.backward(torch.tensor(g))
    qx, qw, qb = (nn.Tensor(a, requires_grad=True, dtype=np.float64) for a in (x, w, b))
    qy = F.conv2d(qx, qw, qb, stride, padding)
    qy.backward(g)
    close(qy.data, ty)
    close(qx.grad, tx.grad)
    close(qw.grad, tw.grad)
    close(qb.grad, tb.grad)


@pytest.mark.parametrize("shape", [(8, 5), (4, 3, 5, 6)])
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_matches_torch(shape, training):
    x = rand(*shape) * 2 + 1
    c = shape[1]
    w, b = rand(c, seed=1), rand(c, seed=2)
    rm, rv = rand(c, seed=3), np.abs(rand(c, seed=4)) + 0.5
    tbn = (torch.nn.BatchNorm1d if len(shape) == 2 else torch.nn.BatchNorm2d)(c)
    with torch.no_grad():
        tbn.weight.copy_(torch.tensor(w))
        tbn.bias.copy_(torch.tensor(b))
        tbn.running_mean.copy_(torch.tensor(rm))
        tbn.running_var.copy_(torch.tensor(rv))
    tbn.train(training)
    tx = torch.tensor(x, requires_grad=True)
    ty = tbn(tx)
    g = rand(*shape, seed=6)
    ty.backward(torch.tensor(g))

    qbn = (nn.BatchNorm1d if len(shape) == 2 else nn.BatchNorm2d)(c)
    qbn.weight = nn.Parameter(w)
    qbn.bias = nn.Parameter(b)
    qbn.running_mean = rm.copy()
    qbn.running_var = rv.copy()
    qbn.train(training)
    qx = nn.Tensor(x, requires_grad=True, dtype=np.float64)
    qy = qbn(qx)
    qy.backward(g)
    close(qy.data, ty)
    close(qx.grad, tx.grad)
    close(qbn.weight.grad, tbn.weight.grad)
    close(qbn.bias.grad, tbn.bias.grad)
    close(qbn.running_mean, tbn.running_mean)
    close(qbn.running_var, tbn.running_var)


def test_cross_entropy_matches_torch():
    logits = rand(6, 10) * 3
    labels = np.array([0, 9, 3, 3, 5, 1])
    tl = torch.tensor(logits, requires_grad=True)
    tloss = torch.nn.functional.cross_entropy(tl, torch.tensor(labels))
    tloss.backward()
    ql = nn.Tensor(logits, requires_grad=True, dtype=np.float64)
    qloss = F.cross_entropy(ql, labels)
    qloss.backward()
    close(qloss.data, tloss)
    close(ql.grad, tl.grad)


def test_float32_cnn_step_matches_torch():
    """One float32 forward/backward of a conv+BN+ReLU+pool+linear model, same weights."""
    torch.set_default_dtype(torch.float32)
    nn.manual_seed(0)
    ours = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(64, 10))
    theirs = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                 torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(64, 10))
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()}, strict=False)
    x = np.random.default_rng(0).normal(size=(16, 1, 8, 8)).astype(np.float32)
    y = np.arange(16) % 10
    qloss = F.cross_entropy(ours(nn.Tensor(x)), y)
    qloss.backward()
    tloss = torch.nn.functional.cross_entropy(theirs(torch.tensor(x)), torch.tensor(y))
    tloss.backward()
    np.testing.assert_allclose(qloss.item(), tloss.item(), rtol=1e-5)
    for (name, p), tp in zip(ours.named_parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-3, atol=1e-5, err_msg=name)
