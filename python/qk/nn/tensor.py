"""A small reverse-mode autograd over NumPy arrays.

A `Tensor` wraps an ndarray (float32; float64 is allowed, for gradient
checks). Each operation on tensors that need gradients records its inputs
and a function that maps the output's gradient to the inputs' gradients;
`backward()` visits the graph in reverse topological order and accumulates
`.grad` on every tensor that requires it.
"""

from __future__ import annotations

import contextlib

import numpy as np

from .. import _threaded_numpy as threaded_numpy

_grad_enabled = True
_tracer = None  # set by qk.graph.trace while it records a model's operations


@contextlib.contextmanager
def no_grad():
    """Within this block, operations record no graph (inference, updates)."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


def is_grad_enabled() -> bool:
    return _grad_enabled


def current_tracer():
    """The qk.graph tracer recording operations now, or None."""
    return _tracer


def set_tracer(tracer):
    """Installs (or, with None, removes) the tracer; returns the previous one."""
    global _tracer
    previous, _tracer = _tracer, tracer
    return previous


def _as_array(value, dtype=None) -> np.ndarray:
    if isinstance(value, Tensor):
        return value.data
    arr = np.asarray(value)
    if dtype is not None:
        return arr.astype(dtype, copy=False)
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float32)
    return arr


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sums `grad` over the axes that broadcasting added or stretched to reach `shape`."""
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis=axis, keepdims=True)
    return grad


