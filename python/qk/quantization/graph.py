"""Post-training quantization of any Graph: observers on values, layers found
by pattern, integer layers on qk's kernels.

Quantized by default: Conv, Gemm, MatMul and Linear whose weight is a
constant (static INT8: uint8 affine activations from calibration, int8
symmetric per-channel weights; or dynamic INT8), with the bias and a ReLU
that is the layer's only reader fused into the kernel's epilogue;
ConvTranspose (group 1, static INT8 only: exact integer sums in NumPy); and
embedding tables (a Gather from a constant float table) stored as int8 with
a scale per row. Every
other op (Add, Softmax, LayerNorm, pooling, activation x activation MatMul,
the attention-mask path) stays float. Observers sit on values (graph edges):
two layers reading the same activation share one observer. A value whose
range is dominated by huge constants (|x| >= HUGE or non-finite, as additive
attention masks of -1e4 .. -3.4e38) is never quantized: its layer stays
float and a warning names it.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np

from .. import _conv_ops, _gemm_ops, _qk, _quant_ops
from ..graph import Graph, GraphModule, Node
from ..graph import ops as graph_ops
from ..graph.ops_nn import _out_size, _pool_geometry, _spatial_attrs, _taps
from ..graph.simplify import scalar
from ..nn.tensor import Tensor, no_grad
from ..ptq.layers import DynamicInt8Core, StaticInt8Core
from ..quant import INT8_STATIC, QConfig
from ..quant.observers import NotCalibratedError

HUGE = 1e4
LAYER_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "Linear")
TABLE_MIN = 1024  # elements: smaller constant tables (a Gather of shape data) stay as they are


def gather_table(g: Graph, node: Node):
    """The constant float table (rows, ...) an embedding-style Gather reads, or None."""
    if node.op_type != "Gather" or node.attrs.get("axis", 0) != 0:
        return None
    t = g.constants.get(node.inputs[0])
    return t if t is not None and t.dtype.kind == "f" and t.ndim >= 2 and t.size >= TABLE_MIN else None


def layer_weight(g: Graph, node: Node):
    """(weight (N, K) float32 with K in the input's channel order, bias (N,) or
    None) of a quantizable node, or None when the node is not a layer with
    constant weights qk can quantize."""
    if node.op_type not in LAYER_OPS or len(node.inputs) < 2:
        return None
    w = g.constants.get(node.inputs[1])
    b_name = node.inputs[2] if len(node.inputs) > 2 else ""
    b = g.constants.get(b_name) if b_name else None
    if w is None or w.dtype.kind != "f" or (b_name and b is None):
        return None
    if node.op_type == "Conv":
        if w.ndim != 4:
            return None
        wk = w.reshape(w.shape[0], -1)
    elif node.op_type == "ConvTranspose":  # weight (C_in, C_out, KH, KW): per output channel, rows in (c, kh, kw)
        if w.ndim != 4 or node.attrs.get("group", 1) != 1:
            return None
        wk = w.transpose(1, 0, 2, 3).reshape(w.shape[1], -1)
    elif node.op_type == "Gemm":
        if w.ndim != 2 or node.attrs.get("transA", 0):
            return None
        wk = (w if node.attrs.get("transB", 0) else w.T) * node.attrs.get("alpha", 1.0)
        if b is not None:
            if b.size not in (1, wk.shape[0]) or (b.ndim == 2 and b.shape[0] != 1):
                return None
            b = np.broadcast_to(b.reshape(-1), (wk.shape[0],)) * node.attrs.get("beta", 1.0)
    else:
        if w.ndim != 2:
            return None
        wk = w.T
    return np.ascontiguousarray(wk, np.float32), None if b is None else np.asarray(b, np.float32).reshape(-1)


def quantizable_nodes(model: GraphModule) -> list:
    """Names of the layer nodes graph PTQ quantizes by default (Conv/Gemm/MatMul/Linear with constant weights)."""
    g = model.graph
    return [n.name for n in g.nodes if layer_weight(g, n) is not None]


def compare_nodes(fp: GraphModule, qm: GraphModule, batches) -> list:
    """Per quantized node of `qm`: op, scheme, SQNR (dB) and cosine of its
    output against the same value in `fp` over `batches` (arrays or feed
    dicts). The quantized model's error up to that node counts (cumulative)."""
    qm = without_chains(qm)  # the values compared are float, as in fp
    nodes = [n for n in qm.graph.nodes
             if n.op_type in ("QuantizedLinear", "QuantizedConv", "QuantizedConvTranspose", "QuantizedGather",
                              "QuantizedMatMul", "QuantizedAdd")]
    names = [n.outputs[0] for n in nodes]
    acc = {name: [0.0, 0.0, 0.0, 0.0] for name in names}  # signal, noise, dot, |q|^2
    for b in batches:
        feeds = feeds_of(b, fp.input_names)
        ref, got = fp.run(feeds, names), qm.run(feeds, names)
        for name in names:
            r, q = ref[name].astype(np.float64).ravel(), got[name].astype(np.float64).ravel()
            a = acc[name]
            a[0] += r @ r
            a[1] += (r - q) @ (r - q)
            a[2] += r @ q
            a[3] += q @ q
    rows = []
    for n, name in zip(nodes, names):
        sig, noise, dot, qq = acc[name]
        rows.append({"layer": n.name, "op": n.attrs["source_op"] + ("+Relu" if n.attrs["relu"] else ""),
                     "scheme": n.attrs["scheme"], "sqnr_db": float(10 * np.log10(sig / noise)) if noise else np.inf,
                     "cosine": float(dot / np.sqrt(sig * qq)) if sig and qq else 1.0})
    return rows


def _conv_cores(attrs) -> list:
    """The cores of a QuantizedConv: one per group, or the depthwise layer's one."""
    depthwise = attrs.get("depthwise")
    return [depthwise.core] if depthwise is not None else list(attrs["cores"])


def node_cores(node: Node) -> list:
    """The cores of a quantized layer node (a QuantizedLinear's one, a QuantizedConv's), or []."""
    if "core" in node.attrs:
        return [node.attrs["core"]]
    return _conv_cores(node.attrs) if node.op_type == "QuantizedConv" else []


def graph_size(model: GraphModule) -> int:
    """Bytes of a graph's weights: its constants, plus what its quantized nodes store."""
    total = sum(np.asarray(v).nbytes for v in model.graph.constants.values())
    for n in model.graph.nodes:
        for core in node_cores(n):
            total += sum(v.nbytes for v in core.arrays().values() if v is not None)
        for key in ("table_q", "scale"):
            if key in n.attrs and n.op_type == "QuantizedGather":
                total += n.attrs[key].nbytes
    return total


def layer_input_rows(node: Node, x: np.ndarray) -> np.ndarray:
    """A layer's input as the rows its (N, K) weight multiplies: im2col patches
    in (channel, kh, kw) order for a Conv, the last axis for the others."""
    x = np.asarray(x, np.float32)
    if node.op_type != "Conv":
        return x.reshape(-1, x.shape[-1])
    kh, kw = node.attrs.get("kernel_shape") or x.shape[2:]
    strides, dil, pads = _spatial_attrs(node.attrs, x.shape[2:], (kh, kw))
    oh = _out_size(x.shape[2], kh, strides[0], dil[0], pads[0], pads[2])
    ow = _out_size(x.shape[3], kw, strides[1], dil[1], pads[1], pads[3])
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    cols = np.stack([v for _, _, v in _taps(xp, kh, kw, strides, dil, oh, ow)], axis=2)  # (N, C, K, OH, OW)
    return cols.transpose(0, 3, 4, 1, 2).reshape(-1, x.shape[1] * kh * kw)


def _activation_matmul(g: Graph, node: Node) -> bool:
    return node.op_type == "MatMul" and not any(i in g.constants for i in node.inputs[:2])


def _activation_add(g: Graph, node: Node) -> bool:
    return node.op_type == "Add" and len(node.inputs) == 2 and not any(i in g.constants for i in node.inputs)


