"""The autograd core: a `Tensor` that records the operations made on it.

A Tensor wraps a NumPy array (float32 by default; float64 is allowed so tests
can check gradients against finite differences).  Every operation on Tensors
that need a gradient returns a new Tensor holding:

* ``_parents``: the input Tensors, and
* ``_backward``: a function taking the gradient of the output and returning
  one gradient per parent (``None`` where a parent needs none).

``loss.backward()`` orders the graph topologically, walks it from the output
back to the inputs, sums the gradients arriving at each Tensor, and stores the
total in ``.grad`` of every leaf that has ``requires_grad=True``.

The operations themselves live in ``functional.py``; the operator methods
below (``a + b``, ``a @ b``, ``a.sum()`` ...) just call them.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np

_state = threading.local()


def is_grad_enabled() -> bool:
    """True unless inside a ``no_grad()`` block (per thread)."""
    return getattr(_state, "grad_enabled", True)


@contextlib.contextmanager
def no_grad():
    """Context manager: operations inside record no graph (for inference)."""
    previous = is_grad_enabled()
    _state.grad_enabled = False
    try:
        yield
    finally:
        _state.grad_enabled = previous


def _as_float_array(data, dtype) -> np.ndarray:
    if isinstance(data, Tensor):
        data = data.data
    if dtype is None:
        dtype = np.float32
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"Tensor dtype must be float32 or float64, got {dtype}")
    array = np.asarray(data)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"Tensor data must be numeric, got dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=dtype) if array.dtype != dtype else array


class Tensor:
    """A float32 (or float64) array that can record a graph for backward.

    Parameters
    ----------
    data : array_like
        Values. Copied only when a dtype conversion is needed.
    requires_grad : bool
        If True, ``backward()`` stores this tensor's gradient in ``.grad``.
    dtype : float32 (default) or float64.
    """

    __array_priority__ = 100  # so ndarray + Tensor calls Tensor.__radd__

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        if dtype is None and isinstance(data, (Tensor, np.ndarray)) and data.dtype == np.float64:
            dtype = np.float64 if isinstance(data, Tensor) else np.float32
        self.data = _as_float_array(data, dtype)
        self.requires_grad = bool(requires_grad)
        self.grad: np.ndarray | None = None
        self._parents: tuple = ()
        self._backward = None
        self._op = ""

    # -- graph construction (used by functional.py) ------------------------
    @staticmethod
    def _make(data: np.ndarray, parents, backward, op: str) -> "Tensor":
        """Result of an operation: records the graph if any parent needs a gradient."""
        out = Tensor.__new__(Tensor)
        out.data = data
        out.grad = None
        needs = is_grad_enabled() and any(p.requires_grad for p in parents)
        out.requires_grad = needs
        out._parents = tuple(parents) if needs else ()
        out._backward = backward if needs else None
        out._op = op
        return out

    # -- backward ----------------------------------------------------------
    def backward(self, grad=None) -> None:
        """Backpropagate from this tensor.

        ``grad`` is the gradient of some scalar with respect to this tensor;
        it may be omitted only when this tensor has a single element.
        Gradients are *accumulated* into ``.grad`` of the leaves (call
        ``optimizer.zero_grad()`` between steps).
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward(): this tensor does not require grad (no input had "
                "requires_grad=True, or it was computed under no_grad())"
            )
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward(): grad can be implicit only for a scalar output, but this "
                    f"tensor has shape {self.data.shape}; pass grad= of that shape"
                )
            grad = np.ones_like(self.data)
        else:
            grad = np.asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=self.data.dtype)
            if grad.shape != self.data.shape:
                raise ValueError(
                    f"backward(): grad has shape {grad.shape} but the tensor has shape {self.data.shape}"
                )

        # Topological order without recursion (graphs can be deep).
        order, seen, stack = [], {id(self)}, [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            stack.append((node, True))
            for parent in node._parents:
                if id(parent) not in seen and parent.requires_grad:
                    seen.add(id(parent))
                    stack.append((parent, False))

        grads = {id(self): grad}
        for node in reversed(order):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if node._backward is None:  # a leaf
                node.grad = g.copy() if node.grad is None else node.grad + g
                continue
            parent_grads = node._backward(g)
            for parent, pg in zip(node._parents, parent_grads):
                if pg is None or not parent.requires_grad:
                    continue
                key = id(parent)
                if key in grads:
                    grads[key] = grads[key] + pg
                else:
                    grads[key] = pg

    # -- conveniences --------------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self):
        return self.data.size

    @property
    def is_leaf(self) -> bool:
        return self._backward is None

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self) -> float:
        return self.data.item()

    def detach(self) -> "Tensor":
        """A new leaf sharing the data, without graph or gradient."""
        return Tensor(self.data, dtype=self.data.dtype)

    def zero_grad(self) -> None:
        self.grad = None

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        flag = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({np.array2string(self.data, precision=4, threshold=20)}, dtype={self.dtype}{flag})"

    # -- operators (implemented in functional.py) ---------------------------
    def __add__(self, other):
        return F.add(self, other)

    def __radd__(self, other):
        return F.add(other, self)

    def __sub__(self, other):
        return F.sub(self, other)

    def __rsub__(self, other):
        return F.sub(other, self)

    def __mul__(self, other):
        return F.mul(self, other)

    def __rmul__(self, other):
        return F.mul(other, self)

    def __truediv__(self, other):
        return F.div(self, other)

    def __rtruediv__(self, other):
        return F.div(other, self)

    def __neg__(self):
        return F.neg(self)

    def __matmul__(self, other):
        return F.matmul(self, other)

    def __rmatmul__(self, other):
        return F.matmul(other, self)

    def sum(self, axis=None, keepdims=False):
        return F.sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return F.mean(self, axis, keepdims)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return F.reshape(self, shape)

    def flatten(self, start_dim=1):
        return F.flatten(self, start_dim)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return F.transpose(self, axes or None)

    @property
    def T(self):
        return F.transpose(self, None)

    def relu(self):
        return F.relu(self)

    def tanh(self):
        return F.tanh(self)

    def exp(self):
        return F.exp(self)

    def log(self):
        return F.log(self)


def as_tensor(value, dtype=None) -> Tensor:
    """``value`` if it is already a Tensor, else a constant Tensor (no grad)."""
    if isinstance(value, Tensor):
        return value
    if dtype is None and isinstance(value, np.ndarray) and value.dtype == np.float64:
        dtype = np.float32
    return Tensor(value, dtype=dtype)


from . import functional as F  # noqa: E402  (operators above call it)
