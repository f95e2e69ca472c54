"""`FakeQuantize`: the quantizer QAT graphs put on layer inputs and weights."""

from __future__ import annotations

import weakref

import numpy as np

from ..nn import Module, Parameter, Tensor
from ..ptq.workflow import check_weight_scheme
from ..quant import EPS, MovingAverageMinMaxObserver, MovingAveragePerChannelMinMaxObserver, NotCalibratedError
from ..quant import QConfig, QScheme
from ..quant.observers import Observer
from .ops import fake_quantize, lsq_fake_quantize


# Quantizers that observed in training since the last freeze_observers_after
# hook call: the model being trained (read and cleared by the hook).
_ACTIVE: "weakref.WeakSet[FakeQuantize]" = weakref.WeakSet()


class FakeQuantize(Module):
    """Fake-quantizes what goes through it on `scheme`'s grid, with a range
    from its observer.

    While `observer_enabled`, each forward in training mode (or during
    `qk.qat.calibrate`) shows the input to the observer and takes the observer's
    (scale, zero point). Once frozen (`qk.qat.freeze_observers`), the range stays
    fixed, or, with `lsq=True`, the scale (and with `learn_zero_point` the zero
    point) is a Parameter the optimizer learns, starting from the frozen value.

    observer: an Observer, or a factory ``f(scheme) -> Observer``; default: a
        moving-average min/max (per channel when the scheme is).
    is_weight: the input is a weight, not data: the observer sees only the
        current tensor (its range is today's min/max, not a history) and runs
        in every mode.
    """

    def __init__(self, scheme: QScheme, observer=None, *, lsq: bool = False, learn_zero_point: bool = False,
                 is_weight: bool = False):
        super().__init__()
        if not isinstance(scheme, QScheme):
            raise TypeError(f"scheme: expected a qk.quant.QScheme, got {type(scheme).__name__}")
        for name, flag in (("lsq", lsq), ("learn_zero_point", learn_zero_point), ("is_weight", is_weight)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name}: expected a bool, got {type(flag).__name__}")
        if learn_zero_point and not lsq:
            raise ValueError("learn_zero_point: a learned zero point needs lsq=True")
        if learn_zero_point and scheme.symmetric:
            raise ValueError("learn_zero_point: a symmetric scheme has a fixed zero point; use an affine scheme")
        if observer is None:
            observer = MovingAveragePerChannelMinMaxObserver if scheme.per_channel else MovingAverageMinMaxObserver
        if not isinstance(observer, Observer):
            if not callable(observer):
                raise TypeError(f"observer: expected an Observer or a factory of one, got {type(observer).__name__}")
            observer = observer(scheme)
        self.scheme, self.observer = scheme, observer
        self.lsq, self.learn_zero_point, self.is_weight = lsq, learn_zero_point, is_weight
        self.observer_enabled = True
        self.calibrating = False  # set by qk.qat.calibrate: observe in eval mode too
        self.register_buffer("observed", np.zeros((), np.bool_))
        shape = (0,) if scheme.per_channel else ()  # per-channel: sized by the first observation
        if lsq:
            self.scale = Parameter(np.ones(shape))
        else:
            self.register_buffer("scale", np.ones(shape, np.float32))
        if learn_zero_point:
            self.zero_point = Parameter(np.zeros(shape))
        else:
            self.register_buffer("zero_point", np.zeros(shape, np.int32))

    # --- ranges ------------------------------------------------------------------

    def observe(self, data: np.ndarray) -> None:
        """Shows `data` to the observer and takes its (scale, zero point)."""
        if self.is_weight:
            self.observer.reset()
        self.observer.observe(np.asarray(data))
        self.set_qparams(*self.observer.qparams())

    def set_qparams(self, scale, zero_point) -> None:
        """Sets the range (e.g. from a PTQ observer); keeps Parameter objects, so optimizers still hold them."""
        scale = np.asarray(scale, np.float32)
        zero_point = np.asarray(zero_point)
        for name, value in (("scale", scale), ("zero_point", zero_point)):
            current = getattr(self, name)
            if isinstance(current, Parameter):
                current.data = value.astype(np.float32)
            elif current.shape == value.shape:
                current[...] = value
            else:
                self.register_buffer(name, value.astype(current.dtype))
        self.observed[...] = True

    def qparams(self):
        """The (scale, zero point) in use: float32 and int32 arrays (0-d per tensor)."""
        if not self.observed:
            raise NotCalibratedError("FakeQuantize: no range yet; run qk.qat.calibrate(model, data), "
                                     "qk.qat.from_ptq(...), or train in train() mode first")
        scale = np.maximum(np.asarray(self.scale.data if self.lsq else self.scale, np.float32), np.float32(EPS))
        zp = self.zero_point.data if self.learn_zero_point else self.zero_point
        zp = np.clip(np.rint(zp), self.scheme.qmin, self.scheme.qmax).astype(np.int32)
        return scale, zp

    def freeze(self) -> None:
        """Stops the observer; with LSQ the scale is learned from here on."""
        if not self.observed:
            raise NotCalibratedError("FakeQuantize: cannot freeze a range that was never observed; run "
                                     "qk.qat.calibrate(model, data) or some training steps first")
        self.observer_enabled = False

    # --- forward -------------------------------------------------------------------

    def forward(self, x):
        if not isinstance(x, Tensor):
            raise TypeError(f"input: expected a qk.nn.Tensor, got {type(x).__name__}")
        if self.observer_enabled and (self.is_weight or self.training or self.calibrating):
            self.observe(x.data)
            if self.training:
                _ACTIVE.add(self)
        scale, zp = self.qparams()
        q = self.scheme
        if self.lsq and not self.observer_enabled:
            # Keep the learned scale positive (an optimizer step may push it below eps).
            self.scale.data = scale.astype(np.float32)
            zero_point = self.zero_point if self.learn_zero_point else zp
            return lsq_fake_quantize(x, self.scale, zero_point, q.qmin, q.qmax, q.axis)
        return fake_quantize(x, scale, zp, q.qmin, q.qmax, q.axis)

    def extra_repr(self):
        state = "observing" if self.observer_enabled else ("learning" if self.lsq else "frozen")
        return f"{self.scheme.bits}-bit, {'per-channel' if self.scheme.per_channel else 'per-tensor'}, {state}"


def _check_static(qconfig, name: str = "qconfig") -> QConfig:
    if not isinstance(qconfig, QConfig):
        raise TypeError(f"{name}: expected a qk.quant.QConfig, got {type(qconfig).__name__}")
    if qconfig.mode != "static":
        raise ValueError(f"{name}: QAT supports mode='static' (quantized weights and activations), "
                         f"got mode={qconfig.mode!r}")
    check_weight_scheme(qconfig)
    return qconfig
