"""Differentiable operations on Tensors.

Each operation computes its result with NumPy and hands ``Tensor._make`` a
``backward(g)`` closure returning one gradient per input.  Elementwise
operations broadcast like NumPy; their backward sums the gradient back to each
input's shape (``_unbroadcast``).  ``matmul``, ``linear`` and ``conv2d`` go
through NumPy's BLAS matmul; nothing loops over elements or batch items in
Python (``conv2d`` and ``max_pool2d`` loop only over kernel positions).

``custom(forward, backward, *inputs)`` lets other code add an operation with
its own gradient rule (QAT's fake-quantize with a straight-through estimator).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .tensor import Tensor, as_tensor, is_grad_enabled


def _pair(tensor_a, tensor_b):
    a = as_tensor(tensor_a)
    b = as_tensor(tensor_b)
    return a, b


def _unbroadcast(grad: np.ndarray, shape) -> np.ndarray:
    """Sum ``grad`` down to ``shape`` (undoing NumPy broadcasting)."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


def _broadcast_shape(op, a, b):
    try:
        return np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{op}: shapes {a.shape} and {b.shape} cannot be broadcast together") from None


# --------------------------------------------------------------------------
# elementwise arithmetic
# --------------------------------------------------------------------------
def add(a, b) -> Tensor:
    a, b = _pair(a, b)
    _broadcast_shape("add", a, b)

    def backward(g):
        return _unbroadcast(g, a.shape), _unbroadcast(g, b.shape)

    return Tensor._make(a.data + b.data, (a, b), backward, "add")


def sub(a, b) -> Tensor:
    a, b = _pair(a, b)
    _broadcast_shape("sub", a, b)

    def backward(g):
        return _unbroadcast(g, a.shape), _unbroadcast(-g, b.shape) if b.requires_grad else None

    return Tensor._make(a.data - b.data, (a, b), backward, "sub")


def mul(a, b) -> Tensor:
    a, b = _pair(a, b)
    _broadcast_shape("mul", a, b)

    def backward(g):
        ga = _unbroadcast(g * b.data, a.shape) if a.requires_grad else None
        gb = _unbroadcast(g * a.data, b.shape) if b.requires_grad else None
        return ga, gb

    return Tensor._make(a.data * b.data, (a, b), backward, "mul")


def div(a, b) -> Tensor:
    a, b = _pair(a, b)
    _broadcast_shape("div", a, b)
    out = a.data / b.data

    def backward(g):
        ga = _unbroadcast(g / b.data, a.shape) if a.requires_grad else None
        gb = _unbroadcast(-g * out / b.data, b.shape) if b.requires_grad else None
        return ga, gb

    return Tensor._make(out, (a, b), backward, "div")


def neg(a) -> Tensor:
    a = as_tensor(a)
    return Tensor._make(-a.data, (a,), lambda g: (-g,), "neg")


def exp(a) -> Tensor:
    a = as_tensor(a)
    out = np.exp(a.data)
    return Tensor._make(out, (a,), lambda g: (g * out,), "exp")


def log(a) -> Tensor:
    a = as_tensor(a)
    return Tensor._make(np.log(a.data), (a,), lambda g: (g / a.data,), "log")


