"""The op registry: one `OpDef` per op type, running on qk.nn tensors.

Values at run time are `qk.nn.Tensor`s (float activations and weights, so
gradients flow through every float op) or plain ndarrays (integer and
boolean values, shapes, and float constants no gradient can reach). An op
given only ndarrays computes in NumPy and returns ndarrays, which is how
shape glue runs (and why it can be folded once per input signature).

An entry has the op's implementation `run(attrs, *inputs) -> output or
tuple`, its attribute check (raising ValueError for values it does not
implement), its shape rule, and `weights`: the input positions that are
trainable parameters when they are float constants. Attributes follow the
newest ONNX semantics; the importer upgrades older forms (axes as
attributes, Softmax's 2-D coercion) before they reach an op.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import _float_ops, _threaded_numpy as threaded_numpy
from ..nn import functional as F
from ..nn.tensor import Tensor, _as_array, current_tracer, is_grad_enabled, unbroadcast


@dataclass
class OpDef:
    name: str
    run: object
    weights: tuple = ()
    check: object = None  # check(attrs, num_inputs, num_outputs) raises ValueError(message)
    max_version: int = 25  # newest ONNX version of the op whose semantics `run` implements
    num_outputs: int = 1  # outputs it can produce (optional ones included)

    def infer_shapes(self, attrs: dict, inputs: list) -> list:
        """Shape rule: output (shape, dtype) pairs, found by running the op on
        zeros of the input shapes (constants keep their values, since shape
        glue depends on them)."""
        outs = self.run(attrs, *inputs)
        outs = outs if isinstance(outs, tuple) else (outs,)
        return [(tuple(np.shape(data_of(o))), data_of(o).dtype) for o in outs]


OPS: dict[str, OpDef] = {}


def register(name, weights=(), check=None, max_version=25, num_outputs=1):
    def deco(fn):
        OPS[name] = OpDef(name, fn, tuple(weights), check, max_version, num_outputs)
        return fn
    return deco


def get(op_type: str) -> OpDef:
    op = OPS.get(op_type)
    if op is None:
        raise ValueError(f"op_type: qk has no implementation of {op_type!r}")
    return op


# --- helpers ---------------------------------------------------------------------------


def is_tensor(x) -> bool:
    return isinstance(x, Tensor)


def data_of(x) -> np.ndarray:
    return x.data if isinstance(x, Tensor) else np.asarray(x)


def as_tensor(x, like=None) -> Tensor:
    if isinstance(x, Tensor):
        return x
    arr = np.asarray(x)
    dtype = like.dtype if like is not None else (arr.dtype if arr.dtype in (np.float32, np.float64) else np.float32)
    return Tensor(arr.astype(dtype, copy=False))


def any_tensor(*xs) -> bool:
    return any(isinstance(x, Tensor) for x in xs)


def floats(*xs):
    """Lifts all to Tensors of the first Tensor's dtype (mixed Tensor/ndarray arithmetic)."""
    like = next(x for x in xs if isinstance(x, Tensor))
    return [as_tensor(x, like) for x in xs]


def unary(x, forward, grad):
    """An elementwise op: forward(array) -> array; grad(array_in, array_out, g) -> gx."""
    if not is_tensor(x):
        return forward(np.asarray(x))
    y = forward(x.data).astype(x.dtype, copy=False)
    return Tensor.from_op(y, (x,), lambda g: (grad(x.data, y, g),))


def movement(x, move, fill=None):
    """An op that only moves, copies or drops elements of x (reshape, slice,
    gather, pad, tile...). Its gradient is found by applying `move` to the
    element indices and summing the output gradient back with bincount, so
    every such op is differentiable without a rule of its own. `move(arr,
    fill)` gets `fill` = the value for new elements (padding)."""
    if not is_tensor(x):
        return move(np.asarray(x), fill)
    y = move(x.data, fill)

    def backward(g):
        idx = move(np.arange(x.size).reshape(x.shape), x.size)  # x.size marks padding
        flat = np.bincount(idx.ravel(), weights=g.ravel().astype(np.float64), minlength=x.size + 1)
        return (flat[: x.size].reshape(x.shape).astype(x.dtype),)

    return Tensor.from_op(np.ascontiguousarray(y), (x,), backward)


def ints(x) -> list:
    return [int(v) for v in np.asarray(data_of(x)).ravel()]


def norm_axis(axis: int, rank: int, name: str = "axis") -> int:
    if not -rank <= axis < max(rank, 1):
        raise ValueError(f"{name}: {axis} is out of range for a tensor of rank {rank}")
    return axis % rank if rank else 0


