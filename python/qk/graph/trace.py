"""Tracing: any qk.nn model -> Graph, by running it once on an example input
(a Sequential of standard layers needs none: its chain is read off its layers).

While tracing, `Module.__call__` and `Tensor.from_op` report to the tracer.
Linear, Conv2d, BatchNorm, MaxPool2d and Dropout become one node each, named
after the module (so "0", "features.conv1" are node names as they are module
names); every other operation inside a module's forward becomes the node its
`op` tag names. Parameters keep their dotted names as graph constants, so a
traced model's GraphModule has the same `state_dict()` keys.
"""

from __future__ import annotations

import numpy as np

from ..nn import modules as nn_modules
from ..nn.tensor import Tensor, current_tracer, no_grad, set_tracer
from .ir import Graph, Node, Value


class _Tracer:
    def __init__(self, model):
        self.module_names = {id(m): n for n, m in model.named_modules()}
        self.param_names = {id(p): n for n, p in model.named_parameters()}
        self.names: dict = {}  # id(tensor) -> value name
        self.keep: list = []  # the traced tensors stay alive, so their ids stay unique
        self.nodes: list = []
        self.constants: dict = {}
        self.scope = [""]
        self.suspended = 0

    def value_of(self, t) -> str:
        """The value name of an operand: a traced tensor, a parameter or a new constant."""
        name = self.names.get(id(t))
        if name is not None:
            return name
        if id(t) in self.param_names:
            name = self.param_names[id(t)]
        else:
            name = self._fresh(f"{self.scope[-1] or 'const'}.const")
        self.constants[name] = np.array(t.data if isinstance(t, Tensor) else t)  # a copy: the graph owns it
        self._bind(t, name)
        return name

    def constant(self, arr, hint: str, prefix=None) -> str:
        prefix = self.scope[-1] if prefix is None else prefix
        name = self._fresh(f"{prefix or 'const'}.{hint}")
        self.constants[name] = np.asarray(arr)
        return name

    def _fresh(self, base: str) -> str:
        taken = set(self.constants) | set(self.names.values())
        name, i = base, 1
        while name in taken:
            name, i = f"{base}_{i}", i + 1
        return name

    def _bind(self, t, name):
        self.names[id(t)] = name
        self.keep.append(t)

    def emit(self, op_type, inputs, out, attrs, name):
        out_name = self._fresh(name + ".out" if name else op_type.lower())
        self.nodes.append(Node(op_type, inputs, [out_name], attrs, name))
        self._bind(out, out_name)

    # --- hooks -------------------------------------------------------------------------------

    def record(self, out, parents, op, backward):
        if self.suspended:
            return
        if op is None:
            where = getattr(backward, "__qualname__", "an operation")
            raise TypeError(f"trace: {where} (in module {self.scope[-1] or 'the model'!r}) has no graph op, so the "
                            "model cannot be traced; write it with qk.nn operations that have one")
        op_type, attrs, extra = op
        inputs = [self.value_of(p) for p in parents]
        inputs += [self.constant(c, op_type.lower()) for c in extra]
        self.emit(op_type, inputs, out, dict(attrs), self.scope[-1])

    def call_module(self, module, args, kwargs):
        name = self.module_names.get(id(module), type(module).__name__)
        leaf = _LEAVES.get(type(module))
        if leaf is None:
            self.scope.append(name)
            try:
                return module.forward(*args, **kwargs)
            finally:
                self.scope.pop()
        x = args[0]
        self.suspended += 1
        try:
            out = module.forward(*args, **kwargs)
        finally:
            self.suspended -= 1
        if out is x:  # Identity, or Dropout in eval mode
            out = Tensor(x.data)
        self.emit_leaf(module, leaf(module, x), x, out)
        return out

    def emit_leaf(self, module, op, x, out) -> None:
        """The node of leaf `module` (its (op_type, attrs, weights)) from value x to out."""
        name = self.module_names.get(id(module), type(module).__name__)
        op_type, attrs, weights = op
        inputs = [self.value_of(x)] + [self.value_of(w) if isinstance(w, Tensor) else self.constant(w, key, name)
                                       for key, w in weights]
        self.emit(op_type, inputs, out, attrs, name)

    def chain(self, seq, x):
        """Emits the layers of Sequential `seq` after value x without running
        them (their nodes do not depend on shapes); returns the last value.
        Element-wise activations run on a 1x1 stand-in to record their ops."""
        for child in seq._modules.values():
            if type(child) is nn_modules.Sequential:
                x = self.chain(child, x)
            elif type(child) in _LEAVES:
                out = Tensor(np.zeros((1, 1), np.float32))
                self.emit_leaf(child, _LEAVES[type(child)](child, None), x, out)
                x = out
            else:  # an element-wise activation (reads_as_chain checked it)
                x = child(x)
        return x


def _linear(m, x):
    if x is not None and x.ndim != 2:
        raise ValueError(f"trace: Linear on a {x.ndim}-D input is not supported (Gemm is 2-D); flatten first")
    weights = [("weight", m.weight)] + ([("bias", m.bias)] if m.bias is not None else [])
    return "Gemm", {"transB": 1}, weights


def _conv(m, x):
    (ph, pw) = (m.padding, m.padding) if isinstance(m.padding, int) else m.padding
    (sh, sw) = (m.stride, m.stride) if isinstance(m.stride, int) else m.stride
    weights = [("weight", m.weight)] + ([("bias", m.bias)] if m.bias is not None else [])
    return "Conv", {"kernel_shape": list(m.kernel_size), "strides": [sh, sw], "pads": [ph, pw, ph, pw]}, weights


