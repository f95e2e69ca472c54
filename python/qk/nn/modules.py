"""Layers. A `Module` finds its parameters, buffers and submodules from its
attributes, in the order they were set, so models read like PyTorch's."""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np

from . import functional as F
from .tensor import Tensor, current_tracer

_rng = np.random.default_rng(0)


def manual_seed(seed: int) -> None:
    """Seeds the generator used for weight initialisation and dropout."""
    global _rng
    _rng = np.random.default_rng(seed)


def default_rng() -> np.random.Generator:
    return _rng


class Parameter(Tensor):
    """A trainable tensor of a Module (requires_grad=True)."""

    def __init__(self, data):
        super().__init__(np.asarray(data, dtype=np.float32), requires_grad=True)


class Module:
    """Base class of layers and models: parameters, buffers and submodules are
    found from attributes; `__call__` runs `forward`; `train()`/`eval()` set the mode."""

    def __init__(self):
        object.__setattr__(self, "_params", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_params" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before setting attributes")
        # Replacing an entry keeps its place (OrderedDict), so swapped layers stay in order.
        for registry, keep in ((self._params, Parameter), (self._modules, Module), (self._buffers, None)):
            if name in registry and not (keep is not None and isinstance(value, keep)):
                del registry[name]
        if isinstance(value, Parameter):
            self._params[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, value: np.ndarray) -> None:
        """A saved, non-trainable array (e.g. BatchNorm's running statistics)."""
        setattr(self, name, value)
        self._buffers[name] = True

    def forward(self, *args, **kwargs):
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        tracer = current_tracer()
        if tracer is not None:  # qk.graph.trace is recording this call
            return tracer.call_module(self, args, kwargs)
        return self.forward(*args, **kwargs)

    # --- traversal ----------------------------------------------------------

    def named_modules(self, prefix: str = ""):
        """Yields (dotted name, module) for this module ("" for itself) and every descendant."""
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def children(self):
        return iter(self._modules.values())

    def named_parameters(self, prefix: str = ""):
        for name, module in self.named_modules(prefix):
            for pname, p in module._params.items():
                yield (f"{name}.{pname}" if name else pname), p

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def named_buffers(self):
        for name, module in self.named_modules():
            for bname in module._buffers:
                yield (f"{name}.{bname}" if name else bname), getattr(module, bname)

    def get_submodule(self, name: str) -> "Module":
        module = self
        for part in name.split(".") if name else []:
            if part not in module._modules:
                raise KeyError(f"name: {type(module).__name__} has no submodule {part!r} (looking up {name!r})")
            module = module._modules[part]
        return module

    def set_submodule(self, name: str, new: "Module") -> None:
        """Replaces the submodule at dotted `name` (how PTQ and QAT swap layers)."""
        if not isinstance(new, Module):
            raise TypeError(f"new: expected a Module, got {type(new).__name__}")
        parent_name, _, leaf = name.rpartition(".")
        parent = self.get_submodule(parent_name)
        if leaf not in parent._modules:
            raise KeyError(f"name: {type(parent).__name__} has no submodule {leaf!r}")
        setattr(parent, leaf, new)

    # --- modes and state ------------------------------------------------------

    def train(self, mode: bool = True) -> "Module":
        for _, m in self.named_modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        state = OrderedDict((n, p.data.copy()) for n, p in self.named_parameters())
        state.update((n, np.array(b, copy=True)) for n, b in self.named_buffers())
        return state

    def load_state_dict(self, state) -> None:
        """Loads arrays by name; missing, unexpected or wrongly shaped entries raise ValueError."""
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        extra = [k for k in state if k not in own]
        if missing or extra:
            raise ValueError(f"state_dict: missing keys {missing}, unexpected keys {extra}")
        for k, v in own.items():
            if np.shape(state[k]) != v.shape:
                raise ValueError(f"state_dict: {k!r} has shape {np.shape(state[k])}, the model expects {v.shape}")
        params = dict(self.named_parameters())
        for name, module in self.named_modules():
            for bname in module._buffers:
                key = f"{name}.{bname}" if name else bname
                getattr(module, bname)[...] = state[key]
        for key, p in params.items():
            p.data = np.asarray(state[key], dtype=np.float32).copy()

    def save(self, path) -> None:
        """Saves state_dict() as .npz."""
        np.savez(path, **self.state_dict())

    def load(self, path) -> "Module":
        with np.load(path) as f:
            self.load_state_dict({k: f[k] for k in f.files})
        return self

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in self._modules.items():
            lines.append(f"  ({name}): " + repr(child).replace("\n", "\n  "))
        return lines[0] + ")" if len(lines) == 1 else "\n".join(lines) + "\n)"


