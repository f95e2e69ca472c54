"""INT8 convolution over NHWC images: `pack_int8_conv_weight` and `int8_conv2d`."""

from __future__ import annotations

import numpy as np

from . import _qk
from ._gemm_ops import _bias, _linear_scale, _scalar_scale, out_format
from ._validate import finish, make_out, require_array, require_int, work_buffer


class Int8ConvWeight:
    """int8 convolution weights (O, C / groups, KH, KW), packed once for
    `int8_conv2d`: per group, a GEMM weight of (KH * KW * C / groups) rows in
    (kh, kw, c) order, the order in which the kernel gathers an NHWC image;
    for a depthwise convolution (groups == C == O), int16 taps (KH * KW, C)
    for the direct kernel. Keeps the original array (`unpack()`)."""

    __slots__ = ("_weight", "groups", "_packed", "_taps")

    def __init__(self, weight: np.ndarray, groups: int):
        self._weight = weight
        self.groups = groups
        o, cg, kh, kw = weight.shape
        og = o // groups
        if self.depthwise:
            self._packed = None
            self._taps = np.ascontiguousarray(weight.reshape(o, kh * kw).T, np.int16)
        else:
            b = weight.reshape(groups, og, cg, kh, kw).transpose(0, 3, 4, 2, 1).reshape(groups, kh * kw * cg, og)
            self._packed = [_qk.PackedWeight(np.ascontiguousarray(b[g]), kh * kw * cg, og) for g in range(groups)]
            self._taps = None

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return self._weight.shape

    @property
    def depthwise(self) -> bool:
        """One input channel per output channel: the direct depthwise kernel runs it."""
        o, cg = self._weight.shape[:2]
        return cg == 1 and self.groups == o and self.groups > 1

    def unpack(self) -> np.ndarray:
        """The original int8 (O, C / groups, KH, KW) array."""
        return self._weight.copy()

    def __reduce__(self):
        return pack_int8_conv_weight, (self._weight, self.groups)

    def __repr__(self) -> str:
        return f"Int8ConvWeight(shape={self.shape}, groups={self.groups})"


def pack_int8_conv_weight(w, groups: int = 1) -> Int8ConvWeight:
    """Packs an int8 convolution weight (O, C / groups, KH, KW) (ONNX's and
    PyTorch's layout) for repeated use by `int8_conv2d`."""
    w = require_array(w, "w", [np.int8])
    if w.ndim != 4:
        raise ValueError(f"w: expected a 4-D (O, C/groups, KH, KW) array, got shape {w.shape}")
    groups = require_int(groups, "groups", 1)
    if w.shape[0] % groups:
        raise ValueError(f"groups: {groups} does not divide the {w.shape[0]} output channels of w")
    if 0 in w.shape:
        raise ValueError(f"w: every dimension must be >= 1, got shape {w.shape}")
    return Int8ConvWeight(np.ascontiguousarray(w), groups)


def _pair(value, name: str, low: int) -> tuple[int, int]:
    vals = (value, value) if np.ndim(value) == 0 else tuple(value)
    if len(vals) != 2:
        raise ValueError(f"{name}: expected an int or 2 ints (h, w), got {value!r}")
    return tuple(require_int(v, name, low) for v in vals)


def _pads(value) -> tuple[int, int, int, int]:
    vals = (value,) * 4 if np.ndim(value) == 0 else tuple(value)
    if len(vals) == 2:
        vals = vals + vals
    if len(vals) != 4:
        raise ValueError(f"pads: expected an int, (h, w) or (top, left, bottom, right), got {value!r}")
    return tuple(require_int(v, "pads", 0) for v in vals)


