"""Saving and loading quantized models (.npz) without the FP32 model.

The file holds every array (int8 / packed int4 / float16 weights, scales,
zero points, biases, FP32 layers' parameters, a graph's constants) and,
under "__qk_model__", a JSON description of the module tree or graph to
rebuild. Nothing is unpickled: `np.load(..., allow_pickle=False)`."""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np

from .. import nn
from ..graph import Graph, GraphModule, Node, Value
from .layers import (DynamicInt8Core, FP16Core, QuantizedLayer, StaticInt8Core, WeightOnlyCore,
                     int_weight_from_stored)

FORMAT = "qk.ptq/1"
_SIMPLE = {  # modules rebuilt from a few plain attributes
    "ReLU": (nn.ReLU, []), "Identity": (nn.Identity, []), "Flatten": (nn.Flatten, []), "Tanh": (nn.Tanh, []),
    "GELU": (nn.GELU, []), "LeakyReLU": (nn.LeakyReLU, ["negative_slope"]), "Dropout": (nn.Dropout, ["p"]),
    "MaxPool2d": (nn.MaxPool2d, ["kernel_size", "stride"]),
}
_CORES = {c.kind: c for c in (StaticInt8Core, DynamicInt8Core, WeightOnlyCore, FP16Core)}


def _encode_core(core, path: str, arrays: dict) -> dict:
    for key, value in core.arrays().items():
        if value is not None:
            arrays[f"{path}/{key}"] = value
    return {"core": core.kind, "meta": core.meta(), "path": path,
            "arrays": [k for k, v in core.arrays().items() if v is not None]}


def _encode_attr(value, path: str, arrays: dict):
    """A node attribute as JSON: arrays by reference, dtypes by name, cores by their arrays and meta."""
    from ..quantization.graph import DepthwiseInt8

    if isinstance(value, np.ndarray):
        arrays[path] = value
        return {"__array__": path}
    if isinstance(value, np.dtype):
        return {"__dtype__": value.str}
    if isinstance(value, DepthwiseInt8):
        return {"__depthwise__": _encode_core(value.core, path, arrays)}
    if hasattr(value, "kind") and value.kind in _CORES:
        return {"__core__": _encode_core(value, path, arrays)}
    if isinstance(value, (list, tuple)):
        return [_encode_attr(v, f"{path}/{i}", arrays) for i, v in enumerate(value)]
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"model: cannot save attribute {path!r} of type {type(value).__name__} (a QAT model? "
                     "convert it first)")


def _decode_attr(value, arrays):
    from ..quantization.graph import DepthwiseInt8

    if isinstance(value, list):
        return [_decode_attr(v, arrays) for v in value]
    if not isinstance(value, dict):
        return value
    if "__array__" in value:
        return arrays[value["__array__"]]
    if "__dtype__" in value:
        return np.dtype(value["__dtype__"])
    if "__depthwise__" in value:
        spec = value["__depthwise__"]
        return DepthwiseInt8(_load_core(spec, None, arrays))
    if "__core__" in value:
        return _load_core(value["__core__"], None, arrays)
    raise ValueError(f"unknown attribute encoding {sorted(value)}")


def _encode_graph(model: GraphModule, arrays: dict) -> dict:
    g = model.graph
    for name, arr in g.constants.items():
        arrays[f"c/{name}"] = np.asarray(arr)
    nodes = [{"op": n.op_type, "name": n.name, "inputs": n.inputs, "outputs": n.outputs,
              "attrs": {k: _encode_attr(v, f"n{i}/{k}", arrays) for k, v in n.attrs.items()}}
             for i, n in enumerate(g.nodes)]
    values = [{"name": v, "shape": None if g.values[v].shape is None else list(g.values[v].shape),
               "dtype": None if g.values[v].dtype is None else np.dtype(g.values[v].dtype).str} for v in g.inputs]
    meta = json.loads(json.dumps(g.metadata, default=lambda o: o.item() if hasattr(o, "item") else str(o)))
    return {"type": "Graph", "inputs": g.inputs, "outputs": g.outputs, "values": values, "nodes": nodes,
            "constants": list(g.constants), "metadata": meta}


def _decode_graph(spec: dict, arrays) -> GraphModule:
    constants = {name: arrays[f"c/{name}"] for name in spec["constants"]}
    nodes = [Node(n["op"], list(n["inputs"]), list(n["outputs"]),
                  {k: _decode_attr(v, arrays) for k, v in n["attrs"].items()}, n["name"]) for n in spec["nodes"]]
    values = [Value(v["name"], None if v["shape"] is None else tuple(v["shape"]),
                    None if v["dtype"] is None else np.dtype(v["dtype"])) for v in spec["values"]]
    return GraphModule(Graph(nodes, spec["inputs"], spec["outputs"], constants, values, spec["metadata"]))


def _encode(module, path: str, arrays: dict) -> dict:
    kind = type(module).__name__
    if isinstance(module, GraphModule):
        return _encode_graph(module, arrays)
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
    if kind == "Graph":
        return _decode_graph(spec, arrays)
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
    """A core from its spec; its arrays are under `path` (a graph's core specs carry their own path)."""
    kind, meta = spec["core"], spec["meta"]
    if path is None:
        path = spec["path"]
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


def _npz_path(path) -> str:
    """The suffix rule of `save` and `load`: ".npz" is added unless the path ends with it."""
    path = os.fspath(path)
    return path if path.endswith(".npz") else path + ".npz"


def save(model: nn.Module, path) -> None:
    """Saves a quantized (or partly quantized) model, or a GraphModule (an
    imported or converted graph), as `path` (".npz" added unless given).
    The write is atomic: a temporary file in the same folder, renamed into
    place, so a crash never destroys the previous file."""
    arrays: dict[str, np.ndarray] = {}
    spec = _encode(model, "m", arrays)
    header = json.dumps({"format": FORMAT, "model": spec})
    path = _npz_path(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".npz.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, __qk_model__=np.frombuffer(header.encode(), np.uint8), **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load(path) -> nn.Module:
    """Rebuilds a model saved by `save` (a qk.nn model or a GraphModule); no
    FP32 model is needed. `path` follows save's suffix rule."""
    if not os.path.exists(os.fspath(path)) and os.path.exists(_npz_path(path)):
        path = _npz_path(path)
    import zipfile

    try:
        f = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"path: {path!s} is not a .npz file saved by qk.ptq.save ({e})") from e
    with f:
        if "__qk_model__" not in f.files:
            raise ValueError(f"path: {path!s} is not a quantized model saved by qk.ptq.save "
                             "(for a state dict, use Module.load)")
        try:
            header = json.loads(bytes(f["__qk_model__"]).decode())
        except (ValueError, UnicodeDecodeError) as e:
            raise ValueError(f"path: {path!s} has a damaged model description ({e})") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            got = header.get("format") if isinstance(header, dict) else header
            raise ValueError(f"path: unsupported format {got!r}, expected {FORMAT!r}")
        try:
            arrays = {k: f[k] for k in f.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise ValueError(f"path: {path!s} is damaged ({type(e).__name__}: {e})") from None
    try:
        return _decode(header["model"], "m", arrays).eval()
    except (KeyError, TypeError, IndexError, AttributeError) as e:
        raise ValueError(f"path: {path!s} is damaged or incomplete ({type(e).__name__}: {e})") from None
