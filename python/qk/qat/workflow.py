"""prepare / from_ptq -> (calibrate) -> train -> freeze -> convert."""

from __future__ import annotations

import copy

import numpy as np

from ..graph import GraphModule
from ..nn import Module
from ..quantization import graph as graph_ptq
from ..quantization import qat_graph
from ..ptq.graph import fold_batchnorm, quantizable_layers, relu_follows, replace_layer
from ..ptq.workflow import ObservedLayer, check_supported, feed, install_quantized, static_int8_core
from ..quant import INT8_STATIC, NotCalibratedError, QConfig
from .modules import _ACTIVE, FakeQuantize, QATConv2d, QATLinear, _check_static, _QATLayer


def _check_bool(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")
    return value


def _make(layer, cfg: QConfig, lsq: bool, relu_name: str | None) -> _QATLayer:
    from ..nn import Conv2d

    return (QATConv2d if isinstance(layer, Conv2d) else QATLinear)(layer, cfg, lsq=lsq, relu_name=relu_name)


def prepare(model: Module, qconfig: QConfig = INT8_STATIC, *, lsq: bool = False, layers: dict | None = None) -> Module:
    """A new model for QAT (`model` is not touched): BatchNorm folded into the
    Linear/Conv2d before it (as `qk.ptq.prepare` does), and every Linear/Conv2d
    replaced by a QATLinear/QATConv2d (float weight, weight FakeQuantize, input
    FakeQuantize).

    qconfig: a static QConfig; weights signed symmetric (2 to 8 bits), per
        tensor or per output channel (axis 0); activations per tensor.
    lsq: learn the scales (LSQ) once the observers are frozen.
    layers: {layer name: QConfig, or None to keep that layer in float32}.

    A `qk.graph.GraphModule` (an imported model) gets FakeQuant nodes on the
    inputs and weights of the layers graph PTQ would quantize
    (`qk.quantization.qat_graph`); `layers` then takes node names or op types.
    """
    if isinstance(model, GraphModule):
        return qat_graph.prepare(model, qconfig, lsq=_check_bool(lsq, "lsq"), layers=layers)
    if not isinstance(model, Module):
        raise TypeError(f"model: expected a qk.nn.Module, got {type(model).__name__}")
    _check_static(qconfig)
    _check_bool(lsq, "lsq")
    if layers is not None and not isinstance(layers, dict):
        raise TypeError(f"layers: expected a dict {{name: QConfig or None}}, got {type(layers).__name__}")
    layers = dict(layers or {})
    qat = copy.deepcopy(model).eval()
    fold_batchnorm(qat)
    check_supported(qat, "warn")
    found = dict(quantizable_layers(qat))
    unknown = sorted(set(layers) - set(found))
    if unknown:
        raise ValueError(f"layers: no Linear/Conv2d named {unknown}; quantizable layers: {sorted(found)}")
    relus = relu_follows(qat)
    for name, layer in found.items():
        cfg = layers.get(name, qconfig)
        if cfg is None:
            continue
        _check_static(cfg, f"layers[{name!r}]")
        qat = replace_layer(qat, name, _make(layer, cfg, lsq, relus.get(name)))
    return qat


def from_ptq(prepared: Module, *, lsq: bool = False) -> Module:
    """A QAT model from a calibrated `qk.ptq.prepare(...)` model (not touched):
    the same folded weights, activation ranges initialised from its observers
    (which keep updating in training until frozen). With `lsq=True` the
    observers start frozen: the PTQ ranges are where the learned scales start.
    A prepared graph gives a QAT graph."""
    if isinstance(prepared, graph_ptq.PreparedGraph):
        return qat_graph.from_ptq(prepared, lsq=_check_bool(lsq, "lsq"))
    if not isinstance(prepared, Module):
        raise TypeError(f"prepared: expected a qk.nn.Module, got {type(prepared).__name__}")
    _check_bool(lsq, "lsq")
    observed = [(n, m) for n, m in prepared.named_modules() if isinstance(m, ObservedLayer)]
    if not observed:
        raise ValueError("prepared: no observed layers; expected a model from qk.ptq.prepare(model, qconfig), "
                         "calibrated with qk.ptq.calibrate")
    options = getattr(prepared, "_qk_ptq_options", {})
    if options.get("rounding", "nearest") != "nearest" or options.get("bias_correction") or options.get("group_size"):
        raise ValueError(f"prepared: QAT learns the weights itself and starts from round-to-nearest; "
                         f"prepare with the default rounding, no bias correction and no group_size, got {options}")
    for name, obs in observed:
        _check_static(obs.qconfig, f"prepared layer {name!r} qconfig")
        if obs.batches == 0:
            raise NotCalibratedError(f"prepared: layer {name!r} has observed no data; "
                                     "run qk.ptq.calibrate(prepared, data) first")
    qat = copy.deepcopy(prepared)
    for name, obs in [(n, m) for n, m in qat.named_modules() if isinstance(m, ObservedLayer)]:
        layer = _make(obs.layer, obs.qconfig, lsq, obs.relu_name)
        fq = layer.input_fq
        scale, zp = obs.observer.qparams()
        act = obs.qconfig.activation
        # Seed the QAT observer with the range those qparams cover, so it continues from there.
        fq.observer.observe(np.array([(act.qmin - zp) * scale, (act.qmax - zp) * scale], np.float32))
        fq.set_qparams(scale, zp)
        if lsq:
            fq.freeze()
            layer.weight_fq.freeze()
        qat = replace_layer(qat, name, layer)
    qat.__dict__.pop("_qk_ptq_options", None)  # PTQ's convert options do not apply
    return qat


def _fake_quantizers(model: Module) -> list[tuple[str, FakeQuantize]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, FakeQuantize)]