def int8_conv2d(x_q, w, *, x_zero_point, x_scale=None, w_scale=None, bias=None, strides=1, dilations=1, pads=0,
                relu: bool = False, out_dtype=np.float32, out_scale=None, out_zero_point=None,
                out=None) -> np.ndarray:
    """A quantized 2-D convolution over NHWC images, from exact int32 sums:

        acc[b, y, x, o] = sum over (kh, kw, c) of (x_q[b, y', x', c] - x_zero_point) * w[o, c, kh, kw]

    (padding holds x_zero_point, so it adds exact zeros). Without scales the
    result is `acc` as int32. With `x_scale` and `w_scale` (per output
    channel, or a scalar) it is ``y = x_scale * w_scale[o] * acc + bias[o]``,
    then ReLU if asked, as float32, or requantized to int8/uint8 with
    ``clip(rint(y / out_scale) + out_zero_point)``.

    `x_q`: uint8 (N, H, W, C); `w`: from `pack_int8_conv_weight`, or an int8
    (O, C / groups, KH, KW) array (groups = C / its second dimension);
    `strides`, `dilations`: an int or (h, w); `pads`: an int, (h, w) or
    (top, left, bottom, right). Returns (N, OH, OW, O)."""
    x_q = require_array(x_q, "x_q", [np.uint8])
    if x_q.ndim != 4:
        raise ValueError(f"x_q: expected a 4-D (N, H, W, C) uint8 image batch, got shape {x_q.shape}")
    n, h, wd, c = x_q.shape
    if not isinstance(w, Int8ConvWeight):
        wa = require_array(w, "w", [np.int8])
        if wa.ndim != 4 or wa.shape[1] == 0 or c % wa.shape[1]:
            raise ValueError(f"w: expected an int8 (O, C/groups, KH, KW) array whose second dimension divides "
                             f"the {c} input channels, got shape {wa.shape}")
        w = pack_int8_conv_weight(wa, c // wa.shape[1])
    o, cg, kh, kw = w.shape
    if cg * w.groups != c:
        raise ValueError(f"w: made for {cg * w.groups} input channels ({w.groups} groups of {cg}), x_q has {c}")
    sh, sw = _pair(strides, "strides", 1)
    dh, dw = _pair(dilations, "dilations", 1)
    pt, pl, pb, pr = _pads(pads)
    span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    if h + pt + pb < span_h or wd + pl + pr < span_w:
        raise ValueError(f"w: the dilated kernel ({span_h}x{span_w}) is larger than the padded input "
                         f"({h + pt + pb}x{wd + pl + pr})")
    oh, ow = (h + pt + pb - span_h) // sh + 1, (wd + pl + pr - span_w) // sw + 1
    x_zp = require_int(x_zero_point, "x_zero_point", 0, 255)
    if not isinstance(relu, (bool, np.bool_)):
        raise TypeError(f"relu: expected a bool, got {type(relu).__name__}")
    if (x_scale is None) != (w_scale is None):
        raise ValueError("x_scale: give both x_scale and w_scale (a float result), or neither (int32 sums)")
    if x_scale is None:
        if bias is not None or relu or out_scale is not None or out_zero_point is not None:
            raise ValueError("bias: bias, relu and requantization need x_scale and w_scale")
        kind, scale, odt, os_, ozp, qmin, qmax = 0, None, np.dtype(np.int32), 1.0, 0.0, 0, 0
    else:
        scale = _linear_scale(_scalar_scale(x_scale, "x_scale"), w_scale, o)
        bias = _bias(bias, o)
        odt, requant, os_, ozp, qmin, qmax = out_format(out_dtype, out_scale, out_zero_point)
        kind = 2 if requant else 1
    out = make_out(out, "out", (n, oh, ow, o), odt)
    work = work_buffer(out, x_q, bias, scale)
    geometry = (n, h, wd, c, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, w.groups, o)
    args = (x_zp, kind, scale, bias, bool(relu), os_, ozp, float(qmin), float(qmax), work)
    if w.depthwise:
        _qk.int8_depthwise_conv2d(x_q, geometry, w._taps, *args)
    else:
        _qk.int8_conv2d(x_q, geometry, w._packed, *args)
    return finish(out, work)
