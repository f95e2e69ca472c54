"""Quantization-aware training of any Graph.

`prepare` picks the layers as graph PTQ does and inserts `FakeQuant` nodes:
one on each activation a layer reads (shared by the layers reading it) and
one on each layer's weight (per output channel, in the weight's own layout);
an Add quantized on request (``layers={"Add": ...}``) gets them on both
inputs and on its (ReLU'd) output.
Each FakeQuant node runs a `qk.qat.FakeQuantize` module registered on the
model, so STE gradients, LSQ scales, `qk.qat.freeze_observers` and `qk.nn.fit`
work as on qk.nn models. `convert` builds the same integer graph PTQ builds,
from the trained weights and the quantizers' ranges.
"""

from __future__ import annotations

import numpy as np

from ..graph import Graph, GraphModule, Node
from ..graph import ops as graph_ops
from ..quant import INT8_STATIC, MovingAverageMinMaxObserver, QConfig
from ..quant.observers import NotCalibratedError
from .graph import PreparedGraph, _relu_after, integer_graph, prepare as ptq_prepare


def _weight_axis(node: Node) -> int:
    """The output-channel axis of a layer's weight as stored in the graph."""
    if node.op_type == "Conv" or (node.op_type == "Gemm" and node.attrs.get("transB", 0)):
        return 0
    return 1


def _run_fake_quant(attrs, x):
    return attrs["fq"](graph_ops.as_tensor(x))


graph_ops.register("FakeQuant", weights=(0,))(_run_fake_quant)  # a fake-quantized weight trains


class QATGraph(GraphModule):
    """A GraphModule with FakeQuant nodes; its quantizers are submodules `fq_0`, `fq_1`, ..."""

    def __init__(self, graph: Graph, plan: dict, activation_fq: dict, weight_fq: dict):
        super().__init__(graph)
        object.__setattr__(self, "quant_plan", plan)
        object.__setattr__(self, "activation_fq", activation_fq)  # value name -> FakeQuantize
        object.__setattr__(self, "weight_fq", weight_fq)  # node name -> FakeQuantize
        for i, fq in enumerate(list(activation_fq.values()) + list(weight_fq.values())):
            setattr(self, f"fq_{i}", fq)


def _build(prepared: PreparedGraph, lsq: bool) -> QATGraph:
    from ..qat.modules import FakeQuantize, _check_static

    src = prepared.graph
    g = src.copy()
    plan = {k: v for k, v in prepared.quant_plan.items() if isinstance(v, QConfig) or v in ("add", "pool")}
    act_fq, w_fq, new_nodes = {}, {}, []
    fake = {}  # activation value -> the name of its fake-quantized version

    def activation_fq(cfg):
        return FakeQuantize(cfg.activation, cfg.activation_observer or MovingAverageMinMaxObserver, lsq=lsq)

    def read_fake(x, cfg, reader):
        """The fake-quantized version of x for `reader`, with a FakeQuant node before it the first time."""
        if x not in fake:
            act_fq[x] = activation_fq(cfg)
            fake[x] = g.unique_name(x + ".fq")
            new_nodes.append(Node("FakeQuant", [x], [fake[x]], {"fq": act_fq[x]}, g.unique_name(reader + ".input_fq")))
            g.value(fake[x])
        return fake[x]

    add_outputs = {}  # the value a quantized Add (or the ReLU after it) writes -> that node
    for node in g.nodes:
        cfg = plan.get(node.name)
        if cfg == "add":
            node.inputs = [read_fake(x, INT8_STATIC, node.name) for x in node.inputs[:2]]
            relu = _relu_after(g, node)
            add_outputs[(relu or node).outputs[0]] = relu or node
            new_nodes.append(node)
        elif cfg == "pool":
            node.inputs = [read_fake(node.inputs[0], INT8_STATIC, node.name), *node.inputs[1:]]
            new_nodes.append(node)
        elif cfg is not None:
            _check_static(cfg, f"layer {node.name!r} qconfig")
            wname = node.inputs[1]
            scheme = cfg.weight.with_axis(_weight_axis(node)) if cfg.weight.per_channel else cfg.weight
            fq = FakeQuantize(scheme, cfg.weight_observer, lsq=lsq, is_weight=True)
            fq.observe(g.constants[wname])
            w_fq[node.name] = fq
            wq = g.unique_name(wname + ".fq")
            xq = read_fake(node.inputs[0], cfg, node.name)
            new_nodes.append(Node("FakeQuant", [wname], [wq], {"fq": fq}, g.unique_name(node.name + ".weight_fq")))
            g.value(wq)
            node.inputs = [xq, wq] + node.inputs[2:]
            new_nodes.append(node)
        else:
            new_nodes.append(node)
        for out in node.outputs:
            if out in add_outputs:
                # the Add's (or its ReLU's) output, fake-quantized under its own name: the
                # producer writes "<out>.raw", so readers and graph outputs need no renaming
                raw = g.unique_name(out + ".raw")
                node.outputs = [raw if o == out else o for o in node.outputs]
                act_fq[out], fake[out] = activation_fq(INT8_STATIC), out
                new_nodes.append(Node("FakeQuant", [raw], [out], {"fq": act_fq[out], "output_of": node.name},
                                      g.unique_name(out + ".output_fq")))
                g.value(raw)
    g.nodes = new_nodes
    g.rebuild()
    return QATGraph(g, plan, act_fq, w_fq)


