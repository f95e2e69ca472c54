"""Model surgery shared by PTQ and QAT: finding quantizable layers, folding
BatchNorm into the layer before it, and spotting a ReLU to fuse."""

from __future__ import annotations

import numpy as np

from ..graph.simplify import batchnorm_fold_factors
from ..nn import BatchNorm1d, BatchNorm2d, Conv2d, Identity, Linear, Module, ReLU, Sequential

QUANTIZABLE = (Linear, Conv2d)


def quantizable_layers(model: Module) -> list[tuple[str, Module]]:
    """(dotted name, layer) of every Linear and Conv2d, in model order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, QUANTIZABLE)]


def replace_layer(model: Module, name: str, new: Module) -> Module:
    """Puts `new` at submodule `name` of `model` and returns the model; for
    name "" (the model is the layer itself) returns `new`."""
    if name == "":
        return new
    model.set_submodule(name, new)
    return model


def _sequential_runs(model: Module):
    """Yields (container, [child names]) for each Sequential, where order is known."""
    for _, m in model.named_modules():
        if isinstance(m, Sequential):
            yield m, list(m._modules)


def fold_batchnorm(model: Module) -> list[str]:
    """Folds every BatchNorm that directly follows a Linear/Conv2d inside a
    Sequential into that layer's weight and bias (eval-mode statistics), and
    replaces the BatchNorm by Identity. Returns the folded layers' names.

    w' = w * gamma / sqrt(var + eps);  b' = (b - mean) * gamma / sqrt(var + eps) + beta
    """
    folded = []
    names = {id(m): n for n, m in model.named_modules()}
    for seq, children in _sequential_runs(model):
        for a, b in zip(children, children[1:]):
            layer, bn = seq._modules[a], seq._modules[b]
            if not (isinstance(layer, QUANTIZABLE) and isinstance(bn, (BatchNorm1d, BatchNorm2d))):
                continue
            factor, new_bias = batchnorm_fold_factors(bn.weight.data, bn.bias.data, bn.running_mean,
                                                      bn.running_var, float(bn.eps),
                                                      None if layer.bias is None else layer.bias.data)
            w = layer.weight.data
            layer.weight.data = (w * factor.reshape((-1,) + (1,) * (w.ndim - 1))).astype(np.float32)
            new_bias = new_bias.astype(np.float32)
            from ..nn import Parameter

            layer.bias = Parameter(new_bias)
            setattr(seq, b, Identity())
            folded.append(names[id(layer)])
    return folded


def relu_follows(model: Module) -> dict[str, str]:
    """{layer name: name of the ReLU right after it (Identity in between is skipped)}."""
    out = {}
    names = {id(m): n for n, m in model.named_modules()}
    for seq, children in _sequential_runs(model):
        mods = [seq._modules[c] for c in children]
        for i, layer in enumerate(mods):
            if not isinstance(layer, QUANTIZABLE):
                continue
            j = i + 1
            while j < len(mods) and isinstance(mods[j], Identity):
                j += 1
            if j < len(mods) and isinstance(mods[j], ReLU):
                out[names[id(layer)]] = names[id(mods[j])]
    return out
