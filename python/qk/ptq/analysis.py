"""Finding what quantization costs, layer by layer: sensitivity, automatic
mixed precision, per-layer error against FP32, and model size."""

from __future__ import annotations

import copy

import numpy as np

from ..graph import GraphModule
from ..nn import Module, Tensor, no_grad
from ..quant import INT8_STATIC, QConfig
from ..quantization import graph as graph_ptq
from .graph import fold_batchnorm, quantizable_layers
from .layers import QuantizedLayer
from .workflow import ObservedLayer, calibrate, convert, prepare


def _quantize(model, qconfig, calib_data, layers, **options):
    prepared = prepare(model, qconfig, layers=layers, **options)
    if isinstance(prepared, graph_ptq.PreparedGraph):
        if not prepared.quant_plan:
            return model  # every layer kept in float
    elif not any(isinstance(m, ObservedLayer) for _, m in prepared.named_modules()):
        return prepared  # every layer kept in float
    if qconfig.mode == "static" or options.get("rounding") == "gptq" or options.get("bias_correction"):
        calibrate(prepared, calib_data, progress=False)
    return convert(prepared)


def sensitivity(model: Module, calib_data, eval_fn, qconfig: QConfig = INT8_STATIC, **options) -> list[dict]:
    """Quantizes one layer at a time (the rest stay FP32) and measures
    `eval_fn(model) -> accuracy`. Returns one row per layer, most sensitive
    first: {"layer", "accuracy", "drop"} with drop = FP32 accuracy - accuracy.
    On a GraphModule the layers are its quantizable nodes; `calib_data` is
    then a list of arrays or feed dicts."""
    baseline = eval_fn(model)
    names = graph_ptq.quantizable_nodes(model) if isinstance(model, GraphModule) else \
        [n for n, _ in quantizable_layers(model)]
    rows = []
    for name in names:
        only = {other: None for other in names if other != name}
        accuracy = eval_fn(_quantize(model, qconfig, calib_data, only, **options))
        rows.append(dict(layer=name, accuracy=accuracy, drop=baseline - accuracy))
    return sorted(rows, key=lambda r: -r["drop"])


def auto_mixed_precision(model: Module, calib_data, eval_fn, qconfig: QConfig = INT8_STATIC, *,
                         max_drop: float = 0.005, fallback: QConfig | None = None, **options):
    """Quantizes every layer, then keeps the most sensitive layers in `fallback`
    (None: FP32; or e.g. qk.quant.FP16) one by one until the accuracy drop is
    at most `max_drop`. Returns (quantized model, report) where report has
    "baseline", "accuracy", "drop", "kept" (layer names) and "sensitivity"."""
    if not 0 <= max_drop:
        raise ValueError(f"max_drop: expected a non-negative accuracy drop, got {max_drop}")
    baseline = eval_fn(model)
    ranking = sensitivity(model, calib_data, eval_fn, qconfig, **options)
    kept: list[str] = []
    for _ in range(len(ranking) + 1):
        qmodel = _quantize(model, qconfig, calib_data, {n: fallback for n in kept}, **options)
        accuracy = eval_fn(qmodel)
        if baseline - accuracy <= max_drop or len(kept) == len(ranking):
            break
        kept.append(ranking[len(kept)]["layer"])
    report = dict(baseline=baseline, accuracy=accuracy, drop=baseline - accuracy, kept=kept, sensitivity=ranking)
    return qmodel, report


def _capture(model: Module, names, x):
    """Runs x through model and returns {name: output array} of the named layers."""
    outputs = {}
    originals = {}
    for name in names:
        layer = model.get_submodule(name)
        originals[name] = layer

        class Recorder(Module):
            def __init__(self, inner, key):
                super().__init__()
                self.inner, self.key = inner, key

            def forward(self, v):
                out = self.inner(v)
                outputs[self.key] = np.array(out.data if isinstance(out, Tensor) else out)
                return out

        model.set_submodule(name, Recorder(layer, name))
    try:
        with no_grad():
            model(Tensor(np.asarray(x, np.float32)))
    finally:
        for name, layer in originals.items():
            model.set_submodule(name, layer)
    return outputs


def compare_layers(model: Module, qmodel: Module, x) -> list[dict]:
    """Per-layer error of a quantized model against its FP32 model on a batch
    `x`: SQNR in dB (10 log10 of signal power over error power) and cosine
    similarity of each quantized layer's output, in model order. Use it to
    find the layer that breaks. For graphs (`qmodel` a converted
    GraphModule), `x` may also be a list of batches or feed dicts; the rows
    then also give each node's op and scheme."""
    if isinstance(qmodel, GraphModule):
        return graph_ptq.compare_nodes(model, qmodel, x if isinstance(x, list) else [x])
    reference = copy.deepcopy(model).eval()
    fold_batchnorm(reference)  # the quantized layers carry the folded BatchNorm
    names = [n for n, m in qmodel.named_modules() if isinstance(m, QuantizedLayer)]
    ref_out = _capture(reference, names, x)
    q_out = _capture(qmodel, names, x)
    rows = []
    for name in names:
        r, q = ref_out[name].astype(np.float64), q_out[name].astype(np.float64)
        if getattr(qmodel.get_submodule(name).core, "relu", False):
            r = np.maximum(r, 0)  # the ReLU was fused into the quantized layer
        noise = np.sum((r - q) ** 2)
        signal = np.sum(r ** 2)
        sqnr = float("inf") if noise == 0 else 10 * np.log10(max(signal, 1e-30) / noise)
        denom = np.linalg.norm(r) * np.linalg.norm(q)
        cosine = float(np.sum(r * q) / denom) if denom else 1.0
        rows.append(dict(layer=name, sqnr_db=float(sqnr), cosine=cosine))
    return rows


def model_size(model: Module) -> int:
    """Bytes of the model's weights: FP32 parameters and buffers, plus what
    quantized layers store (int8 / packed int4 / float16 weights, scales, bias).
    For a GraphModule: its constants plus its quantized nodes' arrays."""
    if isinstance(model, GraphModule):
        return graph_ptq.graph_size(model)
    total = 0
    for _, m in model.named_modules():
        if isinstance(m, QuantizedLayer):
            total += m.nbytes()
        total += sum(p.data.nbytes for p in m._params.values())
        total += sum(np.asarray(getattr(m, b)).nbytes for b in m._buffers)
    return total
