"""Convolution, pooling, normalization and resize ops of the registry.

Convolutions are written over kernel taps: each tap (i, j) of the kernel is a
strided view of the padded input, so strides, dilations, asymmetric pads and
groups are one code path (1-D inputs run as 2-D with height 1). The GEMM is
one batched matmul per group; depthwise convolutions (one input channel per
group) skip the GEMM and accumulate taps directly.
"""

from __future__ import annotations

import numpy as np

from .. import _float_ops, _qk
from ..nn.tensor import Tensor, is_grad_enabled
from .ops import _untracked, as_tensor, data_of, floats, ints, is_tensor, only, register, untracked_reduce


# --- geometry shared by convolutions and pools -----------------------------------------------


def _spatial_attrs(attrs, in_hw, kernel):
    """(strides, dilations, pads as (top, left, bottom, right)) for a 2-D window op."""
    nd = len(kernel)
    strides = list(attrs.get("strides") or [1] * nd)
    dil = list(attrs.get("dilations") or [1] * nd)
    auto = attrs.get("auto_pad", "NOTSET")
    if auto in ("NOTSET", "VALID"):
        pads = list(attrs.get("pads") or [0] * (2 * nd)) if auto == "NOTSET" else [0] * (2 * nd)
    else:
        pads = [0] * (2 * nd)
        for i in range(nd):
            out = -(-in_hw[i] // strides[i])
            total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dil[i] + 1 - in_hw[i])
            small, big = total // 2, total - total // 2
            pads[i], pads[i + nd] = (small, big) if auto == "SAME_UPPER" else (big, small)
    if nd == 1:
        return [1] + strides, [1] + dil, [0, pads[0], 0, pads[1]]
    return strides, dil, pads


def _check_window(attrs, n_in, n_out):
    only({"auto_pad": {"NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"}})(attrs, n_in, n_out)
    k = attrs.get("kernel_shape")
    if k is not None and len(k) not in (1, 2):
        raise ValueError(f"kernel_shape: {len(k)}-D windows are not supported (qk runs 1-D and 2-D)")


def _as_4d(x):
    """(array as N, C, H, W, whether it was 1-D spatial)."""
    return (x.reshape(x.shape[:2] + (1,) + x.shape[2:]), True) if x.ndim == 3 else (x, False)


def _out_size(size, k, s, d, pb, pe, ceil=False):
    span = size + pb + pe - (d * (k - 1) + 1)
    if span < 0:
        raise ValueError(f"input: spatial size {size} (padded {size + pb + pe}) is smaller than the window "
                         f"{d * (k - 1) + 1}")
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= size + pb:  # the last window must start inside the input or its left pad
        out -= 1
    return out


def _taps(xp, kh, kw, strides, dil, oh, ow):
    sh, sw = strides
    dh, dw = dil
    return [(i * dh, j * dw, xp[:, :, i * dh: i * dh + sh * (oh - 1) + 1: sh, j * dw: j * dw + sw * (ow - 1) + 1: sw])
            for i in range(kh) for j in range(kw)]


def _scatter_taps(shape, cols, kh, kw, strides, dil, oh, ow, dtype):
    """Adjoint of _taps: sums cols[:, :, t] (N, C, K, OH, OW) back into a canvas of `shape`."""
    canvas = np.zeros(shape, dtype)
    sh, sw = strides
    for t, (i, j) in enumerate((i * dil[0], j * dil[1]) for i in range(kh) for j in range(kw)):
        canvas[:, :, i: i + sh * (oh - 1) + 1: sh, j: j + sw * (ow - 1) + 1: sw] += cols[:, :, t]
    return canvas


# --- convolution ---------------------------------------------------------------------------