def only(allowed: dict):
    """A check that attribute `k` takes one of allowed[k] (a set)."""
    def check(attrs, n_in, n_out):
        for k, ok in allowed.items():
            if k in attrs:
                v = attrs[k]
                v = v.decode() if isinstance(v, bytes) else v
                if v not in ok:
                    raise ValueError(f"attribute {k}={v!r} is not supported (qk supports {sorted(ok, key=str)})")
    return check


# --- elementwise arithmetic (broadcasting) ------------------------------------------------


def _int_div(a, b):
    q = np.abs(a) // np.abs(b)
    return (np.sign(a) * np.sign(b) * q).astype(np.result_type(a, b))


def _binary(np_fn, tensor_fn):
    def run(attrs, a, b):
        if any_tensor(a, b):
            a, b = floats(a, b)
            return tensor_fn(a, b)
        return np_fn(np.asarray(a), np.asarray(b))
    return run


register("Add")(_binary(np.add, lambda a, b: a + b))
register("Sub")(_binary(np.subtract, lambda a, b: a - b))
register("Mul")(_binary(np.multiply, lambda a, b: a * b))
register("Div")(_binary(lambda a, b: _int_div(a, b) if a.dtype.kind in "iu" and b.dtype.kind in "iu"
                        else np.divide(a, b).astype(np.result_type(a, b)), lambda a, b: a / b))


@register("Pow")
def _pow(attrs, x, p):
    if not any_tensor(x, p) or data_of(x).dtype.kind != "f":  # integer bases keep their type
        x, p = data_of(x), data_of(p)
        return np.power(x, p.astype(x.dtype) if x.dtype.kind == "f" else p).astype(x.dtype)
    if not is_tensor(p):  # constant exponent: the common x**2, x**0.5
        pv = np.asarray(p).astype(x.dtype)
        if pv.size == 1:
            return x ** float(pv.ravel()[0])
        xd = x.data
        y = np.power(xd, pv)
        return Tensor.from_op(y, (x,), lambda g: (unbroadcast(g * pv * np.power(xd, pv - 1), xd.shape),))
    x, p = floats(x, p)
    xd, pd = x.data, p.data
    y = np.power(xd, pd)

    def backward(g):
        gx = unbroadcast(g * pd * np.power(xd, pd - 1), xd.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            gp = unbroadcast(g * y * np.where(xd > 0, np.log(np.where(xd > 0, xd, 1)), 0), pd.shape)
        return gx, gp

    return Tensor.from_op(y, (x, p), backward)


def _variadic(np_fn, pick):
    def run(attrs, *xs):
        xs = [x for x in xs]
        if not any_tensor(*xs):
            out = np.asarray(xs[0])
            for x in xs[1:]:
                out = np_fn(out, np.asarray(x))
            return out
        ts = floats(*xs)
        out = ts[0]
        for t in ts[1:]:
            a, b = out, t
            ad, bd = a.data, b.data
            take_a = pick(ad, bd)
            y = np.where(take_a, ad, bd)
            out = Tensor.from_op(y, (a, b), lambda g, ta=take_a, sa=ad.shape, sb=bd.shape:
                                 (unbroadcast(g * ta, sa), unbroadcast(g * ~ta, sb)))
        return out
    return run


register("Max")(_variadic(np.maximum, lambda a, b: (a >= b) | np.isnan(a)))
register("Min")(_variadic(np.minimum, lambda a, b: (a <= b) | np.isnan(a)))
@register("Sum")
def _sum(attrs, *xs):
    if not any_tensor(*xs):
        return np.sum(np.broadcast_arrays(*[np.asarray(x) for x in xs]), axis=0)
    ts = floats(*xs)
    out = ts[0]
    for t in ts[1:]:
        out = out + t
    return out


@register("Neg")
def _neg(attrs, x):
    return -x if is_tensor(x) else np.negative(x)


@register("Abs")
def _abs(attrs, x):
    return unary(x, np.abs, lambda xd, y, g: g * np.sign(xd))


@register("Sqrt")
def _sqrt(attrs, x):
    return unary(x, np.sqrt, lambda xd, y, g: g * 0.5 / y)


@register("Exp")
def _exp(attrs, x):
    return unary(x, np.exp, lambda xd, y, g: g * y)


@register("Log")
def _log(attrs, x):
    return unary(x, np.log, lambda xd, y, g: g / xd)


@register("Reciprocal")
def _reciprocal(attrs, x):
    return unary(x, np.reciprocal, lambda xd, y, g: -g * y * y)


def erf(x: np.ndarray) -> np.ndarray:
    """Vectorized erf (NumPy has none), computed in float64: the Taylor series
    below 0.5, 1 - erfc above (Numerical Recipes' erfc, relative error < 1.2e-7),
    so float32 results are within a few ulp everywhere."""
    x = np.asarray(x, dtype=np.float64)
    a = np.abs(x)
    small = a < 0.5
    out = np.empty_like(x)
    xs = x[small]
    if xs.size:
        x2 = xs * xs
        term, total = xs.copy(), xs.copy()
        for n in range(1, 12):
            term = term * -x2 / n
            total += term / (2 * n + 1)
        out[small] = total * (2 / math.sqrt(math.pi))
    ab = a[~small]
    if ab.size:
        t = 1.0 / (1.0 + 0.5 * ab)
        poly = -ab * ab - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
            -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
                -0.82215223 + t * 0.17087277))))))))
        out[~small] = np.sign(x[~small]) * (1.0 - t * np.exp(poly))
    return out