def _batch_norm(m, x):
    return "BatchNormalization", {"epsilon": float(m.eps)}, [
        ("weight", m.weight), ("bias", m.bias), ("running_mean", m.running_mean), ("running_var", m.running_var)]


def _max_pool(m, x):
    k = (m.kernel_size,) * 2 if isinstance(m.kernel_size, int) else tuple(m.kernel_size)
    s = k if m.stride is None else ((m.stride,) * 2 if isinstance(m.stride, int) else tuple(m.stride))
    return "MaxPool", {"kernel_shape": list(k), "strides": list(s)}, []


_LEAVES = {
    nn_modules.Linear: _linear,
    nn_modules.Conv2d: _conv,
    nn_modules.BatchNorm1d: _batch_norm,
    nn_modules.BatchNorm2d: _batch_norm,
    nn_modules.MaxPool2d: _max_pool,
    nn_modules.Dropout: lambda m, x: ("Identity", {}, []),
    nn_modules.Identity: lambda m, x: ("Identity", {}, []),
    nn_modules.Flatten: lambda m, x: ("Flatten", {"axis": 1}, []),
}
_ELEMENTWISE = (nn_modules.ReLU, nn_modules.LeakyReLU, nn_modules.Tanh, nn_modules.GELU)
STANDARD_LAYERS = (nn_modules.Sequential, *_LEAVES, *_ELEMENTWISE)
"""The qk.nn layers a Sequential may hold to be traced without an example."""


def _first_nonstandard(model):
    """(name, layer) of the first layer that keeps `model` from being read off its layers, or None.
    Exact types: a subclass may compute something else in its forward."""
    if type(model) is not nn_modules.Sequential:
        return "", model
    return next(((n, m) for n, m in model.named_modules() if type(m) not in STANDARD_LAYERS), None)


def reads_as_chain(model) -> bool:
    """Whether `trace(model)` needs no example: a Sequential of STANDARD_LAYERS."""
    return _first_nonstandard(model) is None


def _chain_input_shape(model) -> tuple | None:
    """The input shape a Sequential's first layer implies: (None, features) for Linear, (None, C, None, None)
    for Conv2d; unknown (None) when another layer (Flatten, pooling, BatchNorm) comes first. Layers that
    keep the shape (activations, Dropout, Identity) are looked through."""
    for _, m in model.named_modules():
        if isinstance(m, (nn_modules.Sequential, nn_modules.Dropout, nn_modules.Identity) + _ELEMENTWISE):
            continue
        if isinstance(m, nn_modules.Linear):
            return (None, m.in_features)
        if isinstance(m, nn_modules.Conv2d):
            return (None, m.in_channels, None, None)
        return None
    return None


def trace(model, example_inputs=None, input_names=None, output_names=None) -> Graph:
    """The Graph of `model` (a qk.nn Module) as it runs on `example_inputs`
    (an array, or a tuple of arrays for several inputs). The model is traced
    in eval mode; the batch dimension of every input is left symbolic.
    A Sequential of Linear, Conv2d, BatchNorm, pooling, Flatten, Dropout,
    Identity and element-wise activations needs no example: its chain graph
    is built from the layers (input shape from the first layer)."""
    if not isinstance(model, nn_modules.Module):
        raise TypeError(f"model: expected a qk.nn.Module, got {type(model).__name__}")
    if current_tracer() is not None:
        raise RuntimeError("trace: already tracing (trace is not reentrant)")
    blocker = None if example_inputs is not None else _first_nonstandard(model)
    if blocker is not None:
        where = f"layer {blocker[0]!r} ({type(blocker[1]).__name__})" if blocker[0] else f"a {type(model).__name__}"
        raise ValueError(f"example_inputs: {where} is traced by running it; pass example_inputs (a batch of "
                         "inputs; only a Sequential of standard layers needs none)")
    if example_inputs is None:
        arrays, shapes = [np.zeros((1, 1), np.float32)], [_chain_input_shape(model)]
    else:
        examples = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
        arrays = [np.asarray(e.data if isinstance(e, Tensor) else e, dtype=np.float32) for e in examples]
        shapes = [(None,) + a.shape[1:] for a in arrays]
    names = list(input_names or (["input"] if len(arrays) == 1 else [f"input_{i}" for i in range(len(arrays))]))
    if len(names) != len(arrays):
        raise ValueError(f"input_names: {len(names)} names for {len(arrays)} inputs")
    tracer = _Tracer(model)
    inputs = [Tensor(a) for a in arrays]
    for t, n in zip(inputs, names):
        tracer._bind(t, n)
    was_training = model.training
    model.eval()
    set_tracer(tracer)
    try:
        with no_grad():
            out = model(*inputs) if example_inputs is not None else tracer.chain(model, inputs[0])
    finally:
        set_tracer(None)
        model.train(was_training)
    outs = out if isinstance(out, tuple) else (out,)
    out_names = list(output_names or (["output"] if len(outs) == 1 else [f"output_{i}" for i in range(len(outs))]))
    if len(out_names) != len(outs):
        raise ValueError(f"output_names: {len(out_names)} names for {len(outs)} outputs")
    nodes = tracer.nodes
    for t, want in zip(outs, out_names):
        got = tracer.value_of(t)
        producer = next((n for n in nodes if got in n.outputs), None)
        if producer is None:  # an output that is an input: add an Identity to name it
            nodes.append(Node("Identity", [got], [want], {}, want))
        else:
            producer.outputs = [want if o == got else o for o in producer.outputs]
            for n in nodes:
                n.inputs = [want if i == got else i for i in n.inputs]
    values = [Value(n, shape, np.dtype(np.float32)) for n, shape in zip(names, shapes)]
    return Graph(nodes, names, out_names, tracer.constants, values, {"producer": "qk.graph.trace"})
