"""Argument checks shared by the kernel wrappers.

Every public function validates here, so the C++ kernels only ever see
contiguous arrays of the right dtype and size, and users get a TypeError or
ValueError that names the argument.
"""

from __future__ import annotations

import math
import numbers
import operator

import numpy as np


def require_array(value, name: str, dtypes) -> np.ndarray:
    """Returns `value` as a C-contiguous ndarray whose dtype is one of `dtypes`."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(value).__name__}")
    if isinstance(value, np.ma.MaskedArray):
        raise TypeError(f"{name}: masked arrays are not supported (the mask would be ignored); "
                        "pass value.filled(fill) or the data")
    allowed = tuple(np.dtype(d) for d in dtypes)
    if value.dtype not in allowed:
        names = " or ".join(str(d) for d in allowed)
        raise TypeError(f"{name}: expected dtype {names}, got {value.dtype}")
    # Not np.ascontiguousarray: it turns 0-d arrays into 1-d ones. The kernels
    # read whole elements, so a misaligned buffer is copied too.
    return value if value.flags.c_contiguous and value.flags.aligned else value.copy(order="C")


def require_int(value, name: str, low: int | None = None, high: int | None = None) -> int:
    """Returns `value` as a Python int within [low, high]."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__}")
    value = operator.index(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name}: expected an integer in [{low}, {high}], got {value}")
    return value


def normalize_axis(axis, ndim: int) -> int:
    axis = require_int(axis, "axis")
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis: {axis} is out of range for an array of {ndim} dimension(s)")
    return axis % ndim


def make_out(out, name: str, shape, dtype) -> np.ndarray:
    """Returns a new array, or checks a user's `out=` array."""
    dtype = np.dtype(dtype)
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype}, got {out.dtype}")
    if out.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {out.shape}")
    if not out.flags.c_contiguous:
        raise ValueError(f"{name}: must be C-contiguous")
    if not out.flags.writeable:
        raise ValueError(f"{name}: is read-only")
    return out


def work_buffer(out: np.ndarray, *inputs) -> np.ndarray:
    """Where a kernel should write: `out` itself, or a fresh array when `out`
    is misaligned or shares memory with an input (the kernel would read what it already
    wrote, or race with itself across threads). Pair with `finish`."""
    if not out.flags.aligned:  # the kernels write whole elements
        return np.empty_like(out)
    for arr in inputs:
        if isinstance(arr, np.ndarray) and np.may_share_memory(arr, out):
            return np.empty_like(out)
    return out


def finish(out: np.ndarray, work: np.ndarray) -> np.ndarray:
    """Copies a temporary `work` buffer into `out`; returns `out`."""
    if work is not out:
        np.copyto(out, work)
    return out


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _is_real_scalar(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def channel_params(values, name: str, length: int | None) -> np.ndarray:
    """Converts a per-tensor scalar (length None) or a per-channel 1-D sequence
    of `length` values to a 1-D float64 array, checking the shape. A scalar
    given for a per-channel parameter applies to every channel."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name}: expected real numbers, got {arr.dtype}")
    if length is None:
        if arr.size != 1 or arr.ndim > 1:
            raise ValueError(f"{name}: expected a scalar for per-tensor quantization (axis=None), got shape {arr.shape}")
        return arr.reshape(1).astype(np.float64)
    if arr.ndim == 0:
        return np.full(length, arr, dtype=np.float64)
    if arr.ndim != 1 or arr.shape[0] != length:
        raise ValueError(f"{name}: expected a 1-D array of {length} values (the length of the axis), got shape {arr.shape}")
    return arr.astype(np.float64)


def scales_float32(values, name: str, length: int | None) -> np.ndarray:
    """Scales as float32, each finite and > 0 after the cast to float32."""
    if length is None and _is_real_scalar(values):  # fast path: small tensors in QAT loops
        ok = 0 < float(values) <= _FLOAT32_MAX  # False for NaN
        scale = np.array([values if ok else 1.0], dtype=np.float32)
        if not (ok and scale[0] > 0):  # also catches underflow to 0
            raise ValueError(f"{name}: must be finite and > 0 in float32, got {values!r}")
        return scale
    raw = channel_params(values, name, length)
    with np.errstate(over="ignore"):
        scale = raw.astype(np.float32)
    if not (np.isfinite(scale).all() and (scale > 0).all()):
        first = raw[np.argmax(~(np.isfinite(scale) & (scale > 0)))]
        raise ValueError(f"{name}: must be finite and > 0 in float32, got {first!r}")
    return scale


def zero_points_float32(values, name: str, length: int | None, low: int, high: int) -> np.ndarray:
    """Integer zero points within [low, high], passed to the kernels as float32."""
    if length is None and isinstance(values, numbers.Integral) and not isinstance(values, (bool, np.bool_)):
        if not low <= values <= high:
            raise ValueError(f"{name}: expected values in [{low}, {high}], got {values!r}")
        return np.array([values], dtype=np.float32)
    raw = channel_params(values, name, length)
    if not (raw == np.round(raw)).all():  # also rejects NaN and inf
        raise ValueError(f"{name}: expected integers, got {values!r}")
    if raw.size and (raw.min() < low or raw.max() > high):
        raise ValueError(f"{name}: expected values in [{low}, {high}], got {values!r}")
    return raw.astype(np.float32)
