"""Quantization schemes (`QScheme`), configs (`QConfig`) and `choose_qparams`.

A `QScheme` says how one tensor is quantized: bit width (2-8), signed or
unsigned integers, symmetric or affine, per-tensor or per-channel (with an
axis). Values of fewer than 8 bits are stored in int8/uint8 containers and
clamped to the range of their bit width.

`choose_qparams(min_val, max_val, scheme)` turns an observed range into
``(scale, zero_point)``; every observer calls it. It follows PyTorch's
observer arithmetic (float32, round half to even), so the same range gives the
same scale and zero point bit for bit:

* the range is widened to include 0.0;
* symmetric: ``scale = max(|min|, |max|) / ((qmax - qmin) / 2)``, zero point 0
  (signed) or ``2**(bits-1)`` (unsigned, 128 for 8 bits);
* affine: ``scale = (max - min) / (qmax - qmin)``,
  ``zero_point = clip(qmin - round(min / scale), qmin, qmax)``;
* ``scale = max(scale, eps)`` with ``eps = finfo(float32).eps`` by default, so
  an all-zero or constant input never divides by zero.

Because the zero point is an integer within [qmin, qmax], 0.0 quantizes to the
zero point and dequantizes to exactly 0.0 under every scheme.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .._quant_ops import dequantize as _dequantize
from .._quant_ops import fake_quantize as _fake_quantize
from .._quant_ops import quantize as _quantize
from .._validate import require_int

EPS = float(np.finfo(np.float32).eps)

_F32_MAX = np.float64(np.finfo(np.float32).max)


def _require_bool(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")
    return bool(value)


@dataclass(frozen=True)
class QScheme:
    """How one tensor is quantized.

    Parameters
    ----------
    bits: integer width, 2 to 8.
    signed: signed integers (int8 container, e.g. [-128, 127]) or unsigned
        (uint8 container, e.g. [0, 255]).
    symmetric: symmetric (zero point fixed at 0, or ``2**(bits-1)`` when
        unsigned) or affine (zero point chosen from the range).
    axis: None for per-tensor; an integer for per-channel along that axis.
    narrow_range: signed only; drop the most negative value, so the grid is
        ``[-(2**(bits-1) - 1), 2**(bits-1) - 1]`` (e.g. [-127, 127]) and a
        symmetric scale covers ``max|x|`` exactly.
    """

    bits: int = 8
    signed: bool = True
    symmetric: bool = False
    axis: int | None = None
    narrow_range: bool = False

    def __post_init__(self):
        object.__setattr__(self, "bits", require_int(self.bits, "bits", 2, 8))
        object.__setattr__(self, "signed", _require_bool(self.signed, "signed"))
        object.__setattr__(self, "symmetric", _require_bool(self.symmetric, "symmetric"))
        if self.axis is not None:
            object.__setattr__(self, "axis", require_int(self.axis, "axis"))
        object.__setattr__(self, "narrow_range", _require_bool(self.narrow_range, "narrow_range"))
        if self.narrow_range and not self.signed:
            raise ValueError("narrow_range: only signed schemes have a narrow range")

    # ---- integer grid -------------------------------------------------
    @property
    def qmin(self) -> int:
        if self.signed:
            return -(1 << (self.bits - 1)) + (1 if self.narrow_range else 0)
        return 0

    @property
    def qmax(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def dtype(self) -> np.dtype:
        """The container dtype: int8 when signed, uint8 when unsigned."""
        return np.dtype(np.int8) if self.signed else np.dtype(np.uint8)

    @property
    def per_channel(self) -> bool:
        return self.axis is not None

    @property
    def symmetric_zero_point(self) -> int:
        """The fixed zero point of a symmetric scheme: 0 signed, 2**(bits-1) unsigned."""
        return 0 if self.signed else 1 << (self.bits - 1)

    def with_axis(self, axis: int | None) -> "QScheme":
        """The same scheme, per-channel along `axis` (or per-tensor for None)."""
        return dataclasses.replace(self, axis=axis)

    # ---- helpers over the kernels ------------------------------------
    def choose_qparams(self, min_val, max_val, eps: float = EPS):
        """``choose_qparams(min_val, max_val, self, eps)``."""
        return choose_qparams(min_val, max_val, self, eps=eps)

    def quantize(self, x, scale, zero_point, *, out=None) -> np.ndarray:
        """Quantizes float32 `x` with `qk.quantize` to this scheme's container
        dtype, clamped to [qmin, qmax] (the bit width's range)."""
        q = _quantize(x, scale, zero_point, axis=self.axis, dtype=self.dtype, out=out)
        full = (-128, 127) if self.signed else (0, 255)
        if (self.qmin, self.qmax) != full:
            np.clip(q, self.qmin, self.qmax, out=q)
        return q

    def dequantize(self, q, scale, zero_point, *, out=None) -> np.ndarray:
        """Dequantizes `q` with `qk.dequantize`: ``float32(q - zero_point) * scale``."""
        return _dequantize(q, scale, zero_point, axis=self.axis, out=out)

    def fake_quantize(self, x, scale, zero_point, *, out=None) -> np.ndarray:
        """Quantize-dequantize float32 `x` on this scheme's grid with `qk.fake_quantize`."""
        return _fake_quantize(x, scale, zero_point, axis=self.axis, qmin=self.qmin, qmax=self.qmax, out=out)


def _range_array(value, name: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == object or arr.dtype == np.bool_ or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise TypeError(f"{name}: expected real numbers, got {arr.dtype}")
    if arr.ndim > 1:
        raise ValueError(f"{name}: expected a scalar or a 1-D array, got shape {arr.shape}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: must be finite, got {value!r}")
    return arr


def _widest_scale(steps) -> np.ndarray:
    """The largest float32 scale with steps * scale finite in float32 (per element of `steps`)."""
    steps = np.maximum(np.asarray(steps, np.float32), np.float32(1))
    cap = (_F32_MAX / steps.astype(np.float64)).astype(np.float32)
    with np.errstate(over="ignore"):
        while not np.all(np.isfinite(steps * cap)):
            cap = np.where(np.isfinite(steps * cap), cap, np.nextafter(cap, np.float32(0)))
    return cap


def choose_qparams(min_val, max_val, scheme: QScheme | None = None, *, eps: float = EPS):
    """Scale and zero point for the range [min_val, max_val] under `scheme`.

    `min_val` and `max_val` are scalars (returns ``(numpy.float32, int)``) or
    1-D arrays of one value per channel (returns ``(float32 array, int32
    array)``). The range is widened to include 0.0; the scale is float32,
    finite and >= `eps`; the zero point is an integer in [qmin, qmax], so 0.0
    is exactly representable. Arithmetic is float32 as in PyTorch's observers.
    Ranges too wide for float32 arithmetic (``max - min`` overflowing) fall
    back to float64, and the scale is capped so that every grid point stays
    finite: values beyond such a range saturate at its ends, never become inf.
    """
    if scheme is None:
        scheme = QScheme(8, signed=False)
    if not isinstance(scheme, QScheme):
        raise TypeError(f"scheme: expected a qk.quant.QScheme, got {type(scheme).__name__}")
    lo64 = _range_array(min_val, "min_val")
    hi64 = _range_array(max_val, "max_val")
    if lo64.shape != hi64.shape:
        raise ValueError(f"max_val: shape {hi64.shape} does not match min_val's {lo64.shape}")
    if np.any(lo64 > hi64):
        raise ValueError(f"min_val: must be <= max_val, got min_val={min_val!r}, max_val={max_val!r}")
    eps = float(eps)
    if not (np.isfinite(eps) and np.float32(eps) > 0):
        raise ValueError(f"eps: must be finite and > 0 in float32, got {eps!r}")
    scalar = lo64.ndim == 0
    lo64 = np.atleast_1d(lo64)
    hi64 = np.atleast_1d(hi64)
    qmin, qmax = scheme.qmin, scheme.qmax
    eps32 = np.float32(eps)
    with np.errstate(over="ignore", invalid="ignore"):
        # Ranges are stored as float32 by the observers: round once to float32
        # (clamping to the float32 range), then compute in float32.
        lo = np.clip(lo64, -_F32_MAX, _F32_MAX).astype(np.float32)
        hi = np.clip(hi64, -_F32_MAX, _F32_MAX).astype(np.float32)
        lo = np.minimum(lo, np.float32(0))
        hi = np.maximum(hi, np.float32(0))
        if scheme.symmetric:
            amax = np.maximum(-lo, hi)
            scale = amax / np.float32((qmax - qmin) / 2)
            zp = scheme.symmetric_zero_point
            scale = np.minimum(np.maximum(scale, eps32), _widest_scale(max(zp - qmin, qmax - zp)))
            zero_point = np.full(scale.shape, zp, dtype=np.int32)
        else:
            scale = (hi - lo) / np.float32(qmax - qmin)
            wide = ~np.isfinite(scale)
            if wide.any():
                wide_scale = (hi.astype(np.float64) - lo.astype(np.float64)) / (qmax - qmin)
                scale[wide] = np.minimum(wide_scale[wide], _F32_MAX).astype(np.float32)
            scale = np.maximum(scale, eps32)
            zero_point = np.float32(qmin) - np.round(lo / scale)
            zero_point = np.clip(zero_point, qmin, qmax).astype(np.int32)
            # every grid point (q - zero_point) * scale must stay finite: a range
            # as wide as float32 saturates at its ends instead of dequantizing to inf
            scale = np.minimum(scale, _widest_scale(np.maximum(qmax - zero_point, zero_point - qmin)))
    scale = scale.astype(np.float32)
    if scalar:
        return np.float32(scale[0]), int(zero_point[0])
    return scale, zero_point


# ---------------------------------------------------------------------------
# QConfig
# ---------------------------------------------------------------------------

MODES = ("static", "dynamic", "weight_only", "fp16")


@dataclass(frozen=True)
class QConfig:
    """What to quantize in a model and how.

    weight: scheme for weights (None: weights stay float).
    activation: scheme for activations (None: activations stay float).
    mode: "static" (activation ranges calibrated ahead of time), "dynamic"
        (activation range measured per batch at run time), "weight_only"
        (activations stay float) or "fp16" (weights and activations in
        float16; no integer schemes).
    weight_observer / activation_observer: callables ``f(scheme) -> observer``
        (an observer class or a ``functools.partial`` of one). Defaults:
        `PerChannelMinMaxObserver` for per-channel weights, `MinMaxObserver`
        otherwise.
    """

    weight: QScheme | None = None
    activation: QScheme | None = None
    mode: str = "static"
    weight_observer: Callable | None = None
    activation_observer: Callable | None = None

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode: expected one of {', '.join(MODES)}, got {self.mode!r}")
        for name in ("weight", "activation"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, QScheme):
                raise TypeError(f"{name}: expected a qk.quant.QScheme or None, got {type(value).__name__}")
        for name in ("weight_observer", "activation_observer"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise TypeError(f"{name}: expected a callable (scheme -> observer) or None, got {type(value).__name__}")
        need = {
            "static": (True, True),
            "dynamic": (True, True),
            "weight_only": (True, False),
            "fp16": (False, False),
        }[self.mode]
        for name, required in zip(("weight", "activation"), need):
            present = getattr(self, name) is not None
            if present != required:
                what = "needs" if required else "takes no"
                raise ValueError(f"{name}: mode {self.mode!r} {what} a {name} scheme")
        if self.activation is not None and self.activation.per_channel:
            raise ValueError("activation: activations are quantized per-tensor (axis=None)")

    def make_weight_observer(self):
        """A new observer for the weights (None when weights are not integer-quantized)."""
        if self.weight is None:
            return None
        from .observers import MinMaxObserver, PerChannelMinMaxObserver

        factory = self.weight_observer
        if factory is None:
            factory = PerChannelMinMaxObserver if self.weight.per_channel else MinMaxObserver
        return factory(self.weight)

    def make_activation_observer(self):
        """A new observer for the activations (None when activations stay float)."""
        if self.activation is None:
            return None
        from .observers import MinMaxObserver

        factory = self.activation_observer or MinMaxObserver
        return factory(self.activation)


INT8_WEIGHT = QScheme(8, signed=True, symmetric=True, axis=0)
"""int8 symmetric per-channel (axis 0, the output channel) weights."""
UINT8_ACTIVATION = QScheme(8, signed=False, symmetric=False)
"""uint8 affine per-tensor activations."""
INT4_WEIGHT = QScheme(4, signed=True, symmetric=True, axis=0)
"""int4 symmetric per-channel weights, stored one value per int8."""


def int8_static(activation_observer: Callable | None = None, *, per_channel: bool = True) -> QConfig:
    """int8 static: per-channel symmetric int8 weights, per-tensor affine uint8
    activations calibrated ahead of time (by default with `MinMaxObserver`;
    pass e.g. ``functools.partial(HistogramObserver, method="entropy")``)."""
    per_channel = _require_bool(per_channel, "per_channel")
    weight = INT8_WEIGHT if per_channel else INT8_WEIGHT.with_axis(None)
    return QConfig(weight=weight, activation=UINT8_ACTIVATION, mode="static", activation_observer=activation_observer)


def int8_dynamic(*, per_channel: bool = True) -> QConfig:
    """int8 dynamic: int8 weights as in `int8_static`; the uint8 activation
    range is measured on each batch at run time."""
    per_channel = _require_bool(per_channel, "per_channel")
    weight = INT8_WEIGHT if per_channel else INT8_WEIGHT.with_axis(None)
    return QConfig(weight=weight, activation=UINT8_ACTIVATION, mode="dynamic")


def int4_weight_only(*, axis: int | None = 0) -> QConfig:
    """int4 weight-only: symmetric int4 weights (per-channel along `axis`,
    per-tensor for None), float activations."""
    return QConfig(weight=INT4_WEIGHT.with_axis(axis), activation=None, mode="weight_only")


def fp16() -> QConfig:
    """float16 weights and activations (no integer quantization)."""
    return QConfig(weight=None, activation=None, mode="fp16")


INT8_STATIC = int8_static()
INT8_DYNAMIC = int8_dynamic()
INT4_WEIGHT_ONLY = int4_weight_only()
FP16 = fp16()