def _spatial_mean(g: Graph, node: Node) -> bool:
    """A ReduceMean over H and W of an NCHW value (axes as an attribute or a
    constant input): a GlobalAveragePool, with keepdims 0 its (N, C) rows."""
    if node.op_type != "ReduceMean":
        return False
    axes = node.attrs.get("axes")
    if len(node.inputs) > 1 and node.inputs[1]:
        axes = g.constants.get(node.inputs[1])
    return axes is not None and sorted(int(a) % 4 for a in np.ravel(axes)) == [2, 3]


def _reduce_mean_attrs(node: Node) -> dict:
    """What a QuantizedGlobalAveragePool made from a ReduceMean keeps of it
    (its output shape, and what export writes back); nothing for a GlobalAveragePool."""
    if node.op_type != "ReduceMean":
        return {}
    kept = {"source_op": "ReduceMean", "keepdims": int(node.attrs.get("keepdims", 1))}
    if "axes" in node.attrs:
        kept["axes"] = [int(a) for a in np.ravel(node.attrs["axes"])]
    return kept


def _global_pool(g: Graph, node: Node) -> bool:
    return node.op_type == "GlobalAveragePool" or _spatial_mean(g, node)


def _check_uint8_config(node: Node, cfg) -> None:
    if not isinstance(cfg, QConfig) or cfg.mode != "static" or cfg.activation.bits != 8 or cfg.activation.signed:
        raise ValueError(f"layers[{node.name!r}]: a quantized {node.op_type} needs a static QConfig with uint8 "
                         f"activations (e.g. qk.quant.INT8_STATIC), got {cfg!r}")


def _observer_for(cfg: QConfig, signed: bool):
    """The activation observer of cfg, on uint8 (left operand) or int8 symmetric (right operand)."""
    from ..quant import QScheme

    factory = cfg.activation_observer
    if factory is None:
        from ..quant import MinMaxObserver as factory
    return factory(QScheme(8, signed=True, symmetric=True) if signed else cfg.activation)


def _relu_after(g: Graph, node: Node):
    nxt = g.only_consumer(node.outputs[0])
    return nxt if nxt is not None and nxt.op_type == "Relu" else None


class PreparedGraph(GraphModule):
    """A GraphModule whose runs feed the observers of the values its layers read."""

    def __init__(self, graph: Graph, plan: dict, observers: dict):
        super().__init__(graph)
        object.__setattr__(self, "quant_plan", plan)  # node name -> QConfig
        object.__setattr__(self, "observers", observers)  # value name -> observer
        object.__setattr__(self, "huge", {})  # value name -> largest |x| seen (or inf)
        object.__setattr__(self, "finite", set())  # observer keys that saw a finite value
        object.__setattr__(self, "stats", {})  # node name -> InputStats (GPTQ, bias correction)
        object.__setattr__(self, "batches", 0)

    def execute(self, feeds: dict, run=None) -> dict:
        env = super().execute(feeds, run)
        for key, obs in self.observers.items():
            name = key[0] if isinstance(key, tuple) else key
            x = graph_ops.data_of(env[name])
            if x.size == 0:
                continue
            finite = np.isfinite(x)
            if finite.any():
                self.finite.add(key)
            peak = float(np.abs(x[finite]).max()) if finite.any() else np.inf
            if finite.any() and (not finite.all() or peak >= HUGE):
                self.huge[name] = max(self.huge.get(name, 0.0), np.inf if not finite.all() else peak)
            obs.observe(np.ascontiguousarray(x, np.float32))
        if self.stats:
            nodes = {n.name: n for n in self._graph.nodes}  # one pass, not a search per layer
            for name, stats in self.stats.items():
                stats.update(layer_input_rows(nodes[name], graph_ops.data_of(env[nodes[name].inputs[0]])))
        object.__setattr__(self, "batches", self.batches + 1)
        return env


def prepare(model: GraphModule, qconfig: QConfig = INT8_STATIC, *, layers: dict | None = None,
            exclude=(), group_size: int | None = None, activation_matmul: bool = False,
            rounding: str = "nearest", bias_correction: bool = False) -> PreparedGraph:
    """Graph PTQ, step 1: which nodes are quantized, and observers on their inputs.

    `layers` maps node names or op types to a QConfig (or None: keep float);
    `exclude` lists node names or op types to keep float; `group_size`:
    weight-only layers get one scale per this many input columns;
    `activation_matmul`: also quantize MatMuls of two activations (attention's
    QK^T and PV) statically: uint8 left operand, int8 symmetric right operand;
    `rounding="gptq"` and `bias_correction` use statistics of each layer's
    inputs gathered during calibration (as on qk.nn models; grouped
    convolutions keep round-to-nearest). Add stays float unless `layers`
    names it (``layers={"Add": INT8_STATIC}`` or a node name): an Add of two
    activations then runs on uint8 (qk.quantized_add), with a following
    ReLU fused, and joins the integer chains of the convolutions around it.
    So do global pools (``layers={"GlobalAveragePool": INT8_STATIC}``, or
    ``"ReduceMean"`` for a mean over H and W): the pool's input is observed
    and quantized, and the pool sums it exactly on uint8."""
    if not isinstance(model, GraphModule):
        raise TypeError(f"model: expected a qk.graph.GraphModule, got {type(model).__name__}")
    if not isinstance(qconfig, QConfig):
        raise TypeError(f"qconfig: expected a qk.quant.QConfig, got {type(qconfig).__name__}")
    g = model.graph.copy()
    layers = dict(layers or {})
    exclude = set(exclude)
    names = {n.name for n in g.nodes} | {n.op_type for n in g.nodes}
    unknown = sorted((set(layers) | exclude) - names)
    if unknown:
        raise ValueError(f"layers/exclude: the graph has no node or op type {unknown}; its quantizable nodes: "
                         f"{[n.name for n in g.nodes if layer_weight(g, n) is not None]}")
    plan, observers = {}, {}
    for node in g.nodes:
        if node.name in exclude or node.op_type in exclude:
            continue
        if gather_table(g, node) is not None and layers.get(node.name, layers.get("Gather", qconfig)) is not None:
            plan[node.name] = "table"
            continue
        if layer_weight(g, node) is None:
            pool_cfg = layers.get(node.name, layers.get(node.op_type)) if _global_pool(g, node) else None
            if pool_cfg is not None:
                _check_uint8_config(node, pool_cfg)
                plan[node.name] = "pool"
                if node.inputs[0] not in observers:
                    observers[node.inputs[0]] = pool_cfg.make_activation_observer()
                continue
            add_cfg = layers.get(node.name, layers.get("Add")) if _activation_add(g, node) else None
            if add_cfg is not None:
                _check_uint8_config(node, add_cfg)
                plan[node.name] = "add"
                relu = _relu_after(g, node)
                for v in (node.inputs[0], node.inputs[1], (relu or node).outputs[0]):
                    if v not in observers:
                        observers[v] = add_cfg.make_activation_observer()
                continue
            if activation_matmul and _activation_matmul(g, node) and qconfig.mode == "static" and \
                    layers.get(node.name, layers.get(node.op_type, qconfig)) is not None:
                plan[node.name] = "activation_matmul"
                for i, v in enumerate(node.inputs[:2]):
                    key = (v, "signed") if i else v
                    if key not in observers:
                        observers[key] = _observer_for(qconfig, signed=bool(i))
            continue
        cfg = layers.get(node.name, layers.get(node.op_type, qconfig))
        if cfg is None:
            continue
        if not isinstance(cfg, QConfig):
            raise TypeError(f"layers[{node.name!r}]: expected a QConfig or None, got {type(cfg).__name__}")
        if node.op_type == "ConvTranspose" and cfg.mode != "static":
            continue  # only static INT8 has a ConvTranspose kernel; the others keep it float
        plan[node.name] = cfg
        if cfg.mode == "static" and node.inputs[0] not in observers:
            observers[node.inputs[0]] = cfg.make_activation_observer()
    prepared = PreparedGraph(g, plan, observers)
    object.__setattr__(prepared, "group_size", group_size)
    object.__setattr__(prepared, "rounding", rounding)
    object.__setattr__(prepared, "bias_correction", bool(bias_correction))
    if rounding == "gptq" or bias_correction:
        from ..ptq.rounding import InputStats

        for node in g.nodes:
            cfg = plan.get(node.name)
            if isinstance(cfg, QConfig) and cfg.mode != "fp16" and node.attrs.get("group", 1) == 1 and \
                    node.op_type != "ConvTranspose":
                prepared.stats[node.name] = InputStats(layer_weight(g, node)[0].shape[1])
    return prepared


