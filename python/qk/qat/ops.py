"""Fake-quantize operations with their training gradients.

Both run the forward pass through the C++ kernel `qk.fake_quantize`
(float32, one fused quantize-dequantize pass); only the backward rules are
NumPy.

- `fake_quantize`: fixed scale and zero point, straight-through estimator
  (STE): the gradient passes unchanged where the input lies inside the clamp
  range ``[(qmin - zp) * s, (qmax - zp) * s]`` and is zero outside.
- `lsq_fake_quantize`: learned step size (LSQ, Esser et al. 2019): the scale
  (and optionally the zero point) is a Tensor that receives a gradient.
"""

from __future__ import annotations

import math

import numpy as np

from .._quant_ops import fake_quantize as _kernel
from .._validate import normalize_axis, require_int
from ..nn import Tensor
from ..nn.functional import custom


def _check_tensor(x, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a qk.nn.Tensor, got {type(x).__name__}")
    return x


def _check_grid(qmin, qmax):
    qmin = require_int(qmin, "qmin", -128, 255)
    qmax = require_int(qmax, "qmax", -128, 255)
    if qmin >= qmax:
        raise ValueError(f"qmin: must be < qmax, got qmin={qmin}, qmax={qmax}")
    return qmin, qmax


def _channel_view(a: np.ndarray, ndim: int, axis: int | None) -> np.ndarray:
    """`a` (a scalar, or one value per channel) shaped to broadcast against an ndim-D input."""
    if axis is None or a.ndim == 0:
        return a
    shape = [1] * ndim
    shape[axis] = -1
    return a.reshape(shape)


def _per_channel_sum(g: np.ndarray, axis: int | None) -> np.ndarray:
    if axis is None:
        return g.sum()
    return g.sum(axis=tuple(i for i in range(g.ndim) if i != axis))


def _run_kernel(x: np.ndarray, scale, zero_point, axis, qmin, qmax) -> np.ndarray:
    # The kernel is float32-only; float64 inputs (gradient checks) are quantized
    # in float32 and handed back in float64.
    out = _kernel(np.ascontiguousarray(x, dtype=np.float32), scale, zero_point, axis=axis, qmin=qmin, qmax=qmax)
    return out if x.dtype == np.float32 else out.astype(x.dtype)


def fake_quantize(x: Tensor, scale, zero_point, qmin: int, qmax: int, axis: int | None = None) -> Tensor:
    """Quantize-dequantize `x` on the grid [qmin, qmax] with a fixed `scale`
    and `zero_point` (scalars, or 1-D per channel along `axis`); backward is
    the straight-through estimator: ``grad_x = grad * (lo <= x <= hi)`` with
    ``lo = (qmin - zp) * scale`` and ``hi = (qmax - zp) * scale``."""
    x = _check_tensor(x, "x")
    qmin, qmax = _check_grid(qmin, qmax)
    if axis is not None and x.ndim:  # (the kernel rejects an axis on a 0-d input)
        axis = normalize_axis(axis, x.ndim)
    scale = np.asarray(scale.data if isinstance(scale, Tensor) else scale, dtype=np.float32)
    zero_point = np.asarray(zero_point)
    out = _run_kernel(x.data, scale, zero_point, axis, qmin, qmax)  # validates scale and zero_point

    def forward(_):
        return out, None

    def backward(_, g):
        zp = zero_point.astype(np.float32)
        lo = _channel_view((np.float32(qmin) - zp) * scale, x.ndim, axis)
        hi = _channel_view((np.float32(qmax) - zp) * scale, x.ndim, axis)
        v = x.data
        return (g * ((v >= lo) & (v <= hi)),)

    return custom(forward, backward, x)


def lsq_grad_scale(numel: int, qmax: int) -> float:
    """LSQ's gradient scale ``1 / sqrt(numel * qmax)`` (numel: elements per scale)."""
    return 1.0 / math.sqrt(max(numel, 1) * max(qmax, 1))


def lsq_fake_quantize(x: Tensor, scale: Tensor, zero_point, qmin: int, qmax: int, axis: int | None = None,
                      grad_scale: float | None = None) -> Tensor:
    """Fake-quantize with a learned step size (LSQ).

    scale: a Tensor (0-d, or 1-D per channel along `axis`), > 0.
    zero_point: integers, or a Tensor of floats learned too (rounded to the
        nearest integer in [qmin, qmax] in the forward pass).
    grad_scale: factor on the scale and zero point gradients; default
        ``1 / sqrt(numel_per_scale * qmax)`` (the paper's g).

    With ``v = x / s`` and ``q = round(v) + zp``, the gradients are (paper, eq. 3):

    - x: ``grad`` where ``qmin < v + zp < qmax``, else 0;
    - s: ``grad * (round(v) - v)`` inside, ``grad * (qmin - zp)`` below,
      ``grad * (qmax - zp)`` above, summed per scale, times `grad_scale`;
    - zp (when learned): 0 inside, ``-grad * s`` outside, summed, times `grad_scale`.
    """
    x = _check_tensor(x, "x")
    scale = _check_tensor(scale, "scale")
    qmin, qmax = _check_grid(qmin, qmax)
    if axis is not None:
        axis = normalize_axis(axis, x.ndim)
    if axis is None and scale.size != 1:
        raise ValueError(f"scale: a per-tensor scale (axis=None) must have one element, got shape {scale.shape}")
    if axis is not None and scale.shape != (x.shape[axis],):
        raise ValueError(f"scale: expected shape ({x.shape[axis]},) for axis {axis} of an input of shape "
                         f"{x.shape}, got {scale.shape}")
    learn_zp = isinstance(zero_point, Tensor)
    if learn_zp and zero_point.shape != scale.shape:
        raise ValueError(f"zero_point: expected the scale's shape {scale.shape}, got {zero_point.shape}")
    zp_data = zero_point.data if learn_zp else np.asarray(zero_point)
    zp = np.clip(np.rint(zp_data), qmin, qmax).astype(np.int32)
    s = np.asarray(scale.data, dtype=np.float32)
    s_kernel = s if axis is not None else s.reshape(())
    zp_kernel = zp if axis is not None or zp.ndim == 0 else zp.reshape(())
    out = _run_kernel(x.data, s_kernel, zp_kernel, axis, qmin, qmax)  # validates s > 0 and zp
    if grad_scale is None:
        grad_scale = lsq_grad_scale(x.size // max(s.size, 1), qmax)

    def forward(*_):
        return out, None

    def backward(_, g):
        sb = _channel_view(s_kernel, x.ndim, axis)
        zb = _channel_view(zp_kernel.astype(np.float32), x.ndim, axis)
        v = (x.data / sb).astype(g.dtype, copy=False)
        shifted = v + zb
        below, above = shifted <= qmin, shifted >= qmax
        inside = ~(below | above)
        gx = g * inside
        ds = np.where(inside, np.rint(v) - v, np.where(below, qmin - zb, qmax - zb))
        gs = (_per_channel_sum(g * ds, axis) * grad_scale).reshape(scale.shape).astype(scale.dtype)
        if not learn_zp:
            return gx, gs
        gz = _per_channel_sum(np.where(inside, 0, -g * sb), axis) * grad_scale
        return gx, gs, gz.reshape(zero_point.shape).astype(zero_point.dtype)

    inputs = (x, scale, zero_point) if learn_zp else (x, scale)
    return custom(forward, backward, *inputs)