def conv2d(x, w, b, strides, dil, pads, group):
    """Differentiable grouped 2-D convolution of Tensors x (N, C, H, W), w (O, C/G, KH, KW), b (O,) or None."""
    xd, wd = x.data, w.data
    n, c, h, wid = xd.shape
    o, cg, kh, kw = wd.shape
    if cg * group != c or o % group:
        raise ValueError(f"weight: shape {wd.shape} does not fit an input of {c} channels in {group} groups")
    pt, pl, pb, pr = pads
    oh = _out_size(h, kh, strides[0], dil[0], pt, pb)
    ow = _out_size(wid, kw, strides[1], dil[1], pl, pr)
    xp = np.pad(xd, ((0, 0), (0, 0), (pt, pb), (pl, pr))) if any(pads) else xd
    taps = _taps(xp, kh, kw, strides, dil, oh, ow)
    og = o // group
    depthwise = cg == 1 and og == 1
    if depthwise:
        wk = wd.reshape(o, kh * kw)
        y = np.zeros((n, o, oh, ow), xd.dtype)
        for t, (_, _, view) in enumerate(taps):
            y += view * wk[:, t].reshape(1, o, 1, 1)
        cols = None
    else:
        cols = np.stack([v for _, _, v in taps], axis=2)  # (N, C, K, OH, OW)
        k = kh * kw
        wm = wd.reshape(group, og, cg * k)
        y = np.matmul(wm, cols.reshape(n, group, cg * k, oh * ow)).reshape(n, o, oh, ow)
    if b is not None:
        y = y + b.data.reshape(1, o, 1, 1)

    def backward(g):
        if depthwise:
            gw = np.stack([(g * v).sum(axis=(0, 2, 3)) for _, _, v in taps], axis=1).reshape(wd.shape)
            gcols = None
            if x.requires_grad:
                gcols = np.stack([g * wk[:, t].reshape(1, o, 1, 1) for t in range(kh * kw)], axis=2)
        else:
            gm = g.reshape(n, group, og, oh * ow)
            c2 = cols.reshape(n, group, cg * kh * kw, oh * ow)
            gw = np.matmul(gm, c2.transpose(0, 1, 3, 2)).sum(axis=0).reshape(wd.shape)
            gcols = None
            if x.requires_grad:
                gcols = np.matmul(wm.transpose(0, 2, 1), gm).reshape(n, c, kh * kw, oh, ow)
        gx = None
        if gcols is not None:
            gxp = _scatter_taps(xp.shape, gcols, kh, kw, strides, dil, oh, ow, xd.dtype)
            gx = gxp[:, :, pt: pt + h, pl: pl + wid]
        grads = (gx, gw.astype(wd.dtype))
        return grads + ((g.sum(axis=(0, 2, 3)),) if b is not None else ())

    parents = (x, w) + ((b,) if b is not None else ())
    return Tensor.from_op(np.ascontiguousarray(y, dtype=xd.dtype), parents, backward)


@register("Conv", weights=(1, 2), check=_check_window)
def _conv(attrs, x, w, b=None):
    ts = floats(x, w) if b is None else floats(x, w, b)
    x, w = ts[0], ts[1]
    b = ts[2] if b is not None else None
    x4, one_d = _as_4d(x.data)
    if x.ndim not in (3, 4):
        raise ValueError(f"input: Conv expects (N, C, W) or (N, C, H, W), got shape {x.shape}")
    x4 = x.reshape(x4.shape) if one_d else x
    w4 = w.reshape(w.shape[:2] + (1,) + w.shape[2:]) if one_d else w
    strides, dil, pads = _spatial_attrs(attrs, x.shape[2:], w.shape[2:])
    y = conv2d(x4, w4, b, strides, dil, pads, attrs.get("group", 1))
    return y.reshape(y.shape[:2] + y.shape[3:]) if one_d else y