class Tensor:
    """An ndarray with an optional gradient and the operation that made it."""

    __array_priority__ = 100  # so ndarray (op) Tensor defers to Tensor

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        if type(data) is np.ndarray and dtype is None and data.dtype.char in "fd":
            self.data = data  # the common case, without the dtype comparisons (1.3 -> 0.4 us a Tensor)
        else:
            self.data = _as_array(data, dtype)
            if self.data.dtype not in (np.float32, np.float64):
                raise TypeError(f"data: expected float32 or float64, got {self.data.dtype}")
        self.requires_grad = bool(requires_grad)
        self.grad: np.ndarray | None = None
        self._parents: tuple[Tensor, ...] = ()
        self._backward = None  # grad_out -> tuple of grads, one per parent

    # --- graph ------------------------------------------------------------

    @staticmethod
    def from_op(data: np.ndarray, parents: tuple, backward, op=None) -> "Tensor":
        """The result of an operation: records the graph when any input needs a gradient.

        `op` = (graph op type, attributes, extra constant inputs) names the
        operation for `qk.graph.trace`; operations without it cannot be traced."""
        out = Tensor(data)
        if _grad_enabled and any(p.requires_grad for p in parents):
            out.requires_grad = True
            out._parents = parents
            out._backward = backward
        if _tracer is not None:
            _tracer.record(out, parents, op, backward)
        return out

    def backward(self, grad=None) -> None:
        """Accumulates d(self)/d(leaf) into `.grad` of every tensor that requires it."""
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require a gradient (no input had requires_grad=True)")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward: the tensor has shape {self.shape}; pass `grad` of that shape "
                    "(only a scalar's gradient defaults to 1)")
            grad = np.ones_like(self.data)
        grad = np.asarray(grad, dtype=self.data.dtype)
        if grad.shape != self.shape:
            raise ValueError(f"grad: expected shape {self.shape}, got {grad.shape}")

        order, seen = [], set()
        stack = [(self, False)]
        while stack:  # iterative DFS: deep graphs must not hit the recursion limit
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            stack.extend((p, False) for p in node._parents if p.requires_grad)

        grads = {id(self): grad}
        for node in reversed(order):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if node._backward is None:  # a leaf
                node.grad = g.copy() if node.grad is None else node.grad + g
                continue
            for parent, pg in zip(node._parents, node._backward(g)):
                if pg is None or not parent.requires_grad:
                    continue
                grads[id(parent)] = pg if id(parent) not in grads else grads[id(parent)] + pg

    def zero_grad(self) -> None:
        self.grad = None

    def detach(self) -> "Tensor":
        return Tensor(self.data)

    # --- array-like -------------------------------------------------------

    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self) -> float:
        return self.data.item()

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        flag = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({self.data!r}{flag})"

    # --- elementwise arithmetic ------------------------------------------

    def _lift(self, other) -> "Tensor":
        return other if isinstance(other, Tensor) else Tensor(_as_array(other, self.dtype))

    def __add__(self, other):
        other = self._lift(other)
        a, b = self.shape, other.shape
        return Tensor.from_op(self.data + other.data, (self, other),
                              lambda g: (unbroadcast(g, a), unbroadcast(g, b)), ("Add", {}, ()))

    __radd__ = __add__

    def __sub__(self, other):
        other = self._lift(other)
        a, b = self.shape, other.shape
        return Tensor.from_op(self.data - other.data, (self, other),
                              lambda g: (unbroadcast(g, a), unbroadcast(-g, b)), ("Sub", {}, ()))

    def __rsub__(self, other):
        return self._lift(other) - self

    def __mul__(self, other):
        other = self._lift(other)
        x, y = self.data, other.data
        return Tensor.from_op(x * y, (self, other),
                              lambda g: (unbroadcast(g * y, x.shape), unbroadcast(g * x, y.shape)), ("Mul", {}, ()))

    __rmul__ = __mul__

    def __neg__(self):
        return Tensor.from_op(-self.data, (self,), lambda g: (-g,), ("Neg", {}, ()))

    def __truediv__(self, other):
        other = self._lift(other)
        x, y = self.data, other.data
        out = x / y
        return Tensor.from_op(out, (self, other),
                              lambda g: (unbroadcast(g / y, x.shape), unbroadcast(-g * out / y, y.shape)),
                              ("Div", {}, ()))

    def __pow__(self, exponent: float):
        if isinstance(exponent, Tensor):
            raise TypeError("exponent: expected a Python number, got a Tensor")
        x = self.data
        p = x.dtype.type(exponent)
        return Tensor.from_op(x ** p, (self,), lambda g: (g * p * x ** (p - 1),), ("Pow", {}, (np.asarray(p),)))

    # --- linear algebra and shapes ---------------------------------------

    def __matmul__(self, other):
        other = self._lift(other)
        a, b = self.data, other.data
        if a.ndim < 1 or b.ndim < 1 or a.shape[-1] != (b.shape[-2] if b.ndim > 1 else b.shape[0]):
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not match (inner dimensions differ)")
        if a.ndim == 1 or b.ndim == 1:
            raise ValueError("matmul: both operands must be at least 2-D (reshape vectors first)")

        def backward(g):
            ga = g @ np.swapaxes(b, -1, -2)
            gb = np.swapaxes(a, -1, -2) @ g
            return unbroadcast(ga, a.shape), unbroadcast(gb, b.shape)

        return Tensor.from_op(threaded_numpy.matmul(a, b), (self, other), backward, ("MatMul", {}, ()))

    def sum(self, axis=None, keepdims: bool = False):
        shape = self.shape

        def backward(g):
            if axis is not None and not keepdims:
                g = np.expand_dims(g, axis)
            return (np.broadcast_to(g, shape).copy(),)

        axes = () if axis is None else (np.atleast_1d(np.asarray(axis, np.int64)),)
        return Tensor.from_op(np.asarray(self.data.sum(axis=axis, keepdims=keepdims)), (self,), backward,
                              ("ReduceSum", {"keepdims": int(keepdims)}, axes))

    def mean(self, axis=None, keepdims: bool = False):
        count = self.size if axis is None else int(np.prod([self.shape[a] for a in np.atleast_1d(axis)]))
        return self.sum(axis=axis, keepdims=keepdims) * (1.0 / count)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        old = self.shape
        out = self.data.reshape(shape)
        # traced as ONNX Reshape, where 0 copies the input's dimension: a leading
        # dimension equal to the input's is the batch, and follows it
        target = np.asarray(shape, np.int64).reshape(-1).copy()
        if target.size and old and target[0] == old[0]:
            target[0] = 0
        return Tensor.from_op(out, (self,), lambda g: (g.reshape(old),), ("Reshape", {}, (target,)))

    def flatten(self, start_dim: int = 1):
        if start_dim != 1:
            return self.reshape(self.shape[:start_dim] + (-1,))
        old = self.shape
        out = self.data.reshape(old[:1] + (-1,))
        return Tensor.from_op(out, (self,), lambda g: (g.reshape(old),), ("Flatten", {"axis": 1}, ()))

    def transpose(self, *axes):
        axes = axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        axes = tuple(axes) if axes else tuple(reversed(range(self.ndim)))
        inverse = tuple(np.argsort(axes))
        return Tensor.from_op(self.data.transpose(axes), (self,), lambda g: (g.transpose(inverse),),
                              ("Transpose", {"perm": list(axes)}, ()))

    @property
    def T(self):
        return self.transpose()


def tensor(data, requires_grad: bool = False) -> Tensor:
    """A Tensor of `data` (float32 unless it is float64)."""
    return Tensor(data, requires_grad=requires_grad)
