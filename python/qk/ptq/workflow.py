"""prepare -> calibrate -> convert, and the one-call dynamic / weight-only /
FP16 conversions."""

from __future__ import annotations

import copy
import sys
import warnings

import numpy as np

from ..nn import (
    GELU, BatchNorm1d, BatchNorm2d, Dropout, Flatten, Identity, LeakyReLU, MaxPool2d, Module, ReLU, Sequential,
    Tanh, Tensor, no_grad,
)
from ..graph import GraphModule
from ..nn.functional import im2col
from ..quantization import graph as graph_ptq
from ..quant import FP16, INT8_DYNAMIC, INT8_STATIC, NotCalibratedError, QConfig, QScheme
from .graph import QUANTIZABLE, fold_batchnorm, quantizable_layers, relu_follows, replace_layer
from .layers import DynamicInt8Core, FP16Core, QuantizedLayer, StaticInt8Core, WeightOnlyCore, conv_geometry
from .rounding import InputStats, corrected_bias, gptq_quantize

# Modules PTQ knows how to run around quantized layers (they hold no weights to quantize).
_PASSTHROUGH = (Sequential, ReLU, Identity, Flatten, MaxPool2d, Dropout, Tanh, GELU, LeakyReLU, BatchNorm1d,
                BatchNorm2d, QuantizedLayer)
ROUNDINGS = ("nearest", "gptq")


class ObservedLayer(Module):
    """A Linear/Conv2d under calibration: records its input range (and, when
    asked, input statistics for GPTQ / bias correction), then runs as before."""

    def __init__(self, layer, qconfig: QConfig, relu_name: str | None, collect_stats: bool):
        super().__init__()
        self.layer = layer
        self.qconfig = qconfig
        self.relu_name = relu_name
        self.geometry = conv_geometry(layer)
        self.observer = qconfig.make_activation_observer() if qconfig.mode == "static" else None
        k = int(np.prod(layer.weight.shape[1:]))
        self.stats = InputStats(k) if collect_stats else None
        self.batches = 0
        self.finite_batches = 0  # batches with at least one finite input value

    def input_rows(self, data: np.ndarray) -> np.ndarray:
        if self.geometry is None:
            return data.reshape(-1, data.shape[-1])
        kernel, stride, padding = self.geometry
        return im2col(data, kernel, stride, padding)[0]

    def forward(self, x):
        data = np.asarray(x.data, dtype=np.float32)
        if self.observer is not None:
            self.observer.observe(data)
            self.finite_batches += bool(data.size) and bool(np.isfinite(data).any())
        if self.stats is not None:
            self.stats.update(self.input_rows(data))
        self.batches += 1
        return self.layer(x)


def _check_options(rounding, bias_correction, group_size):
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding: expected one of {', '.join(ROUNDINGS)}, got {rounding!r}")
    if not isinstance(bias_correction, bool):
        raise TypeError(f"bias_correction: expected a bool, got {type(bias_correction).__name__}")
    if group_size is not None and (not isinstance(group_size, int) or group_size < 1):
        raise ValueError(f"group_size: expected a positive int or None, got {group_size!r}")
    if group_size is not None and rounding == "gptq":
        raise ValueError("group_size: GPTQ rounding works with per-channel scales; use group_size=None")


def check_supported(model: Module, unsupported: str) -> None:
    """Warns about (or rejects) layers with weights that stay in float32."""
    if unsupported not in ("warn", "error", "ignore"):
        raise ValueError(f"unsupported: expected 'warn', 'error' or 'ignore', got {unsupported!r}")
    for name, m in model.named_modules():
        if isinstance(m, QUANTIZABLE + _PASSTHROUGH) or not m._params:
            continue
        message = (f"layer {name!r} ({type(m).__name__}) has weights PTQ cannot quantize; "
                   "it stays in float32")
        if unsupported == "error":
            raise ValueError(f"model: {message}")
        if unsupported == "warn":
            warnings.warn(message, stacklevel=3)