def conv_transpose2d(x, w, b, strides, dil, pads, out_pad, group):
    """Differentiable grouped transposed convolution: x (N, C, H, W), w (C, O/G, KH, KW)."""
    xd, wd = x.data, w.data
    n, c, h, wid = xd.shape
    _, og, kh, kw = wd.shape
    if c % group or wd.shape[0] != c:
        raise ValueError(f"weight: shape {wd.shape} does not fit an input of {c} channels in {group} groups")
    cg, o, k = c // group, og * group, kh * kw
    pt, pl, pb, pr = pads
    full_h = (h - 1) * strides[0] + (kh - 1) * dil[0] + 1
    full_w = (wid - 1) * strides[1] + (kw - 1) * dil[1] + 1
    oh, ow = full_h + out_pad[0] - pt - pb, full_w + out_pad[1] - pl - pr
    if oh <= 0 or ow <= 0:
        raise ValueError(f"pads: {pads} leave no output for an input of spatial size {(h, wid)}")
    canvas_shape = (n, o, max(full_h, pt + oh), max(full_w, pl + ow))
    wm = wd.reshape(group, cg, og * k)
    cols = np.matmul(wm.transpose(0, 2, 1), xd.reshape(n, group, cg, h * wid))  # (N, G, og*K, HW)
    canvas = _scatter_taps(canvas_shape, cols.reshape(n, o, k, h, wid), kh, kw, strides, dil, h, wid, xd.dtype)
    y = canvas[:, :, pt: pt + oh, pl: pl + ow]
    if b is not None:
        y = y + b.data.reshape(1, o, 1, 1)

    def backward(g):
        gc = np.zeros(canvas_shape, xd.dtype)
        gc[:, :, pt: pt + oh, pl: pl + ow] = g
        gcols = np.stack([v for _, _, v in _taps(gc, kh, kw, strides, dil, h, wid)], axis=2)
        gcols = gcols.reshape(n, group, og * k, h * wid)
        gx = np.matmul(wm, gcols).reshape(xd.shape) if x.requires_grad else None
        gw = np.matmul(xd.reshape(n, group, cg, h * wid), gcols.transpose(0, 1, 3, 2)).sum(axis=0)
        grads = (gx, gw.reshape(wd.shape).astype(wd.dtype))
        return grads + ((g.sum(axis=(0, 2, 3)),) if b is not None else ())

    parents = (x, w) + ((b,) if b is not None else ())
    return Tensor.from_op(np.ascontiguousarray(y), parents, backward)


@register("ConvTranspose", weights=(1, 2), check=_check_window)
def _conv_transpose(attrs, x, w, b=None):
    ts = floats(x, w) if b is None else floats(x, w, b)
    x, w = ts[0], ts[1]
    b = ts[2] if b is not None else None
    if x.ndim not in (3, 4):
        raise ValueError(f"input: ConvTranspose expects (N, C, W) or (N, C, H, W), got shape {x.shape}")
    one_d = x.ndim == 3
    if one_d:
        x, w = x.reshape(x.shape[:2] + (1,) + x.shape[2:]), w.reshape(w.shape[:2] + (1,) + w.shape[2:])
    nd = 1 if one_d else 2
    kernel = w.shape[2:]
    strides = list(attrs.get("strides") or [1] * nd)
    dil = list(attrs.get("dilations") or [1] * nd)
    out_pad = list(attrs.get("output_padding") or [0] * nd)
    pads = list(attrs.get("pads") or [0] * (2 * nd))
    out_shape = attrs.get("output_shape")
    auto = attrs.get("auto_pad", "NOTSET")
    in_hw = x.shape[2 + (1 if one_d else 0):]
    k_sp = kernel[1:] if one_d else kernel
    if out_shape is not None or auto in ("SAME_UPPER", "SAME_LOWER"):
        target = list(out_shape)[-nd:] if out_shape is not None else [in_hw[i] * strides[i] for i in range(nd)]
        for i in range(nd):
            total = strides[i] * (in_hw[i] - 1) + out_pad[i] + (k_sp[i] - 1) * dil[i] + 1 - target[i]
            half = total // 2
            pads[i], pads[i + nd] = (half, total - half) if auto == "SAME_UPPER" else (total - half, half)
    elif auto == "VALID":
        pads = [0] * (2 * nd)
    if one_d:
        strides, dil, out_pad, pads = [1] + strides, [1] + dil, [0] + out_pad, [0, pads[0], 0, pads[1]]
    y = conv_transpose2d(x, w, b, strides, dil, pads, out_pad, attrs.get("group", 1))
    return y.reshape(y.shape[:2] + y.shape[3:]) if one_d else y


# --- pooling ---------------------------------------------------------------------------------


def _pool_geometry(attrs, shape):
    kernel = list(attrs["kernel_shape"])
    strides, dil, pads = _spatial_attrs(attrs, shape[2:], kernel)
    if len(kernel) == 1:
        kernel = [1] + kernel
    ceil = bool(attrs.get("ceil_mode", 0))
    h, w = (1,) + tuple(shape[2:]) if len(shape) == 3 else shape[2:]
    oh = _out_size(h, kernel[0], strides[0], dil[0], pads[0], pads[2], ceil)
    ow = _out_size(w, kernel[1], strides[1], dil[1], pads[1], pads[3], ceil)
    # ceil_mode's last window may run past the padded input: pad the canvas to cover it
    extra_h = max(0, (oh - 1) * strides[0] + (kernel[0] - 1) * dil[0] + 1 - (h + pads[0] + pads[2]))
    extra_w = max(0, (ow - 1) * strides[1] + (kernel[1] - 1) * dil[1] + 1 - (w + pads[1] + pads[3]))
    return kernel, strides, dil, pads, (extra_h, extra_w), (oh, ow)