_ERFC_COEFFS = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398, 1.48851587,
                -0.82215223, 0.17087277)


def normal_cdf(v: np.ndarray) -> np.ndarray:
    """Phi(v) = 0.5 * (1 + erf(v / sqrt(2))) in float32, from Numerical Recipes'
    erfc (relative error < 1.2e-7) of |v| / sqrt(2) directly, so both tails stay
    accurate (1 + erf(z) cancels to 0 for z below -4): GELU's cdf, 4x faster
    than erf() above, which computes in float64 with a masked Taylor branch."""
    v = np.asarray(v, np.float32)
    a = np.abs(v) * np.float32(1 / math.sqrt(2))
    t = np.float32(1) / (np.float32(1) + np.float32(0.5) * a)
    poly = np.float32(_ERFC_COEFFS[-1])
    for c in _ERFC_COEFFS[-2::-1]:
        poly = poly * t + np.float32(c)
    half_erfc = np.float32(0.5) * t * np.exp(poly - a * a)
    return np.where(v >= 0, np.float32(1) - half_erfc, half_erfc)


@register("Erf")
def _erf(attrs, x):
    return unary(x, lambda v: erf(v).astype(v.dtype),
                 lambda xd, y, g: g * (2 / math.sqrt(math.pi)) * np.exp(-xd * xd))


# --- activations -------------------------------------------------------------------------


@register("Relu")
def _relu(attrs, x):
    if is_tensor(x) and _untracked(x):
        # F.relu's values (NaN and -0 give +0) in two quick passes, without its record: fmax drops
        # NaN; adding +0 turns a -0 it may keep into +0. np.where took 3x as long.
        zero = x.data.dtype.type(0)
        y = np.fmax(x.data, zero)
        return Tensor(np.add(y, zero, out=y))
    return F.relu(x) if is_tensor(x) else np.maximum(x, 0).astype(np.asarray(x).dtype)


@register("LeakyRelu")
def _leaky_relu(attrs, x):
    alpha = attrs.get("alpha", 0.01)
    return unary(x, lambda v: np.where(v >= 0, v, v * v.dtype.type(alpha)),
                 lambda xd, y, g: g * np.where(xd >= 0, 1, alpha).astype(xd.dtype))


@register("PRelu", weights=(1,))
def _prelu(attrs, x, slope):
    if not any_tensor(x, slope):
        x = np.asarray(x)
        return np.where(x < 0, x * slope, x).astype(x.dtype)
    x, slope = floats(x, slope)
    xd, sd = x.data, slope.data
    neg = xd < 0
    y = np.where(neg, xd * sd, xd).astype(xd.dtype)
    return Tensor.from_op(y, (x, slope), lambda g: (np.where(neg, g * sd, g).astype(xd.dtype),
                                                    unbroadcast(g * xd * neg, sd.shape)))


@register("Sigmoid")
def _sigmoid(attrs, x):
    def fwd(v):
        return (0.5 * (np.tanh(0.5 * v) + 1)).astype(v.dtype)  # stable for large |v|
    return unary(x, fwd, lambda xd, y, g: g * y * (1 - y))


@register("HardSigmoid")
def _hard_sigmoid(attrs, x):
    a, b = attrs.get("alpha", 0.2), attrs.get("beta", 0.5)
    return unary(x, lambda v: np.clip(v * v.dtype.type(a) + v.dtype.type(b), 0, 1),
                 lambda xd, y, g: g * ((y > 0) & (y < 1)) * np.float32(a))