def as_graph_module(model, example_inputs=None) -> GraphModule:
    """What quantization works on: a GraphModule as it is; a qk.nn model
    traced (`qk.graph.trace`, eval mode, node names = module names) and
    simplified as ONNX import does (BatchNorm folded, identities removed)."""
    if isinstance(model, GraphModule):
        return model
    from ..graph import simplify, trace
    from ..nn import Module

    if not isinstance(model, Module):
        raise TypeError(f"model: expected a qk.nn.Module or a qk.graph.GraphModule, got {type(model).__name__}")
    g = trace(model, example_inputs)
    simplify(g)
    return GraphModule(g)


def feeds_of(batch, input_names):
    if isinstance(batch, dict):
        return batch
    if len(input_names) != 1:
        raise ValueError(f"data: the model has inputs {input_names}; give batches as dicts of name -> array")
    if isinstance(batch, tuple):
        batch = batch[0]  # an (inputs, labels) batch
    return {input_names[0]: batch}


def calibration_batches(data, batch_size: int = 32):
    """Calibration `data` as batches: an array of samples split into batches
    of `batch_size`, the inputs of an (inputs, labels) pair, or the iterable itself."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], np.ndarray):
        data = data[0]  # an (inputs, labels) pair
    if isinstance(data, np.ndarray):
        return [data[i: i + batch_size] for i in range(0, len(data), batch_size)]
    return data


def progress_bar(label: str, done: int, total: int | None, width: int = 30) -> str:
    if not total:
        return f"{label}: {done} batches"
    filled = round(width * done / total)
    return f"{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} batches"


def calibrate(prepared: PreparedGraph, data, *, batch_size: int = 32, progress: bool = True) -> PreparedGraph:
    """Graph PTQ, step 2: runs `data` (an array of samples for a single-input
    model, split into batches of `batch_size`, an (inputs, labels) pair, or an
    iterable of arrays, (inputs, labels) batches or feed dicts)
    so the observers see the ranges. Batches may differ in shape (padded
    sequences of any length)."""
    if not isinstance(prepared, PreparedGraph):
        raise TypeError(f"prepared: expected the result of qk.ptq.prepare, got {type(prepared).__name__}")
    run_batches(data, prepared.input_names, prepared.run, bar="calibrating", what="calibration", progress=progress,
                batch_size=batch_size)
    return prepared


def run_batches(data, input_names, step, *, bar: str, what: str, progress: bool, batch_size: int = 32) -> int:
    """Calls step(feeds) on each batch of calibration `data` without gradients,
    with a progress bar labelled `bar`; returns the number of batches, and
    raises if there was none ("data: <what> got no batches")."""
    batches = calibration_batches(data, batch_size)
    total = len(batches) if hasattr(batches, "__len__") else None
    seen = 0
    with no_grad():
        for batch in batches:
            step(feeds_of(batch, input_names))
            seen += 1
            if progress:
                print("\r" + progress_bar(bar, seen, total), end="", file=sys.stderr)
    if progress and seen:
        print(file=sys.stderr)
    if seen == 0:
        raise ValueError(f"data: {what} got no batches")
    return seen


# --- quantized ops -------------------------------------------------------------------------------


def _run_linear(attrs, x):
    """A QuantizedLinear: float in, float out; or, in an integer chain, the
    uint8 output of a chained producer in ("in_u8") and the uint8 input of
    its chained readers out ("out_u8", requantized in the epilogue). Static
    uint8 and dynamic INT8 layers run on one runner per input shape (their
    core's `runner`)."""
    xd = graph_ops.data_of(x)
    runs = attrs.get("_runs")
    if runs is None:
        runs = attrs["_runs"] = {}
    key = (xd.shape, xd.dtype.char)
    run = runs.get(key)
    if run is None:
        run = runs[key] = _linear_runner(attrs, xd.shape, xd.dtype)
    return run(xd)


def _linear_runner(attrs, shape, dtype):
    core, out_u8 = attrs["core"], attrs.get("out_u8")
    if attrs.get("in_u8") or out_u8 is not None:  # chained: only static uint8 cores are (chain_integer_layers)
        call = core.runner(shape, bool(attrs.get("in_u8")), None if out_u8 is None else tuple(out_u8))
        if call is None:
            raise ValueError(f"input: a chained quantized Linear cannot take an input of shape {shape}")
        return call if out_u8 is not None else lambda x: _float_clip(attrs, Tensor(call(x)))
    call = core.runner(shape) if isinstance(core, (StaticInt8Core, DynamicInt8Core)) and dtype == np.float32 else None
    if call is not None:
        return lambda x: _float_clip(attrs, Tensor(call(x if x.flags.c_contiguous and x.flags.aligned else
                                                        np.array(x, order="C"))))

    def generic(x):
        xd = np.ascontiguousarray(x.astype(np.float32, copy=False))
        return _float_clip(attrs, Tensor(np.asarray(core.matmul(core.prepare_input(xd)), np.float32)))
    return generic


class NativeConv:
    """A static quantized Conv on `qk.int8_conv2d`: its groups' int8 weights
    packed once as one (O, C / groups, KH, KW) convolution weight (depthwise
    ones for the direct kernel), the input quantized to uint8 and laid out
    NHWC, exact int32 sums and the float epilogue (scales, bias, ReLU) in C++.
    Built from the layer's cores on first use; not saved (the cores are)."""

    def __init__(self, cores, kernel, groups: int):
        kh, kw = kernel
        self.core = cores[0]
        weights, scales, biases = [], [], []
        for core in cores:
            og = core.weight_q.shape[0]
            weights.append(core.weight_q.reshape(og, -1, kh, kw))
            scales.append(np.broadcast_to(core.w_scale, (og,)))
            biases.append(np.zeros(og, np.float32) if core.bias is None else core.bias)
        w = np.concatenate(weights)
        self.weight = _conv_ops.pack_int8_conv_weight(np.ascontiguousarray(w), groups)
        self.w_scale = np.ascontiguousarray(np.concatenate(scales), np.float32)
        self.bias = None if all(c.bias is None for c in cores) else np.concatenate(biases).astype(np.float32)
        self._calls = {}  # (input shape, geometry, out qparams) -> a direct kernel call

    @staticmethod
    def supports(cores) -> bool:
        """Static int8 cores with uint8 activations (the native kernel's input)."""
        return bool(cores) and all(isinstance(c, StaticInt8Core) and c.x_range == (0, 255) for c in cores)

    def run(self, x: np.ndarray, strides, dilations, pads, nhwc_input: bool = False,
            out_qparams=None) -> np.ndarray:
        """x: float NCHW, or (nhwc_input) the uint8 NHWC output of a chained
        producer. Returns float NCHW, or with out_qparams = (scale, zero point,
        qmin, qmax) the uint8 NHWC input of the chained consumers, requantized
        in the epilogue and clamped to [qmin, qmax]."""
        return self.runner(x.shape, strides, dilations, pads, nhwc_input, out_qparams)(x)

    def runner(self, in_shape, strides, dilations, pads, nhwc_input: bool = False, out_qparams=None):
        """run(x, ...) for inputs of shape `in_shape` as a function of x alone,
        with everything else worked out once (a converted model keeps one per
        node and input shape: at batch 1 the per-call Python was a third of a
        small layer's time)."""
        c = self.core
        q_shape = in_shape if nhwc_input else (in_shape[0], *in_shape[2:], in_shape[1])
        key = (q_shape, tuple(strides), tuple(dilations), tuple(pads), out_qparams)
        call = self._calls.get(key)
        if call is None:
            # The validating wrapper checks the signature once, on an empty batch
            # (the chain's clamp is not one of its arguments); every call then
            # runs the kernel directly with the checked geometry.
            kwargs = dict(x_zero_point=c.x_zero_point, x_scale=c.x_scale, w_scale=self.w_scale, bias=self.bias,
                          strides=strides, dilations=dilations, pads=tuple(pads), relu=c.relu)
            if out_qparams is not None:
                kwargs.update(out_dtype=np.uint8, out_scale=out_qparams[0], out_zero_point=out_qparams[1])
            y = _conv_ops.int8_conv2d(np.zeros((0, *q_shape[1:]), np.uint8), self.weight, **kwargs)
            call = self._calls[key] = self._direct_call(q_shape, q_shape[:1] + y.shape[1:], y.dtype, strides,
                                                        dilations, pads, out_qparams)
        if nhwc_input:
            return call if out_qparams is not None else lambda x: _to_nchw(call(x))
        prepare = c.prepare_input
        if out_qparams is not None:
            return lambda x: call(_to_nhwc(prepare(x)))
        return lambda x: _to_nchw(call(_to_nhwc(prepare(x))))

    def _direct_call(self, in_shape, out_shape, out_dtype, strides, dilations, pads, out_qparams):
        c, w = self.core, self.weight
        o, _, kh, kw = w.shape
        geometry = (*in_shape, kh, kw, *strides, *dilations, *pads, w.groups, o)
        scale = (np.float32(c.x_scale) * self.w_scale).astype(np.float32)
        kind, out_scale, out_zp, qmin, qmax = (1, 1.0, 0.0, 0.0, 0.0) if out_qparams is None else \
            (2, float(out_qparams[0]), float(out_qparams[1]), float(out_qparams[2]), float(out_qparams[3]))
        run = _qk.int8_depthwise_conv2d if w.depthwise else _qk.int8_conv2d
        weights = w._taps if w.depthwise else w._packed

        def call(xq):
            out = np.empty(out_shape, out_dtype)
            run(xq, geometry, weights, c.x_zero_point, kind, scale, self.bias, c.relu, out_scale, out_zp, qmin, qmax,
                out)
            return out
        return call


def _to_nhwc(q: np.ndarray) -> np.ndarray:
    """uint8 (N, C, H, W) -> contiguous (N, H, W, C), on the native transpose."""
    n, c, h, w = q.shape
    out = np.empty((n, h, w, c), np.uint8)
    _qk.nchw_to_nhwc_u8(np.ascontiguousarray(q), n, c, h * w, out)
    return out


def _to_nchw(y: np.ndarray) -> np.ndarray:
    """float32 (N, H, W, C) -> contiguous (N, C, H, W), on the native transpose."""
    n, h, w, c = y.shape
    out = np.empty((n, c, h, w), np.float32)
    _qk.nhwc_to_nchw_f32(np.ascontiguousarray(y), n, h * w, c, out)
    return out


def _out_qparams(attrs):
    """(scale, zero point, qmin, qmax) a chained conv requantizes and clamps its output to, or None."""
    q = attrs.get("out_nhwc")
    return None if q is None else (float(q[0]), int(q[1]), int(q[2]), int(q[3]))


def chain_integer_layers(g: Graph) -> Graph:
    """Integer chains: a static quantized layer whose output only feeds layers
    that quantize it alike hands them uint8 values, requantized in its
    epilogue to their input scale and zero point, instead of float values
    that each reader quantizes again. A QuantizedConv hands uint8 NHWC
    ("out_nhwc"; its readers get "in_nhwc") to QuantizedConvs reading it as
    their input (static, uint8 activations, one common quantization), to a
    quantized Add (asked for in prepare's `layers`), which hands its own
    output on the same way when its readers share its output grid, and
    through a Flatten (QuantizedFlatten: back to NCHW order, on uint8) to
    QuantizedLinears. A QuantizedLinear hands uint8 rows ("out_u8"; its
    readers get "in_u8") to QuantizedLinears reading it. A Relu or Clip in
    between (ReLU6) becomes the requantization's clamp: quantizing is
    monotone, so q(clip(y, lo, hi)) = clip(q(y), q(lo), q(hi)); a MaxPool
    after a conv runs on the uint8 values (QuantizedMaxPool), as q(max(y)) =
    max(q(y)); a GlobalAveragePool reading a chained value sums its uint8
    values exactly (QuantizedGlobalAveragePool, which without_chains keeps,
    so both forms give the same numbers). The same numbers either way, bit
    for bit. Last, a Clip with constant bounds after a layer whose output
    stays float (a dynamic model's ReLU6) is applied by that layer, in place
    on its output.
    """
    def native_ok(node):
        return node is not None and node.op_type == "QuantizedConv" and NativeConv.supports(_conv_cores(node.attrs))

    def linear_ok(node):
        return node is not None and node.op_type == "QuantizedLinear" and NativeConv.supports([node.attrs["core"]])

    def input_qparams(core):
        return float(core.x_scale), int(core.x_zero_point)

    any_grid = ("any",)  # a reader that takes the value on whatever grid it comes

    def reader_qparams(node, value, layout):
        """The (scale, zero point) `node` quantizes `value` to, if it can take it as uint8 in
        `layout` ("nhwc": a conv's output; "rows": a linear's), else None."""
        if layout == "rows":
            return input_qparams(node.attrs["core"]) if linear_ok(node) and node.inputs[0] == value else None
        if native_ok(node) and node.inputs[0] == value and value not in node.inputs[1:]:
            return input_qparams(_conv_cores(node.attrs)[0])
        if node.op_type == "QuantizedAdd" and node.inputs.count(value) == 1:
            return tuple(node.attrs["a_qparams" if node.inputs[0] == value else "b_qparams"])
        if node.op_type == "QuantizedGlobalAveragePool" and node.inputs[0] == value:  # quantized on request
            return tuple(node.attrs["qparams"])
        if _global_pool(g, node):
            return any_grid
        if node.op_type == "Flatten" and node.attrs.get("axis", 1) == 1:
            found = chain_readers(node.outputs[0], "rows")
            return None if found is None else found[1]
        return None

    def chain_readers(value, layout, qparams=None):
        """The readers of `value` and their common quantization, if all can take it as uint8
        (a producer without a grid of its own needs one reader that names it)."""
        readers = g.consumers(value)
        if value in g.outputs or not readers:
            return None
        found = {reader_qparams(r, value, layout) for r in readers} - {any_grid}
        if qparams is not None:
            found.add(qparams)
        if None in found or len(found) != 1:
            return None
        return readers, found.pop()

    def mark(readers, value, qparams):
        for r in readers:
            if r.op_type == "QuantizedAdd":
                flags = list(r.attrs.get("in_nhwc", (False, False)))
                flags[r.inputs.index(value)] = True
                r.attrs["in_nhwc"] = tuple(flags)
            elif r.op_type in ("GlobalAveragePool", "ReduceMean"):  # integer sums of the uint8 values
                attrs = {"qparams": tuple(qparams), "in_nhwc": True, **_reduce_mean_attrs(r)}
                g.replace([r], [Node("QuantizedGlobalAveragePool", list(r.inputs), list(r.outputs), attrs, r.name)])
            elif r.op_type == "Flatten":
                g.replace([r], [Node("QuantizedFlatten", list(r.inputs), list(r.outputs), dict(r.attrs), r.name)])
                mark(g.consumers(r.outputs[0]), r.outputs[0], qparams)
            elif r.op_type == "QuantizedLinear":
                r.attrs["in_u8"] = True
            else:
                r.attrs["in_nhwc"] = True

    def clamp_of(node):
        """(lo, hi) of a Relu or a Clip with constant bounds (None: unbounded), or None."""
        if node is None or node.op_type not in ("Relu", "Clip"):
            return None
        if node.op_type == "Relu":
            return 0.0, None
        bounds = []
        for pos in (1, 2):
            name = node.inputs[pos] if len(node.inputs) > pos else ""
            if not name:
                bounds.append(None)
            elif name in g.constants and np.size(g.constants[name]) == 1:
                bounds.append(float(scalar(g, name)))
            else:
                return None
        return tuple(bounds)

    def q(v, scale, zp):  # exactly the readers' quantization of one value
        return int(_quant_ops.quantize(np.array([v], np.float32), scale, zp, dtype=np.uint8)[0])

    for node in list(g.nodes):
        if node.op_type == "QuantizedAdd":  # requantizes to its own output grid; its readers must share it
            found = chain_readers(node.outputs[0], "nhwc", tuple(node.attrs["out_qparams"]))
            if found is not None:
                scale, zp = found[1]
                node.attrs["out_nhwc"] = (scale, zp, zp if node.attrs["relu"] else 0, 255)
                mark(found[0], node.outputs[0], (scale, zp))
            continue
        conv = native_ok(node)
        if not (conv or linear_ok(node)) or node.outputs[0] in g.outputs:
            continue
        clip = g.only_consumer(node.outputs[0])
        bounds = clamp_of(clip)
        if bounds is None:
            clip, bounds = None, (None, None)
        value = clip.outputs[0] if clip is not None else node.outputs[0]
        pool = g.only_consumer(value) if conv else None
        if not _uint8_max_pool_ok(pool) or value in g.outputs:
            pool = None
        read = pool.outputs[0] if pool is not None else value  # what the readers read
        found = chain_readers(read, "nhwc" if conv else "rows")
        if found is None:
            continue
        readers, (scale, zp) = found
        qmin = 0 if bounds[0] is None else q(bounds[0], scale, zp)
        qmax = 255 if bounds[1] is None else q(bounds[1], scale, zp)
        attrs = dict(node.attrs, **{"out_nhwc" if conv else "out_u8": (scale, zp, qmin, qmax)})
        if clip is not None:  # what without_chains puts back: a Clip from the layer's own output
            attrs["absorbed_clip"] = (node.outputs[0], bounds[0], bounds[1])
        g.replace([node] + ([clip] if clip is not None else []),
                  [Node(node.op_type, list(node.inputs), [value], attrs, node.name)])
        if pool is not None:  # max commutes with the (monotone) quantization too
            g.replace([pool], [Node("QuantizedMaxPool", list(pool.inputs), list(pool.outputs), dict(pool.attrs),
                                    pool.name)])
        mark(readers, read, (scale, zp))
    for node in list(g.nodes):  # a Clip after a layer with a float output: applied in place by the layer
        if node.op_type not in ("QuantizedConv", "QuantizedLinear") or "out_nhwc" in node.attrs \
                or "out_u8" in node.attrs:
            continue
        clip = g.only_consumer(node.outputs[0])
        bounds = clamp_of(clip) if clip is not None and clip.op_type == "Clip" else None
        if bounds is None or bounds == (None, None) or node.outputs[0] in g.outputs:
            continue
        attrs = dict(node.attrs, absorbed_clip=(node.outputs[0], bounds[0], bounds[1]))
        g.replace([node, clip], [Node(node.op_type, list(node.inputs), list(clip.outputs), attrs, node.name)])
    return g


def _float_clip(attrs, y):
    """The Clip a layer with a float output absorbed (chain_integer_layers), applied to y in place."""
    absorbed = attrs.get("absorbed_clip")
    if absorbed is not None and "out_nhwc" not in attrs:
        data = graph_ops.data_of(y)
        _, lo, hi = absorbed
        if lo is not None and hi is not None:  # np.clip: one pass, 3x faster than maximum then minimum
            np.clip(data, np.float32(lo), np.float32(hi), out=data)
        elif lo is not None:
            np.maximum(data, np.float32(lo), out=data)
        elif hi is not None:
            np.minimum(data, np.float32(hi), out=data)
    return y


def _uint8_max_pool_ok(node) -> bool:
    """A 2-D MaxPool (one output, no dilation tricks needed) the chain can run on uint8 NHWC."""
    return (node is not None and node.op_type == "MaxPool" and len(node.outputs) == 1
            and len(node.attrs.get("kernel_shape", ())) == 2 and not node.attrs.get("storage_order", 0))


def _run_max_pool_nhwc(attrs, x):
    """MaxPool over uint8 NHWC values of an integer chain, on the native
    kernel: a window's max over its real taps (padding cannot win: every
    window holds a real value, and uint8 values are >= 0)."""
    xd = np.ascontiguousarray(graph_ops.data_of(x))
    cache = attrs.get("_geometry")
    if cache is None:
        cache = attrs["_geometry"] = {}
    call = cache.get(xd.shape)
    if call is None:  # worked out once per input shape (a few microseconds of Python per call at batch 1)
        n, h, w, c = xd.shape
        (kh, kw), strides, dil, pads, _, (oh, ow) = _pool_geometry(attrs, (n, c, h, w))
        call = cache[xd.shape] = ((n, oh, ow, c), (n, h, w, c, kh, kw, *strides, *dil, pads[0], pads[1], oh, ow))
    out = np.empty(call[0], np.uint8)
    _qk.max_pool_u8(xd, call[1], out)
    return out


def _run_flatten_nhwc(attrs, x):
    """Flatten (axis 1) of uint8 NHWC values of an integer chain: the rows a
    Flatten of the NCHW values gives, for the chained QuantizedLinear after it."""
    xd = graph_ops.data_of(x)
    return np.ascontiguousarray(xd.transpose(0, 3, 1, 2)).reshape(xd.shape[0], -1)


def _run_quantized_add(attrs, a, b):
    """The uint8 Add (qk.quantized_add) of two values: float NCHW ones are
    quantized first; uint8 NHWC ones come from chained producers ("in_nhwc",
    one flag per input). The result is float NCHW, dequantized, or with
    "out_nhwc" the uint8 NHWC input of the chained readers."""
    (sa, za), (sb, zb), (so, zo) = attrs["a_qparams"], attrs["b_qparams"], attrs["out_qparams"]
    if "_add_args" not in attrs:  # checked once, then the kernel directly
        attrs["_add_args"] = _quant_ops.quantized_add_args(sa, za, sb, zb, so, zo, attrs["relu"])
    chained = attrs.get("in_nhwc", (False, False))
    out_nhwc = "out_nhwc" in attrs
    qa, qb = graph_ops.data_of(a), graph_ops.data_of(b)
    if not (chained[0] and chained[1] and out_nhwc and qa.shape == qb.shape):  # else the chain's: NHWC throughout
        qs = []
        for xd, (scale, zp), nhwc in ((qa, (sa, za), chained[0]), (qb, (sb, zb), chained[1])):
            # every operand as a logical NCHW array (a view of the NHWC ones)
            qs.append(xd.transpose(0, 3, 1, 2) if nhwc else
                      _quant_ops.quantize(np.ascontiguousarray(xd, np.float32), scale, zp, dtype=np.uint8))
        qa, qb = np.broadcast_arrays(*qs)
        if out_nhwc:
            qa, qb = qa.transpose(0, 2, 3, 1), qb.transpose(0, 2, 3, 1)
        qa, qb = np.ascontiguousarray(qa), np.ascontiguousarray(qb)
    q = np.empty(qa.shape, np.uint8)
    _qk.add_quantized(qa, qb, q, *attrs["_add_args"])
    if out_nhwc:
        return q
    return Tensor(_quant_ops.dequantize(q, so, zo))


def _run_global_average_pool_u8(attrs, x, axes=None):
    """GlobalAveragePool of uint8 values on the grid (scale, zero point) =
    attrs["qparams"], from exact integer sums: (sum(q) - pixels * zp) *
    (scale / pixels), in float64, to float32 (N, C, 1, 1); (N, C) for a
    ReduceMean over H and W with keepdims 0 (attrs["keepdims"]; its axes
    input, if any, is `axes`). Chained (uint8 NHWC) or not (float NCHW
    values on that grid, quantized back exactly), the same sums and the
    same result."""
    scale, zp = attrs["qparams"]
    xd = graph_ops.data_of(x)
    if attrs.get("in_nhwc"):
        n, h, w, c = xd.shape
        q = np.ascontiguousarray(xd)
    else:
        n, c, h, w = xd.shape
        q = _quant_ops.quantize(np.ascontiguousarray(xd, np.float32), scale, zp, dtype=np.uint8)
        q = np.ascontiguousarray(q.transpose(0, 2, 3, 1))
    pixels = h * w
    sums = np.empty((n, c), np.int32)
    _qk.channel_sums_u8(q, n, pixels, c, sums)
    y = (sums - pixels * int(zp)) * (float(scale) / pixels)
    keep = attrs.get("keepdims", 1)
    return Tensor(y.astype(np.float32).reshape((n, c, 1, 1) if keep else (n, c)))


def without_chains(model: GraphModule) -> GraphModule:
    """The same integer model with every value between layers float NCHW again
    (for export and per-node comparison, which read the values)."""
    g = model.graph.copy()
    for node in list(g.nodes):
        if node.op_type in ("QuantizedMaxPool", "QuantizedFlatten"):
            g.replace([node], [Node(node.op_type[len("Quantized"):], list(node.inputs), list(node.outputs),
                                    {k: v for k, v in node.attrs.items() if not k.startswith("_")}, node.name)])
            continue
        for key in ("out_nhwc", "in_nhwc", "out_u8", "in_u8", "_native", "_native_runs", "_runs"):
            node.attrs.pop(key, None)
        absorbed = node.attrs.pop("absorbed_clip", None)
        if absorbed is not None:
            out, (mid, *bounds) = node.outputs[0], absorbed
            names = []
            for side, bound in zip(("min", "max"), bounds):
                names.append("" if bound is None else g.unique_name(f"{node.name}_clip_{side}"))
                if bound is not None:
                    g.constants[names[-1]] = np.array(bound, np.float32)
            g.replace([node], [Node(node.op_type, list(node.inputs), [mid], node.attrs, node.name),
                               Node("Clip", [mid] + names, [out], {}, g.unique_name(node.name + "_clip"))])
    return GraphModule(g)


def _native_conv(attrs):
    """The layer's NativeConv (cached in the node's run-time attribute "_native"), or None."""
    if "_native" not in attrs:
        cores = _conv_cores(attrs)
        attrs["_native"] = (NativeConv(cores, attrs["kernel"], attrs.get("group", 1)) if NativeConv.supports(cores)
                            else None)
    return attrs["_native"]


def _conv_geometry(attrs, spatial) -> tuple:
    """(strides, dilations, pads) of a quantized Conv on an image of `spatial`
    size, worked out once per size (auto_pad depends on it)."""
    cache = attrs.setdefault("_geometry", {})
    geometry = cache.get(spatial)
    if geometry is None:
        geometry = cache[spatial] = _spatial_attrs(attrs, spatial, tuple(attrs["kernel"]))
    return geometry


def _run_conv(attrs, x):
    return _float_clip(attrs, _conv_output(attrs, x))


def _as_tensor_output(run):
    return lambda x: Tensor(run(x))


def _float32_input(run):
    return lambda x: run(np.ascontiguousarray(x, np.float32))


def _conv_output(attrs, x):
    xd = graph_ops.data_of(x)
    runs = attrs.setdefault("_native_runs", {})  # input shape -> the native layer's runner, or absent
    run = runs.get(xd.shape)
    if run is not None:
        return run(xd)
    cores, depthwise = attrs["cores"], attrs.get("depthwise")
    chained_out = "out_nhwc" in attrs
    if attrs.get("in_nhwc"):  # the uint8 NHWC output of a chained producer
        strides, dil, pads = _conv_geometry(attrs, xd.shape[1:3])
        run = _native_conv(attrs).runner(xd.shape, strides, dil, pads, True, _out_qparams(attrs))
        run = runs[xd.shape] = run if chained_out else _as_tensor_output(run)
        return run(xd)
    if xd.ndim != 4:
        raise ValueError(f"input: quantized Conv expects (N, C, H, W), got shape {xd.shape}")
    kh, kw = attrs["kernel"]
    strides, dil, pads = _conv_geometry(attrs, xd.shape[2:])
    native = _native_conv(attrs)
    if native is not None:
        run = native.runner(xd.shape, strides, dil, pads, False, _out_qparams(attrs))
        run = runs[xd.shape] = _float32_input(run if chained_out else _as_tensor_output(run))
        return run(xd)
    xd = np.ascontiguousarray(xd, np.float32)
    first = cores[0] if cores else depthwise
    xq = first.prepare_input(xd)
    n, c, h, w = xq.shape
    oh = _out_size(h, kh, strides[0], dil[0], pads[0], pads[2])
    ow = _out_size(w, kw, strides[1], dil[1], pads[1], pads[3])
    xp = np.pad(xq, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])), constant_values=first.pad_value)
    taps = [v for _, _, v in _taps(xp, kh, kw, strides, dil, oh, ow)]
    if depthwise is not None:
        return Tensor(depthwise.run(taps))
    groups = len(cores)
    cg = c // groups
    cols = np.stack(taps, axis=2).transpose(0, 3, 4, 1, 2)  # (N, OH, OW, C, K)
    outs = [core.matmul(np.ascontiguousarray(cols[..., i * cg:(i + 1) * cg, :]).reshape(n * oh * ow, -1))
            for i, core in enumerate(cores)]
    y = np.concatenate(outs, axis=1) if groups > 1 else outs[0]
    return Tensor(np.ascontiguousarray(y.reshape(n, oh, ow, -1).transpose(0, 3, 1, 2)))