def _pool_check(attrs, n_in, n_out):
    _check_window(attrs, n_in, n_out)
    if n_out > 1:
        raise ValueError("the Indices output of MaxPool is not supported")
    if attrs.get("storage_order", 0):
        raise ValueError("attribute storage_order=1 is not supported")


def _pool(attrs, x, pad_value, combine):
    """The frame the 2-D pools share (1-D runs as 2-D): geometry, the padded
    canvas, its taps, and the backward that scatters tap gradients back.
    `combine(views, canvas_shape, geometry) -> (out, grad_taps)`, where
    grad_taps(g) gives the gradient of each tap, stacked on axis 2."""
    x = as_tensor(x)
    one_d = x.ndim == 3
    x4 = x.reshape(x.shape[:2] + (1,) + x.shape[2:]) if one_d else x
    kernel, strides, dil, pads, extra, (oh, ow) = _pool_geometry(attrs, x.shape)
    xd = x4.data
    widths = ((0, 0), (0, 0), (pads[0], pads[2] + extra[0]), (pads[1], pads[3] + extra[1]))
    xp = np.pad(xd, widths, constant_values=pad_value) if any(np.ravel(widths)) else xd
    geometry = (kernel, strides, dil, pads, extra, (oh, ow), xd.shape)
    out, grad_taps = combine([v for _, _, v in _taps(xp, kernel[0], kernel[1], strides, dil, oh, ow)],
                             xp.shape, geometry)

    def backward(g):
        gxp = _scatter_taps(xp.shape, grad_taps(g), kernel[0], kernel[1], strides, dil, oh, ow, xd.dtype)
        return (gxp[:, :, pads[0]: pads[0] + xd.shape[2], pads[1]: pads[1] + xd.shape[3]],)

    y = Tensor.from_op(np.ascontiguousarray(out, dtype=xd.dtype), (x4,), backward)
    return y.reshape(y.shape[:2] + y.shape[3:]) if one_d else y


@register("MaxPool", check=_pool_check)
def _max_pool(attrs, x):
    record = is_grad_enabled() and isinstance(x, Tensor) and x.requires_grad
    xd = x.data if isinstance(x, Tensor) else np.asarray(x)
    if not record and xd.dtype == np.float32 and xd.ndim == 4:
        return Tensor(_native_max_pool(attrs, xd))

    def combine(views, canvas_shape, geometry):
        out = views[0].copy()
        arg = np.zeros(out.shape, np.intp) if record else None
        for t, view in enumerate(views[1:], start=1):
            if record:
                arg[view > out] = t  # strict ">": the first maximal tap wins
            np.maximum(out, view, out=out)
        return out, lambda g: np.stack([g * (arg == t) for t in range(len(views))], axis=2)

    return _pool(attrs, x, -np.inf, combine)


def _native_max_pool(attrs, x):
    """A 2-D MaxPool of float32 NCHW values on the native kernel (each
    channel an image of one channel): the same values as the NumPy taps
    below, NaN and signed zeros included, without their padded copy."""
    n, c, h, w = x.shape
    (kh, kw), strides, dil, pads, _, (oh, ow) = _pool_geometry(attrs, x.shape)
    out = np.empty((n, c, oh, ow), np.float32)
    _qk.max_pool_f32(np.ascontiguousarray(x), (n * c, h, w, 1, kh, kw, *strides, *dil, pads[0], pads[1], oh, ow), out)
    return out


