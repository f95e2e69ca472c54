"""qk Graph -> ONNX, with quantized layers as the patterns ONNX Runtime runs
on integer kernels.

- static INT8 layers: QuantizeLinear/DequantizeLinear around the uint8
  activation, the weight stored as int8 with a per-channel DequantizeLinear
  (axis 0 for Conv [O, I, kh, kw], axis 1 for MatMul [K, N]) and an int32 bias
  with scale x_scale * w_scale (the QDQ format);
- dynamic INT8 layers: DynamicQuantizeLinear + MatMulInteger / ConvInteger,
  then the float rescale and bias;
- float nodes as they are (qk's fused Linear as MatMul + Add).
The opset is the model's, raised to 13 (per-channel DequantizeLinear) and to
what the fused ops need (LayerNormalization 17, Gelu 20).
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from ..graph import GraphModule, Node
from ..ptq.layers import DynamicInt8Core, FP16Core, WeightOnlyCore
from .importer import _onnx


class _Writer:
    def __init__(self, g, opset):
        self.onnx = _onnx()
        self.g, self.opset = g, opset
        self.nodes, self.inits, self.used = [], {}, set()

    def name(self, base):
        base = base.replace(" ", "_")
        name, i = base, 1
        taken = set(self.g.values) | set(self.inits) | self.used
        while name in taken:
            name, i = f"{base}_{i}", i + 1
        self.used.add(name)
        return name

    def const(self, base, arr):
        name = self.name(base)
        self.inits[name] = np.asarray(arr)
        return name

    def node(self, op, inputs, outputs, name="", **attrs):
        h = self.onnx.helper
        clean = {}
        for k, v in attrs.items():
            if isinstance(v, np.ndarray):
                v = self.onnx.numpy_helper.from_array(v)
            elif isinstance(v, tuple):
                v = list(v)
            clean[k] = v
        self.nodes.append(h.make_node(op, list(inputs), list(outputs), name=name or self.name(op), **clean))

    # --- quantized layers -----------------------------------------------------------------------

    def qdq(self, x, scale, zero_point, base, out=None):
        """x through QuantizeLinear / DequantizeLinear on one grid (zero_point's dtype is the integer type)."""
        s, zp = self.const(f"{base}_scale", np.float32(scale)), self.const(f"{base}_zero_point", zero_point)
        q, dq = self.name(f"{base}_q"), out or self.name(f"{base}_dq")
        self.node("QuantizeLinear", [x, s, zp], [q])
        self.node("DequantizeLinear", [q, s, zp], [dq])
        return dq

    def qdq_input(self, x, core, base):
        return self.qdq(x, core.x_scale, np.uint8(core.x_zero_point), f"{base}.x")

    def int_const(self, base, q, bits):
        """An integer initializer: int8, or at bits <= 4 ONNX's INT4 (two values per byte, opset 21)."""
        if bits > 4:
            return self.const(base, np.asarray(q, np.int8))
        name = self.name(base)
        q = np.asarray(q, np.int8)
        self.inits[name] = self.onnx.helper.make_tensor(name, self.onnx.TensorProto.INT4, q.shape,
                                                        q.ravel().tolist())
        return name

    def dq_weight(self, wq, w_scale, axis, base, bits=8):
        w = self.int_const(f"{base}.weight_q", wq, bits)
        s = self.const(f"{base}.w_scale", np.asarray(w_scale, np.float32))
        out = self.name(f"{base}.weight")
        zp = self.int_const(f"{base}.w_zero_point", np.zeros(len(w_scale), np.int8), bits)
        self.node("DequantizeLinear", [w, s, zp], [out], axis=axis)
        return out

    def dq_bias(self, bias, scale, base):
        """int32 bias on the grid x_scale * w_scale: exact for the integer kernels."""
        if bias is None:
            return None
        q = np.clip(np.rint(bias.astype(np.float64) / scale), -2 ** 31, 2 ** 31 - 1).astype(np.int32)
        b = self.const(f"{base}.bias_q", q)
        s = self.const(f"{base}.bias_scale", scale.astype(np.float32))
        out = self.name(f"{base}.bias")
        self.node("DequantizeLinear", [b, s, self.const(f"{base}.bias_zero_point", np.zeros(len(q), np.int32))],
                  [out], axis=0)
        return out

    def dynamic_rescale(self, acc, core, x_scale, shape, base, out):
        f = self.name(f"{base}.acc_f")
        self.node("Cast", [acc], [f], to=self.onnx.TensorProto.FLOAT)
        scaled = self.name(f"{base}.scaled")
        self.node("Mul", [f, x_scale], [scaled])
        y = self.name(f"{base}.y")
        self.node("Mul", [scaled, self.const(f"{base}.w_scale", core.w_scale.reshape(shape))], [y])
        return self.finish(y, core.bias, shape, core.relu, base, out)

    def finish(self, y, bias, shape, relu, base, out):
        if bias is not None:
            yb = out if not relu else self.name(f"{base}.biased")
            self.node("Add", [y, self.const(f"{base}.bias", bias.reshape(shape))], [yb])
            y = yb
        if relu:
            self.node("Relu", [y], [out])
        elif y != out:
            self.node("Identity", [y], [out])

    def float_weight(self, core, base, conv_shape=None):
        """A weight-only or FP16 core's weight as the graph reads it: MatMul's
        (K, N), or the Conv layout `conv_shape`; int weights through
        DequantizeLinear (per channel, or blocked per group at opset 21), FP16 through Cast."""
        if isinstance(core, FP16Core):
            w16 = core.weight_half.reshape(conv_shape) if conv_shape else core.weight_half.T.copy()
            out = self.name(f"{base}.weight")
            self.node("Cast", [self.const(f"{base}.weight_fp16", w16)], [out], to=self.onnx.TensorProto.FLOAT)
            bias = None
            if core.bias is not None:
                bias = self.name(f"{base}.bias")
                self.node("Cast", [self.const(f"{base}.bias_fp16", core.bias)], [bias], to=self.onnx.TensorProto.FLOAT)
            return out, bias
        q = core.weight_q()
        if core.group_size is None:
            w = self.dq_weight(q.reshape(conv_shape) if conv_shape else q.T.copy(), core.scales, 0 if conv_shape else 1,
                               base, core.bits)
        else:
            if conv_shape:
                raise ValueError(f"node {base!r}: grouped weight-only convolutions cannot be exported yet")
            if self.opset < 21:
                raise ValueError(f"node {base!r}: grouped weight-only layers need opset 21 (blocked DequantizeLinear)")
            w = self.name(f"{base}.weight")
            scale = self.const(f"{base}.w_scale", core.scales.T.copy())  # (groups, N)
            zp = self.int_const(f"{base}.w_zero_point", np.zeros(core.scales.T.shape, np.int8), core.bits)
            self.node("DequantizeLinear", [self.int_const(f"{base}.weight_q", q.T.copy(), core.bits), scale, zp], [w],
                      axis=0, block_size=core.group_size)
        bias = None if core.bias is None else self.const(f"{base}.bias", core.bias)
        return w, bias

    def quantized_linear(self, n):
        core, base, x, out = n.attrs["core"], n.name, n.inputs[0], n.outputs[0]
        if isinstance(core, (WeightOnlyCore, FP16Core)):
            w, bias = self.float_weight(core, base)
            mm = self.name(f"{base}.matmul")
            self.node("MatMul", [x, w], [mm])
            return self.add_bias_relu(mm, bias, core.relu, base, out)
        if isinstance(core, DynamicInt8Core):
            xq, xs, xzp = (self.name(f"{base}.x_{k}") for k in ("q", "scale", "zero_point"))
            self.node("DynamicQuantizeLinear", [x], [xq, xs, xzp])
            acc = self.name(f"{base}.acc")
            w = self.const(f"{base}.weight_q", core.weight_q.T.copy())
            self.node("MatMulInteger", [xq, w, xzp], [acc])
            return self.dynamic_rescale(acc, core, xs, (-1,), base, out)
        xdq = self.qdq_input(x, core, base)
        w = self.dq_weight(core.weight_q.T.copy(), core.w_scale, 1, base)
        mm = self.name(f"{base}.matmul")
        self.node("MatMul", [xdq, w], [mm])
        b = self.dq_bias(core.bias, np.float32(core.x_scale) * core.w_scale.astype(np.float64), base)
        self.add_bias_relu(mm, b, core.relu, base, out)

    def add_bias_relu(self, y, bias, relu, base, out):
        """y (+ the graph value `bias`) (then ReLU) into `out`."""
        if bias is None:
            return self.finish(y, None, None, relu, base, out)
        biased = out if not relu else self.name(f"{base}.biased")
        self.node("Add", [y, bias], [biased])
        if relu:
            self.node("Relu", [biased], [out])

    def quantized_conv(self, n):
        a, base, x, out = n.attrs, n.name, n.inputs[0], n.outputs[0]
        kh, kw = a["kernel"]
        cores = a["cores"] or [a["depthwise"].core]
        conv_attrs = {k: a[k] for k in ("strides", "dilations", "pads", "auto_pad") if k in a}
        conv_attrs.update(group=a["group"], kernel_shape=[kh, kw])
        core = cores[0]
        if isinstance(core, (WeightOnlyCore, FP16Core)):
            o = sum(c.weight_half.shape[0] if isinstance(c, FP16Core) else c.n for c in cores)
            w, bias = self.float_weight(_merged_float_core(cores), base, (o, -1, kh, kw))
            y = out if not core.relu else self.name(f"{base}.conv")
            self.node("Conv", [x, w] + ([bias] if bias else []), [y], **conv_attrs)
            if core.relu:
                self.node("Relu", [y], [out])
            return
        wq = np.concatenate([c.weight_q for c in cores])
        o = wq.shape[0]
        wq = wq.reshape(o, -1, kh, kw)
        w_scale = np.concatenate([c.w_scale for c in cores])
        bias = None if cores[0].bias is None else np.concatenate([c.bias for c in cores])
        if isinstance(core, DynamicInt8Core):
            xq, xs, xzp = (self.name(f"{base}.x_{k}") for k in ("q", "scale", "zero_point"))
            self.node("DynamicQuantizeLinear", [x], [xq, xs, xzp])
            acc = self.name(f"{base}.acc")
            self.node("ConvInteger", [xq, self.const(f"{base}.weight_q", wq.astype(np.int8)), xzp], [acc],
                      **conv_attrs)
            merged = DynamicInt8Core.__new__(DynamicInt8Core)
            merged.w_scale, merged.bias, merged.relu = w_scale, bias, core.relu
            return self.dynamic_rescale(acc, merged, xs, (1, -1, 1, 1), base, out)
        xdq = self.qdq_input(x, core, base)
        w = self.dq_weight(wq, w_scale, 0, base)
        b = self.dq_bias(bias, np.float32(core.x_scale) * w_scale.astype(np.float64), base)
        y = out if not core.relu else self.name(f"{base}.conv")
        self.node("Conv", [xdq, w] + ([b] if b else []), [y], **conv_attrs)
        if core.relu:
            self.node("Relu", [y], [out])

    def quantized_conv_transpose(self, n):
        """QDQ around ConvTranspose: the weight (C_in, C_out, KH, KW) per output channel (axis 1), int32 bias."""
        from ..quantization.graph import _CONV_TRANSPOSE_ATTRS, conv_transpose_weight

        a, core, base = n.attrs, n.attrs["core"], n.name
        kh, kw = a["weight_shape"][2:]
        wq = conv_transpose_weight(a).copy()
        xdq = self.qdq_input(n.inputs[0], core, base)
        w = self.dq_weight(wq, core.w_scale, 1, base)
        b = self.dq_bias(core.bias, np.float32(core.x_scale) * core.w_scale.astype(np.float64), base)
        attrs = {k: v for k, v in a.items() if k in _CONV_TRANSPOSE_ATTRS}
        y = n.outputs[0] if not core.relu else self.name(f"{base}.conv_transpose")
        self.node("ConvTranspose", [xdq, w] + ([b] if b else []), [y], kernel_shape=[kh, kw], **attrs)
        if core.relu:
            self.node("Relu", [y], n.outputs)

    def quantized_matmul(self, n):
        """Both operands through QuantizeLinear/DequantizeLinear: uint8 left, int8 symmetric right."""
        (sa, za), sb = n.attrs["a_qparams"], n.attrs["b_scale"]
        dq = [self.qdq(n.inputs[0], sa, np.uint8(za), f"{n.name}.a"), self.qdq(n.inputs[1], sb, np.int8(0), f"{n.name}.b")]
        self.node("MatMul", dq, n.outputs, name=n.name)

    def quantized_add(self, n):
        """Both operands and the sum through QuantizeLinear/DequantizeLinear (uint8), the pattern ORT runs as QLinearAdd."""
        a = n.attrs
        dq = [self.qdq(x, a[key][0], np.uint8(a[key][1]), f"{n.name}.{tag}")
              for x, key, tag in ((n.inputs[0], "a_qparams", "a"), (n.inputs[1], "b_qparams", "b"))]
        y = self.name(f"{n.name}.sum")
        self.node("Add", dq, [y], name=n.name)
        if a["relu"]:
            r = self.name(f"{n.name}.relu")
            self.node("Relu", [y], [r])
            y = r
        self.qdq(y, a["out_qparams"][0], np.uint8(a["out_qparams"][1]), f"{n.name}.out", out=n.outputs[0])

    def quantized_global_pool(self, n):
        """The float pool (GlobalAveragePool, or the ReduceMean it was) of its input on its grid."""
        scale, zp = n.attrs["qparams"]
        x = self.qdq(n.inputs[0], scale, np.uint8(zp), f"{n.name}.x")
        if n.attrs.get("source_op") == "ReduceMean":
            kept = {k: n.attrs[k] for k in ("keepdims", "axes") if k in n.attrs}
            self.float_node(Node("ReduceMean", [x, *n.inputs[1:]], list(n.outputs), kept, n.name))
        else:
            self.node("GlobalAveragePool", [x], n.outputs, name=n.name)

    def quantized_gather(self, n):
        a = n.attrs
        table = self.dq_weight(a["table_q"], a["scale"], 0, n.name)
        self.node("Gather", [table, n.inputs[0]], n.outputs, axis=0)

    # --- float nodes ----------------------------------------------------------------------------------

    def float_node(self, n):
        attrs = {k: v for k, v in n.attrs.items() if not k.startswith("_")}
        op, inputs = n.op_type, list(n.inputs)
        if op == "Linear":
            mm = n.outputs[0] if len(inputs) < 3 or not inputs[2] else self.name(f"{n.name}.matmul")
            self.node("MatMul", inputs[:2], [mm], name=n.name)
            if mm != n.outputs[0]:
                self.node("Add", [mm, inputs[2]], n.outputs)
            return
        if op == "MaskedSoftmax":  # qk's fused Add -> Softmax [-> Where(IsNaN, 0)]: the ops it stands for
            total, soft = self.name(f"{n.name}.sum"), self.name(f"{n.name}.softmax")
            self.node("Add", inputs, [total])
            if not attrs.get("nan_to_zero"):
                self.node("Softmax", [total], n.outputs, name=n.name, axis=-1)
                return
            self.node("Softmax", [total], [soft], name=n.name, axis=-1)
            isnan = self.name(f"{n.name}.isnan")
            self.node("IsNaN", [soft], [isnan])
            zero = self.const(f"{n.name}.zero", np.zeros((), self.g.value(n.outputs[0]).dtype or np.float32))
            self.node("Where", [isnan, zero, soft], n.outputs)
            return
        if op == "Cast":
            attrs["to"] = self.onnx.helper.np_dtype_to_tensor_dtype(np.dtype(attrs["to"]))
        if op in ("ReduceMean", "ReduceMax", "ReduceMin") and self.opset < 18 and len(inputs) > 1 and inputs[1]:
            attrs["axes"] = [int(v) for v in self.g.constants[inputs[1]].ravel()]
            inputs = inputs[:1]
        if op in ("Softmax", "LogSoftmax") and attrs.pop("coerce_2d", 0):
            flat, soft, shape = (self.name(f"{n.name}.{k}") for k in ("flat", "soft", "shape"))
            self.node("Flatten", inputs[:1], [flat], axis=attrs.get("axis", 1))
            self.node(op, [flat], [soft], axis=-1)
            self.node("Shape", inputs[:1], [shape])
            self.node("Reshape", [soft, shape], n.outputs, name=n.name)
            return
        while inputs and not inputs[-1]:
            inputs.pop()
        self.node(op, inputs, n.outputs, name=n.name, **attrs)


def _merged_float_core(cores):
    """The per-group cores of a grouped convolution as one core over all output channels."""
    if len(cores) == 1:
        return cores[0]
    first = cores[0]
    if isinstance(first, FP16Core):
        merged = FP16Core.__new__(FP16Core)
        merged.weight_half = np.concatenate([c.weight_half for c in cores])
        merged.bias = None if first.bias is None else np.concatenate([c.bias for c in cores])
        merged.relu = first.relu
        return merged
    bias = None if first.bias is None else np.concatenate([c.bias for c in cores])
    return WeightOnlyCore(np.concatenate([c.weight_q() for c in cores]), np.concatenate([c.scales for c in cores]),
                          bias, first.relu, first.bits, first.group_size)


def _opset(g) -> int:
    ops = set(g.op_histogram())
    need = 13
    from ..quantization.graph import node_cores

    cores = [c for n in g.nodes for c in node_cores(n) if isinstance(c, WeightOnlyCore)]
    if any(c.group_size or c.bits <= 4 for c in cores):
        need = 21  # blocked DequantizeLinear, INT4 weights
    if "LayerNormalization" in ops:
        need = max(need, 17)
    if "Gelu" in ops:
        need = max(need, 20)
    return max(int(g.metadata.get("opset", 13)), need)


def to_onnx(model: GraphModule):
    """The onnx.ModelProto of a (quantized or float) GraphModule."""
    onnx = _onnx()
    if not isinstance(model, GraphModule):
        raise TypeError(f"model: expected a qk.graph.GraphModule, got {type(model).__name__}")
    from ..quantization.graph import without_chains

    g = without_chains(model).infer_shapes()  # every value float, as the file has them
    w = _Writer(g, _opset(g))
    for n in g.nodes:
        if n.op_type == "QuantizedLinear":
            w.quantized_linear(n)
        elif n.op_type == "QuantizedConv":
            w.quantized_conv(n)
        elif n.op_type == "QuantizedConvTranspose":
            w.quantized_conv_transpose(n)
        elif n.op_type == "QuantizedGather":
            w.quantized_gather(n)
        elif n.op_type == "QuantizedMatMul":
            w.quantized_matmul(n)
        elif n.op_type == "QuantizedAdd":
            w.quantized_add(n)
        elif n.op_type == "QuantizedGlobalAveragePool":
            w.quantized_global_pool(n)
        else:
            w.float_node(n)
    read = {i for node in w.nodes for i in node.input}
    inits = dict(w.inits)
    inits.update({k: v for k, v in g.constants.items() if k in read and k not in inits})
    h = onnx.helper

    def info(name, is_input):
        """Inputs keep their declared dimensions; outputs get the inferred rank, every dimension symbolic."""
        v = g.values[name]
        dtype = h.np_dtype_to_tensor_dtype(np.dtype(v.dtype or np.float32))
        shape = [d if d is not None and is_input else f"{name}_dim{i}" for i, d in enumerate(v.shape or ())]
        return h.make_tensor_value_info(name, dtype, shape)

    graph = h.make_graph(w.nodes, g.metadata.get("graph_name") or "qk", [info(i, True) for i in g.inputs],
                         [info(o, False) for o in g.outputs],
                         initializer=[v if isinstance(v, onnx.TensorProto) else onnx.numpy_helper.from_array(np.asarray(v), k)
                                      for k, v in inits.items()])
    proto = h.make_model(graph, opset_imports=[h.make_opsetid("", w.opset)], producer_name="qk")
    proto.ir_version = min(proto.ir_version, 10)
    props = dict(g.metadata.get("metadata_props") or {})
    if props:
        h.set_model_props(proto, props)
    return proto


def export(model: GraphModule, path) -> None:
    """Writes `model` to `path` as ONNX (checked with onnx.checker, full_check),
    atomically: a crash never leaves a half-written file in place."""
    onnx = _onnx()
    proto = to_onnx(model)
    onnx.checker.check_model(proto, full_check=True)
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".onnx.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(proto.SerializeToString())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