def _qat_layers(model: Module, what: str) -> list[tuple[str, _QATLayer]]:
    if not isinstance(model, Module):
        raise TypeError(f"{what}: expected a qk.nn.Module, got {type(model).__name__}")
    if isinstance(model, qat_graph.QATGraph):
        return list(model.weight_fq.items())
    found = [(n, m) for n, m in model.named_modules() if isinstance(m, _QATLayer)]
    if not found:
        raise ValueError(f"{what}: no QAT layers; call qk.qat.prepare(model, qconfig) or qk.qat.from_ptq(prepared) "
                         "first")
    return found


def calibrate(qat_model: Module, data, *, batch_size: int = 256, progress: bool = False) -> Module:
    """Runs `data` (inputs, an (inputs, labels) pair, or an iterable of batches)
    through the model without gradients; every FakeQuantize whose observer is
    enabled records the ranges. Returns the model."""
    _qat_layers(qat_model, "qat_model")
    if isinstance(qat_model, qat_graph.QATGraph):
        return qat_graph.calibrate(qat_model, data)
    fqs = [m for _, m in _fake_quantizers(qat_model)]
    training = qat_model.training
    qat_model.eval()
    for m in fqs:
        m.calibrating = True
    try:
        feed(qat_model, data, batch_size, progress)
    finally:
        for m in fqs:
            m.calibrating = False
        qat_model.train(training)
    return qat_model


def freeze_observers(qat_model: Module) -> Module:
    """Stops every range from updating (with LSQ, the scales are learned from
    here on). Raises NotCalibratedError (a ValueError) naming a quantizer
    that has never observed data."""
    _qat_layers(qat_model, "qat_model")
    for name, fq in _fake_quantizers(qat_model):
        if not fq.observed:
            raise NotCalibratedError(f"qat_model: {name!r} has observed no data; run qk.qat.calibrate(model, data) "
                                     "or some training steps before freezing")
    for _, fq in _fake_quantizers(qat_model):
        fq.freeze()
    return qat_model


class _FreezeAfter:
    """after_step hook of qk.nn.fit: freezes observers once `step >= n_steps`."""

    def __init__(self, n_steps: int, model: Module | None):
        self.n_steps = n_steps
        self.model = model

    def __call__(self, step: int) -> None:
        # Without a model, the quantizers to freeze are those that observed in
        # training since the previous step: the model being trained.
        active = list(_ACTIVE)
        _ACTIVE.clear()
        if step < self.n_steps:
            return
        if self.model is not None:
            freeze_observers(self.model)
            return
        for fq in active:
            if fq.observed:
                fq.freeze()


def freeze_observers_after(n_steps: int, model: Module | None = None):
    """A hook for ``qk.nn.fit(..., after_step=hook)`` that freezes the
    observers after `n_steps` optimizer steps (0: at the first step). Without
    `model` it freezes the model being trained (the quantizers that observed in
    training mode during the last step); pass `model` to name it explicitly."""
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 0:
        raise ValueError(f"n_steps: expected a non-negative int, got {n_steps!r}")
    if model is not None:
        _qat_layers(model, "model")
    return _FreezeAfter(int(n_steps), model)


def convert(qat_model: Module) -> Module:
    """The integer model: every QAT layer becomes a `qk.ptq.QuantizedLayer`
    (static int8 core on `qk.quantized_linear`, the ReLU after it fused), with
    the weights rounded on the weight FakeQuantize's grid and the input
    range of its input FakeQuantize: the same kind of model `qk.ptq.convert` makes.
    A QAT graph converts to the integer GraphModule graph PTQ would give."""
    found = _qat_layers(qat_model, "qat_model")
    if isinstance(qat_model, qat_graph.QATGraph):
        return qat_graph.convert(qat_model)
    for name, layer in found:
        for fq_name in ("input_fq", "weight_fq"):
            if not getattr(layer, fq_name).observed:
                raise NotCalibratedError(f"qat_model: layer {name!r} has no {fq_name} range; run "
                                         "qk.qat.calibrate(model, data) or train before convert")
    model = copy.deepcopy(qat_model).eval()
    for name, layer in _qat_layers(model, "qat_model"):
        n = layer.out_features
        w = layer.weight.data.reshape(n, -1).astype(np.float32)
        if layer.weight_fq.observer_enabled:
            layer.weight_fq.observe(layer.weight.data)  # the range of the final weights, as the next forward would
        w_scale = np.broadcast_to(layer.weight_fq.qparams()[0], (n,)).astype(np.float32)
        x_scale, x_zp = layer.input_fq.qparams()
        bias = None if layer.bias is None else layer.bias.data
        core = static_int8_core(w, w_scale, bias, np.float32(x_scale), int(x_zp), layer.relu_name is not None,
                                layer.qconfig)
        model = install_quantized(model, name, core, n, layer.geometry, layer.relu_name)
    return model