def prepare(model: Module, qconfig: QConfig = INT8_STATIC, *, layers: dict | None = None, exclude=(),
            rounding: str = "nearest", bias_correction: bool = False, group_size: int | None = None,
            unsupported: str = "warn", activation_matmul: bool = False) -> Module:
    """A copy of `model` (eval mode, BatchNorm folded) whose Linear/Conv2d
    layers record what calibration needs.

    A `qk.graph.GraphModule` (an imported ONNX model) goes through
    `qk.quantization.graph.prepare`: Conv/Gemm/MatMul/Linear nodes with constant
    weights, static or dynamic INT8, `layers` and `exclude` by node name or
    op type;
    `activation_matmul=True` also quantizes MatMuls of two activations.

    qconfig: how every quantizable layer is quantized; `layers` overrides it
        per layer name (a QConfig, or None to keep that layer in float32).
    rounding: "nearest", or "gptq" (error-compensating rounding of weights,
        from calibration inputs; best at 4 bits and below).
    bias_correction: correct each layer's bias for the mean shift its weight
        rounding causes (from calibration inputs).
    group_size: weight-only mode only: one scale per this many input columns.
    unsupported: what to do with other layers that hold weights: "warn"
        (keep them in float32 with a warning), "error" or "ignore".
    """
    if isinstance(model, GraphModule):
        _check_options(rounding, bias_correction, group_size)
        return graph_ptq.prepare(model, qconfig, layers=layers, exclude=exclude, group_size=group_size,
                                 activation_matmul=activation_matmul, rounding=rounding,
                                 bias_correction=bias_correction)
    if not isinstance(model, Module):
        raise TypeError(f"model: expected a qk.nn.Module, got {type(model).__name__}")
    if not isinstance(qconfig, QConfig):
        raise TypeError(f"qconfig: expected a qk.quant.QConfig, got {type(qconfig).__name__}")
    _check_options(rounding, bias_correction, group_size)
    if activation_matmul:
        raise ValueError("activation_matmul: only graphs (GraphModule) have activation x activation MatMuls")
    layers = dict(layers or {})
    layers.update({name: None for name in exclude})
    prepared = copy.deepcopy(model).eval()
    fold_batchnorm(prepared)
    check_supported(prepared, unsupported)
    found = dict(quantizable_layers(prepared))
    unknown = sorted(set(layers) - set(found))
    if unknown:
        raise ValueError(f"layers: no Linear/Conv2d named {unknown}; quantizable layers: {sorted(found)}")
    relus = relu_follows(prepared)
    collect = rounding == "gptq" or bias_correction
    for name, layer in found.items():
        cfg = layers.get(name, qconfig)
        if cfg is None:
            continue
        if not isinstance(cfg, QConfig):
            raise TypeError(f"layers[{name!r}]: expected a QConfig or None, got {type(cfg).__name__}")
        observed = ObservedLayer(layer, cfg, relus.get(name), collect and cfg.mode != "fp16")
        prepared = replace_layer(prepared, name, observed)
    object.__setattr__(prepared, "_qk_ptq_options", dict(rounding=rounding, bias_correction=bias_correction,
                                                         group_size=group_size))
    return prepared


def _batches(data, batch_size: int):
    if isinstance(data, tuple) and len(data) == 2:
        data = data[0]
    if isinstance(data, np.ndarray):
        for i in range(0, len(data), batch_size):
            yield data[i: i + batch_size]
    else:
        for batch in data:
            yield batch[0] if isinstance(batch, tuple) else batch


def calibrate(prepared: Module, data, *, batch_size: int = 256, progress: bool = True) -> Module:
    """Runs `data` (an array of inputs, an (inputs, labels) pair, or an iterable
    of batches) through the prepared model so its observers see the ranges.
    For a prepared graph, batches may also be feed dicts (several inputs)."""
    if isinstance(prepared, graph_ptq.PreparedGraph):
        return graph_ptq.calibrate(prepared, data, progress=progress)
    observed = _observed(prepared)
    if not observed:
        raise ValueError("prepared: no observed layers; call qk.ptq.prepare(model, qconfig) first")
    feed(prepared, data, batch_size, progress)
    return prepared