def prepare(model: GraphModule, qconfig: QConfig = INT8_STATIC, *, lsq: bool = False, layers=None,
            exclude=()) -> QATGraph:
    """A QAT copy of `model`: the layers graph PTQ would quantize statically,
    with fake-quantized inputs and weights (ranges from moving-average
    observers in training mode, or `qk.qat.calibrate`)."""
    return _build(ptq_prepare(model, qconfig, layers=layers, exclude=exclude), lsq)


def from_ptq(prepared: PreparedGraph, *, lsq: bool = False) -> QATGraph:
    """A QAT model from a calibrated graph PTQ model: activation ranges start
    from its observers (with LSQ, frozen there and learned from then on)."""
    qat = _build(prepared, lsq)
    for value, fq in qat.activation_fq.items():
        obs = prepared.observers.get(value)
        if obs is None or not obs.observed:
            raise NotCalibratedError(f"prepared: value {value!r} was never observed; "
                                     "run qk.ptq.calibrate(prepared, data) first")
        scale, zp = obs.qparams()
        act = fq.scheme
        fq.observer.observe(np.array([(act.qmin - zp) * scale, (act.qmax - zp) * scale], np.float32).reshape(-1))
        fq.set_qparams(scale, zp)
        if lsq:
            fq.freeze()
    if lsq:
        for fq in qat.weight_fq.values():
            fq.freeze()
    return qat


def calibrate(qat: QATGraph, data, *, batch_size: int = 32, progress: bool = False) -> QATGraph:
    """Runs `data` (arrays, (inputs, labels) batches or feed dicts) so every observing quantizer records the ranges."""
    from .graph import run_batches

    fqs = list(qat.activation_fq.values()) + list(qat.weight_fq.values())
    for m in fqs:
        m.calibrating = True
    try:
        run_batches(data, qat.input_names, qat.run, bar="calibrating", what="calibration", progress=progress,
                    batch_size=batch_size)
    finally:
        for m in fqs:
            m.calibrating = False
    return qat


def convert(qat: QATGraph) -> GraphModule:
    """The integer graph from the trained weights and the quantizers' ranges."""
    for name, fq in list(qat.activation_fq.items()) + list(qat.weight_fq.items()):
        if not fq.observed:
            raise NotCalibratedError(f"qat_model: quantizer of {name!r} has no range; run qk.qat.calibrate(model, "
                                     "data) or train before convert")
    g = qat.graph.copy()
    fq_nodes = [n for n in g.nodes if n.op_type == "FakeQuant"]
    for n in fq_nodes:  # the layers read their float inputs and weights again
        if "output_of" in n.attrs:  # an Add's output: its producer writes it under its own name again
            producer = g.node(n.attrs["output_of"])
            producer.outputs = [n.outputs[0] if o == n.inputs[0] else o for o in producer.outputs]
        else:
            g.rename_value(n.outputs[0], n.inputs[0])
    g.nodes = [n for n in g.nodes if n.op_type != "FakeQuant"]
    g.rebuild()
    g.remove_dead()
    x_qparams = {v: fq.qparams() for v, fq in qat.activation_fq.items()}
    w_scales = {}
    for name, fq in qat.weight_fq.items():
        node = g.node(name)
        if fq.observer_enabled:
            fq.observe(g.constants[node.inputs[1]])  # the range of the final weights
        scale = np.asarray(fq.qparams()[0], np.float32)
        if node.op_type == "Gemm":
            scale = scale * np.float32(abs(node.attrs.get("alpha", 1.0)))
        w_scales[name] = scale
    return integer_graph(g, qat.quant_plan, x_qparams, w_scales)