class DepthwiseInt8:
    """A depthwise convolution (one input channel per output channel) in exact
    int32 arithmetic over the kernel taps, with the static epilogue
    y = x_scale * w_scale[c] * sum_t (x_t - x_zp) * w[c, t] + bias[c] (then ReLU)."""

    def __init__(self, core):
        self.core = core
        self.pad_value = core.pad_value
        self.w = core.weight_q.astype(np.int32)  # (C, K)
        self.scale = (np.float32(core.x_scale) * core.w_scale).astype(np.float32).reshape(1, -1, 1, 1)
        self.bias = None if core.bias is None else core.bias.reshape(1, -1, 1, 1)

    def prepare_input(self, x):
        return self.core.prepare_input(x)

    def run(self, taps):
        zp = np.int32(self.core.x_zero_point)
        acc = None
        for t, view in enumerate(taps):
            term = (view.astype(np.int32) - zp) * self.w[:, t].reshape(1, -1, 1, 1)
            acc = term if acc is None else acc + term
        y = acc.astype(np.float32) * self.scale
        if self.bias is not None:
            y += self.bias
        return np.maximum(y, 0, out=y) if self.core.relu else y


def _run_gather(attrs, indices):
    """Rows of an int8 table with one symmetric scale per row, dequantized."""
    idx = np.asarray(graph_ops.data_of(indices)).astype(np.int64)
    rows = attrs["table_q"].shape[0]
    if idx.size and (idx.min() < -rows or idx.max() >= rows):
        raise ValueError(f"indices: values in [{idx.min()}, {idx.max()}] are out of range for {rows} rows")
    idx = np.where(idx < 0, idx + rows, idx)
    scale = attrs["scale"][idx].reshape(idx.shape + (1,) * (attrs["table_q"].ndim - 1))
    return Tensor(attrs["table_q"][idx].astype(np.float32) * scale)