def feed(model: Module, data, batch_size: int, progress: bool) -> int:
    """Runs calibration `data` through `model` without gradients (shared by PTQ
    and QAT calibration); returns the number of samples, raising if there were none."""
    seen = 0
    with no_grad():
        for batch in _batches(data, batch_size):
            batch = np.asarray(batch, dtype=np.float32)
            if len(batch) == 0:
                continue
            model(Tensor(batch))
            seen += len(batch)
            if progress:
                print(f"\rcalibrating: {seen} samples", end="", file=sys.stderr)
    if progress and seen:
        print(file=sys.stderr)
    if seen == 0:
        raise ValueError("data: calibration got no samples")
    return seen


def _observed(model: Module) -> list[tuple[str, ObservedLayer]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, ObservedLayer)]


def check_weight_scheme(cfg: QConfig) -> None:
    """The integer kernels take signed symmetric weights, per tensor or per output channel (axis 0)."""
    scheme: QScheme = cfg.weight
    if not (scheme.symmetric and scheme.signed):
        raise ValueError("qconfig.weight: the integer kernels need signed symmetric weights "
                         f"(signed=True, symmetric=True), got {scheme}")
    if scheme.axis not in (None, 0):
        raise ValueError(f"qconfig.weight: per-channel weights are quantized along axis 0 (output channels), "
                         f"got axis={scheme.axis}")


