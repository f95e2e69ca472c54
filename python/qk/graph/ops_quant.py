"""The ONNX quantization ops, so QDQ and integer-op models (qk's own exports,
ONNX Runtime's quantizer's) import and run: QuantizeLinear / DequantizeLinear
(per tensor or per axis) on qk's kernels where the types allow,
DynamicQuantizeLinear, MatMulInteger and ConvInteger in exact integer
arithmetic. They carry no gradients.
"""

from __future__ import annotations

import numpy as np

from .. import _quant_ops
from ..nn.tensor import Tensor
from .ops import data_of, norm_axis, only, register
from .ops_nn import _spatial_attrs, conv2d


def _axis_view(v, x, axis):
    """A per-axis parameter reshaped to broadcast along `axis` of x."""
    v = np.asarray(v)
    if v.ndim == 0 or v.size == 1:
        return v.reshape(())
    shape = [1] * x.ndim
    shape[norm_axis(axis, x.ndim)] = v.size
    return v.reshape(shape)


_check_q = only({"block_size": {0}, "saturate": {1}})


def _check_dq(attrs, n_in, n_out):
    only({"saturate": {1}})(attrs, n_in, n_out)
    block = attrs.get("block_size", 0)
    if not isinstance(block, (int, np.integer)) or block < 0:
        raise ValueError(f"attribute block_size={block!r} is not supported (a non-negative int is)")
    if attrs.get("output_dtype") not in (None, 0, np.dtype(np.float32)):
        raise ValueError(f"attribute output_dtype={attrs['output_dtype']} is not supported (float32 is)")


def _blocks_expanded(v, q, axis, block, name):
    """A blocked scale or zero point (q's rank, ceil(q.shape[axis] / block)
    along `axis`) repeated to q's shape."""
    v = np.asarray(v)
    want = list(q.shape)
    want[axis] = -(-q.shape[axis] // block)
    if v.shape != tuple(want):
        raise ValueError(f"{name}: blocked DequantizeLinear (block_size={block}, axis={axis}) of an input of shape "
                         f"{q.shape} needs shape {tuple(want)}, got {v.shape}")
    return np.take(np.repeat(v, block, axis=axis), np.arange(q.shape[axis]), axis=axis)


# versions 22-28 add element types (and output_dtype, block_size, checked above)
@register("QuantizeLinear", check=_check_q, max_version=28)
def _quantize_linear(attrs, x, scale, zero_point=None):
    xd = np.ascontiguousarray(data_of(x), np.float32)
    s = np.asarray(data_of(scale), np.float32)
    out_dtype = attrs.get("output_dtype") or np.uint8
    zp = np.zeros((), out_dtype) if zero_point is None else np.asarray(data_of(zero_point))
    axis = attrs.get("axis", 1)
    per_axis = s.size > 1
    if zp.dtype in (np.uint8, np.int8):
        return _quant_ops.quantize(xd, s if per_axis else float(s.reshape(-1)[0]),
                                   zp.astype(np.int32) if per_axis else int(zp.reshape(-1)[0]),
                                   axis=norm_axis(axis, xd.ndim) if per_axis else None, dtype=zp.dtype)
    info = np.iinfo(zp.dtype)
    q = np.rint(xd / _axis_view(s, xd, axis)) + _axis_view(zp, xd, axis)
    return np.clip(np.nan_to_num(q), info.min, info.max).astype(zp.dtype)


@register("DequantizeLinear", check=_check_dq, max_version=28)
def _dequantize_linear(attrs, x, scale, zero_point=None):
    q = np.asarray(data_of(x))
    s = np.asarray(data_of(scale), np.float32)
    axis = attrs.get("axis", 1)
    zp = None if zero_point is None else np.asarray(data_of(zero_point)).astype(np.int64)
    block = attrs.get("block_size", 0)
    if block:  # opset 21: one scale (and zero point) per `block` elements along axis
        axis = norm_axis(axis, q.ndim)
        s = _blocks_expanded(s, q, axis, block, "scale")
        zp = 0 if zp is None else _blocks_expanded(zp, q, axis, block, "zero_point")
    else:
        s = _axis_view(s, q, axis)
        zp = 0 if zp is None else _axis_view(zp, q, axis)
    return Tensor(((q.astype(np.int64) - zp).astype(np.float32) * s).astype(np.float32))


@register("DynamicQuantizeLinear", num_outputs=3)
def _dynamic_quantize_linear(attrs, x):
    xd = np.asarray(data_of(x), np.float32)
    lo = min(float(xd.min()), 0.0) if xd.size else 0.0
    hi = max(float(xd.max()), 0.0) if xd.size else 0.0
    scale = np.float32((hi - lo) / 255) if hi > lo else np.float32(1.0)
    zp = np.uint8(np.clip(np.rint(0 - lo / scale), 0, 255))
    q = np.clip(np.rint(xd / scale) + zp, 0, 255).astype(np.uint8)
    return q, np.asarray(scale, np.float32), np.asarray(zp, np.uint8)


def _centered(v, zp, axis=None, like=None):
    v = np.asarray(data_of(v)).astype(np.int64)
    if zp is None:
        return v
    z = np.asarray(data_of(zp)).astype(np.int64)
    if z.size > 1 and axis is not None:
        shape = [1] * v.ndim
        shape[axis] = z.size
        z = z.reshape(shape)
    return v - z


@register("MatMulInteger")
def _matmul_integer(attrs, a, b, a_zp=None, b_zp=None):
    av = _centered(a, a_zp)
    bv = _centered(b, b_zp, axis=np.ndim(data_of(b)) - 1)
    return np.matmul(av, bv).astype(np.int32)  # exact: |sums| stay far below 2^53


@register("ConvInteger")
def _conv_integer(attrs, x, w, x_zp=None, w_zp=None):
    xv = _centered(x, x_zp).astype(np.float64)  # float64 holds these integer sums exactly
    wv = _centered(w, w_zp, axis=0).astype(np.float64)
    strides, dil, pads = _spatial_attrs(attrs, xv.shape[2:], wv.shape[2:])
    y = conv2d(Tensor(xv), Tensor(wv), None, strides, dil, pads, attrs.get("group", 1)).data
    return np.rint(y).astype(np.int32)
