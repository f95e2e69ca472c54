"""prepare / from_ptq -> (calibrate) -> train -> freeze -> convert, on graphs
(qk.quantization.qat_graph); a qk.nn model is traced first."""

from __future__ import annotations

import numpy as np

from ..nn import Module
from ..ptq.workflow import as_graph
from ..quantization import graph as graph_ptq
from ..quantization import qat_graph
from ..quant import INT8_STATIC, NotCalibratedError, QConfig
from .modules import _ACTIVE, FakeQuantize, _check_static


def _check_bool(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")
    return value


def prepare(model: Module, qconfig: QConfig = INT8_STATIC, *, lsq: bool = False, layers: dict | None = None,
            exclude=(), example_inputs=None) -> qat_graph.QATGraph:
    """A QAT graph of `model` (not touched): the model as a graph (a qk.nn
    model is traced and its BatchNorm folded, as `qk.ptq.prepare` does), with
    FakeQuant nodes on the inputs and weights of the layers graph PTQ would
    quantize. Its float weights are the parameters the optimizer trains.

    qconfig: a static QConfig; weights signed symmetric (2 to 8 bits), per
        tensor or per output channel; activations per tensor.
    lsq: learn the scales (LSQ) once the observers are frozen.
    layers: {node name or op type: QConfig, or None to keep it in float32}
        (a traced model's Linear/Conv2d nodes are named as its modules).
    example_inputs: a batch, to trace a model that is not a Sequential of
        standard layers.
    """
    _check_static(qconfig)
    _check_bool(lsq, "lsq")
    if layers is not None and not isinstance(layers, dict):
        raise TypeError(f"layers: expected a dict {{name: QConfig or None}}, got {type(layers).__name__}")
    return qat_graph.prepare(as_graph(model, example_inputs), qconfig, lsq=lsq, layers=layers, exclude=exclude)


def from_ptq(prepared, *, lsq: bool = False) -> qat_graph.QATGraph:
    """A QAT graph from a calibrated `qk.ptq.prepare(...)` model (not touched):
    the same folded weights, activation ranges initialised from its observers
    (which keep updating in training until frozen). With `lsq=True` the
    observers start frozen: the PTQ ranges are where the learned scales start."""
    if not isinstance(prepared, graph_ptq.PreparedGraph):
        raise TypeError(f"prepared: expected the result of qk.ptq.prepare(model, qconfig), calibrated with "
                        f"qk.ptq.calibrate; got {type(prepared).__name__}")
    _check_bool(lsq, "lsq")
    if prepared.rounding != "nearest" or prepared.bias_correction or prepared.group_size:
        raise ValueError("prepared: QAT learns the weights itself and starts from round-to-nearest; prepare with "
                         "the default rounding, no bias correction and no group_size")
    if prepared.batches == 0:
        raise NotCalibratedError("prepared: it has observed no data; run qk.ptq.calibrate(prepared, data) first")
    return qat_graph.from_ptq(prepared, lsq=lsq)


def _fake_quantizers(model: qat_graph.QATGraph) -> list[tuple[str, FakeQuantize]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, FakeQuantize)]


def _check_qat(model, what: str) -> qat_graph.QATGraph:
    if not isinstance(model, qat_graph.QATGraph):
        raise TypeError(f"{what}: expected a QAT model from qk.qat.prepare(model, qconfig) or "
                        f"qk.qat.from_ptq(prepared), got {type(model).__name__}")
    return model


def calibrate(qat_model, data, *, batch_size: int = 32, progress: bool = False):
    """Runs `data` (inputs, an (inputs, labels) pair, or an iterable of batches
    or feed dicts) through the model without gradients; every FakeQuantize
    whose observer is enabled records the ranges. Returns the model."""
    return qat_graph.calibrate(_check_qat(qat_model, "qat_model"), data, batch_size=batch_size, progress=progress)


def freeze_observers(qat_model):
    """Stops every range from updating (with LSQ, the scales are learned from
    here on). Raises NotCalibratedError (a ValueError) naming a quantizer
    that has never observed data."""
    _check_qat(qat_model, "qat_model")
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
        _check_qat(model, "model")
    return _FreezeAfter(int(n_steps), model)


def convert(qat_model):
    """The integer GraphModule: the trained weights rounded on each weight
    FakeQuantize's grid, input ranges from the activation quantizers: the
    same integer graph `qk.ptq.convert` gives."""
    return qat_graph.convert(_check_qat(qat_model, "qat_model"))
