"""Differentiable operations on Tensors (each with its backward rule)."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .. import _float_ops
from .tensor import Tensor, is_grad_enabled


def _t(x) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"expected a qk.nn.Tensor, got {type(x).__name__}")
    return x


# --- activations ------------------------------------------------------------


def relu(x: Tensor) -> Tensor:
    """max(x, 0), elementwise."""
    x = _t(x)
    mask = x.data > 0
    return Tensor.from_op(np.where(mask, x.data, 0).astype(x.dtype), (x,), lambda g: (g * mask,), ("Relu", {}, ()))


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    x = _t(x)
    slope = np.where(x.data > 0, 1, negative_slope).astype(x.dtype)
    return Tensor.from_op(x.data * slope, (x,), lambda g: (g * slope,),
                          ("LeakyRelu", {"alpha": float(negative_slope)}, ()))


def tanh(x: Tensor) -> Tensor:
    x = _t(x)
    y = np.tanh(x.data)
    return Tensor.from_op(y, (x,), lambda g: (g * (1 - y * y),), ("Tanh", {}, ()))


def gelu(x: Tensor) -> Tensor:
    """GELU, tanh approximation (PyTorch's approximate='tanh')."""
    x = _t(x)
    v = x.data
    c = np.sqrt(2 / np.pi).astype(v.dtype)
    inner = c * (v + 0.044715 * v ** 3)
    t = np.tanh(inner)
    y = 0.5 * v * (1 + t)

    def backward(g):
        dinner = c * (1 + 3 * 0.044715 * v ** 2)
        return (g * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * dinner),)

    return Tensor.from_op(y.astype(v.dtype), (x,), backward, ("Gelu", {"approximate": "tanh"}, ()))


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """log(softmax(x)) along `axis`, computed stably."""
    x = _t(x)
    shifted = x.data - x.data.max(axis=axis, keepdims=True)
    y = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    # softmax = exp(y) only when a gradient is asked for (inference pays one exp, not two)
    return Tensor.from_op(y, (x,), lambda g: (g - np.exp(y) * g.sum(axis=axis, keepdims=True),),
                          ("LogSoftmax", {"axis": axis}, ()))


# --- losses -----------------------------------------------------------------


def cross_entropy(logits: Tensor, labels) -> Tensor:
    """Mean cross-entropy of (N, C) logits against N integer class labels."""
    logits = _t(logits)
    labels = np.asarray(labels)
    if logits.ndim != 2:
        raise ValueError(f"logits: expected shape (N, C), got {logits.shape}")
    if labels.dtype.kind not in "iu":
        raise TypeError(f"labels: expected an integer array, got {labels.dtype}")
    n, c = logits.shape
    if labels.shape != (n,):
        raise ValueError(f"labels: expected shape ({n},) to match the logits, got {labels.shape}")
    if n and (labels.min() < 0 or labels.max() >= c):
        raise ValueError(f"labels: expected class indices in [0, {c}), got values in [{labels.min()}, {labels.max()}]")
    logp = log_softmax(logits, axis=1)
    rows = np.arange(n)
    picked = logp.data[rows, labels]

    def backward(g):
        grad = np.zeros_like(logp.data)
        grad[rows, labels] = -g / n
        return (grad,)

    return Tensor.from_op(np.asarray(-picked.mean(), dtype=logits.dtype), (logp,), backward)


def mse_loss(prediction: Tensor, target) -> Tensor:
    """Mean squared error between `prediction` and `target` (same shape)."""
    prediction = _t(prediction)
    target = target if isinstance(target, Tensor) else Tensor(np.asarray(target, dtype=prediction.dtype))
    if prediction.shape != target.shape:
        raise ValueError(f"target: expected shape {prediction.shape}, got {target.shape}")
    diff = prediction - target
    return (diff * diff).mean()


