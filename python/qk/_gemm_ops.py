"""INT8 GEMM: int8_matmul, pre-packed weights, and the fused quantized /
dynamic linear layers."""

from __future__ import annotations

import math

import numpy as np

from . import _qk
from ._validate import finish, make_out, require_array, require_int, scales_float32, work_buffer

# Multiply-adds per native call: larger GEMMs run as several calls over row
# blocks (identical results: rows are independent), so Python can deliver a
# KeyboardInterrupt between them instead of after the whole product.
INTERRUPTIBLE_MACS = 1 << 32


def _row_blocks(rows: int, k: int, n: int):
    """[(start, stop)] covering the rows, each block at most INTERRUPTIBLE_MACS multiply-adds."""
    per = max(1, INTERRUPTIBLE_MACS // max(k * n, 1))
    return [(r, min(r + per, rows)) for r in range(0, rows, per)] or [(0, 0)]


# The largest K whose int32 sum of uint8 x int8 products cannot wrap: 2^31 / (255 * 128).
# quantized_linear and dynamic_linear split longer rows (int8_matmul wraps, like NumPy).
EXACT_K = (2 ** 31 - 1) // (255 * 128)

_OUT_RANGES = {np.dtype(np.int8): (-128, 127), np.dtype(np.uint8): (0, 255)}
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class PackedInt8Weight:
    """An int8 weight B (K, N) packed once for the GEMM micro-kernels, with its
    column sums. Used by `int8_matmul`, `quantized_linear` and
    `dynamic_linear`. It keeps the original array (`unpack()`), so it can be
    saved, pickled, and repacked when the ISA path changes."""

    __slots__ = ("_native",)

    def __init__(self, native):
        if not isinstance(native, _qk.PackedWeight):
            raise TypeError(f"PackedInt8Weight: build it with qk.pack_int8_weight(b), got {type(native).__name__}")
        self._native = native

    @property
    def k(self) -> int:
        return self._native.k

    @property
    def n(self) -> int:
        return self._native.n

    @property
    def shape(self) -> tuple[int, int]:
        return (self.k, self.n)

    def unpack(self) -> np.ndarray:
        """The original int8 (K, N) array."""
        return self._native.unpack()

    def column_sums(self) -> np.ndarray:
        """int32 sums of B over K, one per column (used for zero-point corrections)."""
        return self._native.column_sums()

    def __reduce__(self):
        return pack_int8_weight, (self.unpack(),)

    def __repr__(self) -> str:
        return f"PackedInt8Weight(k={self.k}, n={self.n})"


def pack_int8_weight(b) -> PackedInt8Weight:
    """Packs an int8 weight of shape (K, N) for repeated use as the right-hand operand."""
    b = require_array(b, "b", [np.int8])
    if b.ndim != 2:
        raise ValueError(f"b: expected a 2-D (K, N) array, got shape {b.shape}")
    return PackedInt8Weight(_qk.PackedWeight(b, b.shape[0], b.shape[1]))


def _weight(b, k: int, name: str) -> PackedInt8Weight:
    if isinstance(b, PackedInt8Weight):
        w = b
    elif isinstance(b, np.ndarray):
        if b.dtype != np.int8:
            raise TypeError(f"{name}: expected dtype int8 (or a PackedInt8Weight), got {b.dtype}")
        w = pack_int8_weight(b)
    else:
        raise TypeError(f"{name}: expected an int8 numpy.ndarray (K, N) or a PackedInt8Weight, got {type(b).__name__}")
    if w.k != k:
        raise ValueError(f"{name}: has K = {w.k} rows, but the left operand has K = {k} columns")
    return w


def _lhs(a, name: str):
    """(a as contiguous (rows, K), leading shape of the result)."""
    a = require_array(a, name, [np.int8, np.uint8])
    if a.ndim == 0:
        raise ValueError(f"{name}: expected at least 1 dimension (K,), got a 0-d array")
    k = a.shape[-1]
    rows = math.prod(a.shape[:-1])  # explicit: reshape(-1, 0) cannot infer the rows when K = 0
    return a.reshape(rows, k) if a.ndim != 2 else a, a.shape[:-1], k


def int8_matmul(a, b, *, out=None) -> np.ndarray:
    """Exact int8 matrix product: ``a.astype(int32) @ b.astype(int32)``.

    `a`: int8 or uint8 of shape (K,), (M, K) or (..., M, K); `b`: int8 (K, N) or a
    `PackedInt8Weight`. Returns int32 (..., M, N), wrapping modulo 2**32 like
    NumPy's int32 arithmetic when K is large enough to overflow."""
    a2, lead, k = _lhs(a, "a")
    w = _weight(b, k, "b")
    out = make_out(out, "out", lead + (w.n,), np.int32)
    work = work_buffer(out, a2)
    w2 = work.reshape(a2.shape[0], w.n)
    for r0, r1 in _row_blocks(a2.shape[0], k, w.n):
        _qk.int8_matmul(a2[r0:r1], a2.dtype == np.int8, r1 - r0, k, w._native, w2[r0:r1])
    return finish(out, work)


def _scalar_scale(value, name: str) -> np.float32:
    return scales_float32(value, name, None)[0]


def _linear_scale(xs: np.float32, w_scale, n: int) -> np.ndarray:
    """x_scale * w_scale[n] as float32 (N values), each finite and > 0."""
    ws = w_scale if isinstance(w_scale, np.ndarray) else None
    if ws is not None and ws.dtype == np.float32 and ws.shape == (n,):
        # Fast path (a float32 per-channel array, as layers keep it): a finite,
        # positive product implies finite, positive factors, so one check does.
        scale = xs * ws
        if scale.min() > 0 and scale.max() <= _FLOAT32_MAX:  # NaN fails both
            return scale
    ws = scales_float32(w_scale, "w_scale", None if np.ndim(w_scale) == 0 else n)
    scale = (xs * np.broadcast_to(ws, (n,))).astype(np.float32)
    if not np.all(np.isfinite(scale) & (scale > 0)):
        raise ValueError("w_scale: x_scale * w_scale must stay finite and > 0 in float32")
    return scale


def _bias(bias, n: int):
    """None, or the bias as a contiguous float32 array of N values."""
    if bias is None:
        return None
    if isinstance(bias, np.ma.MaskedArray):
        raise TypeError("bias: masked arrays are not supported (the mask would be ignored)")
    raw = np.asarray(bias)
    if raw.dtype.kind not in "fiu":
        raise TypeError(f"bias: expected real numbers, got dtype {raw.dtype}")
    bias = np.ascontiguousarray(raw, dtype=np.float32)
    if bias.shape != (n,):
        raise ValueError(f"bias: expected shape ({n},), got {bias.shape}")
    return bias


def out_format(out_dtype, out_scale, out_zero_point):
    """(dtype, requantized, out_scale, out_zero_point, qmin, qmax) of a float32
    result, or of one requantized to int8/uint8 (shared with int8_conv2d)."""
    try:
        odt = np.dtype(out_dtype)
    except TypeError:
        odt = None
    if odt == np.float32:
        if out_scale is not None or out_zero_point is not None:
            raise ValueError("out_scale: only used with an int8/uint8 out_dtype")
        return odt, False, 1.0, 0.0, 0.0, 0.0
    if odt in _OUT_RANGES:
        if out_scale is None or out_zero_point is None:
            raise ValueError("out_scale: an int8/uint8 out_dtype needs out_scale and out_zero_point")
        qmin, qmax = _OUT_RANGES[odt]
        ozp = float(require_int(out_zero_point, "out_zero_point", qmin, qmax))
        return odt, True, float(_scalar_scale(out_scale, "out_scale")), ozp, float(qmin), float(qmax)
    raise TypeError(f"out_dtype: expected numpy.float32, numpy.int8 or numpy.uint8, got {out_dtype!r}")


def _linear(x2, lead, k, wp, x_zp, scale, bias, relu, out_dtype, out_scale, out_zero_point, out):
    """The checks and the call shared by quantized_linear and dynamic_linear;
    x2 (rows, K) is validated, `scale` is x_scale * w_scale as float32."""
    bias = _bias(bias, wp.n)
    if not isinstance(relu, (bool, np.bool_)):
        raise TypeError(f"relu: expected a bool, got {type(relu).__name__}")
    odt, requant, os_, ozp, qmin, qmax = out_format(out_dtype, out_scale, out_zero_point)
    kind = int(requant)
    out = make_out(out, "out", lead + (wp.n,), odt)
    work = work_buffer(out, x2, bias, scale)
    if k > EXACT_K:
        _long_k_linear(x2, wp, x_zp, scale, bias, bool(relu), work.reshape(x2.shape[0], wp.n), kind, os_, ozp, qmin,
                       qmax)
    else:
        w2 = work.reshape(x2.shape[0], wp.n)
        for r0, r1 in _row_blocks(x2.shape[0], k, wp.n):
            _qk.quantized_linear(x2[r0:r1], x2.dtype == np.int8, r1 - r0, k, wp._native, x_zp, scale, bias,
                                 bool(relu), w2[r0:r1], kind, os_, ozp, float(qmin), float(qmax))
    return finish(out, work)


def _long_k_linear(x2, wp, x_zp, scale, bias, relu, out2, kind, out_scale, out_zp, qmin, qmax):
    """The quantized_linear epilogue for rows longer than EXACT_K: int32 sums of
    chunks of K combined in int64 (exact), then the same float32 epilogue."""
    b = wp.unpack()
    acc = np.zeros((x2.shape[0], wp.n), np.int64)
    for k0 in range(0, x2.shape[1], EXACT_K):
        chunk = slice(k0, k0 + EXACT_K)
        acc += int8_matmul(np.ascontiguousarray(x2[:, chunk]), pack_int8_weight(np.ascontiguousarray(b[chunk])))
    acc -= np.int64(x_zp) * b.sum(axis=0, dtype=np.int64)
    y = acc.astype(np.float32) * scale
    if bias is not None:
        y += bias
    if relu:
        np.maximum(y, 0, out=y)
    if kind == 0:
        out2[...] = y
    else:
        from ._quant_ops import quantize

        out2[...] = quantize(y, out_scale, int(out_zp), dtype=out2.dtype)


def quantized_linear(x_q, w, *, x_scale, x_zero_point, w_scale, bias=None, relu: bool = False,
                     out_dtype=np.float32, out_scale=None, out_zero_point=None, out=None) -> np.ndarray:
    """A quantized linear layer in one call, from the exact int32 sums:

        y = x_scale * w_scale[n] * (acc[m, n] - x_zero_point * colsum_w[n]) + bias[n]

    then ReLU if asked, returned as float32, or requantized to int8/uint8 with
    ``clip(rint(y / out_scale) + out_zero_point)``. `x_q`: uint8 or int8
    activations (..., K) with per-tensor `x_scale`/`x_zero_point`; `w`: int8
    weight (K, N) (packed or not) with symmetric scales per output channel
    (`w_scale` of N values) or per tensor (a scalar)."""
    x2, lead, k = _lhs(x_q, "x_q")
    wp = _weight(w, k, "w")
    x_zp = require_int(x_zero_point, "x_zero_point", *_OUT_RANGES[x2.dtype])
    scale = _linear_scale(_scalar_scale(x_scale, "x_scale"), w_scale, wp.n)
    return _linear(x2, lead, k, wp, x_zp, scale, bias, relu, out_dtype, out_scale, out_zero_point, out)


def dynamic_linear(x, w, w_scale, bias=None, *, out=None) -> np.ndarray:
    """float32 activations (..., K) quantized on the fly to uint8 from this
    batch's range (asymmetric, 0 exactly representable), int8 GEMM with `w`
    (int8 (K, N), packed or not, symmetric `w_scale` per column or per
    tensor), float32 out with optional `bias`."""
    x = require_array(x, "x", [np.float32])
    if x.ndim == 0:
        raise ValueError("x: expected at least 1 dimension (K,), got a 0-d array")
    k = x.shape[-1]
    wp = _weight(w, k, "w")
    ws = w_scale if isinstance(w_scale, np.ndarray) else None
    if ws is None or ws.dtype != np.float32 or ws.shape != (wp.n,) or not ws.flags.c_contiguous:
        # Otherwise the kernel checks each x_scale * w_scale[n] (finite, > 0).
        ws = scales_float32(w_scale, "w_scale", None if np.ndim(w_scale) == 0 else wp.n)
        ws = np.ascontiguousarray(np.broadcast_to(ws, (wp.n,)))
    bias = _bias(bias, wp.n)
    out = make_out(out, "out", x.shape[:-1] + (wp.n,), np.float32)
    lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError("x: contains NaN or infinity; its quantization range is undefined")
    work = work_buffer(out, x, ws, bias)
    if k > EXACT_K:
        return finish(out, _long_k_dynamic(x, wp, ws, bias, min(lo, 0.0), max(hi, 0.0), work))
    # uint8 quantization (x_scale = (max(x, 0) - min(x, 0)) / 255 in float64
    # rounded to float32, or 1 for all zeros; zero point round(-min(x, 0) /
    # x_scale)), GEMM and epilogue in one native call.
    rows = math.prod(x.shape[:-1])
    x2, w2 = x.reshape(rows, k), work.reshape(rows, wp.n)
    for r0, r1 in _row_blocks(x2.shape[0], k, wp.n):  # one range for all blocks: the same as one call
        _qk.dynamic_linear(x2[r0:r1], r1 - r0, k, min(lo, 0.0), max(hi, 0.0), wp._native, ws, bias, False, w2[r0:r1])
    return finish(out, work)


def _long_k_dynamic(x, wp, ws, bias, lo, hi, out):
    """dynamic_linear for rows longer than EXACT_K: the native call's
    quantization parameters (x_scale = (hi - lo) / 255 in float64, rounded to
    float32, 1 for all zeros; zero point round_half_even(-lo / x_scale)), then
    the exact long-K epilogue."""
    from ._quant_ops import quantize

    x_scale = np.float32((hi - lo) / 255.0)
    if not x_scale > 0:
        x_scale = np.float32(1.0)
    zp = int(min(max(np.rint(-lo / np.float64(x_scale)), 0.0), 255.0))
    xq = quantize(np.ascontiguousarray(x), x_scale, zp, dtype=np.uint8)
    x2 = xq.reshape(-1, x.shape[-1])
    scale = (x_scale * ws).astype(np.float32)
    _long_k_linear(x2, wp, zp, scale, bias, False, out.reshape(x2.shape[0], wp.n), 0, 1.0, 0.0, 0, 0)
    return out
