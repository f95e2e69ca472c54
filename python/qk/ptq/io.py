"""Saving and loading quantized models (.npz) without the FP32 model.

The file holds every array (int8 / packed int4 / float16 weights, scales,
zero points, biases, a graph's constants) and, under "__qk_model__", a
JSON description of the graph to rebuild. Nothing is unpickled: `np.load(..., allow_pickle=False)`."""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np

from ..graph import Graph, GraphModule, Node, Value
from .layers import DynamicInt8Core, FP16Core, StaticInt8Core, WeightOnlyCore, int_weight_from_stored

FORMAT = "qk.ptq/1"
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
              "attrs": {k: _encode_attr(v, f"n{i}/{k}", arrays) for k, v in n.attrs.items()
                        if not k.startswith("_")}}  # "_" attributes are run-time caches
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


def _decode(spec: dict, arrays) -> GraphModule:
    if spec.get("type") != "Graph":
        raise _Bad(f"the file holds a {spec.get('type')!r} module tree, which qk before 0.3 wrote for qk.nn "
                   "models; quantize the model again (quantized models are graphs now)")
    return _decode_graph(spec, arrays)


class _Bad(ValueError):
    """A malformed spec: load() reports it with the path."""


def _need(cond, what: str) -> None:
    if not cond:
        raise _Bad(what)


def _int(v, what: str, lo: int = 0, hi: int = 1 << 40) -> int:
    _need(isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi, f"{what}: expected an int in "
          f"[{lo}, {hi}], got {v!r}")
    return v


def _arr(a: dict, key: str, dtype, shape, what: str) -> np.ndarray:
    """The array `key` of a core, of exactly `dtype` and `shape` (None: any length there)."""
    _need(key in a, f"{what}: array {key!r} is missing")
    arr = a[key]
    _need(arr.dtype == np.dtype(dtype), f"{what}: {key} has dtype {arr.dtype}, expected {np.dtype(dtype)}")
    _need(arr.ndim == len(shape) and all(s is None or s == d for s, d in zip(shape, arr.shape)),
          f"{what}: {key} has shape {arr.shape}, expected {tuple('?' if s is None else s for s in shape)}")
    return arr