def _quantized_in_place_order(x: np.ndarray, scale, zero_point, dtype) -> np.ndarray:
    """quantize(x) for a float32 x that may be a transposed view (attention's
    heads, K^T): quantized in its memory order, the result viewed back, so
    only the 1-byte values get reordered, not the float ones (a float copy
    of K^T cost as much as the products)."""
    if not x.flags.c_contiguous and x.dtype == np.float32:
        order = np.argsort([-s for s in x.strides], kind="stable")
        stored = x.transpose(order)
        if stored.flags.c_contiguous:
            return _quant_ops.quantize(stored, scale, zero_point, dtype=dtype).transpose(np.argsort(order))
    return _quant_ops.quantize(np.ascontiguousarray(x, np.float32), scale, zero_point, dtype=dtype)


def _run_activation_matmul(attrs, a, b):
    """uint8 A x int8 B, both quantized here, on the exact int8 GEMM: the
    stack's products in one native call (split over the threads), rescaled
    to float in the epilogue."""
    ad, bd = graph_ops.data_of(a), graph_ops.data_of(b)
    (sa, za), sb = attrs["a_qparams"], attrs["b_scale"]
    aq = _quantized_in_place_order(ad, sa, za, np.uint8)
    bq = _quantized_in_place_order(bd, sb, 0, np.int8)
    lead = np.broadcast_shapes(aq.shape[:-2], bq.shape[:-2])
    items = int(np.prod(lead, dtype=np.int64))
    aq = np.ascontiguousarray(np.broadcast_to(aq, lead + aq.shape[-2:]).reshape((items,) + aq.shape[-2:]))
    bq = np.ascontiguousarray(np.broadcast_to(bq, lead + bq.shape[-2:]).reshape((items,) + bq.shape[-2:]))
    (batch, m, k), n = aq.shape, bq.shape[2]
    if bq.shape[1] != k:
        raise ValueError(f"inputs: MatMul of shapes {ad.shape} and {bd.shape}: the inner dimensions differ")
    out = np.empty((batch, m, n), np.float32)
    scale = np.float32(sa) * np.float32(sb)
    if k <= _gemm_ops.EXACT_K and out.size:
        _qk.batched_matmul(aq, bq, batch, m, k, n, int(za), float(scale), out)
    else:  # rows beyond the exact int32 range: the public GEMM's chunked sums, item by item
        for i in range(batch):
            acc = _gemm_ops.int8_matmul(aq[i], bq[i])
            out[i] = (acc - np.int32(za) * bq[i].astype(np.int32).sum(axis=0)).astype(np.float32) * scale
    return Tensor(out.reshape(lead + out.shape[1:]))