@register("HardSwish")
def _hard_swish(attrs, x):
    def fwd(v):
        return v * np.clip(v * v.dtype.type(1 / 6) + v.dtype.type(0.5), 0, 1)

    def grad(v, y, g):
        return g * np.where(v < -3, 0, np.where(v > 3, 1, v / 3 + 0.5)).astype(v.dtype)
    return unary(x, fwd, grad)


@register("Tanh")
def _tanh(attrs, x):
    return unary(x, np.tanh, lambda xd, y, g: g * (1 - y * y))


@register("Gelu", check=only({"approximate": {"none", "tanh"}}))
def _gelu(attrs, x):
    approx = attrs.get("approximate", "none")
    if approx == "tanh":
        return F.gelu(x) if is_tensor(x) else F.gelu(Tensor(np.asarray(x, np.float32))).data
    def fwd(v):
        if v.dtype == np.float32:
            return _float_ops.gelu(v)  # the same formula, natively: 15-30x faster
        return (v * normal_cdf(v)).astype(v.dtype)

    def grad(v, y, g):
        pdf = np.exp(-0.5 * v.astype(np.float64) ** 2) / math.sqrt(2 * math.pi)
        return (g * (normal_cdf(v) + v * pdf)).astype(v.dtype)
    return unary(x, fwd, grad)


@register("Clip")
def _clip(attrs, x, lo=None, hi=None):
    lo_v = None if lo is None or np.size(data_of(lo)) == 0 else data_of(lo).item()
    hi_v = None if hi is None or np.size(data_of(hi)) == 0 else data_of(hi).item()

    def fwd(v):
        out = v
        if lo_v is not None:
            out = np.maximum(out, np.asarray(lo_v, v.dtype))
        if hi_v is not None:
            out = np.minimum(out, np.asarray(hi_v, v.dtype))
        return out

    def grad(xd, y, g):
        mask = np.ones(xd.shape, bool)
        if lo_v is not None:
            mask &= xd >= lo_v
        if hi_v is not None:
            mask &= xd <= hi_v
        return g * mask
    return unary(x, fwd, grad)


def _softmax_like(x, attrs, log):
    axis = attrs.get("axis", -1)
    x = as_tensor(x)
    shape = x.shape
    axis = norm_axis(axis, x.ndim)
    if attrs.get("coerce_2d"):  # opset < 13: softmax over the flattened trailing dims
        x = x.reshape(int(np.prod(shape[:axis], dtype=np.int64)), -1)
        axis = 1
    y = F.log_softmax(x, axis=axis) if log else F.softmax(x, axis=axis)
    return y.reshape(shape) if attrs.get("coerce_2d") else y


@register("Softmax")
def _softmax(attrs, x):
    return _softmax_like(x, attrs, log=False)


@register("LogSoftmax")
def _log_softmax(attrs, x):
    return _softmax_like(x, attrs, log=True)


@register("MaskedSoftmax")
def _masked_softmax(attrs, x, mask):
    """qk's Softmax(x + mask) over the last axis, then (nan_to_zero) NaN -> 0,
    as Where(IsNaN(y), 0, y) (graph.simplify.fuse_masked_softmax): the sum,
    the softmax and the guard in one native pass. With gradients, or off
    float32, the ops it stands for."""
    nan_to_zero = bool(attrs.get("nan_to_zero", 0))
    xd, md = data_of(x), data_of(mask)
    shape = np.broadcast_shapes(xd.shape, md.shape)
    if xd.shape != shape:
        x, mask, xd, md = mask, x, md, xd  # the sum is commutative: x is the operand of the result's shape
    if xd.dtype != np.float32 or md.dtype != np.float32 or xd.shape != shape or (
            is_grad_enabled() and any(is_tensor(v) and v.requires_grad for v in (x, mask))) or current_tracer():
        y = _softmax(attrs, get("Add").run({}, x, mask))
        return _where({}, np.isnan(data_of(y)), np.zeros((), data_of(y).dtype), y) if nan_to_zero else y
    y = _float_ops.softmax(xd, -1, mask=md, nan_to_zero=nan_to_zero)
    return Tensor(y) if any_tensor(x, mask) else y


# --- comparisons and logic (no gradients) --------------------------------------------------


def _compare(fn):
    return lambda attrs, a, b: fn(data_of(a), data_of(b))