@register("AveragePool", check=_check_window)
def _average_pool(attrs, x):
    include_pad = bool(attrs.get("count_include_pad", 0))

    def combine(views, canvas_shape, geometry):
        kernel, strides, dil, pads, extra, (oh, ow), shape = geometry
        # The divisor counts real elements, plus explicit padding with count_include_pad;
        # ceil_mode's overhang is never counted.
        mask = np.zeros((1, 1) + canvas_shape[2:], views[0].dtype)
        if include_pad:
            mask[:, :, : canvas_shape[2] - extra[0], : canvas_shape[3] - extra[1]] = 1
        else:
            mask[:, :, pads[0]: pads[0] + shape[2], pads[1]: pads[1] + shape[3]] = 1
        count = sum(v for _, _, v in _taps(mask, kernel[0], kernel[1], strides, dil, oh, ow))
        inv = (1.0 / np.maximum(count, 1)).astype(views[0].dtype)

        def grad_taps(g):
            gi = g * inv
            return np.broadcast_to(gi[:, :, None], gi.shape[:2] + (len(views),) + gi.shape[2:])
        return sum(views) * inv, grad_taps

    return _pool(attrs, x, 0, combine)


@register("GlobalAveragePool")
def _global_average_pool(attrs, x):
    x = as_tensor(x)
    axes = tuple(range(2, x.ndim))
    if _untracked(x):
        return Tensor(untracked_reduce(x.data, axes, True, True))
    return x.mean(axis=axes, keepdims=True)


@register("GlobalMaxPool")
def _global_max_pool(attrs, x):
    from .ops import OPS
    x = as_tensor(x)
    return OPS["ReduceMax"].run({"keepdims": 1}, x, np.arange(2, x.ndim))


# --- normalization ------------------------------------------------------------------------------


def _bn_check(attrs, n_in, n_out):
    if attrs.get("training_mode", 0) or n_out > 1:
        raise ValueError("training_mode=1 (batch statistics, running-stat outputs) is not supported: "
                         "imported BatchNormalization runs in inference mode")


@register("BatchNormalization", weights=(1, 2), check=_bn_check)
def _batch_norm(attrs, x, scale, bias, mean, var):
    eps = attrs.get("epsilon", 1e-5)
    x = as_tensor(x)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    inv = 1.0 / np.sqrt(data_of(var).astype(np.float64) + eps)
    centered = x - as_tensor((data_of(mean)).reshape(shape), x)
    factor = as_tensor(scale, x) * as_tensor(inv.astype(x.dtype), x)
    return centered * factor.reshape(shape) + as_tensor(bias, x).reshape(shape)


@register("LayerNormalization", weights=(1, 2), num_outputs=3)
def _layer_norm(attrs, x, scale, bias=None):
    x = as_tensor(x)
    axis = attrs.get("axis", -1) % x.ndim
    eps = attrs.get("epsilon", 1e-5)
    axes = tuple(range(axis, x.ndim))
    xd = x.data
    if xd.dtype == np.float32 and not (is_grad_enabled() and any(
            isinstance(t, Tensor) and t.requires_grad for t in (x, scale, bias))):
        y, mean, inv = _float_ops.layer_norm(xd, data_of(scale), None if bias is None else data_of(bias), eps, axis)
        return Tensor(y), mean, inv  # natively, 10-20x faster: nothing needs a gradient
    mean = xd.mean(axis=axes, keepdims=True)
    centered = xd - mean
    inv = (1.0 / np.sqrt((centered * centered).mean(axis=axes, keepdims=True) + xd.dtype.type(eps))).astype(xd.dtype)
    xhat = centered * inv
    normed = Tensor.from_op(xhat, (x,), lambda g: (_layer_norm_grad(g, xhat, inv, axes),))
    y = normed * as_tensor(scale, x)
    if bias is not None:
        y = y + as_tensor(bias, x)
    return y, mean, inv


def _layer_norm_grad(g, xhat, inv, axes):
    n = int(np.prod([xhat.shape[a] for a in axes]))
    s1 = g.sum(axis=axes, keepdims=True)
    s2 = (g * xhat).sum(axis=axes, keepdims=True)
    return (inv / n) * (n * g - s1 - xhat * s2)


# --- resize ---------------------------------------------------------------------------------------


_COORD_MODES = {"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn",
                "half_pixel_symmetric"}
_NEAREST_MODES = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"}


def _resize_check(attrs, n_in, n_out):
    only({"mode": {"nearest", "linear"}, "coordinate_transformation_mode": _COORD_MODES,
          "nearest_mode": _NEAREST_MODES, "keep_aspect_ratio_policy": {"stretch"},
          "antialias": {0}})(attrs, n_in, n_out)


