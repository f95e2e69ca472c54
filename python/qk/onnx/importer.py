"""ONNX -> qk Graph.

The `onnx` package parses the file; everything after that is qk's: weights
from initializers and Constant nodes, attribute upgrades to the newest op
semantics (axes as inputs, Softmax's old 2-D coercion), an attribute check
per node against what qk implements, then the import-time rewrites of
`qk.graph.simplify` (constant folding, BatchNorm folding, fusions).
"""

from __future__ import annotations

import os

import numpy as np

from ..graph import Graph, GraphModule, Node, Value
from ..graph import ops as graph_ops
from ..graph.simplify import simplify

MIN_OPSET = 11
DEFAULT_DOMAINS = ("", "ai.onnx")


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError("qk.onnx needs the onnx package: pip install 'qk[onnx]'") from None
    return onnx


def _parse(model):
    onnx = _onnx()
    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, (bytes, bytearray)):
        try:
            return onnx.load_model_from_string(bytes(model))
        except Exception as e:
            raise ValueError(f"model: the bytes are not an ONNX model ({type(e).__name__}: {e})") from None
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model: expected a path, bytes or an onnx.ModelProto, got {type(model).__name__}")
    path = os.fspath(model)
    if not os.path.isfile(path):
        raise ValueError(f"model: no such file {path!r}")
    try:
        proto = onnx.load(path)
    except Exception as e:
        raise ValueError(f"model: {path!r} is not a readable ONNX model ({type(e).__name__}: {e})") from None
    return proto


def _np_dtype(elem_type: int, where: str):
    onnx = _onnx()
    try:
        dt = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except Exception:
        name = onnx.TensorProto.DataType.Name(elem_type)
        raise ValueError(f"{where}: element type {name} is not supported") from None
    if dt.kind not in "biuf" or dt.itemsize > 8:
        raise ValueError(f"{where}: element type {dt} is not supported")
    return dt


def _tensor(t, where: str) -> np.ndarray:
    onnx = _onnx()
    # 4-bit integers (quantized weights) are read into int8 / uint8: DequantizeLinear gives the same values
    widened = {onnx.TensorProto.INT4: np.int8, onnx.TensorProto.UINT4: np.uint8}.get(t.data_type)
    if widened is None:
        _np_dtype(t.data_type, where)
    try:
        arr = np.asarray(onnx.numpy_helper.to_array(t))
        return arr.astype(widened) if widened is not None else arr
    except Exception as e:
        raise ValueError(f"{where}: cannot read tensor {t.name!r} ({e})") from None


def _attr_value(a, where: str):
    onnx = _onnx()
    kind = a.type
    A = onnx.AttributeProto
    if kind in (A.GRAPH, A.GRAPHS):
        raise ValueError(f"{where}: attribute {a.name!r} is a subgraph; control flow (If, Loop, Scan) is not supported")
    if kind == A.TENSOR:
        return _tensor(a.t, where)
    if kind in (A.SPARSE_TENSOR, A.SPARSE_TENSORS, A.TENSORS, A.TYPE_PROTO, A.TYPE_PROTOS):
        raise ValueError(f"{where}: attribute {a.name!r} of type {A.AttributeType.Name(kind)} is not supported")
    v = onnx.helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, list):
        return [x.decode() if isinstance(x, bytes) else x for x in v]
    return v


def _value_info(vi, input_shapes: dict):
    t = vi.type
    if not t.HasField("tensor_type"):
        raise ValueError(f"input {vi.name!r}: only tensor inputs are supported")
    tt = t.tensor_type
    dtype = _np_dtype(tt.elem_type, f"input {vi.name!r}")
    shape = None
    if tt.HasField("shape"):
        shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)
    if vi.name in input_shapes:
        given = tuple(None if d is None or (isinstance(d, int) and d < 0) else int(d) for d in input_shapes[vi.name])
        if shape is not None and (len(given) != len(shape) or
                                  any(a is not None and b is not None and a != b for a, b in zip(shape, given))):
            raise ValueError(f"input_shapes[{vi.name!r}]: {given} does not fit the model's shape "
                             f"{tuple('?' if d is None else d for d in shape)}")
        shape = given
    return Value(vi.name, shape, dtype)


