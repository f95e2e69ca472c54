"""Saving and loading quantized models (.npz) without the FP32 model.

The file holds every array (int8 / packed int4 / float16 weights, scales,
zero points, biases, FP32 layers' parameters) and, under "__qk_model__", a
JSON description of the module tree to rebuild."""

from __future__ import annotations

import json

import numpy as np

from .. import nn
from .layers import (DynamicInt8Core, FP16Core, QuantizedLayer, StaticInt8Core, WeightOnlyCore,
                     int_weight_from_stored)

FORMAT = "qk.ptq/1"
_SIMPLE = {  # modules rebuilt from a few plain attributes
    "ReLU": (nn.ReLU, []), "Identity": (nn.Identity, []), "Flatten": (nn.Flatten, []), "Tanh": (nn.Tanh, []),
    "GELU": (nn.GELU, []), "LeakyReLU": (nn.LeakyReLU, ["negative_slope"]), "Dropout": (nn.Dropout, ["p"]),
    "MaxPool2d": (nn.MaxPool2d, ["kernel_size", "stride"]),
}
_CORES = {c.kind: c for c in (StaticInt8Core, DynamicInt8Core, WeightOnlyCore, FP16Core)}


def _encode(module, path: str, arrays: dict) -> dict:
    kind = type(module).__name__
    if isinstance(module, nn.Sequential):
        return {"type": "Sequential", "children": [_encode(m, f"{path}/{i}", arrays) for i, m in enumerate(module)]}
    if kind in _SIMPLE:
        return {"type": kind, "args": {a: _plain(getattr(module, a)) for a in _SIMPLE[kind][1]}}
    if isinstance(module, QuantizedLayer):
        for key, value in module.core.arrays().items():
            if value is not None:
                arrays[f"{path}/{key}"] = value
        return {"type": "QuantizedLayer", "core": module.core.kind, "meta": module.core.meta(),
                "out_features": module.out_features, "conv": module.conv,
                "arrays": [k for k, v in module.core.arrays().items() if v is not None]}
    if isinstance(module, (nn.Linear, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d)):
        for key, value in module.state_dict().items():
            arrays[f"{path}/{key}"] = value
        if isinstance(module, nn.Linear):
            args = dict(in_features=module.in_features, out_features=module.out_features, bias=module.bias is not None)
        elif isinstance(module, nn.Conv2d):
            args = dict(in_channels=module.in_channels, out_channels=module.out_channels,
                        kernel_size=list(module.kernel_size), stride=_plain(module.stride),
                        padding=_plain(module.padding), bias=module.bias is not None)
        else:
            args = dict(num_features=module.num_features, eps=module.eps, momentum=module.momentum)
        return {"type": kind, "args": args}
    raise ValueError(f"model: cannot save a {kind} module (supported: Sequential, Linear, Conv2d, BatchNorm, "
                     f"activations, pooling, and quantized layers)")


def _plain(v):
    return list(v) if isinstance(v, tuple) else v


def _decode(spec: dict, path: str, arrays) -> nn.Module:
    kind = spec["type"]
    if kind == "Sequential":
        return nn.Sequential(*[_decode(c, f"{path}/{i}", arrays) for i, c in enumerate(spec["children"])])
    if kind in _SIMPLE:
        cls, _ = _SIMPLE[kind]
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec["args"].items()})
    if kind == "QuantizedLayer":
        core = _load_core(spec, path, arrays)
        conv = None if spec["conv"] is None else tuple(tuple(v) for v in spec["conv"])
        return QuantizedLayer(core, spec["out_features"], conv)
    classes = {"Linear": nn.Linear, "Conv2d": nn.Conv2d, "BatchNorm1d": nn.BatchNorm1d, "BatchNorm2d": nn.BatchNorm2d}
    if kind in classes:
        args = {k: tuple(v) if isinstance(v, list) else v for k, v in spec["args"].items()}
        module = classes[kind](**args)
        module.load_state_dict({k: arrays[f"{path}/{k}"] for k in module.state_dict()})
        return module
    raise ValueError(f"path: unknown module type {kind!r} in the file")


def _load_core(spec, path, arrays):
    kind, meta = spec["core"], spec["meta"]
    a = {k: arrays[f"{path}/{k}"] for k in spec["arrays"]}
    bias = a.get("bias")
    if kind in ("static_int8", "dynamic_int8"):
        weight_q = int_weight_from_stored(a, meta.get("k"))
    if kind == "static_int8":
        return StaticInt8Core(weight_q, a["w_scale"], bias, meta["x_scale"], meta["x_zero_point"], meta["relu"],
                              meta["bits"], tuple(meta["x_range"]))
    if kind == "dynamic_int8":
        return DynamicInt8Core(weight_q, a["w_scale"], bias, meta["relu"], meta["bits"])
    if kind == "weight_only":
        core = WeightOnlyCore(np.zeros((meta["n"], meta["k"]), np.int8), a["scales"], bias, meta["relu"],
                              meta["bits"], meta["group_size"])
        core.stored = a["stored"]
        return core
    if kind == "fp16":
        core = FP16Core(np.zeros((1, 1), np.float32), None, meta["relu"])
        core.weight_half = a["weight_half"]
        core.bias = bias
        return core
    raise ValueError(f"path: unknown quantized layer kind {kind!r} in the file")


def save(model: nn.Module, path) -> None:
    """Saves a quantized (or partly quantized) model as .npz."""
    arrays: dict[str, np.ndarray] = {}
    spec = _encode(model, "m", arrays)
    header = json.dumps({"format": FORMAT, "model": spec})
    np.savez(path, __qk_model__=np.frombuffer(header.encode(), np.uint8), **arrays)


def load(path) -> nn.Module:
    """Rebuilds a model saved by `save`; no FP32 model is needed."""
    try:
        f = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"path: {path!s} is not a .npz file saved by qk.ptq.save ({e})") from e
    with f:
        if "__qk_model__" not in f.files:
            raise ValueError(f"path: {path!s} is not a quantized model saved by qk.ptq.save "
                             "(for a state dict, use Module.load)")
        header = json.loads(bytes(f["__qk_model__"]).decode())
        if header.get("format") != FORMAT:
            raise ValueError(f"path: unsupported format {header.get('format')!r}, expected {FORMAT!r}")
        arrays = {k: f[k] for k in f.files}
    return _decode(header["model"], "m", arrays).eval()