for _name, _fn in (("Equal", np.equal), ("Greater", np.greater), ("Less", np.less),
                   ("GreaterOrEqual", np.greater_equal), ("LessOrEqual", np.less_equal),
                   ("And", np.logical_and), ("Or", np.logical_or), ("Xor", np.logical_xor)):
    register(_name)(_compare(_fn))


@register("Not")
def _not(attrs, x):
    return np.logical_not(data_of(x))


@register("IsNaN")
def _isnan(attrs, x):
    return np.isnan(data_of(x))


@register("IsInf")
def _isinf(attrs, x):
    v = data_of(x)
    pos, neg = attrs.get("detect_positive", 1), attrs.get("detect_negative", 1)
    return (np.isposinf(v) & bool(pos)) | (np.isneginf(v) & bool(neg))


def _select(c, a, b):
    """np.where(c, a, b). When one side is a single value chosen at few places
    (at most 1/8: the NaN guard after an attention softmax) and the other
    already has the result's shape and dtype, a copy of that side with the
    value written there: 5x faster (np.copyto's where= is slower than
    np.where when the choice is dense and random)."""
    shape = np.broadcast_shapes(c.shape, a.shape, b.shape)
    for full, fill, take_fill in ((b, a, True), (a, b, False)):
        if fill.size == 1 and full.dtype == fill.dtype and full.shape == shape:
            chosen = np.count_nonzero(c)
            if 8 * (chosen if take_fill else c.size - chosen) <= c.size:
                y = full.copy()
                np.copyto(y, fill.reshape(()), where=c if take_fill else ~c)
                return y
    return np.where(c, a, b)


@register("Where")
def _where(attrs, cond, a, b):
    c = np.asarray(data_of(cond), bool)
    if not any_tensor(a, b):
        return _select(c, np.asarray(a), np.asarray(b))
    a, b = floats(a, b)
    ad, bd = a.data, b.data
    y = _select(c, ad, bd)
    return Tensor.from_op(y, (a, b), lambda g: (unbroadcast(g * c, ad.shape), unbroadcast(g * ~c, bd.shape)))


# --- linear algebra ----------------------------------------------------------------------


def matmul(a, b):
    """ONNX/NumPy matmul, 1-D operands included, differentiable."""
    if not any_tensor(a, b):
        return threaded_numpy.matmul(np.asarray(a), np.asarray(b))
    a, b = floats(a, b)
    squeeze = []
    if a.ndim == 1:
        a = a.reshape(1, -1)
        squeeze.append(-2)
    if b.ndim == 1:
        b = b.reshape(-1, 1)
        squeeze.append(-1)
    y = a @ b
    if squeeze:
        shape = list(y.shape)
        for ax in sorted(squeeze):
            shape.pop(ax if ax == -1 else len(shape) - 2)
        y = y.reshape(tuple(shape))
    return y


@register("MatMul", weights=(1,))
def _matmul(attrs, a, b):
    return matmul(a, b)


@register("Linear", weights=(1, 2))
def _linear(attrs, x, w, b=None):
    """qk's fused MatMul + Add: x @ w + b with w of shape (K, N) (ONNX MatMul layout)."""
    y = matmul(x, w)
    return y if b is None else y + as_tensor(b, y if is_tensor(y) else None)


@register("Gemm", weights=(1, 2))
def _gemm(attrs, a, b, c=None):
    if attrs.get("transA", 0):
        a = transpose(a, (1, 0))
    if attrs.get("transB", 0):
        b = transpose(b, (1, 0))
    y = matmul(a, b)
    alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
    if alpha != 1.0:
        y = y * np.float32(alpha) if is_tensor(y) else y * alpha
    if c is not None and beta != 0:
        c = c * np.float32(beta) if beta != 1.0 else c
        y = y + as_tensor(c, y) if is_tensor(y) or is_tensor(c) else y + c
    return y


# --- reductions ---------------------------------------------------------------------------


def _reduce_axes(x, axes, attrs):
    rank = np.ndim(data_of(x))
    if axes is None or np.size(data_of(axes)) == 0:
        return None if not attrs.get("noop_with_empty_axes", 0) else ()
    return tuple(sorted(norm_axis(a, rank, "axes") for a in ints(axes)))


def untracked_reduce(xd: np.ndarray, axes, keepdims: bool, mean: bool) -> np.ndarray:
    """Tensor.sum's or Tensor.mean's values (the sum, times 1 / count) without
    their autograd wrappers, for a Tensor that records nothing: most of a
    batch-1 pool's time was those wrappers."""
    y = np.asarray(xd.sum(axis=axes, keepdims=keepdims))
    if mean:
        count = xd.size if axes is None else int(np.prod([xd.shape[a] for a in axes]))
        y = y * _as_array(1.0 / count, y.dtype)
    return y