class _Importer:
    def __init__(self, proto, dtype):
        self.proto = proto
        self.cast_to = np.dtype(dtype) if dtype is not None else None
        if self.cast_to is not None and self.cast_to != np.float32:
            raise ValueError(f"dtype: only np.float32 is supported (to compute float64 models in float32), got {dtype}")
        self.opset = None
        for imp in proto.opset_import:
            if imp.domain in DEFAULT_DOMAINS:
                self.opset = imp.version
        if self.opset is None:
            raise ValueError("model: it imports no default-domain (ai.onnx) opset")
        if self.opset < MIN_OPSET:
            raise ValueError(f"model: opset {self.opset} is older than the oldest qk reads ({MIN_OPSET}); "
                             "upgrade it with onnx.version_converter.convert_version(model, 13)")
        self.constants: dict = {}
        self.errors: list = []
        self.float64: list = []

    def array(self, arr: np.ndarray, name: str) -> np.ndarray:
        if arr.dtype == np.float64:
            if self.cast_to is None:
                self.float64.append(name)
            else:
                arr = arr.astype(np.float32)
        return arr

    def add_constant(self, arr, base: str) -> str:
        name, i = base, 1
        while name in self.constants:
            name, i = f"{base}_{i}", i + 1
        self.constants[name] = np.asarray(arr)
        return name

    def node(self, n):
        """The qk Node for ONNX node n (None for a Constant, which becomes a constant), or an error string."""
        onnx = _onnx()
        label = f"node {n.name or '(unnamed)'!r} ({n.op_type})"
        if n.domain not in DEFAULT_DOMAINS:
            return f"{label}: domain {n.domain!r} is not supported (qk reads the default ONNX domain only)"
        try:
            attrs = {a.name: _attr_value(a, label) for a in n.attribute}
        except ValueError as e:
            return str(e)
        if n.op_type == "Constant":
            return self.constant_node(n, attrs, label)
        op = graph_ops.OPS.get(n.op_type)
        if op is None:
            return f"{label}: qk does not implement op {n.op_type!r}"
        try:
            since = onnx.defs.get_schema(n.op_type, self.opset, "").since_version
        except Exception:
            return f"{label}: op {n.op_type!r} has no definition at opset {self.opset}"
        if since > op.max_version:
            return f"{label}: version {since} of {n.op_type} (opset {self.opset}) is newer than qk implements " \
                   f"({op.max_version})"
        inputs, outputs = list(n.input), list(n.output)
        try:
            inputs = self.upgrade(n.op_type, since, attrs, inputs, outputs, n.name or n.op_type)
            if op.check is not None:
                op.check(attrs, len(inputs), len([o for o in outputs if o]))
        except ValueError as e:
            return f"{label}: {e}"
        while len(outputs) > 1 and not outputs[-1]:
            outputs.pop()
        if len(outputs) > op.num_outputs:
            return f"{label}: {len(outputs)} outputs, qk computes {op.num_outputs}"
        return Node(n.op_type, inputs, outputs, attrs, n.name)

    def constant_node(self, n, attrs, label):
        if len(attrs) != 1:
            return f"{label}: expected exactly one value attribute, got {sorted(attrs)}"
        (key, v), = attrs.items()
        if key == "value":
            arr = v
        elif key in ("value_float", "value_floats"):
            arr = np.asarray(v, np.float32)
        elif key in ("value_int", "value_ints"):
            arr = np.asarray(v, np.int64)
        else:
            return f"{label}: attribute {key!r} is not supported"
        self.constants[n.output[0]] = self.array(np.asarray(arr), n.output[0])
        return None

    def upgrade(self, op_type, since, attrs, inputs, outputs, name):
        """Older attribute forms -> the newest op semantics qk's ops implement."""
        def move(attr, position, dtype=np.int64):
            if attr in attrs:
                while len(inputs) < position:
                    inputs.append("")
                cname = self.add_constant(np.asarray(attrs.pop(attr), dtype), f"{name}.{attr}")
                if len(inputs) == position:
                    inputs.append(cname)
                else:
                    inputs[position] = cname
        if op_type in ("Softmax", "LogSoftmax") and since < 13:
            attrs.setdefault("axis", 1)
            attrs["coerce_2d"] = 1
        if op_type in ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "Squeeze", "Unsqueeze"):
            move("axes", 1)
        if op_type == "Split":
            move("split", 1)
            attrs["_num_outputs"] = len(outputs)
        if op_type == "Cast":
            attrs["to"] = _np_dtype(attrs["to"], "attribute to")
        if attrs.get("output_dtype"):  # QuantizeLinear / DequantizeLinear (opset 23)
            attrs["output_dtype"] = _np_dtype(attrs["output_dtype"], "attribute output_dtype")
        return inputs

    def graph(self, input_shapes: dict) -> Graph:
        g = self.proto.graph
        for t in g.initializer:
            self.constants[t.name] = self.array(_tensor(t, f"initializer {t.name!r}"), t.name)
        if len(g.sparse_initializer):
            raise ValueError("model: sparse initializers are not supported")
        unknown = [k for k in input_shapes if k not in {vi.name for vi in g.input}]
        if unknown:
            raise ValueError(f"input_shapes: the model has no inputs {unknown}")
        values = [_value_info(vi, input_shapes) for vi in g.input if vi.name not in self.constants]
        for v in values:
            if v.dtype == np.float64:
                if self.cast_to is None:
                    self.float64.append(v.name)
                else:
                    v.dtype = np.dtype(np.float32)
        nodes = []
        for n in g.node:
            got = self.node(n)
            if isinstance(got, str):
                self.errors.append(got)
            elif got is not None:
                nodes.append(got)
        if self.errors:
            more = f" (and {len(self.errors) - 10} more)" if len(self.errors) > 10 else ""
            raise ValueError("model: qk cannot import this graph:\n  " + "\n  ".join(self.errors[:10]) + more)
        if self.float64:
            raise ValueError(f"model: float64 values {self.float64[:5]}: pass dtype=np.float32 to compute the "
                             "model in float32")
        meta = {
            "producer_name": self.proto.producer_name, "producer_version": self.proto.producer_version,
            "opset": self.opset, "ir_version": self.proto.ir_version, "graph_name": g.name,
            "domain": self.proto.domain, "model_version": self.proto.model_version,
            "doc_string": self.proto.doc_string,
            "metadata_props": {p.key: p.value for p in self.proto.metadata_props},
        }
        outputs = [o.name for o in g.output]
        return Graph(nodes, [v.name for v in values], outputs, self.constants, values, meta)