_CONV_TRANSPOSE_ATTRS = ("strides", "dilations", "pads", "output_padding", "output_shape", "auto_pad", "group")


def conv_transpose_weight(attrs) -> np.ndarray:
    """A QuantizedConvTranspose's int8 weight in ConvTranspose's layout (C_in, C_out, KH, KW)."""
    c_in, c_out, kh, kw = attrs["weight_shape"]
    return attrs["core"].weight_q.reshape(c_out, c_in, kh, kw).transpose(1, 0, 2, 3)


def _run_conv_transpose(attrs, x):
    """A static INT8 ConvTranspose: x quantized to uint8, the exact integer sums
    of (x - zero point) * w scattered over the output by ConvTranspose's own
    geometry in float64 (which holds these sums exactly: far below 2^53), then
    the epilogue y = x_scale * w_scale[o] * acc + bias[o] (then ReLU) in
    float32, as every quantized layer. NumPy, not a native kernel."""
    core = attrs["core"]
    prepared = attrs.get("_exact")
    if prepared is None:  # the float64 weight, the output scales and the geometry, once per node
        prepared = attrs["_exact"] = (conv_transpose_weight(attrs).astype(np.float64),
                                      (np.float32(core.x_scale) * core.w_scale).astype(np.float32),
                                      {k: v for k, v in attrs.items() if k in _CONV_TRANSPOSE_ATTRS})
    w, scale, geometry = prepared
    xd = np.ascontiguousarray(graph_ops.data_of(x), np.float32)
    centered = core.prepare_input(xd).astype(np.float64) - core.x_zero_point
    acc = graph_ops.data_of(graph_ops.get("ConvTranspose").run(geometry, Tensor(centered), w))
    y = acc.astype(np.float32) * scale.reshape((1, -1) + (1,) * (acc.ndim - 2))
    if core.bias is not None:
        y += core.bias.reshape((1, -1) + (1,) * (acc.ndim - 2))
    return Tensor(np.maximum(y, 0) if core.relu else y)