def _reduce(np_fn, kind):
    def run(attrs, x, axes=None):
        ax = _reduce_axes(x, axes, attrs)
        keep = bool(attrs.get("keepdims", 1))
        if ax == ():
            return x
        if data_of(x).size == 0 and kind in ("max", "min"):
            return _empty_extreme(data_of(x), ax, keep, kind)
        if not is_tensor(x):
            return np_fn(np.asarray(x), axis=ax, keepdims=keep)
        if kind in ("sum", "mean") and _untracked(x):
            return Tensor(untracked_reduce(x.data, ax, keep, kind == "mean"))
        if kind == "sum":
            return x.sum(axis=ax, keepdims=keep)
        if kind == "mean":
            return x.mean(axis=ax, keepdims=keep)
        xd = x.data
        y = np_fn(xd, axis=ax, keepdims=True)
        mask = xd == y
        share = mask / mask.sum(axis=ax, keepdims=True)  # ties share the gradient
        out = y if keep else np.squeeze(y, axis=ax if ax is not None else tuple(range(xd.ndim)))

        def backward(g):
            if not keep:
                g = g.reshape(y.shape)
            return ((g * share).astype(xd.dtype),)
        return Tensor.from_op(np.asarray(out), (x,), backward)
    return run


def _empty_extreme(x, ax, keep, kind):
    """Max/min over the empty set: the identity of the reduction (-inf/+inf, or the type's bounds)."""
    shape = np.sum(x, axis=ax, keepdims=keep).shape
    if x.dtype == bool:
        return np.full(shape, kind == "min")
    if x.dtype.kind == "f":
        return np.full(shape, -np.inf if kind == "max" else np.inf, x.dtype)
    info = np.iinfo(x.dtype)
    return np.full(shape, info.min if kind == "max" else info.max, x.dtype)


register("ReduceSum")(_reduce(np.sum, "sum"))
register("ReduceMean")(_reduce(np.mean, "mean"))
register("ReduceMax")(_reduce(np.max, "max"))
register("ReduceMin")(_reduce(np.min, "min"))


# --- shapes and data movement --------------------------------------------------------------


def _untracked(x) -> bool:
    """A Tensor whose op needs no autograd record nor trace: its value alone will do."""
    return not (is_grad_enabled() and x.requires_grad) and current_tracer() is None


def reshape(x, shape):
    if is_tensor(x):
        # Tensor.reshape records its backward and its traced form (8 us a call at batch 1)
        return Tensor(x.data.reshape(tuple(shape))) if _untracked(x) else x.reshape(tuple(shape))
    return np.reshape(x, tuple(shape))


def transpose(x, perm):
    if is_tensor(x):
        return Tensor(x.data.transpose(tuple(perm))) if _untracked(x) else x.transpose(tuple(perm))
    return np.transpose(x, perm)


@register("Identity")
def _identity(attrs, x):
    return x


@register("Dropout", num_outputs=2)
def _dropout(attrs, x, ratio=None, training_mode=None):
    if training_mode is not None and bool(np.asarray(data_of(training_mode)).item()):
        raise ValueError("Dropout: training_mode=True is not supported (imported graphs run Dropout as identity)")
    return x, np.ones(np.shape(data_of(x)), bool)


@register("Flatten")
def _flatten(attrs, x):
    shape = np.shape(data_of(x))
    axis = attrs.get("axis", 1)
    axis = axis + len(shape) if axis < 0 else axis
    return reshape(x, (math.prod(shape[:axis]), math.prod(shape[axis:])))


@register("Reshape")
def _reshape(attrs, x, shape):
    in_shape = np.shape(data_of(x))
    target = ints(shape)
    if not attrs.get("allowzero", 0):
        target = [in_shape[i] if v == 0 else v for i, v in enumerate(target)]
    return reshape(x, target)


@register("Transpose")
def _transpose(attrs, x):
    perm = attrs.get("perm")
    rank = np.ndim(data_of(x))
    return transpose(x, tuple(perm) if perm is not None else tuple(reversed(range(rank))))