def _load_core(spec, path, arrays):
    """A core from its spec, every field checked against the arrays present
    before anything is built; its arrays are under `path` (a graph's core
    specs carry their own path)."""
    _need(isinstance(spec, dict) and isinstance(spec.get("meta"), dict) and isinstance(spec.get("arrays"), list),
          "layer: malformed quantized layer description")
    kind, meta = spec.get("core"), spec["meta"]
    if path is None:
        path = spec.get("path")
    _need(isinstance(path, str), "layer: malformed quantized layer description")
    what = f"layer {path!r}"
    _need(all(isinstance(k, str) for k in spec["arrays"]), f"{what}: malformed array list")
    a = {k: arrays[f"{path}/{k}"] for k in spec["arrays"] if f"{path}/{k}" in arrays}
    relu = meta.get("relu")
    _need(isinstance(relu, bool), f"{what}: relu must be a bool")
    if kind in ("static_int8", "dynamic_int8"):
        bits = _int(meta.get("bits"), f"{what}: bits", 2, 8)
        w_scale = a.get("w_scale")
        _need(w_scale is not None and w_scale.ndim == 1, f"{what}: w_scale (1-D) is missing")
        n = w_scale.shape[0]
        k = _int(meta.get("k"), f"{what}: k", 0)
        if "weight_q4" in a:
            _need(bits <= 4, f"{what}: packed 4-bit weights for {bits}-bit layer")
            _arr(a, "weight_q4", np.uint8, (n, (k + 1) // 2), what)
        else:
            _arr(a, "weight_q", np.int8, (n, k), what)
        _arr(a, "w_scale", np.float32, (n,), what)
        bias = _arr(a, "bias", np.float32, (n,), what) if "bias" in a else None
        weight_q = int_weight_from_stored(a, k)
        if kind == "dynamic_int8":
            return DynamicInt8Core(weight_q, w_scale, bias, relu, bits)
        x_scale, x_range = meta.get("x_scale"), meta.get("x_range")
        _need(isinstance(x_scale, float) and np.isfinite(x_scale) and x_scale > 0, f"{what}: x_scale must be > 0")
        _need(isinstance(x_range, list) and len(x_range) == 2, f"{what}: x_range must be [qmin, qmax]")
        lo, hi = (_int(v, f"{what}: x_range", -128, 255) for v in x_range)
        zp = _int(meta.get("x_zero_point"), f"{what}: x_zero_point", lo, hi)
        return StaticInt8Core(weight_q, w_scale, bias, x_scale, zp, relu, bits, (lo, hi))
    if kind == "weight_only":
        n, k = _int(meta.get("n"), f"{what}: n"), _int(meta.get("k"), f"{what}: k")
        bits = _int(meta.get("bits"), f"{what}: bits", 2, 8)
        group = meta.get("group_size")
        _need(group is None or (isinstance(group, int) and group > 0), f"{what}: group_size must be None or > 0")
        stored = _arr(a, "stored", np.uint8 if bits <= 4 else np.int8, (n, (k + 1) // 2 if bits <= 4 else k), what)
        scale_shape = (n,) if group is None else (n, -(-k // group))
        scales = _arr(a, "scales", np.float32, scale_shape, what)
        bias = _arr(a, "bias", np.float32, (n,), what) if "bias" in a else None
        core = WeightOnlyCore.__new__(WeightOnlyCore)  # the checked arrays as they are: nothing to allocate
        core.n, core.k, core.bits, core.group_size = n, k, bits, group
        core.stored, core.scales, core.bias, core.relu = stored, scales, bias, relu
        return core
    if kind == "fp16":
        w = a.get("weight_half")
        _need(w is not None and w.dtype == np.float16 and w.ndim == 2, f"{what}: weight_half (float16, 2-D) missing")
        bias = _arr(a, "bias", np.float16, (w.shape[0],), what) if "bias" in a else None
        core = FP16Core.__new__(FP16Core)
        core.weight_half, core.bias, core.relu = w, bias, relu
        return core
    raise _Bad(f"{what}: unknown quantized layer kind {kind!r}")


def _npz_path(path) -> str:
    """The suffix rule of `save` and `load`: ".npz" is added unless the path ends with it."""
    path = os.fspath(path)
    return path if path.endswith(".npz") else path + ".npz"


def save(model: GraphModule, path) -> None:
    """Saves a GraphModule (a quantized, imported or converted graph; a qk.nn
    model is saved as its traced graph) as `path` (".npz" added unless given).
    The write is atomic: a temporary file in the same folder, renamed into
    place, so a crash never destroys the previous file."""
    from ..quantization.graph import as_graph_module

    arrays: dict[str, np.ndarray] = {}
    spec = _encode_graph(as_graph_module(model), arrays)
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


def _check_members(path) -> None:
    """Refuses, before NumPy allocates anything, an archive member whose .npy
    header declares more bytes than the member can hold (a small file that
    claims gigabytes), or a compressed member larger than any real save."""
    import zipfile

    disk = os.path.getsize(path)
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            stored = info.compress_type == zipfile.ZIP_STORED
            if info.file_size > (disk if stored else 1100 * max(info.compress_size, 1)):
                raise ValueError(f"path: {path!s}: member {info.filename!r} claims {info.file_size} bytes")
            with z.open(info) as member:
                version = np.lib.format.read_magic(member)
                shape, _, dtype = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)(member)
                if dtype.hasobject:
                    raise ValueError(f"path: {path!s}: member {info.filename!r} holds Python objects")
                if int(np.prod(shape, dtype=np.float64)) * dtype.itemsize > info.file_size:
                    raise ValueError(f"path: {path!s}: member {info.filename!r} declares shape {shape} of "
                                     f"{dtype}, more than its {info.file_size} bytes")


def load(path) -> GraphModule:
    """Rebuilds a GraphModule saved by `save`; no
    FP32 model is needed. `path` follows save's suffix rule. The file is
    untrusted: no pickle, every member's size checked before it is read,
    every field of the description checked against the arrays present; any
    malformed file is a ValueError."""
    if not os.path.exists(os.fspath(path)) and os.path.exists(_npz_path(path)):
        path = _npz_path(path)
    import zipfile

    try:
        _check_members(path)
        f = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"path: {path!s} is not a .npz file saved by qk.ptq.save ({e})") from e
    with f:
        if "__qk_model__" not in f.files:
            raise ValueError(f"path: {path!s} is not a quantized model saved by qk.ptq.save "
                             "(for a state dict, use Module.load)")
        try:
            header = json.loads(bytes(f["__qk_model__"]).decode())
        except (ValueError, UnicodeDecodeError, OSError, EOFError, zipfile.BadZipFile) as e:
            raise ValueError(f"path: {path!s} has a damaged model description ({e})") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            got = header.get("format") if isinstance(header, dict) else header
            raise ValueError(f"path: unsupported format {got!r}, expected {FORMAT!r}")
        try:
            arrays = {k: f[k] for k in f.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise ValueError(f"path: {path!s} is damaged ({type(e).__name__}: {e})") from None
    try:
        return _decode(header["model"], arrays).eval()
    except _Bad as e:
        raise ValueError(f"path: {path!s}: {e}") from None
    except (KeyError, TypeError, IndexError, AttributeError, ValueError, OverflowError) as e:
        raise ValueError(f"path: {path!s} is damaged or incomplete ({type(e).__name__}: {e})") from None
