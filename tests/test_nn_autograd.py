"""qk.nn: every operation's backward against central finite differences in float64."""

import numpy as np
import pytest

import qk.nn as nn
from qk.nn import functional as F
from qk.nn.tensor import Tensor


def numeric_grad(f, arrays, i, eps=1e-6):
    """d sum(f(*arrays) * weights) / d arrays[i], by central differences."""
    x = arrays[i]
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        idx = it.multi_index
        old = x[idx]
        x[idx] = old + eps
        up = f(*arrays)
        x[idx] = old - eps
        down = f(*arrays)
        x[idx] = old
        grad[idx] = (up - down) / (2 * eps)
    return grad


def check(op, *shapes, seed=0, positive=False, **kwargs):
    rng = np.random.default_rng(seed)
    arrays = [np.asarray(rng.standard_normal(s)) for s in shapes]
    if positive:
        arrays = [np.asarray(np.abs(a) + 0.5) for a in arrays]
    out_shape = op(*[Tensor(a) for a in arrays], **kwargs).shape
    weights = rng.standard_normal(out_shape)

    def scalar(*arrs):
        return float((op(*[Tensor(a) for a in arrs], **kwargs).data * weights).sum())

    tensors = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    out = op(*tensors, **kwargs)
    out.backward(weights)
    for i, t in enumerate(tensors):
        expected = numeric_grad(scalar, [a.copy() for a in arrays], i)
        np.testing.assert_allclose(t.grad, expected, rtol=1e-5, atol=1e-6, err_msg=f"input {i}")


@pytest.mark.parametrize("a,b", [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (2, 3))])
def test_elementwise_broadcasting(a, b):
    check(lambda x, y: x + y, a, b)
    check(lambda x, y: x - y, a, b)
    check(lambda x, y: x * y, a, b)
    check(lambda x, y: x / y, a, b, positive=True)
    check(lambda x, y: 2.0 - x * 3.0 + y, a, b)


@pytest.mark.parametrize("a,b", [((3, 4), (4, 5)), ((2, 3, 4), (4, 2)), ((2, 3, 4), (2, 4, 5)), ((1, 7), (7, 1))])
def test_matmul(a, b):
    check(lambda x, y: x @ y, a, b)


def test_reductions_and_shapes():
    check(lambda x: x.sum(), (3, 4))
    check(lambda x: x.sum(axis=1), (3, 4, 2))
    check(lambda x: x.mean(axis=(0, 2), keepdims=True), (3, 4, 2))
    check(lambda x: x.mean(), (5,))
    check(lambda x: x.reshape(6, 2), (3, 4))
    check(lambda x: x.flatten(), (2, 3, 4))
    check(lambda x: x.transpose(1, 0, 2), (2, 3, 4))
    check(lambda x: x.T, (2, 3))
    check(lambda x: x ** 3.0, (4, 3))
    check(lambda x: x ** -0.5, (4, 3), positive=True)


def test_activations():
    check(F.relu, (4, 5), seed=1)
    check(F.leaky_relu, (4, 5), seed=2, negative_slope=0.1)
    check(F.tanh, (4, 5))
    check(F.gelu, (4, 5))
    check(F.log_softmax, (4, 5))
    check(F.log_softmax, (4, 5), axis=0)


def test_losses():
    labels = np.array([0, 3, 1, 4])
    check(lambda x: F.cross_entropy(x, labels), (4, 5))
    target = np.random.default_rng(1).standard_normal((4, 5))
    check(lambda x: F.mse_loss(x, target), (4, 5))


@pytest.mark.parametrize("stride,padding", [(1, 0), (1, 1), (2, 1), ((2, 1), (0, 2))])
def test_conv2d(stride, padding):
    check(lambda x, w, b: F.conv2d(x, w, b, stride, padding), (2, 3, 7, 6), (4, 3, 3, 2), (4,))
    check(lambda x, w: F.conv2d(x, w, None, stride, padding), (1, 2, 5, 5), (3, 2, 2, 2))


@pytest.mark.parametrize("kernel,stride", [(2, None), (3, 1), (2, 1), ((2, 3), (2, 1))])
def test_max_pool2d(kernel, stride):
    check(lambda x: F.max_pool2d(x, kernel, stride), (2, 3, 6, 7))


@pytest.mark.parametrize("shape", [(6, 4), (5, 3, 4, 4), (4, 3, 2)])
def test_batch_norm_training(shape):
    c = shape[1]

    def op(x, w, b):
        return F.batch_norm(x, w, b, np.zeros(c), np.ones(c), True, 0.1, 1e-5)

    check(op, shape, (c,), (c,))


def test_batch_norm_eval():
    rm, rv = np.array([0.1, -0.2, 0.3]), np.array([1.5, 0.5, 2.0])
    check(lambda x, w, b: F.batch_norm(x, w, b, rm, rv, False, 0.1, 1e-5), (4, 3, 2, 2), (3,), (3,))


def test_custom_op_uses_the_given_gradient():
    def fwd(x):
        return np.rint(x), None

    def bwd(ctx, g):
        return (g * 2,)

    x = Tensor(np.array([0.4, 1.6]), requires_grad=True)
    y = F.custom(fwd, bwd, x)
    np.testing.assert_array_equal(y.data, [0, 2])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [2, 2])


def test_gradients_accumulate_and_graph_is_shared():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x * x + x  # x used three times
    y.sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data + 1)
    y.sum().backward()  # a second backward accumulates
    np.testing.assert_allclose(x.grad, 2 * (2 * x.data + 1))


def test_no_grad_records_nothing():
    x = Tensor(np.ones(3), requires_grad=True)
    with nn.no_grad():
        y = x * 2
    assert not y.requires_grad
    with pytest.raises(RuntimeError, match="does not require"):
        y.sum().backward()


def test_deep_graph_does_not_hit_the_recursion_limit():
    x = Tensor(np.ones(2), requires_grad=True)
    y = x
    for _ in range(5000):
        y = y + 1.0
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [1, 1])
