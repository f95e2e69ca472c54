"""prepare -> calibrate -> convert, and the one-call dynamic / weight-only /
FP16 conversions: the public front of graph PTQ (qk.quantization.graph),
which every model reaches as a graph (a qk.nn model is traced), and the
weight rounding the integer layers share."""

from __future__ import annotations

import warnings

import numpy as np

from ..nn import Module
from ..graph import GraphModule
from ..graph.trace import STANDARD_LAYERS
from ..quantization import graph as graph_ptq
from ..quant import FP16, INT8_DYNAMIC, INT8_STATIC, QConfig, QScheme
from .layers import StaticInt8Core
from .rounding import gptq_quantize

ROUNDINGS = ("nearest", "gptq")


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
    """Warns about (or rejects) qk.nn layers with weights that are not Linear/Conv2d: what
    their operations compute is quantized only where it is a MatMul of a constant weight."""
    for name, m in model.named_modules():
        if isinstance(m, STANDARD_LAYERS) or not m._params:  # Linear/Conv2d quantize, BatchNorm folds
            continue
        message = (f"layer {name!r} ({type(m).__name__}) is not a Linear/Conv2d; its weights stay in float32 "
                   "unless it multiplies them as a MatMul")
        if unsupported == "error":
            raise ValueError(f"model: {message}")
        if unsupported == "warn":
            warnings.warn(message, stacklevel=3)


def as_graph(model, example_inputs=None, unsupported: str = "warn") -> GraphModule:
    """The GraphModule quantization works on: a GraphModule as it is, a qk.nn
    model traced (a Sequential of standard layers needs no `example_inputs`;
    any other model is run once on them) with BatchNorm folded."""
    if unsupported not in ("warn", "error", "ignore"):
        raise ValueError(f"unsupported: expected 'warn', 'error' or 'ignore', got {unsupported!r}")
    if isinstance(model, Module) and not isinstance(model, GraphModule):
        check_supported(model, unsupported)
    return graph_ptq.as_graph_module(model, example_inputs)


def prepare(model: Module, qconfig: QConfig = INT8_STATIC, *, layers: dict | None = None, exclude=(),
            rounding: str = "nearest", bias_correction: bool = False, group_size: int | None = None,
            unsupported: str = "warn", activation_matmul: bool = False, example_inputs=None):
    """Graph PTQ, step 1 (`qk.quantization.graph.prepare`): the model as a
    graph whose quantizable nodes (Conv/Gemm/MatMul with constant weights)
    get observers on their inputs. A qk.nn model is traced first
    (`qk.graph.trace`, BatchNorm folded): its Linear/Conv2d layers are nodes
    named as the modules ("0", "features.conv1"); a model that is not a
    Sequential of standard layers needs `example_inputs` (a batch) to be
    traced. Returns a `PreparedGraph` (the model itself is not touched).

    qconfig: how every quantizable layer is quantized; `layers` overrides it
        per node name or op type (a QConfig, or None to keep it in float32);
        `exclude` lists names or op types kept in float32.
    rounding: "nearest", or "gptq" (error-compensating rounding of weights,
        from calibration inputs; best at 4 bits and below).
    bias_correction: correct each layer's bias for the mean shift its weight
        rounding causes (from calibration inputs).
    group_size: weight-only mode only: one scale per this many input columns.
    unsupported: what to do with other qk.nn layers that hold weights: "warn"
        (keep them in float32 with a warning), "error" or "ignore".
    activation_matmul: also quantize MatMuls of two activations statically.
    """
    if not isinstance(qconfig, QConfig):
        raise TypeError(f"qconfig: expected a qk.quant.QConfig, got {type(qconfig).__name__}")
    _check_options(rounding, bias_correction, group_size)
    return graph_ptq.prepare(as_graph(model, example_inputs, unsupported), qconfig, layers=layers, exclude=exclude,
                             group_size=group_size, activation_matmul=activation_matmul, rounding=rounding,
                             bias_correction=bias_correction)


def calibrate(prepared, data, *, batch_size: int = 32, progress: bool = True):
    """Graph PTQ, step 2: runs `data` (an array of inputs, an (inputs, labels)
    pair, or an iterable of batches or feed dicts) through the prepared model
    so its observers see the ranges."""
    return graph_ptq.calibrate(prepared, data, batch_size=batch_size, progress=progress)


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


def convert(prepared) -> GraphModule:
    """Graph PTQ, step 3: the quantized GraphModule. Every planned layer
    becomes an integer node on qk's kernels (bias and a following ReLU fused)."""
    return graph_ptq.convert(prepared)


def static_int8_core(w: np.ndarray, w_scale: np.ndarray, bias, x_scale, x_zero_point, relu: bool, cfg: QConfig,
                     weight_q: np.ndarray | None = None) -> StaticInt8Core:
    """The static int8 core of float weights `w` (N, K) under `cfg` (shared by PTQ and QAT):
    weights rounded to nearest on the grid of `w_scale` (N,) unless `weight_q` is given."""
    if weight_q is None:
        weight_q = cfg.weight.with_axis(0).quantize(np.ascontiguousarray(w, np.float32), w_scale, 0)
    act = cfg.activation
    return StaticInt8Core(weight_q, w_scale, bias, x_scale, x_zero_point, relu, cfg.weight.bits,
                          (act.qmin, act.qmax))


def _convert_without_data(model, qconfig, **options):
    return convert(prepare(model, qconfig, **options))


def quantize_dynamic(model: Module, qconfig: QConfig = INT8_DYNAMIC, **options) -> GraphModule:
    """int8 weights, activations quantized per batch at run time; no calibration data."""
    if not isinstance(qconfig, QConfig) or qconfig.mode != "dynamic":
        raise ValueError(f"qconfig: expected a dynamic config (mode='dynamic'), got {qconfig!r}")
    return _convert_without_data(model, qconfig, **options)


def quantize_weight_only(model: Module, bits: int = 4, *, group_size: int | None = None, calibration_data=None,
                         rounding: str = "nearest", **options) -> GraphModule:
    """Integer weights (int4 packed two per byte, or int2..int8), float activations.
    GPTQ rounding (`rounding="gptq"`) needs `calibration_data`."""
    from ..quant import QScheme as _QScheme

    cfg = QConfig(weight=_QScheme(bits, signed=True, symmetric=True, axis=0), activation=None, mode="weight_only")
    prepared = prepare(model, cfg, group_size=group_size, rounding=rounding, **options)
    if calibration_data is not None:
        calibrate(prepared, calibration_data, progress=False)
    return convert(prepared)


def quantize_fp16(model: Module, **options) -> GraphModule:
    """float16 weights (converted to float32 at each call by qk.fp16_to_fp32)."""
    return _convert_without_data(model, FP16, **options)