@register("Squeeze")
def _squeeze(attrs, x, axes=None):
    shape = np.shape(data_of(x))
    if axes is None or np.size(data_of(axes)) == 0:
        ax = {i for i, s in enumerate(shape) if s == 1}
    else:
        ax = {norm_axis(a, len(shape), "axes") for a in ints(axes)}
        bad = [a for a in ax if shape[a] != 1]
        if bad:
            raise ValueError(f"axes: cannot squeeze axes {bad} of shape {shape} (size is not 1)")
    return reshape(x, [s for i, s in enumerate(shape) if i not in ax])


@register("Unsqueeze")
def _unsqueeze(attrs, x, axes):
    shape = list(np.shape(data_of(x)))
    rank = len(shape) + len(ints(axes))
    for a in sorted(norm_axis(a, rank, "axes") for a in ints(axes)):
        shape.insert(a, 1)
    return reshape(x, shape)


@register("Concat")
def _concat(attrs, *xs):
    xs = [x for x in xs if x is not None]
    rank = np.ndim(data_of(xs[0]))
    axis = norm_axis(attrs["axis"], rank)
    if not any_tensor(*xs):
        return np.concatenate([np.asarray(x) for x in xs], axis=axis)
    ts = floats(*xs)
    y = np.concatenate([t.data for t in ts], axis=axis)
    bounds = np.cumsum([t.shape[axis] for t in ts])[:-1]
    return Tensor.from_op(y, tuple(ts), lambda g: tuple(np.split(g, bounds, axis=axis)))