# --------------------------------------------------------------------------
# matmul and linear
# --------------------------------------------------------------------------
def matmul(a, b) -> Tensor:
    """``a @ b`` with NumPy semantics (batch dims broadcast; 1-D operands allowed)."""
    a, b = _pair(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must have at least 1 dimension, got shapes {a.shape} and {b.shape}")
    if a.ndim == 1:
        target = b.shape[:-2] + b.shape[-1:] if b.ndim >= 2 else ()
        return reshape(matmul(reshape(a, (1,) + a.shape), b), target)
    if b.ndim == 1:
        return reshape(matmul(a, reshape(b, b.shape + (1,))), a.shape[:-1])
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(
            f"matmul: shapes {a.shape} and {b.shape} are not aligned: "
            f"a.shape[-1]={a.shape[-1]} != b.shape[-2]={b.shape[-2]}"
        )
    try:
        np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch dimensions of {a.shape} and {b.shape} cannot be broadcast") from None

    def backward(g):
        ga = _unbroadcast(g @ np.swapaxes(b.data, -1, -2), a.shape) if a.requires_grad else None
        gb = _unbroadcast(np.swapaxes(a.data, -1, -2) @ g, b.shape) if b.requires_grad else None
        return ga, gb

    return Tensor._make(a.data @ b.data, (a, b), backward, "matmul")


def linear(x, weight, bias=None) -> Tensor:
    """``x @ weight.T + bias`` with weight of shape (out_features, in_features)."""
    x, weight = _pair(x, weight)
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got shape {weight.shape}")
    if x.ndim < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: input has {x.shape[-1] if x.ndim else 0} features (shape {x.shape}) "
            f"but weight expects {weight.shape[1]} (weight shape {weight.shape})"
        )
    bias = None if bias is None else as_tensor(bias)
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias must have shape ({weight.shape[0]},), got {bias.shape}")
    x2 = x.data.reshape(-1, x.shape[-1])
    out = x2 @ weight.data.T
    if bias is not None:
        out += bias.data
    out = out.reshape(x.shape[:-1] + (weight.shape[0],))

    def backward(g):
        g2 = g.reshape(-1, weight.shape[0])
        gx = (g2 @ weight.data).reshape(x.shape) if x.requires_grad else None
        gw = g2.T @ x2 if weight.requires_grad else None
        gb = g2.sum(axis=0) if bias is not None and bias.requires_grad else None
        return gx, gw, gb

    parents = (x, weight) if bias is None else (x, weight, bias)
    return Tensor._make(out, parents, backward, "linear")


# --------------------------------------------------------------------------
# reductions and shape
# --------------------------------------------------------------------------
def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axis = (axis,)
    out = []
    for ax in axis:
        if not -ndim <= ax < ndim:
            raise ValueError(f"axis {ax} is out of range for a tensor with {ndim} dimensions")
        out.append(ax % ndim)
    return tuple(sorted(set(out)))


def _expand(g, shape, axes, keepdims):
    if not keepdims:
        g = np.expand_dims(g, axes)
    return np.broadcast_to(g, shape)


def sum(a, axis=None, keepdims=False) -> Tensor:  # noqa: A001  (mirrors numpy)
    a = as_tensor(a)
    axes = _axes(axis, a.ndim)
    out = np.sum(a.data, axis=axes, keepdims=keepdims)
    return Tensor._make(np.asarray(out), (a,), lambda g: (_expand(g, a.shape, axes, keepdims),), "sum")


def mean(a, axis=None, keepdims=False) -> Tensor:
    a = as_tensor(a)
    axes = _axes(axis, a.ndim)
    count = math.prod(a.shape[i] for i in axes)
    out = np.mean(a.data, axis=axes, keepdims=keepdims)
    scale = 1.0 / max(count, 1)
    return Tensor._make(
        np.asarray(out, dtype=a.dtype), (a,), lambda g: (_expand(g * scale, a.shape, axes, keepdims),), "mean"
    )


def reshape(a, shape) -> Tensor:
    a = as_tensor(a)
    try:
        out = a.data.reshape(shape)
    except ValueError:
        raise ValueError(f"reshape: cannot reshape a tensor of shape {a.shape} into {tuple(shape)}") from None
    return Tensor._make(out, (a,), lambda g: (g.reshape(a.shape),), "reshape")


def flatten(a, start_dim=1) -> Tensor:
    a = as_tensor(a)
    start = start_dim % max(a.ndim, 1)
    return reshape(a, a.shape[:start] + (-1,))


