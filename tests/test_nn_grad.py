"""Every qk.nn operation's backward against central finite differences in float64."""

import numpy as np
import pytest

import qk.nn as nn
from qk.nn import functional as F

RNG = np.random.default_rng(1234)


def t64(shape, low=-1.0, high=1.0, rng=RNG):
    return nn.Tensor(rng.uniform(low, high, size=shape), requires_grad=True, dtype=np.float64)


def gradcheck(fn, *inputs, eps=1e-6, tol=1e-6):
    """Compare backward of sum(fn(*inputs) * R) with central differences for every input element."""
    out = fn(*inputs)
    weights = np.random.default_rng(0).normal(size=out.shape)
    loss = F.sum(F.mul(out, nn.Tensor(weights, dtype=np.float64)))
    for t in inputs:
        t.grad = None
    loss.backward()
    for k, t in enumerate(inputs):
        if not t.requires_grad:
            continue
        numeric = np.zeros_like(t.data)
        flat = t.data.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps
            with nn.no_grad():
                plus = float((fn(*inputs).data * weights).sum())
            flat[i] = old - eps
            with nn.no_grad():
                minus = float((fn(*inputs).data * weights).sum())
            flat[i] = old
            numeric.reshape(-1)[i] = (plus - minus) / (2 * eps)
        assert t.grad is not None, f"input {k} got no gradient"
        assert t.grad.shape == t.data.shape
        np.testing.assert_allclose(t.grad, numeric, rtol=tol, atol=tol, err_msg=f"input {k}")


BROADCAST_PAIRS = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 3, 4), (3, 1)), ((1, 4), (3, 1)), ((), (2, 3)), ((5,), ())]


@pytest.mark.parametrize("op", [F.add, F.sub, F.mul, F.div])
@pytest.mark.parametrize("shapes", BROADCAST_PAIRS)
def test_elementwise_broadcasting(op, shapes):
    a = t64(shapes[0])
    b = t64(shapes[1], 0.5, 2.0) if op is F.div else t64(shapes[1])
    gradcheck(op, a, b)


def test_operators_and_constants():
    a, b = t64((3, 4)), t64((4,))
    gradcheck(lambda x, y: (2.0 - x) * y / 3.0 + (-x) - 1.5, a, b)
    gradcheck(lambda x: np.ones((3, 4)) * x + 2, a)


def test_reused_input_accumulates():
    a = t64((3, 3))
    gradcheck(lambda x: x * x + x @ x, a)


@pytest.mark.parametrize("shapes", [((3, 4), (4, 5)), ((2, 3, 4), (4, 2)), ((2, 1, 3, 4), (3, 4, 2)), ((1, 4), (4, 3))])
def test_matmul(shapes):
    gradcheck(F.matmul, t64(shapes[0]), t64(shapes[1]))


def test_matmul_rejects_vectors():
    with pytest.raises(ValueError, match="2-D"):
        F.matmul(t64((3, 4)), t64((4,)))


@pytest.mark.parametrize("bias", [True, False])
def test_linear(bias):
    args = [t64((2, 3, 5)), t64((4, 5))] + ([t64((4,))] if bias else [])
    gradcheck(F.linear, *args)


@pytest.mark.parametrize("axis,keepdims", [(None, False), (0, False), (1, True), ((0, 2), False), (-1, True)])
@pytest.mark.parametrize("op", [F.sum, F.mean])
def test_reductions(op, axis, keepdims):
    gradcheck(lambda x: op(x, axis, keepdims), t64((2, 3, 4)))


def test_shape_ops():
    a = t64((2, 3, 4))
    gradcheck(lambda x: F.reshape(x, (4, 6)), a)
    gradcheck(lambda x: F.flatten(x, 1), a)
    gradcheck(lambda x: F.transpose(x, (2, 0, 1)), a)
    gradcheck(lambda x: x.T, a)


@pytest.mark.parametrize("op", [F.relu, lambda x: F.leaky_relu(x, 0.1), F.gelu, F.tanh, F.exp,
                                lambda x: F.log_softmax(x, -1), lambda x: F.log_softmax(x, 0), F.softmax])
def test_activations(op):
    x = t64((3, 5), -2, 2)
    x.data[np.abs(x.data) < 1e-3] = 0.5  # keep away from the ReLU kink
    gradcheck(op, x)


def test_log():
    gradcheck(F.log, t64((3, 4), 0.5, 2.0))


def test_cross_entropy():
    labels = np.array([0, 3, 2, 3, 1])
    gradcheck(lambda x: F.cross_entropy(x, labels), t64((5, 4), -3, 3))


def test_mse():
    gradcheck(F.mse_loss, t64((3, 4)), t64((3, 4)))