def _source_coords(out_len, in_len, scale, mode):
    x = np.arange(out_len, dtype=np.float64)
    if mode == "half_pixel":
        return (x + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if out_len > 1 else np.zeros(out_len)
    if mode == "align_corners":  # the unrounded output length, as ONNX's reference
        return x * (in_len - 1) / (in_len * scale - 1) if out_len > 1 else np.zeros(out_len)
    if mode == "asymmetric":
        return x / scale
    if mode == "tf_half_pixel_for_nn":
        return (x + 0.5) / scale
    # half_pixel_symmetric
    adj = out_len / (scale * in_len)
    center = in_len / 2
    offset = center * (1 - adj)
    return offset + (x + 0.5) / scale - 0.5


def _nearest_index(src, in_len, mode):
    if mode == "round_prefer_floor":
        idx = np.ceil(src - 0.5)
    elif mode == "round_prefer_ceil":
        idx = np.floor(src + 0.5)
    elif mode == "floor":
        idx = np.floor(src)
    else:
        idx = np.ceil(src)
    return np.clip(idx, 0, in_len - 1).astype(np.int64)


def _linear_matrix(src, in_len):
    """(out, in) interpolation weights; neighbours outside the input take the edge (ONNX's rule)."""
    i0 = np.floor(src)
    frac = src - i0
    i0 = i0.astype(np.int64)
    m = np.zeros((len(src), in_len))
    rows = np.arange(len(src))
    np.add.at(m, (rows, np.clip(i0, 0, in_len - 1)), 1 - frac)
    np.add.at(m, (rows, np.clip(i0 + 1, 0, in_len - 1)), frac)
    return m


def resize(x, out_shape, scales, attrs):
    mode = attrs.get("mode", "nearest")
    coord = attrs.get("coordinate_transformation_mode", "half_pixel")
    nearest = attrs.get("nearest_mode", "round_prefer_floor")
    in_shape = np.shape(data_of(x))
    y = x
    for axis, (n_in, n_out) in enumerate(zip(in_shape, out_shape)):
        scale = scales[axis]
        if n_in == n_out and scale == 1:
            continue
        src = _source_coords(n_out, n_in, scale, coord)
        if mode == "nearest":
            idx = _nearest_index(src, n_in, nearest)
            from .ops import movement
            y = movement(y, lambda a, fill, idx=idx, axis=axis: np.take(a, idx, axis=axis))
        else:
            m = _linear_matrix(src, n_in)
            y = _apply_along(y, m, axis)
    return y


def _apply_along(x, m, axis):
    """Contracts axis `axis` of x with the (out, in) matrix m, differentiably."""
    from .ops import matmul, transpose
    rank = np.ndim(data_of(x))
    perm = [a for a in range(rank) if a != axis] + [axis]
    inverse = list(np.argsort(perm))
    xt = transpose(x, perm)
    mt = m.T.astype(data_of(x).dtype)
    y = matmul(xt, mt) if is_tensor(xt) else xt @ mt
    return transpose(y, inverse)


@register("Resize", check=_resize_check)
def _resize(attrs, x, roi=None, scales=None, sizes=None):
    shape = np.shape(data_of(x))
    rank = len(shape)
    axes = attrs.get("axes")
    axes = list(range(rank)) if axes is None else [a % rank for a in axes]
    full_scales = [1.0] * rank
    out = list(shape)
    if sizes is not None and np.size(data_of(sizes)):
        for a, s in zip(axes, ints(sizes)):
            out[a] = s
            full_scales[a] = s / shape[a]
    elif scales is not None and np.size(data_of(scales)):
        for a, s in zip(axes, np.asarray(data_of(scales), np.float64).ravel()):
            full_scales[a] = float(s)
            out[a] = int(np.float32(shape[a]) * np.float32(s))
    else:
        raise ValueError("Resize: one of the scales and sizes inputs must be given")
    return resize(x, out, full_scales, attrs)


@register("Upsample", check=only({"mode": {"nearest", "linear", "bilinear"}}))
def _upsample(attrs, x, scales):
    mode = "linear" if attrs.get("mode", "nearest") in ("linear", "bilinear") else "nearest"
    sc = [float(s) for s in np.asarray(data_of(scales), np.float64).ravel()]
    shape = np.shape(data_of(x))
    out = [int(np.floor(n * s)) for n, s in zip(shape, sc)]
    return resize(x, out, sc, {"mode": mode, "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"})

