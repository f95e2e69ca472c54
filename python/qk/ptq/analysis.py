"""Finding what quantization costs, layer by layer: sensitivity, automatic
mixed precision, per-layer error against FP32, and model size."""

from __future__ import annotations

import numpy as np

from ..graph import GraphModule
from ..graph.trace import reads_as_chain
from ..quant import INT8_STATIC, QConfig
from ..quantization import graph as graph_ptq
from .workflow import as_graph, calibrate, convert, prepare


def _graph(model, options: dict, data):
    """The model's graph; a qk.nn model that must be run to be traced runs on
    `example_inputs`, else on the first samples of `data` when it is an array."""
    example = options.pop("example_inputs", None)
    if example is None and not isinstance(model, GraphModule) and not reads_as_chain(model):
        arrays = data[0] if isinstance(data, tuple) and len(data) == 2 else data
        example = arrays[:1] if isinstance(arrays, np.ndarray) else None
    return as_graph(model, example, options.pop("unsupported", "warn"))


def _quantize(model, qconfig, calib_data, layers, **options):
    prepared = prepare(model, qconfig, layers=layers, **options)
    if not prepared.quant_plan:
        return model  # every layer kept in float
    if qconfig.mode == "static" or options.get("rounding") == "gptq" or options.get("bias_correction"):
        calibrate(prepared, calib_data, progress=False)
    return convert(prepared)


def sensitivity(model, calib_data, eval_fn, qconfig: QConfig = INT8_STATIC, **options) -> list[dict]:
    """Quantizes one layer at a time (the rest stay FP32) and measures
    `eval_fn(model) -> accuracy`. Returns one row per layer, most sensitive
    first: {"layer", "accuracy", "drop"} with drop = FP32 accuracy - accuracy.
    The layers are the quantizable nodes of the model's graph (a qk.nn
    model's are named as its modules); `calib_data` as `qk.ptq.calibrate` takes it."""
    baseline = eval_fn(model)
    graph = _graph(model, options, calib_data)
    names = graph_ptq.quantizable_nodes(graph)
    rows = []
    for name in names:
        only = {other: None for other in names if other != name}
        accuracy = eval_fn(_quantize(graph, qconfig, calib_data, only, **options))
        rows.append(dict(layer=name, accuracy=accuracy, drop=baseline - accuracy))
    return sorted(rows, key=lambda r: -r["drop"])


def auto_mixed_precision(model, calib_data, eval_fn, qconfig: QConfig = INT8_STATIC, *,
                         max_drop: float = 0.005, fallback: QConfig | None = None, **options):
    """Quantizes every layer, then keeps the most sensitive layers in `fallback`
    (None: FP32; or e.g. qk.quant.FP16) one by one until the accuracy drop is
    at most `max_drop`. Returns (quantized model, report) where report has
    "baseline", "accuracy", "drop", "kept" (layer names) and "sensitivity"."""
    if not 0 <= max_drop:
        raise ValueError(f"max_drop: expected a non-negative accuracy drop, got {max_drop}")
    baseline = eval_fn(model)
    graph = _graph(model, options, calib_data)
    ranking = sensitivity(graph, calib_data, eval_fn, qconfig, **options)
    kept: list[str] = []
    for _ in range(len(ranking) + 1):
        qmodel = _quantize(graph, qconfig, calib_data, {n: fallback for n in kept}, **options)
        accuracy = eval_fn(qmodel)
        if baseline - accuracy <= max_drop or len(kept) == len(ranking):
            break
        kept.append(ranking[len(kept)]["layer"])
    report = dict(baseline=baseline, accuracy=accuracy, drop=baseline - accuracy, kept=kept, sensitivity=ranking)
    return qmodel, report


def compare_layers(model, qmodel: GraphModule, x, *, example_inputs=None) -> list[dict]:
    """Per-layer error of a quantized model against its FP32 model: SQNR in
    dB (10 log10 of signal power over error power) and cosine similarity of
    each quantized node's output (the error up to that node counts), in graph
    order, with the node's op and scheme. Use it to find the layer that
    breaks. `x` is a batch, or a list of batches or feed dicts; `model` is the
    FP32 GraphModule or qk.nn model `qmodel` was converted from (traced on
    `example_inputs`, or on `x`, when it is not a Sequential)."""
    if not isinstance(qmodel, GraphModule):
        raise TypeError(f"qmodel: expected a quantized GraphModule (qk.ptq.convert), got {type(qmodel).__name__}")
    fp = _graph(model, {"example_inputs": example_inputs, "unsupported": "ignore"}, x)
    return graph_ptq.compare_nodes(fp, qmodel, x if isinstance(x, list) else [x])


def model_size(model) -> int:
    """Bytes of the model's weights: FP32 parameters and buffers, plus what
    quantized nodes store (int8 / packed int4 / float16 weights, scales, bias).
    For a GraphModule: its constants plus its quantized nodes' arrays."""
    if isinstance(model, GraphModule):
        return graph_ptq.graph_size(model)
    total = 0
    for _, m in model.named_modules():
        total += sum(p.data.nbytes for p in m._params.values())
        total += sum(np.asarray(getattr(m, b)).nbytes for b in m._buffers)
    return total