def transpose(a, axes=None) -> Tensor:
    a = as_tensor(a)
    if axes is None:
        axes = tuple(reversed(range(a.ndim)))
    axes = tuple(axes)
    if sorted(ax % a.ndim for ax in axes) != list(range(a.ndim)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of {a.ndim} dimensions")
    inverse = tuple(np.argsort([ax % a.ndim for ax in axes]))
    return Tensor._make(a.data.transpose(axes), (a,), lambda g: (g.transpose(inverse),), "transpose")


# --------------------------------------------------------------------------
# activations
# --------------------------------------------------------------------------
def relu(a) -> Tensor:
    a = as_tensor(a)
    mask = a.data > 0
    return Tensor._make(a.data * mask, (a,), lambda g: (g * mask,), "relu")


def leaky_relu(a, negative_slope=0.01) -> Tensor:
    a = as_tensor(a)
    factor = np.where(a.data > 0, 1.0, negative_slope).astype(a.dtype)
    return Tensor._make(a.data * factor, (a,), lambda g: (g * factor,), "leaky_relu")


def tanh(a) -> Tensor:
    a = as_tensor(a)
    out = np.tanh(a.data)
    return Tensor._make(out, (a,), lambda g: (g * (1 - out * out),), "tanh")


_GELU_C = math.sqrt(2.0 / math.pi)


def gelu(a) -> Tensor:
    """GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    a = as_tensor(a)
    x = a.data
    inner = _GELU_C * (x + 0.044715 * x**3)
    t = np.tanh(inner)
    out = 0.5 * x * (1 + t)

    def backward(g):
        d_inner = _GELU_C * (1 + 3 * 0.044715 * x * x)
        return (g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * d_inner),)

    return Tensor._make(out.astype(a.dtype, copy=False), (a,), backward, "gelu")


def log_softmax(a, axis=-1) -> Tensor:
    a = as_tensor(a)
    shifted = a.data - a.data.max(axis=axis, keepdims=True)
    out = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))

    def backward(g):
        return (g - np.exp(out) * g.sum(axis=axis, keepdims=True),)

    return Tensor._make(out, (a,), backward, "log_softmax")


def softmax(a, axis=-1) -> Tensor:
    return exp(log_softmax(a, axis))


# --------------------------------------------------------------------------
# losses
# --------------------------------------------------------------------------
def _check_labels(labels, n, classes):
    if isinstance(labels, Tensor):
        raise TypeError("cross_entropy: labels must be an integer array, not a float Tensor")
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: labels must be an integer array, got dtype {labels.dtype}")
    if labels.shape != (n,):
        raise ValueError(f"cross_entropy: labels must have shape ({n},) to match the logits, got {labels.shape}")
    if n and (labels.min() < 0 or labels.max() >= classes):
        bad = labels[(labels < 0) | (labels >= classes)][0]
        raise ValueError(f"cross_entropy: label {bad} is out of range [0, {classes}) for {classes} classes")
    return labels.astype(np.intp, copy=False)


def cross_entropy(logits, labels, reduction="mean") -> Tensor:
    """Softmax cross-entropy of (N, C) logits against integer labels (N,) in [0, C)."""
    logits = as_tensor(logits)
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy: logits must be 2-D (N, classes), got shape {logits.shape}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"cross_entropy: reduction must be 'mean' or 'sum', got {reduction!r}")
    n, classes = logits.shape
    labels = _check_labels(labels, n, classes)
    shifted = logits.data - logits.data.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(n)
    total = -logp[rows, labels].sum()
    scale = 1.0 / n if reduction == "mean" and n else 1.0
    out = np.asarray(total * scale, dtype=logits.dtype)

    def backward(g):
        grad = np.exp(logp)
        grad[rows, labels] -= 1
        return (grad * (g * scale),)

    return Tensor._make(out, (logits,), backward, "cross_entropy")


def mse_loss(pred, target, reduction="mean") -> Tensor:
    """Mean (or sum) of squared differences; shapes must match exactly."""
    pred, target = _pair(pred, target)
    if pred.shape != target.shape:
        raise ValueError(f"mse_loss: pred has shape {pred.shape} but target has shape {target.shape}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"mse_loss: reduction must be 'mean' or 'sum', got {reduction!r}")
    diff = pred.data - target.data
    scale = 1.0 / max(diff.size, 1) if reduction == "mean" else 1.0
    out = np.asarray((diff * diff).sum() * scale, dtype=diff.dtype)

    def backward(g):
        d = diff * (2 * scale * g)
        return (d if pred.requires_grad else None, -d if target.requires_grad else None)

    return Tensor._make(out, (pred, target), backward, "mse_loss")


# --------------------------------------------------------------------------
# convolution and pooling (NCHW)
# --------------------------------------------------------------------------
def _int2(value, name):
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair, got {value!r}")
        pair = tuple(int(v) for v in value)
    else:
        pair = (int(value), int(value))
    return pair


def _windows(xp, kh, kw, sh, sw, ho, wo):
    """View (N, C, Ho, Wo, kh, kw) of the padded input's sliding windows."""
    view = sliding_window_view(xp, (kh, kw), axis=(2, 3))
    return view[:, :, : (ho - 1) * sh + 1 : sh, : (wo - 1) * sw + 1 : sw]


def _out_size(op, size, k, s, p, which):
    out = (size + 2 * p - k) // s + 1
    if out < 1:
        raise ValueError(
            f"{op}: kernel {which} {k} is larger than the padded input {which} {size + 2 * p}"
        )
    return out


def conv2d(x, weight, bias=None, stride=1, padding=0) -> Tensor:
    """2-D convolution (cross-correlation) of x (N, C, H, W) with weight (O, C, kh, kw).

    Computed as im2col + one BLAS matmul; backward is two matmuls + col2im.
    """
    x, weight = _pair(x, weight)
    if x.ndim != 4:
        raise ValueError(f"conv2d: input must be 4-D (N, C, H, W), got shape {x.shape}")
    if weight.ndim != 4:
        raise ValueError(f"conv2d: weight must be 4-D (out, in, kh, kw), got shape {weight.shape}")
    n, c, h, w = x.shape
    o, cw, kh, kw = weight.shape
    if c != cw:
        raise ValueError(
            f"conv2d: input has {c} channels (shape {x.shape}) but weight expects {cw} (weight shape {weight.shape})"
        )
    sh, sw = _int2(stride, "conv2d: stride")
    ph, pw = _int2(padding, "conv2d: padding")
    if sh < 1 or sw < 1 or ph < 0 or pw < 0:
        raise ValueError(f"conv2d: stride must be >= 1 and padding >= 0, got stride={stride}, padding={padding}")
    bias = None if bias is None else as_tensor(bias)
    if bias is not None and bias.shape != (o,):
        raise ValueError(f"conv2d: bias must have shape ({o},), got {bias.shape}")
    ho = _out_size("conv2d", h, kh, sh, ph, "height")
    wo = _out_size("conv2d", w, kw, sw, pw, "width")

    xp = np.pad(x.data, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x.data
    # cols: (N*Ho*Wo, C*kh*kw), one row per output pixel.
    cols = _windows(xp, kh, kw, sh, sw, ho, wo).transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, c * kh * kw)
    wmat = weight.data.reshape(o, -1)
    out = cols @ wmat.T
    if bias is not None:
        out += bias.data
    out = out.reshape(n, ho, wo, o).transpose(0, 3, 1, 2)

    def backward(g):
        g2 = g.transpose(0, 2, 3, 1).reshape(-1, o)
        gw = (g2.T @ cols).reshape(weight.shape) if weight.requires_grad else None
        gb = g2.sum(axis=0) if bias is not None and bias.requires_grad else None
        gx = None
        if x.requires_grad:
            gcols = (g2 @ wmat).reshape(n, ho, wo, c, kh, kw)
            gxp = np.zeros(xp.shape, dtype=g.dtype)
            for i in range(kh):  # loops over kernel positions only
                for j in range(kw):
                    gxp[:, :, i : i + (ho - 1) * sh + 1 : sh, j : j + (wo - 1) * sw + 1 : sw] += gcols[
                        :, :, :, :, i, j
                    ].transpose(0, 3, 1, 2)
            gx = gxp[:, :, ph : ph + h, pw : pw + w]
        return gx, gw, gb

    parents = (x, weight) if bias is None else (x, weight, bias)
    return Tensor._make(np.ascontiguousarray(out), parents, backward, "conv2d")


def max_pool2d(x, kernel_size, stride=None, padding=0) -> Tensor:
    """Max pooling over (kh, kw) windows of x (N, C, H, W); stride defaults to the kernel size."""
    x = as_tensor(x)
    if x.ndim != 4:
        raise ValueError(f"max_pool2d: input must be 4-D (N, C, H, W), got shape {x.shape}")
    kh, kw = _int2(kernel_size, "max_pool2d: kernel_size")
    sh, sw = _int2(kernel_size if stride is None else stride, "max_pool2d: stride")
    ph, pw = _int2(padding, "max_pool2d: padding")
    if min(kh, kw, sh, sw) < 1 or min(ph, pw) < 0:
        raise ValueError("max_pool2d: kernel_size and stride must be >= 1, padding >= 0")
    n, c, h, w = x.shape
    ho = _out_size("max_pool2d", h, kh, sh, ph, "height")
    wo = _out_size("max_pool2d", w, kw, sw, pw, "width")
    if ph or pw:
        xp = np.pad(x.data, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
    else:
        xp = x.data
    win = _windows(xp, kh, kw, sh, sw, ho, wo).reshape(n, c, ho, wo, kh * kw)
    arg = win.argmax(axis=-1)
    out = np.take_along_axis(win, arg[..., None], axis=-1)[..., 0]

    def backward(g):
        gxp = np.zeros(xp.shape, dtype=g.dtype)
        for idx in range(kh * kw):  # loops over kernel positions only
            i, j = divmod(idx, kw)
            gxp[:, :, i : i + (ho - 1) * sh + 1 : sh, j : j + (wo - 1) * sw + 1 : sw] += g * (arg == idx)
        return (gxp[:, :, ph : ph + h, pw : pw + w],)

    return Tensor._make(out, (x,), backward, "max_pool2d")


# --------------------------------------------------------------------------
# normalization and dropout
# --------------------------------------------------------------------------
def batch_norm(x, weight, bias, running_mean, running_var, training, momentum=0.1, eps=1e-5) -> Tensor:
    """Batch normalization over every axis but 1 (channels) of x (N, C, ...).

    In training, normalizes with the batch statistics and updates
    ``running_mean`` / ``running_var`` (NumPy arrays, in place; the running
    variance is the unbiased one, as in PyTorch).  In eval, uses them.
    ``weight`` / ``bias`` may be None (no affine transform).
    """
    x = as_tensor(x)
    if x.ndim < 2:
        raise ValueError(f"batch_norm: input must have a channel axis (N, C, ...), got shape {x.shape}")
    c = x.shape[1]
    axes = (0,) + tuple(range(2, x.ndim))
    bshape = (1, c) + (1,) * (x.ndim - 2)
    if training:
        count = x.size // c
        if count < 2:
            raise ValueError(f"batch_norm: training needs more than one value per channel, got input shape {x.shape}")
        mu = x.data.mean(axis=axes)
        var = x.data.var(axis=axes)
        if running_mean is not None:
            running_mean *= 1 - momentum
            running_mean += momentum * mu
            running_var *= 1 - momentum
            running_var += momentum * var * (count / (count - 1))
    else:
        mu, var = running_mean, running_var
    inv = (1.0 / np.sqrt(var + eps)).astype(x.dtype)
    xhat = (x.data - mu.reshape(bshape).astype(x.dtype)) * inv.reshape(bshape)
    weight = None if weight is None else as_tensor(weight)
    bias = None if bias is None else as_tensor(bias)
    out = xhat * weight.data.reshape(bshape) if weight is not None else xhat.copy()
    if bias is not None:
        out += bias.data.reshape(bshape)

    def backward(g):
        gw = (g * xhat).sum(axis=axes) if weight is not None and weight.requires_grad else None
        gb = g.sum(axis=axes) if bias is not None and bias.requires_grad else None
        gx = None
        if x.requires_grad:
            gxhat = g * weight.data.reshape(bshape) if weight is not None else g
            if training:
                m = x.size // c
                s1 = gxhat.sum(axis=axes).reshape(bshape)
                s2 = (gxhat * xhat).sum(axis=axes).reshape(bshape)
                gx = (inv.reshape(bshape) / m) * (m * gxhat - s1 - xhat * s2)
            else:
                gx = gxhat * inv.reshape(bshape)
        return gx, gw, gb

    parents = [x]
    for p in (weight, bias):
        parents.append(p if p is not None else Tensor(np.zeros(0, x.dtype)))
    return Tensor._make(out, parents, backward, "batch_norm")


def dropout(x, p=0.5, training=True, rng=None) -> Tensor:
    """Zeroes each element with probability p and scales the rest by 1/(1-p) (in training)."""
    x = as_tensor(x)
    if not 0 <= p < 1:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    if not training or p == 0:
        return x
    from .random import default_rng

    rng = default_rng() if rng is None else rng
    mask = (rng.random(x.shape) >= p).astype(x.dtype) / (1 - p)
    return Tensor._make(x.data * mask, (x,), lambda g: (g * mask,), "dropout")


# --------------------------------------------------------------------------
# user-defined operations
# --------------------------------------------------------------------------
def custom(forward, backward, *inputs, name="custom") -> Tensor:
    """An operation with a user-given gradient rule.

    ``forward(*arrays) -> (out, ctx)`` receives the inputs' NumPy arrays and
    returns the output array plus anything ``backward`` needs.
    ``backward(ctx, grad_out) -> grads`` returns one gradient per input (a
    single array is accepted for one input); ``None`` means "no gradient".
    A gradient may have the input's shape or any shape that broadcasts to the
    output and sums back to the input's (for example a per-channel scale).

    Example, fake-quantize with a straight-through estimator::

        def fq_forward(x, scale):
            q = np.clip(np.rint(x / scale), -128, 127)
            return q * scale, (x, scale)

        def fq_backward(ctx, g):
            x, scale = ctx
            inside = np.abs(x / scale) <= 127
            return g * inside, None

        y = qk.nn.custom(fq_forward, fq_backward, x, scale)
    """
    tensors = tuple(as_tensor(t) for t in inputs)
    result = forward(*(t.data for t in tensors))
    if not (isinstance(result, tuple) and len(result) == 2):
        raise TypeError(f"custom op {name!r}: forward must return a pair (out, ctx)")
    out, ctx = result
    dtype = np.result_type(*(t.dtype for t in tensors)) if tensors else np.float32
    out = np.asarray(out, dtype=dtype)

    def grad_fn(g):
        grads = backward(ctx, g)
        if not isinstance(grads, (tuple, list)):
            grads = (grads,)
        if len(grads) != len(tensors):
            raise ValueError(
                f"custom op {name!r}: backward returned {len(grads)} gradients for {len(tensors)} inputs"
            )
        fixed = []
        for i, (t, gi) in enumerate(zip(tensors, grads)):
            if gi is None or not t.requires_grad:
                fixed.append(None)
                continue
            gi = np.asarray(gi, dtype=t.dtype)
            if gi.shape != t.shape:
                try:
                    gi = _unbroadcast(np.broadcast_to(gi, np.broadcast_shapes(gi.shape, t.shape)), t.shape)
                except ValueError:
                    raise ValueError(
                        f"custom op {name!r}: gradient {i} has shape {gi.shape}, input has shape {t.shape}"
                    ) from None
            fixed.append(gi)
        return tuple(fixed)

    return Tensor._make(out, tensors, grad_fn, name)


__all__ = [
    "add", "sub", "mul", "div", "neg", "exp", "log", "matmul", "linear", "sum", "mean", "reshape",
    "flatten", "transpose", "relu", "leaky_relu", "tanh", "gelu", "log_softmax", "softmax",
    "cross_entropy", "mse_loss", "conv2d", "max_pool2d", "batch_norm", "dropout", "custom",
    "is_grad_enabled",
]
