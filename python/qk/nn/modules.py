"""Layers: ``Module`` (parameters, buffers, submodules, state dicts) and the usual layers.

A Module registers attributes automatically: a ``Parameter`` becomes a
parameter, a ``Module`` a submodule, and ``register_buffer`` adds non-trained
state (BatchNorm's running statistics).  Submodules are found and replaced by
dotted name (``get_submodule("features.0")`` / ``set_submodule("features.0",
new)``), which is how PTQ and QAT swap layers in place.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np

from . import functional as F
from .random import default_rng
from .tensor import Tensor


class Parameter(Tensor):
    """A Tensor that a Module trains (``requires_grad=True``)."""

    def __init__(self, data, requires_grad: bool = True, dtype=None):
        super().__init__(data, requires_grad=requires_grad, dtype=dtype)

    def __repr__(self):
        return "Parameter" + super().__repr__()[len("Tensor"):]


class Module:
    """Base class of layers and models. Subclasses define ``forward``."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # -- attribute registration -----------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__() first")
        if isinstance(value, Parameter) and name in self._parameters:
            self._parameters[name] = value  # replace in place: keeps the registration order
            return
        if isinstance(value, Module) and name in self._modules:
            self._modules[name] = value
            return
        for table in (self._parameters, self._buffers, self._modules):
            table.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        elif name in self.__dict__.get("_buffer_names", ()):
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)
            return
        self.__dict__.pop(name, None)

    def __getattr__(self, name):
        d = self.__dict__
        for table in ("_parameters", "_buffers", "_modules"):
            if table in d and name in d[table]:
                return d[table][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name):
        for table in (self._parameters, self._buffers, self._modules):
            if name in table:
                del table[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name: str, value) -> None:
        """Non-trained state saved in ``state_dict()`` (a NumPy array, or None)."""
        names = self.__dict__.setdefault("_buffer_names", set())
        names.add(name)
        self.__dict__.pop(name, None)
        self._buffers[name] = None if value is None else np.asarray(value)

    def register_parameter(self, name: str, value) -> None:
        """Register a Parameter (or None, to mark an absent optional one such as a bias)."""
        if value is None:
            self._parameters.pop(name, None)
            object.__setattr__(self, name, None)
        else:
            setattr(self, name, value if isinstance(value, Parameter) else Parameter(value))

    # -- calling -------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # -- traversal -------------------------------------------------------------------
    def named_modules(self, prefix: str = ""):
        """Yield ``(dotted_name, module)`` for this module ("" ) and every submodule, depth first."""
        seen = set()
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{k}" if name else k, m) for k, m in module._modules.items() if m is not None]
            stack.extend(reversed(children))

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        yield from ((k, m) for k, m in self._modules.items() if m is not None)

    def children(self):
        for _, m in self.named_children():
            yield m

    def named_parameters(self, prefix: str = ""):
        """Yield ``(dotted_name, Parameter)``, each parameter once."""
        seen = set()
        for mname, module in self.named_modules(prefix):
            for pname, p in module._parameters.items():
                if p is not None and id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{mname}.{pname}" if mname else pname), p

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix: str = ""):
        for mname, module in self.named_modules(prefix):
            for bname, b in module._buffers.items():
                if b is not None:
                    yield (f"{mname}.{bname}" if mname else bname), b

    def get_submodule(self, name: str) -> "Module":
        """The submodule at dotted path ``name`` ("" is this module)."""
        module = self
        if name == "":
            return module
        walked = []
        for part in name.split("."):
            if part not in module._modules:
                where = ".".join(walked) or type(self).__name__
                raise AttributeError(f"no submodule {part!r} in {where!r} (looking up {name!r})")
            module = module._modules[part]
            walked.append(part)
        return module

    def set_submodule(self, name: str, module: "Module") -> None:
        """Replace (or add) the submodule at dotted path ``name``, e.g. swap a Linear for a quantized one."""
        if not isinstance(module, Module):
            raise TypeError(f"set_submodule: expected a Module, got {type(module).__name__}")
        parent_name, _, leaf = name.rpartition(".")
        if not leaf:
            raise ValueError("set_submodule: name must not be empty")
        parent = self.get_submodule(parent_name)
        setattr(parent, leaf, module)

    # -- modes -------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    # -- state -------------------------------------------------------------------
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Copies of every parameter and buffer, keyed by dotted name."""
        state = OrderedDict()
        for name, p in self.named_parameters():
            state[name] = p.data.copy()
        for name, b in self.named_buffers():
            state[name] = np.array(b, copy=True)
        return state

    def load_state_dict(self, state, strict: bool = True) -> None:
        """Load values from ``state`` (a mapping or an ``np.load`` result).

        With ``strict`` (default), missing keys, unexpected keys and shape
        mismatches raise one ``KeyError``/``ValueError`` naming all of them;
        nothing is modified unless every check passes.
        """
        own = OrderedDict()
        for name, p in self.named_parameters():
            own[name] = ("param", p)
        for mname, module in self.named_modules():
            for bname, b in module._buffers.items():
                if b is not None:
                    own[f"{mname}.{bname}" if mname else bname] = ("buffer", (module, bname))
        keys = list(state.keys())
        missing = [k for k in own if k not in state]
        unexpected = [k for k in keys if k not in own]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing keys: {missing}")
            if unexpected:
                parts.append(f"unexpected keys: {unexpected}")
            raise KeyError(f"load_state_dict: {'; '.join(parts)}")
        updates = []
        wrong = []
        for name, (kind, target) in own.items():
            if name not in state:
                continue
            value = np.asarray(state[name])
            current = target.data if kind == "param" else target[0]._buffers[target[1]]
            if value.shape != current.shape:
                wrong.append(f"{name}: expected {current.shape}, got {value.shape}")
            else:
                updates.append((kind, target, value.astype(current.dtype, copy=True)))
        if wrong:
            raise ValueError("load_state_dict: shape mismatch: " + "; ".join(wrong))
        for kind, target, value in updates:
            if kind == "param":
                target.data = value
            else:
                module, bname = target
                module._buffers[bname] = value

    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        if self._modules:
            for name, m in self._modules.items():
                sub = repr(m).replace("\n", "\n  ")
                lines.append(f"  ({name}): {sub}")
            return "\n".join(lines) + "\n)"
        return lines[0] + ")"


def _uniform(shape, bound):
    return default_rng().uniform(-bound, bound, size=shape).astype(np.float32)


class Linear(Module):
    """``y = x @ weight.T + bias``; weight (out_features, in_features), PyTorch's default init."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        bound = 1.0 / math.sqrt(self.in_features) if self.in_features else 0.0
        self.weight = Parameter(_uniform((self.out_features, self.in_features), bound))
        self.register_parameter("bias", Parameter(_uniform((self.out_features,), bound)) if bias else None)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class Conv2d(Module):
    """2-D convolution over NCHW input; weight (out_channels, in_channels, kh, kw)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
        super().__init__()
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.kernel_size = F._int2(kernel_size, "Conv2d: kernel_size")
        self.stride = F._int2(stride, "Conv2d: stride")
        self.padding = F._int2(padding, "Conv2d: padding")
        fan_in = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        bound = 1.0 / math.sqrt(fan_in) if fan_in else 0.0
        self.weight = Parameter(_uniform((self.out_channels, self.in_channels) + self.kernel_size, bound))
        self.register_parameter("bias", Parameter(_uniform((self.out_channels,), bound)) if bias else None)

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)

    def extra_repr(self):
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}"
        )


class _BatchNorm(Module):
    _ndims: tuple = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True):
        super().__init__()
        self.num_features = int(num_features)
        self.eps = float(eps)
        self.momentum = float(momentum)
        self.affine = bool(affine)
        if affine:
            self.weight = Parameter(np.ones(self.num_features, np.float32))
            self.bias = Parameter(np.zeros(self.num_features, np.float32))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.register_buffer("running_mean", np.zeros(self.num_features, np.float32))
        self.register_buffer("running_var", np.ones(self.num_features, np.float32))

    def forward(self, x):
        if x.ndim not in self._ndims:
            raise ValueError(
                f"{type(self).__name__}: expected input with {' or '.join(map(str, self._ndims))} dimensions, "
                f"got shape {x.shape}"
            )
        if x.shape[1] != self.num_features:
            raise ValueError(
                f"{type(self).__name__}: input has {x.shape[1]} channels but num_features={self.num_features}"
            )
        return F.batch_norm(
            x, self.weight, self.bias, self.running_mean, self.running_var,
            self.training, self.momentum, self.eps,
        )

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}"


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) or (N, C, L); batch statistics in train(), running ones in eval()."""

    _ndims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W); batch statistics in train(), running ones in eval()."""

    _ndims = (4,)


class ReLU(Module):
    def forward(self, x):
        return F.relu(x)


class LeakyReLU(Module):
    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)


class GELU(Module):
    def forward(self, x):
        return F.gelu(x)


class Tanh(Module):
    def forward(self, x):
        return F.tanh(x)


class Identity(Module):
    """Returns its input (what a BatchNorm becomes after being folded into its conv)."""

    def forward(self, x):
        return x


class Flatten(Module):
    def __init__(self, start_dim: int = 1):
        super().__init__()
        self.start_dim = int(start_dim)

    def forward(self, x):
        return F.flatten(x, self.start_dim)


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class Dropout(Module):
    """Zeroes elements with probability p in train(); identity in eval()."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class Sequential(Module):
    """Runs its submodules in order; they are named "0", "1", ... and indexable."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (dict, OrderedDict)):
            for name, m in modules[0].items():
                setattr(self, str(name), m)
        else:
            for i, m in enumerate(modules):
                setattr(self, str(i), m)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def _key(self, index):
        keys = list(self._modules)
        if isinstance(index, str):
            return index
        try:
            return keys[index]
        except IndexError:
            raise IndexError(f"Sequential index {index} out of range for {len(keys)} modules") from None

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Sequential(*list(self._modules.values())[index])
        return self._modules[self._key(index)]

    def __setitem__(self, index, module):
        if not isinstance(module, Module):
            raise TypeError(f"Sequential items must be Modules, got {type(module).__name__}")
        self._modules[self._key(index)] = module

    def append(self, module):
        setattr(self, str(len(self._modules)), module)
        return self