def _check_input(x, name="input"):
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a qk.nn.Tensor, got {type(x).__name__}")


class Linear(Module):
    """y = x @ weight.T + bias, weight (out_features, in_features); PyTorch's initialisation."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1 / math.sqrt(in_features)
        self.weight = Parameter(_rng.uniform(-bound, bound, (out_features, in_features)))
        self.bias = Parameter(_rng.uniform(-bound, bound, out_features)) if bias else None

    def forward(self, x):
        _check_input(x)
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class Conv2d(Module):
    """2-D convolution (cross-correlation, as PyTorch) over (N, C, H, W); PyTorch's initialisation."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, bias: bool = True):
        super().__init__()
        kh, kw = F._pair(kernel_size, "kernel_size")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = (kh, kw), stride, padding
        bound = 1 / math.sqrt(in_channels * kh * kw)
        self.weight = Parameter(_rng.uniform(-bound, bound, (out_channels, in_channels, kh, kw)))
        self.bias = Parameter(_rng.uniform(-bound, bound, out_channels)) if bias else None

    def forward(self, x):
        _check_input(x)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}")


class _BatchNorm(Module):
    _input_dims: tuple = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = Parameter(np.ones(num_features))
        self.bias = Parameter(np.zeros(num_features))
        self.register_buffer("running_mean", np.zeros(num_features, np.float32))
        self.register_buffer("running_var", np.ones(num_features, np.float32))

    def forward(self, x):
        _check_input(x)
        if x.ndim not in self._input_dims or x.shape[1] != self.num_features:
            raise ValueError(f"input: {type(self).__name__}({self.num_features}) expects {self._input_dims} dims "
                             f"with {self.num_features} channels in dim 1, got shape {x.shape}")
        return F.batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var,
                            self.training, self.momentum, self.eps)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    """Batch normalization over (N, C) or (N, C, L) inputs."""

    _input_dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalization over (N, C, H, W) inputs."""

    _input_dims = (4,)


class ReLU(Module):
    """max(x, 0)."""

    def forward(self, x):
        return F.relu(x)


class LeakyReLU(Module):
    """x if x > 0 else negative_slope * x."""

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)


class Tanh(Module):
    """Hyperbolic tangent."""

    def forward(self, x):
        return F.tanh(x)


class GELU(Module):
    """GELU, tanh approximation (PyTorch's approximate='tanh')."""

    def forward(self, x):
        return F.gelu(x)


class Flatten(Module):
    """Flattens every dimension after the first."""

    def forward(self, x):
        return x.flatten(1)


class MaxPool2d(Module):
    """2-D max pooling (stride defaults to the kernel size)."""

    def __init__(self, kernel_size=2, stride=None):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class Dropout(Module):
    """Zeroes inputs with probability p in training (scaling the rest by 1 / (1 - p)); identity in eval."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"p: expected a probability in [0, 1), got {p}")
        self.p = p

    def forward(self, x):
        return F.dropout(x, self.p, self.training, _rng)

    def extra_repr(self):
        return f"p={self.p}"


class Identity(Module):
    """Returns its input."""

    def forward(self, x):
        return x


class Sequential(Module):
    """Runs its modules in order; they are named "0", "1", ..."""

    def __init__(self, *modules: Module):
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"modules[{i}]: expected a Module, got {type(m).__name__}")
            setattr(self, str(i), m)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())