# --- layers' maths ------------------------------------------------------------


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x @ weight.T + bias, with weight of shape (out_features, in_features)."""
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(f"input: expected last dimension {weight.shape[1]} (in_features), got shape {x.shape}")
    y = x @ weight.T
    return y + bias if bias is not None else y


def _pair(v, name):
    if isinstance(v, int):
        return (v, v)
    if isinstance(v, tuple) and len(v) == 2 and all(isinstance(i, int) for i in v):
        return v
    raise TypeError(f"{name}: expected an int or a pair of ints, got {v!r}")


def _windows(x: np.ndarray, kernel, stride):
    """(N, C, OH, OW, KH, KW) strided view of x's sliding windows."""
    w = sliding_window_view(x, kernel, axis=(2, 3))
    return w[:, :, :: stride[0], :: stride[1]]


def im2col(x: np.ndarray, kernel, stride, padding, pad_value=0):
    """Rows of flattened (C, KH, KW) patches of an (N, C, H, W) array: returns
    (cols of shape (N*OH*OW, C*KH*KW), (OH, OW), padded input). Any dtype:
    quantized layers pad uint8 inputs with their zero point."""
    n, c = x.shape[:2]
    (kh, kw), (ph, pw) = kernel, padding
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=pad_value)
    win = _windows(x, (kh, kw), stride)
    oh, ow = win.shape[2], win.shape[3]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kh * kw), (oh, ow), x


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0) -> Tensor:
    """2-D convolution (cross-correlation, as PyTorch) through im2col and one matmul.

    x: (N, C, H, W); weight: (O, C, KH, KW); bias: (O,)."""
    x, weight = _t(x), _t(weight)
    stride, padding = _pair(stride, "stride"), _pair(padding, "padding")
    if x.ndim != 4:
        raise ValueError(f"input: expected shape (N, C, H, W), got {x.shape}")
    if weight.ndim != 4 or weight.shape[1] != x.shape[1]:
        raise ValueError(f"weight: expected shape (O, {x.shape[1]}, KH, KW) for an input of {x.shape[1]} channels, "
                         f"got {weight.shape}")
    n, c, h, w_ = x.shape
    o, _, kh, kw = weight.shape
    ph, pw = padding
    if h + 2 * ph < kh or w_ + 2 * pw < kw:
        raise ValueError(f"input: spatial size {(h, w_)} with padding {padding} is smaller than the kernel {(kh, kw)}")
    cols, (oh, ow), xp = im2col(x.data, (kh, kw), stride, padding)
    wmat = weight.data.reshape(o, -1)
    out = (cols @ wmat.T).reshape(n, oh, ow, o).transpose(0, 3, 1, 2)
    if bias is not None:
        out = out + bias.data.reshape(1, o, 1, 1)
    out = np.ascontiguousarray(out)

    def backward(g):
        gmat = g.transpose(0, 2, 3, 1).reshape(n * oh * ow, o)
        gw = (gmat.T @ cols).reshape(weight.shape)
        gx = None
        if x.requires_grad:
            gcols = (gmat @ wmat).reshape(n, oh, ow, c, kh, kw).transpose(0, 3, 1, 2, 4, 5)
            gxp = np.zeros_like(xp)
            sh, sw = stride
            for i in range(kh):  # loops over kernel taps only, not over data
                for j in range(kw):
                    gxp[:, :, i: i + sh * oh: sh, j: j + sw * ow: sw] += gcols[..., i, j]
            gx = gxp[:, :, ph: ph + h, pw: pw + w_]
        gb = g.sum(axis=(0, 2, 3)) if bias is not None else None
        return (gx, gw, gb) if bias is not None else (gx, gw)

    parents = (x, weight, bias) if bias is not None else (x, weight)
    attrs = {"kernel_shape": [kh, kw], "strides": list(stride), "pads": [ph, pw, ph, pw]}
    return Tensor.from_op(out, parents, backward, ("Conv", attrs, ()))