graph_ops.register("QuantizedMatMul")(_run_activation_matmul)
graph_ops.register("QuantizedConvTranspose")(_run_conv_transpose)
graph_ops.register("QuantizedLinear")(_run_linear)
graph_ops.register("QuantizedConv")(_run_conv)
graph_ops.register("QuantizedGather")(_run_gather)
graph_ops.register("QuantizedMaxPool")(_run_max_pool_nhwc)
graph_ops.register("QuantizedFlatten")(_run_flatten_nhwc)
graph_ops.register("QuantizedAdd")(_run_quantized_add)
graph_ops.register("QuantizedGlobalAveragePool")(_run_global_average_pool_u8)


def _table_node(g: Graph, node: Node) -> Node:
    from ..quant import INT8_WEIGHT

    table = gather_table(g, node).astype(np.float32)
    flat = table.reshape(table.shape[0], -1)
    scale = np.maximum(np.abs(flat).max(axis=1) / 127, np.finfo(np.float32).eps).astype(np.float32)
    q = INT8_WEIGHT.with_axis(0).quantize(np.ascontiguousarray(flat), scale, 0).reshape(table.shape)
    return Node("QuantizedGather", [node.inputs[1]], list(node.outputs),
                {"table_q": q, "scale": scale, "scheme": "int8 weight-only (per row)", "weight": node.inputs[0],
                 "relu": False, "source_op": "Gather"}, node.name)


def _core(cfg: QConfig, w: np.ndarray, b, x_qparams, relu: bool, w_scale=None, group_size=None, stats=None,
          rounding="nearest", bias_correction=False):
    """The core of one layer: weights (N, K) on the grid of `w_scale` (by
    default the scheme's per-channel scales of w), activations (static) on
    x_qparams = (scale, zero point); weight-only and FP16 cores keep float activations."""
    from ..ptq.layers import FP16Core, WeightOnlyCore
    from ..ptq.workflow import _quantize_weight, static_int8_core, weight_qparams

    if cfg.mode == "fp16":
        return FP16Core(w, b, relu)
    from ..ptq.rounding import corrected_bias
    from ..ptq.workflow import _dequantized

    if stats is None:
        rounding, bias_correction = "nearest", False
    gs = group_size if cfg.mode == "weight_only" else None
    scale = weight_qparams(w, cfg, gs) if w_scale is None or gs is not None else np.asarray(w_scale, np.float32)
    q = _quantize_weight(w, scale, cfg, rounding, stats, gs)
    if bias_correction:
        b = corrected_bias(b, w, _dequantized(q, scale, gs), stats.mean)
    if cfg.mode == "weight_only":
        return WeightOnlyCore(q, scale, b, relu, cfg.weight.bits, gs)
    if cfg.mode == "dynamic":
        return DynamicInt8Core(q, scale, b, relu, cfg.weight.bits)
    x_scale, x_zp = x_qparams
    return static_int8_core(w, scale, b, float(np.asarray(x_scale).reshape(-1)[0]),
                            int(np.asarray(x_zp).reshape(-1)[0]), relu, cfg, weight_q=q)


def _scheme_label(cfg: QConfig) -> str:
    if cfg.mode == "fp16":
        return "fp16 weights"
    if cfg.mode == "weight_only":
        return f"int{cfg.weight.bits} weight-only"
    return f"int{cfg.weight.bits} {cfg.mode}"


def _per_tensor(qparams) -> tuple:
    """(scale, zero point) of a per-tensor observer's qparams as a float and an int."""
    return float(np.asarray(qparams[0]).reshape(-1)[0]), int(np.asarray(qparams[1]).reshape(-1)[0])