@register("Split", num_outputs=1 << 16)
def _split(attrs, x, split=None):
    shape = np.shape(data_of(x))
    axis = norm_axis(attrs.get("axis", 0), len(shape))
    n = attrs.get("num_outputs") or attrs.get("_num_outputs")
    if split is not None and np.size(data_of(split)):
        sizes = ints(split)
    else:
        size = -(-shape[axis] // n)  # the last part may be smaller (opset 18)
        sizes = [min(size, shape[axis] - i * size) for i in range(n)]
    if sum(sizes) != shape[axis]:
        raise ValueError(f"split: sizes {sizes} do not add up to dimension {shape[axis]}")
    starts = np.concatenate([[0], np.cumsum(sizes)])
    outs = []
    for s, e in zip(starts[:-1], starts[1:]):
        idx = [slice(None)] * len(shape)
        idx[axis] = slice(int(s), int(e))
        outs.append(movement(x, lambda a, fill, idx=tuple(idx): a[idx]))
    return tuple(outs)


def _clamp_slice(start, end, step, dim):
    if step > 0:
        start = min(max(start + dim if start < 0 else start, 0), dim)
        end = min(max(end + dim if end < 0 else end, 0), dim)
        return slice(start, end, step)
    start = min(max(start + dim if start < 0 else start, 0), dim - 1)
    end = min(max(end + dim if end < 0 else end, -1), dim - 1)
    return slice(start, None if end < 0 else end, step)


@register("Slice")
def _slice(attrs, x, starts, ends, axes=None, steps=None):
    shape = np.shape(data_of(x))
    starts, ends = ints(starts), ints(ends)
    axes = list(range(len(starts))) if axes is None or not np.size(data_of(axes)) else ints(axes)
    steps = [1] * len(starts) if steps is None or not np.size(data_of(steps)) else ints(steps)
    idx = [slice(None)] * len(shape)
    for s, e, a, st in zip(starts, ends, axes, steps):
        if st == 0:
            raise ValueError("steps: a slice step cannot be 0")
        a = norm_axis(a, len(shape), "axes")
        idx[a] = _clamp_slice(s, e, st, shape[a])
    idx = tuple(idx)
    return movement(x, lambda a, fill: a[idx])


@register("Gather", weights=(0,))
def _gather(attrs, x, indices):
    shape = np.shape(data_of(x))
    axis = norm_axis(attrs.get("axis", 0), len(shape))
    ind = np.asarray(data_of(indices)).astype(np.int64)
    if ind.size and (ind.min() < -shape[axis] or ind.max() >= shape[axis]):
        raise ValueError(f"indices: values in [{ind.min()}, {ind.max()}] are out of range for a dimension of "
                         f"{shape[axis]}")
    ind = np.where(ind < 0, ind + shape[axis], ind)
    return movement(x, lambda a, fill: np.take(a, ind, axis=axis))


@register("GatherElements")
def _gather_elements(attrs, x, indices):
    shape = np.shape(data_of(x))
    axis = norm_axis(attrs.get("axis", 0), len(shape))
    ind = np.asarray(data_of(indices)).astype(np.int64)
    ind = np.where(ind < 0, ind + shape[axis], ind)
    if ind.size and (ind.min() < 0 or ind.max() >= shape[axis]):
        raise ValueError(f"indices: out of range for a dimension of {shape[axis]}")
    return movement(x, lambda a, fill: np.take_along_axis(a, ind, axis=axis))


@register("GatherND")
def _gather_nd(attrs, x, indices):
    b = attrs.get("batch_dims", 0)
    ind = np.asarray(data_of(indices)).astype(np.int64)
    shape = np.shape(data_of(x))
    k = ind.shape[-1]
    dims = np.asarray(shape[b: b + k])
    ind = np.where(ind < 0, ind + dims, ind)

    def move(a, fill):
        batch = shape[:b]
        nb = int(np.prod(batch, dtype=np.int64))
        a2 = a.reshape((nb,) + a.shape[b:])
        i2 = ind.reshape((nb, -1, k))
        out = np.stack([a2[j][tuple(i2[j].T)] for j in range(nb)])
        return out.reshape(ind.shape[:-1] + a.shape[b + k:])
    return movement(x, move)


@register("Expand")
def _expand(attrs, x, shape):
    target = np.broadcast_shapes(np.shape(data_of(x)), tuple(ints(shape)))
    return movement(x, lambda a, fill: np.broadcast_to(a, target).copy())


@register("Tile")
def _tile(attrs, x, repeats):
    reps = ints(repeats)
    return movement(x, lambda a, fill: np.tile(a, reps))


@register("Pad", check=only({"mode": {"constant", "reflect", "edge", "wrap"}}))
def _pad(attrs, x, pads, value=None, axes=None):
    rank = np.ndim(data_of(x))
    p = ints(pads)
    axes = list(range(rank)) if axes is None or not np.size(data_of(axes)) else \
        [norm_axis(a, rank, "axes") for a in ints(axes)]
    widths = [[0, 0] for _ in range(rank)]
    for i, a in enumerate(axes):
        widths[a] = [p[i], p[i + len(axes)]]
    crop = tuple(slice(-b if b < 0 else 0, (e if e < 0 else None)) for b, e in widths)
    widths = [(max(b, 0), max(e, 0)) for b, e in widths]
    mode = attrs.get("mode", "constant")
    cval = 0 if value is None or np.size(data_of(value)) == 0 else data_of(value).item()

    def move(a, fill):
        a = a[crop]
        if mode == "constant":
            return np.pad(a, widths, mode="constant", constant_values=cval if fill is None else fill)
        return np.pad(a, widths, mode="wrap" if mode == "wrap" else ("reflect" if mode == "reflect" else "edge"))
    return movement(x, move)


# --- casts, shapes and generated tensors (no gradients across dtypes) -----------------------


@register("Cast", max_version=28)  # 22-28 add low-precision types only
def _cast(attrs, x):
    to = np.dtype(attrs["to"])
    if is_tensor(x) and to in (np.float32, np.float64):
        if to == x.dtype:
            return x
        xd = x.data
        return Tensor.from_op(xd.astype(to), (x,), lambda g: (g.astype(xd.dtype),))
    v = data_of(x)
    if to == np.bool_:
        return v != 0
    with np.errstate(invalid="ignore"):
        return v.astype(to)


@register("CastLike")
def _cast_like(attrs, x, like):
    return _cast({"to": data_of(like).dtype}, x)


@register("Shape")
def _shape(attrs, x):
    shape = np.asarray(np.shape(data_of(x)), np.int64)
    start, end = attrs.get("start", 0), attrs.get("end")
    return shape[start:end]


@register("Size")
def _size(attrs, x):
    return np.asarray(np.size(data_of(x)), np.int64)


@register("ConstantOfShape")
def _constant_of_shape(attrs, shape):
    value = attrs.get("value")
    value = np.zeros(1, np.float32) if value is None else np.asarray(value)
    return np.full(tuple(ints(shape)), value.ravel()[0], dtype=value.dtype)


@register("Range", max_version=27)  # 27 adds float16 types and their stash_type
def _range(attrs, start, limit, delta):
    s, l, d = (np.asarray(data_of(v)) for v in (start, limit, delta))
    n = max(int(np.ceil((l.item() - s.item()) / d.item())), 0)
    return (s + np.arange(n, dtype=s.dtype) * d).astype(s.dtype)


from . import ops_nn  # noqa: E402,F401  (registers the convolution, pooling, normalization and resize ops)
from . import ops_quant  # noqa: E402,F401  (the ONNX quantization ops: QDQ and integer-op models)