@pytest.mark.parametrize("stride,padding", [(1, 0), (1, 1), (2, 1), ((2, 1), (0, 2))])
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d(stride, padding, bias):
    args = [t64((2, 3, 6, 5)), t64((4, 3, 3, 2))] + ([t64((4,))] if bias else [])
    fn = (lambda x, w, b: F.conv2d(x, w, b, stride, padding)) if bias else (lambda x, w: F.conv2d(x, w, None, stride, padding))
    gradcheck(fn, *args)


@pytest.mark.parametrize("kernel,stride", [(2, None), (3, 1), (3, 2), ((2, 3), (1, 2))])
def test_max_pool2d(kernel, stride):
    # distinct values so the max is unique and the function is differentiable
    x = nn.Tensor(RNG.permutation(2 * 3 * 6 * 7).reshape(2, 3, 6, 7) / 10.0, requires_grad=True, dtype=np.float64)
    gradcheck(lambda t: F.max_pool2d(t, kernel, stride), x)


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (3, 3, 4, 2)])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm(shape, training):
    c = shape[1]
    rm, rv = RNG.normal(size=c), RNG.uniform(0.5, 2, size=c)

    def fn(x, w, b):
        return F.batch_norm(x, w, b, rm.copy(), rv.copy(), training, 0.1, 1e-5)

    gradcheck(fn, t64(shape), t64((c,)), t64((c,)))


def test_dropout_gradient_uses_mask():
    x = nn.Tensor(np.ones((50, 40)), requires_grad=True, dtype=np.float64)
    y = F.dropout(x, 0.25, True, np.random.default_rng(3))
    y.backward(np.ones(y.shape))
    np.testing.assert_array_equal(x.grad, y.data)
    assert 0.6 < (y.data > 0).mean() < 0.9
    assert F.dropout(x, 0.25, False, np.random.default_rng(3)) is x


def test_custom_op_with_straight_through_gradient():
    def fq_forward(x, scale):
        q = np.clip(np.rint(x / scale), -8, 7)
        return q * scale, (x, scale)

    def fq_backward(ctx, g):
        x, scale = ctx
        inside = (x / scale >= -8) & (x / scale <= 7)
        return g * inside, (g * ~inside).sum(axis=0)

    x = t64((5, 3), -2, 2)
    scale = nn.Tensor(np.full(3, 0.2), requires_grad=True, dtype=np.float64)
    y = nn.custom(fq_forward, fq_backward, x, scale)
    y.backward(np.ones(y.shape))
    inside = (x.data / 0.2 >= -8) & (x.data / 0.2 <= 7)
    np.testing.assert_array_equal(x.grad, inside.astype(float))
    assert scale.grad.shape == (3,)
    # a gradient of the wrong shape is an error naming both shapes
    s2 = nn.Tensor(np.array([0.2]), requires_grad=True, dtype=np.float64)
    y = nn.custom(lambda a, s: (a * s, (a,)), lambda ctx, g: (None, g * ctx[0]), x, s2)
    with pytest.raises(ValueError, match=r"gradient of shape \(5, 3\) for an input of shape \(1,\)"):
        y.backward(np.ones(y.shape))


def test_custom_op_errors():
    x = t64((2, 2))
    with pytest.raises(TypeError, match="pair"):
        nn.custom(lambda a: a, lambda c, g: g, x)
    y = nn.custom(lambda a: (a, None), lambda c, g: (g, g), x)
    with pytest.raises(ValueError, match="2 gradients for 1 inputs"):
        y.backward(np.ones((2, 2)))


def test_no_grad_and_graph_rules():
    a = t64((2, 2))
    with nn.no_grad():
        b = a * 2
    assert not b.requires_grad and b._parents == ()
    c = nn.Tensor(np.ones(2))
    assert not (c + 1).requires_grad
    with pytest.raises(RuntimeError, match="does not require a gradient"):
        (c + 1).sum().backward()
    with pytest.raises(RuntimeError, match="scalar"):
        (a * 2).backward()
    with pytest.raises(ValueError, match="shape"):
        (a * 2).backward(np.ones(3))
    # gradients accumulate across backward calls
    a.grad = None
    a.sum().backward()
    a.sum().backward()
    np.testing.assert_array_equal(a.grad, np.full((2, 2), 2.0))


def test_deep_graph_no_recursion_limit():
    x = nn.Tensor(np.ones(3), requires_grad=True)
    y = x
    for _ in range(5000):
        y = y + 1
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, np.ones(3))


def test_dtypes():
    assert nn.Tensor(np.ones(3, np.float32)).dtype == np.float32
    assert nn.Tensor([1, 2]).dtype == np.float32
    assert nn.Tensor(np.ones(3), dtype=np.float64).dtype == np.float64
    with pytest.raises(TypeError, match="float32 or float64"):
        nn.Tensor(np.ones(3), dtype=np.int32)
    x = nn.Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    assert (x * 2.0).dtype == np.float32
    ones = np.ones((1, 1, 3, 3), np.float32)
    assert F.conv2d(nn.Tensor(ones), nn.Tensor(ones[:, :, :2, :2])).dtype == np.float32
