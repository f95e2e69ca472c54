"""SmoothQuant: activation outliers moved into the weights, before quantizing.

Transformer activations have a few channels far larger than the rest (in
MiniLM, one LayerNorm output channel reaches 28 where the median is 1.7), so
one scale per tensor spends most of its 256 levels on them. For a layer
y = x W with W (K, N), per input channel j

    s_j = max|x_j| ** alpha / max_n |W_jn| ** (1 - alpha)
    y = (x / s) (s W)

is the same function; x / s has flatter channels and s W takes the outliers,
where per-channel weight scales absorb them (Xiao et al., 2022, SmoothQuant).
`alpha` sets how much moves: 0 leaves the activations, 1 moves all of it.

The division is a Mul node by the constant 1 / s before the layers reading x
(one per value: layers sharing an input share s), and each layer reads a
rescaled copy of its weight. The result is an ordinary float GraphModule: quantize it with
qk.ptq.prepare / calibrate / convert or quantize_dynamic, export it (the Mul
stays a Mul in ONNX).
"""

from __future__ import annotations

import numpy as np

from ..graph import GraphModule, Node
from ..graph import ops as graph_ops
from .graph import HUGE, layer_weight, run_batches

SMOOTHED_OPS = ("Linear", "MatMul", "Gemm")  # layers whose input channels are its last axis


def _stored_weight_scaled(g, node: Node, s: np.ndarray) -> np.ndarray:
    """The node's weight constant, as stored, with input channel j multiplied by s_j."""
    w = g.constants[node.inputs[1]]
    if node.op_type == "Gemm" and node.attrs.get("transB", 0):
        return (w * s[None, :]).astype(w.dtype)  # stored (N, K)
    return (w * s[:, None]).astype(w.dtype)  # stored (K, N)


def smooth_quant(model: GraphModule, data, alpha: float = 0.5, *, progress: bool = True) -> GraphModule:
    """A copy of `model` computing the same function (up to float rounding)
    with activation outliers migrated into the weights of its Linear /
    MatMul / Gemm layers with constant weights (see the module docstring).

    data: calibration batches, as qk.ptq.calibrate takes them (an array for a
        single-input model, or an iterable of arrays or feed dicts); they give
        each input channel's largest |x|.
    alpha: in [0, 1]; 0.5 is the paper's default. On the all-MiniLM-L6-v2
        encoder 0.7-0.8 is best (docs/onnx.md).

    Inputs whose range is dominated by huge constants (|x| >= 1e4 or
    non-finite: the attention-mask path) and channels that were always zero
    are left as they are."""
    if not isinstance(model, GraphModule):
        raise TypeError(f"model: expected a qk.graph.GraphModule, got {type(model).__name__}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha: expected a number in [0, 1], got {alpha!r}")
    g = model.graph.copy()
    readers: dict = {}  # activation value -> the layers reading it as their input
    for node in g.nodes:
        if node.op_type in SMOOTHED_OPS and node.inputs[0] not in g.constants and layer_weight(g, node) is not None:
            readers.setdefault(node.inputs[0], []).append(node)
    if not readers:
        raise ValueError("model: no Linear/MatMul/Gemm layer with a constant weight to smooth")
    peaks = _channel_peaks(GraphModule(g), data, list(readers), progress)
    for value, nodes in readers.items():
        x_max = peaks[value]
        if x_max is None or not np.all(np.isfinite(x_max)) or x_max.max() >= HUGE:
            continue
        w_max = np.max([np.abs(layer_weight(g, n)[0]).max(axis=0) for n in nodes], axis=0)
        s = _smoothing_scales(x_max, w_max, alpha)
        inv_name, smoothed = g.unique_name(value + "_smooth_inv"), g.unique_name(value + "_smoothed")
        g.constants[inv_name] = (1.0 / s).astype(np.float32)
        for n in nodes:
            w_name = g.unique_name(n.inputs[1] + "_smoothed")
            g.constants[w_name] = _stored_weight_scaled(g, n, s)
            n.inputs[0], n.inputs[1] = smoothed, w_name
        first = min(g.nodes.index(n) for n in nodes)
        g.nodes.insert(first, Node("Mul", [value, inv_name], [smoothed], {}, g.unique_name(value + "_smooth")))
    g.rebuild()
    g.remove_dead()
    return GraphModule(g)


def _smoothing_scales(x_max: np.ndarray, w_max: np.ndarray, alpha: float) -> np.ndarray:
    """s_j = x_max_j ** alpha / w_max_j ** (1 - alpha), 1 where either is zero (float64)."""
    live = (x_max > 0) & (w_max > 0)
    s = np.ones(x_max.shape, np.float64)
    s[live] = x_max[live].astype(np.float64) ** alpha / w_max[live].astype(np.float64) ** (1.0 - alpha)
    return s


def _channel_peaks(model: GraphModule, data, values: list, progress: bool) -> dict:
    """value name -> largest |x| per last-axis channel over `data` (None if never seen)."""
    peak = dict.fromkeys(values)

    def step(feeds):
        env = model.run(feeds, values)
        for v in values:
            x = np.abs(graph_ops.data_of(env[v]))
            if x.size:
                m = x.reshape(-1, x.shape[-1]).max(axis=0)
                peak[v] = m if peak[v] is None else np.maximum(peak[v], m)

    run_batches(data, model.input_names, step, bar="smoothing", what="smoothing", progress=progress)
    return peak