def max_pool2d(x: Tensor, kernel_size=2, stride=None) -> Tensor:
    """2-D max pooling of (N, C, H, W) `x`; stride defaults to the kernel size."""
    x = _t(x)
    if x.ndim != 4:
        raise ValueError(f"input: expected shape (N, C, H, W), got {x.shape}")
    kernel = _pair(kernel_size, "kernel_size")
    stride = kernel if stride is None else _pair(stride, "stride")
    if x.shape[2] < kernel[0] or x.shape[3] < kernel[1]:
        raise ValueError(f"input: spatial size {x.shape[2:]} is smaller than the kernel {kernel}")
    kh, kw = kernel
    sh, sw = stride
    oh, ow = (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1
    # One strided view per kernel tap: the max is a running np.maximum over
    # kh*kw views (no copy of the windows), and the winning tap is recorded
    # only when a gradient will be needed.
    taps = [x.data[:, :, i: i + sh * (oh - 1) + 1: sh, j: j + sw * (ow - 1) + 1: sw]
            for i in range(kh) for j in range(kw)]
    out = taps[0].copy()
    record = is_grad_enabled() and x.requires_grad
    arg = np.zeros(out.shape, np.intp) if record else None
    for t, tap in enumerate(taps[1:], start=1):
        if record:
            arg[tap > out] = t  # strict ">": the first maximal tap wins, as argmax
        np.maximum(out, tap, out=out)

    def backward(g):
        gx = np.zeros_like(x.data)
        for i in range(kh):
            for j in range(kw):
                gx[:, :, i: i + sh * oh: sh, j: j + sw * ow: sw] += g * (arg == i * kw + j)
        return (gx,)

    return Tensor.from_op(out, (x,), backward, ("MaxPool", {"kernel_shape": list(kernel), "strides": list(stride)}, ()))


def batch_norm(x: Tensor, weight: Tensor, bias: Tensor, running_mean: np.ndarray, running_var: np.ndarray,
               training: bool, momentum: float, eps: float) -> Tensor:
    """Normalizes over every axis but 1 (channels). In training, uses the batch
    statistics and updates the running ones in place (unbiased variance, as PyTorch).
    One fused operation: its backward is the closed-form batch-norm gradient."""
    x = _t(x)
    axes = (0,) + tuple(range(2, x.ndim))
    shape = [1] * x.ndim
    shape[1] = x.shape[1]
    if training:
        count = x.size // x.shape[1]
        if count < 2:
            raise ValueError(f"input: batch norm in training needs more than one value per channel, got shape {x.shape}")
        mean = x.data.mean(axis=axes)
        var = x.data.var(axis=axes)
        m = np.float32(momentum)
        running_mean *= 1 - m
        running_mean += (m * mean).astype(running_mean.dtype)
        running_var *= 1 - m
        running_var += (m * var * count / (count - 1)).astype(running_var.dtype)
    else:
        mean, var = running_mean, running_var
    inv = (1.0 / np.sqrt(var + eps)).astype(x.dtype).reshape(shape)
    xhat = (x.data - mean.reshape(shape).astype(x.dtype)) * inv
    w = weight.data.reshape(shape)
    out = xhat * w + bias.data.reshape(shape)

    def backward(g):
        gw = (g * xhat).sum(axis=axes)
        gb = g.sum(axis=axes)
        gxhat = g * w
        if training:
            n = x.size // x.shape[1]
            s1 = gxhat.sum(axis=axes, keepdims=True)
            s2 = (gxhat * xhat).sum(axis=axes, keepdims=True)
            gx = (inv / n) * (n * gxhat - s1 - xhat * s2)
        else:
            gx = gxhat * inv
        return gx, gw.reshape(weight.shape), gb.reshape(bias.shape)

    return Tensor.from_op(out, (x, weight, bias), backward)


def dropout(x: Tensor, p: float, training: bool, rng: np.random.Generator) -> Tensor:
    if not training or p == 0:
        return x
    keep = (rng.random(x.shape) >= p).astype(x.dtype) / np.asarray(1 - p, dtype=x.dtype)
    return x * keep


# --- user-defined operations --------------------------------------------------


def custom(forward, backward, *inputs: Tensor) -> Tensor:
    """An operation with a user-given gradient rule (used by QAT's fake-quantize).

    `forward(*arrays) -> (output_array, ctx)` computes the result from the
    inputs' ndarrays; `backward(ctx, grad_output) -> tuple` returns one gradient
    (or None) per input, each of that input's shape. Example, a straight-through
    round::

        def fwd(x):
            return np.rint(x), None
        def bwd(ctx, g):
            return (g,)
        y = qk.nn.custom(fwd, bwd, x)
    """
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor):
            raise TypeError(f"inputs[{i}]: expected a qk.nn.Tensor, got {type(t).__name__}")
    result = forward(*(t.data for t in inputs))
    if not (isinstance(result, tuple) and len(result) == 2):
        raise TypeError("forward: must return a pair (output_array, ctx)")
    out, ctx = result
    out = np.asarray(out)

    def grad_fn(g):
        grads = backward(ctx, g)
        grads = tuple(grads) if isinstance(grads, (tuple, list)) else (grads,)
        if len(grads) != len(inputs):
            raise ValueError(f"backward: returned {len(grads)} gradients for {len(inputs)} inputs")
        for t, gr in zip(inputs, grads):
            if gr is not None and np.shape(gr) != t.shape:
                raise ValueError(f"backward: gradient of shape {np.shape(gr)} for an input of shape {t.shape}")
        return grads

    return Tensor.from_op(out, tuple(inputs), grad_fn)