def to_graph(model, *, input_shapes=None, dtype=None, rewrite: bool = True) -> Graph:
    """The qk Graph of an ONNX model (see `load`); `rewrite=False` skips the
    import-time folding and fusions (the graph then mirrors the file)."""
    proto = _parse(model)
    if not proto.HasField("graph") or (not proto.graph.node and not proto.graph.output):
        raise ValueError("model: the file holds no graph (is it an ONNX model?)")
    if input_shapes is not None and not isinstance(input_shapes, dict):
        raise TypeError(f"input_shapes: expected a dict of input name -> shape, got {type(input_shapes).__name__}")
    g = _Importer(proto, dtype).graph(dict(input_shapes or {}))
    if rewrite:
        g.metadata["rewrites"] = simplify(g)
    return g


def load(model, *, input_shapes=None, dtype=None) -> GraphModule:
    """Imports an ONNX model (a path, bytes or `onnx.ModelProto`) as a GraphModule.

    `input_shapes` ({input name: shape}) fixes symbolic dimensions (None or -1
    keeps one symbolic); any batch size or sequence length still runs, since
    shape glue is folded per input signature. Models with float64 values are
    refused unless `dtype=np.float32` asks to compute them in float32.
    Anything qk cannot import exactly (an unknown op, an unsupported
    attribute value, another domain's node) is a ValueError naming the nodes.
    """
    return GraphModule(to_graph(model, input_shapes=input_shapes, dtype=dtype))