def weight_qparams(w: np.ndarray, cfg: QConfig, group_size: int | None = None):
    """Symmetric scales for w (N, K): (N,) per channel / per tensor, or (N, groups) per group."""
    check_weight_scheme(cfg)
    scheme: QScheme = cfg.weight
    n = w.shape[0]
    if group_size is not None:
        groups = -(-w.shape[1] // group_size)
        padded = np.zeros((n, groups * group_size), np.float32)
        padded[:, : w.shape[1]] = w
        from ..quant import PerChannelMinMaxObserver

        obs = PerChannelMinMaxObserver(scheme.with_axis(0))
        obs.observe(padded.reshape(n * groups, group_size))
        return np.asarray(obs.qparams()[0], np.float32).reshape(n, groups)
    obs = cfg.make_weight_observer()
    obs.observe(w)
    scale = np.asarray(obs.qparams()[0], np.float32)
    return np.broadcast_to(scale, (n,)).astype(np.float32)


def _quantize_weight(w, scale, cfg, rounding, stats, group_size):
    scheme = cfg.weight
    if rounding == "gptq":
        return gptq_quantize(w, stats.gram, scale, scheme.qmin, scheme.qmax)
    if group_size is not None:
        n, groups = scale.shape
        padded = np.zeros((n, groups * group_size), np.float32)
        padded[:, : w.shape[1]] = w
        q = scheme.with_axis(0).quantize(padded.reshape(n * groups, group_size), scale.reshape(-1), 0)
        return q.reshape(n, -1)[:, : w.shape[1]]
    return scheme.with_axis(0).quantize(np.ascontiguousarray(w), scale, 0)


def _dequantized(q, scale, group_size):
    if group_size is None:
        return q.astype(np.float64) * scale[:, None]
    return q.astype(np.float64) * np.repeat(scale, group_size, axis=1)[:, : q.shape[1]]


def _make_core(name: str, obs: ObservedLayer, options: dict):
    layer, cfg = obs.layer, obs.qconfig
    relu = obs.relu_name is not None
    n = layer.weight.shape[0]
    w = layer.weight.data.reshape(n, -1).astype(np.float32)
    bias = None if layer.bias is None else layer.bias.data
    if cfg.mode == "fp16":
        return FP16Core(w, bias, relu)
    group_size = options["group_size"] if cfg.mode == "weight_only" else None
    if (options["rounding"] == "gptq" or options["bias_correction"]) and (obs.stats is None or obs.stats.count == 0):
        raise NotCalibratedError(f"layer {name!r}: GPTQ rounding and bias correction need calibration data; "
                                 "run qk.ptq.calibrate(prepared, data) before convert")
    scale = weight_qparams(w, cfg, group_size)
    q = _quantize_weight(w, scale, cfg, options["rounding"], obs.stats, group_size)
    if options["bias_correction"]:
        bias = corrected_bias(bias, w, _dequantized(q, scale, group_size), obs.stats.mean)
    bits = cfg.weight.bits
    if cfg.mode == "static":
        if obs.batches == 0:
            raise NotCalibratedError(f"layer {name!r}: no calibration data observed; "
                                     "run qk.ptq.calibrate(prepared, data) before convert")
        if obs.finite_batches == 0:
            raise NotCalibratedError(f"layer {name!r}: its calibration inputs held no finite value (all NaN or "
                                     "inf), so they define no range")
        x_scale, x_zp = obs.observer.qparams()
        return static_int8_core(w, scale, bias, x_scale, x_zp, relu, cfg, weight_q=q)
    if cfg.mode == "dynamic":
        return DynamicInt8Core(q, scale, bias, relu, bits)
    return WeightOnlyCore(q, scale, bias, relu, bits, group_size)


def convert(prepared: Module) -> Module:
    """The quantized model: every observed layer becomes a `QuantizedLayer`
    running on qk's kernels, and a ReLU right after it is fused into it.
    A prepared graph converts to a GraphModule with integer nodes."""
    if isinstance(prepared, graph_ptq.PreparedGraph):
        return graph_ptq.convert(prepared)
    if not isinstance(prepared, Module):
        raise TypeError(f"prepared: expected a qk.nn.Module, got {type(prepared).__name__}")
    observed = _observed(prepared)
    if not observed:
        raise ValueError("prepared: no observed layers; call qk.ptq.prepare(model, qconfig) first")
    options = getattr(prepared, "_qk_ptq_options")
    model = copy.deepcopy(prepared)
    for name, obs in _observed(model):
        core = _make_core(name, obs, options)
        model = install_quantized(model, name, core, obs.layer.weight.shape[0], obs.geometry, obs.relu_name)
    return model


def static_int8_core(w: np.ndarray, w_scale: np.ndarray, bias, x_scale, x_zero_point, relu: bool, cfg: QConfig,
                     weight_q: np.ndarray | None = None) -> StaticInt8Core:
    """The static int8 core of float weights `w` (N, K) under `cfg` (shared by PTQ and QAT):
    weights rounded to nearest on the grid of `w_scale` (N,) unless `weight_q` is given."""
    if weight_q is None:
        weight_q = cfg.weight.with_axis(0).quantize(np.ascontiguousarray(w, np.float32), w_scale, 0)
    act = cfg.activation
    return StaticInt8Core(weight_q, w_scale, bias, x_scale, x_zero_point, relu, cfg.weight.bits,
                          (act.qmin, act.qmax))


def install_quantized(model: Module, name: str, core, out_features: int, geometry, relu_name: str | None) -> Module:
    """Puts a QuantizedLayer running `core` at `name` and fuses the ReLU after it
    (replaced by Identity); returns the model (the layer itself when name is "")."""
    model = replace_layer(model, name, QuantizedLayer(core, out_features, geometry))
    if relu_name is not None:
        model.set_submodule(relu_name, Identity())
    return model


def _convert_without_data(model, qconfig, **options):
    return convert(prepare(model, qconfig, **options))


def quantize_dynamic(model: Module, qconfig: QConfig = INT8_DYNAMIC, **options) -> Module:
    """int8 weights, activations quantized per batch at run time; no calibration data."""
    if qconfig.mode != "dynamic":
        raise ValueError(f"qconfig: expected a dynamic config (mode='dynamic'), got mode={qconfig.mode!r}")
    if isinstance(model, GraphModule):
        return graph_ptq.quantize_dynamic(model, qconfig, **options)
    return _convert_without_data(model, qconfig, **options)


def quantize_weight_only(model: Module, bits: int = 4, *, group_size: int | None = None, calibration_data=None,
                         rounding: str = "nearest", **options) -> Module:
    """Integer weights (int4 packed two per byte, or int2..int8), float activations.
    GPTQ rounding (`rounding="gptq"`) needs `calibration_data`."""
    from ..quant import QScheme as _QScheme

    cfg = QConfig(weight=_QScheme(bits, signed=True, symmetric=True, axis=0), activation=None, mode="weight_only")
    prepared = prepare(model, cfg, group_size=group_size, rounding=rounding, **options)
    if calibration_data is not None:
        calibrate(prepared, calibration_data, progress=False)
    return convert(prepared)


def quantize_fp16(model: Module, **options) -> Module:
    """float16 weights (converted to float32 at each call by qk.fp16_to_fp32)."""
    return _convert_without_data(model, FP16, **options)