def integer_graph(g: Graph, plan: dict, x_qparams: dict, w_scales: dict | None = None,
                  group_size: int | None = None, stats: dict | None = None, rounding: str = "nearest",
                  bias_correction: bool = False, chains: bool = True) -> GraphModule:
    """`g` with each planned node (plan: node name -> QConfig, or "table")
    replaced by its integer node. x_qparams: {activation value: (scale, zero
    point)} for static layers; w_scales: {node name: (N,) weight scales}
    where they are given (QAT), else from the weights. With `chains`,
    consecutive quantized convolutions pass uint8 NHWC (chain_integer_layers).
    Shared by PTQ and QAT."""
    g = g.copy()
    w_scales, stats = w_scales or {}, stats or {}
    opts = {"rounding": rounding, "bias_correction": bias_correction}
    for node in list(g.nodes):
        cfg = plan.get(node.name)
        if cfg == "table":
            g.replace([node], [_table_node(g, node)])
            continue
        if cfg == "add":
            relu = _relu_after(g, node)
            out = (relu or node).outputs[0]
            qps = [x_qparams.get(v) for v in (node.inputs[0], node.inputs[1], out)]
            if all(q is not None for q in qps):
                a_q, b_q, o_q = [_per_tensor(q) for q in qps]
                g.replace([node] + ([relu] if relu is not None else []),
                          [Node("QuantizedAdd", node.inputs[:2], [out],
                                {"a_qparams": a_q, "b_qparams": b_q, "out_qparams": o_q, "relu": relu is not None,
                                 "scheme": "int8 static (uint8 Add)", "source_op": "Add", "weight": ""}, node.name)])
            continue
        if cfg == "pool":
            xq = x_qparams.get(node.inputs[0])
            if xq is not None:
                attrs = {"qparams": _per_tensor(xq), "scheme": "int8 static (uint8 pool)", "source_op": node.op_type, "weight": "",
                         "relu": False}
                attrs.update(_reduce_mean_attrs(node))
                g.replace([node], [Node("QuantizedGlobalAveragePool", list(node.inputs), list(node.outputs), attrs,
                                        node.name)])
            continue
        if cfg == "activation_matmul":
            a_q, b_q = x_qparams.get(node.inputs[0]), x_qparams.get((node.inputs[1], "signed"))
            if a_q is not None and b_q is not None:
                g.replace([node], [Node("QuantizedMatMul", node.inputs[:2], node.outputs,
                                        {"a_qparams": _per_tensor(a_q), "b_scale": _per_tensor(b_q)[0],
                                         "scheme": "int8 static (activations)", "relu": False,
                                         "source_op": "MatMul", "weight": ""}, node.name)])
            continue
        if cfg is None:
            continue
        xq = x_qparams.get(node.inputs[0])
        if cfg.mode == "static" and xq is None:
            continue
        w, b = layer_weight(g, node)
        ws = w_scales.get(node.name)
        relu = _relu_after(g, node)
        out = relu.outputs[0] if relu is not None else node.outputs[0]
        info = {"scheme": _scheme_label(cfg), "weight": node.inputs[1], "relu": relu is not None,
                "source_op": node.op_type}
        if node.op_type == "Conv":
            groups = node.attrs.get("group", 1)
            o = w.shape[0]
            kh, kw = g.constants[node.inputs[1]].shape[2:]
            attrs = {k: v for k, v in node.attrs.items() if k in ("strides", "dilations", "pads", "auto_pad")}
            attrs.update(kernel=(kh, kw), group=groups, **info)
            wg = w.reshape(groups, o // groups, -1)
            bg = None if b is None else b.reshape(groups, -1)
            sg = None if ws is None else np.broadcast_to(ws, (o,)).reshape(groups, -1)
            if groups == 1:
                attrs["cores"] = [_core(cfg, w, b, xq, relu is not None, ws, group_size, stats.get(node.name),
                                        **opts)]
            elif wg.shape[1] == 1 and w.shape[1] == kh * kw and cfg.mode == "static":
                attrs["depthwise"] = DepthwiseInt8(_core(cfg, w, b, xq, relu is not None, ws))
                attrs["cores"] = []
            else:
                attrs["cores"] = [_core(cfg, wg[i], None if bg is None else bg[i], xq, relu is not None,
                                        None if sg is None else sg[i], group_size) for i in range(groups)]
            new = Node("QuantizedConv", [node.inputs[0]], [out], attrs, node.name)
        elif node.op_type == "ConvTranspose":
            attrs = {k: v for k, v in node.attrs.items() if k in _CONV_TRANSPOSE_ATTRS}
            attrs.update(core=_core(cfg, w, b, xq, relu is not None, ws),
                         weight_shape=tuple(g.constants[node.inputs[1]].shape), **info)
            new = Node("QuantizedConvTranspose", [node.inputs[0]], [out], attrs, node.name)
        else:
            new = Node("QuantizedLinear", [node.inputs[0]], [out],
                       dict(core=_core(cfg, w, b, xq, relu is not None, ws, group_size, stats.get(node.name), **opts),
                            **info), node.name)
        g.replace([node] + ([relu] if relu is not None else []), [new])
    g.remove_dead()
    return GraphModule(chain_integer_layers(g) if chains else g)


def convert(prepared: PreparedGraph) -> GraphModule:
    """Graph PTQ, step 3: the integer model. Each planned layer becomes a
    QuantizedLinear or QuantizedConv node on qk's int8 kernels (bias and a
    following ReLU fused); everything else is the float graph as it was."""
    if not isinstance(prepared, PreparedGraph):
        raise TypeError(f"prepared: expected the result of qk.ptq.prepare, got {type(prepared).__name__}")
    g = prepared.graph
    for value, peak in prepared.huge.items():
        readers = [n for n in g.consumers(value) if n.name in prepared.quant_plan]
        warnings.warn(f"value {value!r} (read by {[n.name for n in readers]}) reaches |x| = {peak:.3g} >= {HUGE:g} "
                      "(an attention mask or another huge constant): those layers stay float", stacklevel=2)
    x_qparams = {}
    for node in g.nodes:
        cfg = prepared.quant_plan.get(node.name)
        if cfg in ("add", "pool"):
            relu = _relu_after(g, node) if cfg == "add" else None
            keys = (node.inputs[0], node.inputs[1], (relu or node).outputs[0]) if cfg == "add" else node.inputs[:1]
            if not any(k in prepared.huge for k in keys):
                for k in keys:
                    if not prepared.observers[k].observed or k not in prepared.finite:
                        raise NotCalibratedError(f"node {node.name!r}: the value {k!r} held no finite value in "
                                                 "calibration; run qk.ptq.calibrate(prepared, data) before convert")
                    x_qparams[k] = prepared.observers[k].qparams()
            continue
        if cfg == "activation_matmul":
            keys = (node.inputs[0], (node.inputs[1], "signed"))
            if not any(k[0] in prepared.huge if isinstance(k, tuple) else k in prepared.huge for k in keys):
                for k in keys:
                    obs = prepared.observers[k]
                    if not obs.observed:
                        raise NotCalibratedError(f"node {node.name!r}: an operand was never observed; "
                                                 "run qk.ptq.calibrate(prepared, data) before convert")
                    x_qparams[k] = obs.qparams()
            continue
        if not isinstance(cfg, QConfig) or cfg.mode != "static" or node.inputs[0] in prepared.huge:
            continue
        obs = prepared.observers.get(node.inputs[0])
        if obs is None or not obs.observed:
            raise NotCalibratedError(f"node {node.name!r}: its input {node.inputs[0]!r} was never observed; "
                                     "run qk.ptq.calibrate(prepared, data) before convert")
        if node.inputs[0] not in prepared.finite:
            raise NotCalibratedError(f"node {node.name!r}: its input {node.inputs[0]!r} held no finite value in "
                                     "calibration (all NaN or inf), so it defines no range")
        x_qparams[node.inputs[0]] = obs.qparams()
    for name in prepared.stats:
        if prepared.stats[name].count == 0:
            raise NotCalibratedError(f"node {name!r}: GPTQ rounding and bias correction need calibration data; "
                                     "run qk.ptq.calibrate(prepared, data) before convert")
    return integer_graph(g, prepared.quant_plan, x_qparams, group_size=prepared.group_size, stats=prepared.stats,
                         rounding=prepared.rounding, bias_correction=prepared.bias_correction)


def quantize_dynamic(model: GraphModule, qconfig: QConfig | None = None, **options) -> GraphModule:
    """Dynamic INT8 of every quantizable layer (activations quantized per batch); no calibration."""
    from ..quant import INT8_DYNAMIC

    return convert(prepare(model, qconfig or INT8_DYNAMIC, **options))
