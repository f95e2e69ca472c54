"""Quantize, dequantize and fake-quantize: per-tensor or per-channel."""

from __future__ import annotations

import math

import numpy as np

from . import _qk
from ._validate import (
    finish,
    make_out,
    normalize_axis,
    require_array,
    require_int,
    scales_float32,
    work_buffer,
    zero_points_float32,
)

_RANGES = {np.dtype(np.int8): (-128, 127), np.dtype(np.uint8): (0, 255)}


def _layout(shape, axis):
    """(outer, channels, inner) of a C-contiguous array, and the normalized axis."""
    if axis is None:
        return (1, 1, math.prod(shape)), None
    axis = normalize_axis(axis, len(shape))
    if shape[axis] == 1:  # one channel is per-tensor: one contiguous run, not `outer` tiny ones
        return (1, 1, math.prod(shape)), axis
    outer = math.prod(shape[:axis])
    inner = math.prod(shape[axis + 1:])
    return (outer, shape[axis], inner), axis


def _params(shape, axis, scale, zero_point, zp_low, zp_high):
    if axis is not None and len(shape) == 0:
        raise ValueError("axis: per-channel quantization needs at least a 1-D array, got a 0-d array")
    layout, axis = _layout(shape, axis)
    length = None if axis is None else shape[axis]
    s = scales_float32(scale, "scale", length)
    z = zero_points_float32(zero_point, "zero_point", length, zp_low, zp_high)
    return layout, s, z


def _qdtype(dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in _RANGES:
        raise TypeError(f"dtype: expected numpy.int8 or numpy.uint8, got {dtype!r}")
    return dt


def quantize(x, scale, zero_point=0, *, axis=None, dtype=np.int8, out=None):
    """Quantizes float32 `x` to int8 or uint8.

    ``q = clip(rint(x / scale) + zero_point, qmin, qmax)`` computed in float32
    with round half to even; NaN maps to `zero_point`, +inf to qmax and -inf
    to qmin. With ``axis=None`` `scale` and `zero_point` are scalars
    (per-tensor); with an integer `axis` they are 1-D arrays as long as that
    axis (per-channel).
    """
    qdtype = _qdtype(dtype)
    x = require_array(x, "x", [np.float32])
    qmin, qmax = _RANGES[qdtype]
    layout, s, z = _params(x.shape, axis, scale, zero_point, qmin, qmax)
    out = make_out(out, "out", x.shape, qdtype)
    work = work_buffer(out, x, s, z)
    _qk.quantize(x, work, qdtype == np.uint8, *layout, s, z, float(qmin), float(qmax))
    return finish(out, work)


def dequantize(q, scale, zero_point=0, *, axis=None, out=None):
    """Dequantizes int8 or uint8 `q` to float32: ``float32(q - zero_point) * scale``."""
    q = require_array(q, "q", [np.int8, np.uint8])
    qmin, qmax = _RANGES[q.dtype]
    layout, s, z = _params(q.shape, axis, scale, zero_point, qmin, qmax)
    out = make_out(out, "out", q.shape, np.float32)
    work = work_buffer(out, q, s, z)
    _qk.dequantize(q, q.dtype == np.uint8, work, *layout, s, z)
    return finish(out, work)


def fake_quantize(x, scale, zero_point=0, *, axis=None, qmin=-128, qmax=127, out=None):
    """Quantizes then dequantizes float32 `x` on the integer grid [qmin, qmax],
    in one pass: ``(clip(rint(x / scale) + zero_point, qmin, qmax) - zero_point) * scale``.

    `qmin` and `qmax` may be any integers in [-128, 255], so 2- to 8-bit grids,
    signed or unsigned, all work. NaN maps to 0.
    """
    x = require_array(x, "x", [np.float32])
    qmin = require_int(qmin, "qmin", -128, 255)
    qmax = require_int(qmax, "qmax", -128, 255)
    if qmin > qmax:
        raise ValueError(f"qmin: must be <= qmax, got qmin={qmin}, qmax={qmax}")
    layout, s, z = _params(x.shape, axis, scale, zero_point, qmin, qmax)
    out = make_out(out, "out", x.shape, np.float32)
    work = work_buffer(out, x, s, z)
    _qk.fake_quantize(x, work, *layout, s, z, float(qmin), float(qmax))
    return finish(out, work)


def quantized_add(a, b, a_scale, a_zero_point, b_scale, b_zero_point, out_scale, out_zero_point, *, relu=False,
                  out=None):
    """The sum of two uint8 quantized tensors of one shape, requantized to uint8.

    ``out = clip(rint((a_scale * (a - a_zp) + b_scale * (b - b_zp)) / out_scale) + out_zp, lo, 255)``
    in float32 in that order (no fused multiply-add), halves to even; ``lo``
    is `out_zero_point` with ``relu=True`` (the quantized ReLU), else 0. The
    residual connections of an integer layer chain run on it.
    """
    a = require_array(a, "a", [np.uint8])
    b = require_array(b, "b", [np.uint8])
    if a.shape != b.shape:
        raise ValueError(f"b: expected the shape of a {a.shape}, got {b.shape}")
    args = quantized_add_args(a_scale, a_zero_point, b_scale, b_zero_point, out_scale, out_zero_point, relu)
    out = make_out(out, "out", a.shape, np.uint8)
    work = work_buffer(out, a, b)
    _qk.add_quantized(a, b, work, *args)
    return finish(out, work)


def quantized_add_args(a_scale, a_zero_point, b_scale, b_zero_point, out_scale, out_zero_point, relu) -> tuple:
    """quantized_add's parameters checked and in the kernel's order (scales as
    float32 values, zero points, then the output clamp): graph nodes check
    them once and call the kernel with them directly."""
    params = []
    for name, scale, zp in (("a", a_scale, a_zero_point), ("b", b_scale, b_zero_point),
                            ("out", out_scale, out_zero_point)):
        params += [float(scales_float32(scale, f"{name}_scale", None)[0]),
                   require_int(zp, f"{name}_zero_point", 0, 255)]
    if not isinstance(relu, (bool, np.bool_)):
        raise TypeError(f"relu: expected a bool, got {type(relu).__name__}")
    return (*params, params[5] if relu else 0, 255)