__all__ = [
    "batch_norm", "conv2d", "cross_entropy", "custom", "dropout", "gelu", "is_grad_enabled", "leaky_relu",
    "linear", "log_softmax", "max_pool2d", "mse_loss", "relu", "tanh",
]


# --- function forms of the Tensor operators (for code that prefers F.add(a, b)) ---


def _lift(x, like=None) -> Tensor:
    if isinstance(x, Tensor):
        return x
    dtype = like.dtype if isinstance(like, Tensor) else np.float32
    return Tensor(np.asarray(x, dtype=dtype))


def add(a, b) -> Tensor:
    return _lift(a, b) + b


def sub(a, b) -> Tensor:
    return _lift(a, b) - b


def mul(a, b) -> Tensor:
    return _lift(a, b) * b


def div(a, b) -> Tensor:
    return _lift(a, b) / b


def neg(a) -> Tensor:
    return -_t(a)


def matmul(a, b) -> Tensor:
    return _lift(a, b) @ b


def sum(a, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001 (mirrors numpy)
    return _t(a).sum(axis=axis, keepdims=keepdims)


def mean(a, axis=None, keepdims: bool = False) -> Tensor:
    return _t(a).mean(axis=axis, keepdims=keepdims)


def reshape(a, shape) -> Tensor:
    return _t(a).reshape(shape)


def flatten(a, start_dim: int = 1) -> Tensor:
    return _t(a).flatten(start_dim)


def transpose(a, axes=None) -> Tensor:
    return _t(a).transpose(axes) if axes is not None else _t(a).transpose()


def exp(a) -> Tensor:
    x = _t(a)
    out = np.exp(x.data)
    return Tensor.from_op(out, (x,), lambda g: (g * out,), ("Exp", {}, ()))


def log(a) -> Tensor:
    x = _t(a)
    return Tensor.from_op(np.log(x.data), (x,), lambda g: (g / x.data,), ("Log", {}, ()))


def softmax(a, axis: int = -1) -> Tensor:
    """exp(x - max) / sum along `axis`: one exp per element (exp(log_softmax)
    took three, a sixth of an attention layer's time); float32 on the native
    kernel (qk._float_ops), 3-6x faster than NumPy's."""
    x = _t(a)
    if x.data.dtype == np.float32:
        y = _float_ops.softmax(x.data, axis)
    else:
        y = np.exp(x.data - x.data.max(axis=axis, keepdims=True))
        y /= y.sum(axis=axis, keepdims=True)
    return Tensor.from_op(y, (x,), lambda g: (y * (g - (g * y).sum(axis=axis, keepdims=True)),),
                          ("Softmax", {"axis": axis}, ()))
