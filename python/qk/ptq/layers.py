"""The cores of converted layers: what multiplies a 2-D input by a stored
weight on qk's kernels. A quantized graph's QuantizedLinear node holds one,
a QuantizedConv one per group (or runs on qk.int8_conv2d). Cores:

- `StaticInt8Core`: activations quantized with calibrated (scale, zero point)
  to uint8, int8 weights pre-packed, one `qk.quantized_linear` call with
  bias and ReLU fused.
- `DynamicInt8Core`: activations quantized per batch inside `qk.dynamic_linear`.
- `WeightOnlyCore`: int8 or int4 (two per byte) weights with per-channel or
  per-group scales, dequantized by `qk.dequantize` at each call; float matmul.
- `FP16Core`: float16 weights converted by `qk.fp16_to_fp32` at each call.
"""

from __future__ import annotations

import math

import numpy as np

import qk
from .. import _qk
from .._gemm_ops import EXACT_K, INTERRUPTIBLE_MACS, _linear_scale


def _direct_gemm(x2d, weight_q) -> bool:
    """x2d (rows, K) is a C-contiguous array the GEMM kernel takes in one call
    with the core's weight (N, K) (K within the exact int32 range, few enough
    multiply-adds for one uninterruptible block), so a core may skip the
    public wrapper's checks."""
    n, k = weight_q.shape
    return (isinstance(x2d, np.ndarray) and x2d.ndim == 2 and x2d.flags.c_contiguous and x2d.flags.aligned
            and x2d.shape[1] == k and k <= EXACT_K and x2d.shape[0] * k * n <= INTERRUPTIBLE_MACS)


def _relu(y: np.ndarray, relu: bool) -> np.ndarray:
    return np.maximum(y, 0, out=y) if relu else y


class StaticInt8Core:
    kind = "static_int8"

    def __init__(self, weight_q: np.ndarray, w_scale: np.ndarray, bias, x_scale: float, x_zero_point: int,
                 relu: bool, bits: int = 8, x_range=(0, 255)):
        """weight_q: int8 (N, K); w_scale: float32 (N,) (symmetric weights);
        activations quantized with (x_scale, x_zero_point) onto the integer
        range `x_range` (uint8 container when it is non-negative, else int8)."""
        self.weight_q = np.ascontiguousarray(weight_q, dtype=np.int8)
        self.packed = qk.pack_int8_weight(np.ascontiguousarray(self.weight_q.T))
        self.w_scale = np.asarray(w_scale, np.float32)
        self.bias = None if bias is None else np.asarray(bias, np.float32)
        self.x_scale, self.x_zero_point = np.float32(x_scale), int(x_zero_point)
        self.relu, self.bits = bool(relu), int(bits)
        self.x_range = (int(x_range[0]), int(x_range[1]))
        self.pad_value = self.x_zero_point  # float 0.0 is exactly the zero point

    def prepare_input(self, x: np.ndarray) -> np.ndarray:
        lo, hi = self.x_range
        dtype = np.uint8 if lo >= 0 else np.int8
        full = (0, 255) if lo >= 0 else (-128, 127)
        if isinstance(x, np.ndarray) and x.dtype == np.float32 and x.flags.c_contiguous and x.flags.aligned:
            # qk.quantize's kernel call without its argument checks (this core's
            # parameters were checked when it was made): per-node cost at batch 1
            q = np.empty(x.shape, dtype)
            _qk.quantize(x, q, lo >= 0, 1, 1, x.size, *self._x_params, float(full[0]), float(full[1]))
        else:
            q = qk.quantize(x, self.x_scale, self.x_zero_point, dtype=dtype)
        if (lo, hi) != full:
            np.clip(q, lo, hi, out=q)
        return q

    @property
    def _x_params(self):
        """(scale, zero point) as the one-element float32 arrays the quantize kernel reads."""
        cached = self.__dict__.get("_x_params_cache")
        if cached is None:
            cached = self.__dict__["_x_params_cache"] = (np.array([self.x_scale], np.float32),
                                                         np.array([self.x_zero_point], np.float32))
        return cached

    def _kernel_args(self):
        """(x_scale * w_scale, bias) as the GEMM kernel reads them, checked once as qk.quantized_linear does."""
        cached = self.__dict__.get("_kernel_args_cache")
        if cached is None:
            cached = self.__dict__["_kernel_args_cache"] = (
                _linear_scale(self.x_scale, self.w_scale, self.packed.n),
                None if self.bias is None else np.ascontiguousarray(self.bias, np.float32))
        return cached

    def matmul(self, x2d: np.ndarray) -> np.ndarray:
        kernel_args = self._kernel_args()
        if _direct_gemm(x2d, self.weight_q) and x2d.dtype == (np.uint8 if self.x_range[0] >= 0 else np.int8):
            # the kernel call of qk.quantized_linear without its checks (this
            # core's parameters were checked when it was made): per-layer cost at batch 1
            out = np.empty((x2d.shape[0], self.weight_q.shape[0]), np.float32)
            _qk.quantized_linear(x2d, x2d.dtype == np.int8, x2d.shape[0], x2d.shape[1], self.packed._native,
                                 self.x_zero_point, *kernel_args, self.relu, out, 0, 1.0, 0.0, 0.0, 0.0)
            return out
        return qk.quantized_linear(x2d, self.packed, x_scale=self.x_scale, x_zero_point=self.x_zero_point,
                                   w_scale=self.w_scale, bias=self.bias, relu=self.relu)

    def runner(self, shape: tuple, uint8_input: bool = False, out_qparams=None):
        """prepare_input and matmul of float32 inputs of `shape` (..., K) as
        one function of x, with the kernel calls worked out once (a converted
        model keeps one per node and input shape: at batch 1 the per-call
        Python was most of a small layer's time); None where the direct
        kernel call does not apply (int8 or narrowed activations, K beyond
        the exact range, a block too large to run uninterrupted). With
        `uint8_input`, x is already this core's uint8 input (a chained
        producer's output); with out_qparams = (scale, zero point, qmin, qmax)
        the output is requantized in the epilogue to uint8 and clamped."""
        n, k = self.weight_q.shape
        rows = math.prod(shape[:-1])
        if (self.x_range != (0, 255) or not shape or shape[-1] != k or k > EXACT_K
                or rows * k * n > INTERRUPTIBLE_MACS):
            return None
        scale, bias = self._kernel_args()
        x_params, packed, zp, relu = self._x_params, self.packed._native, self.x_zero_point, self.relu
        out_shape = (*shape[:-1], n)
        out_dtype = np.float32 if out_qparams is None else np.uint8
        epilogue = (0, 1.0, 0.0, 0.0, 0.0) if out_qparams is None else (1, *(float(v) for v in out_qparams))

        def call(x):
            if uint8_input:
                q = x
            else:
                q = np.empty(shape, np.uint8)
                _qk.quantize(x, q, True, 1, 1, x.size, *x_params, 0.0, 255.0)
            out = np.empty(out_shape, out_dtype)
            _qk.quantized_linear(q, False, rows, k, packed, zp, scale, bias, relu, out, *epilogue)
            return out
        return call

    def arrays(self):
        return dict(**stored_int_weight(self.weight_q, self.bits), w_scale=self.w_scale, bias=self.bias)

    def meta(self):
        return dict(x_scale=float(self.x_scale), x_zero_point=self.x_zero_point, relu=self.relu, bits=self.bits,
                    x_range=list(self.x_range), k=self.weight_q.shape[1])


class DynamicInt8Core:
    kind = "dynamic_int8"
    pad_value = 0

    def __init__(self, weight_q: np.ndarray, w_scale: np.ndarray, bias, relu: bool, bits: int = 8):
        self.weight_q = np.ascontiguousarray(weight_q, dtype=np.int8)
        self.packed = qk.pack_int8_weight(np.ascontiguousarray(self.weight_q.T))
        self.w_scale = np.asarray(w_scale, np.float32)
        self.bias = None if bias is None else np.asarray(bias, np.float32)
        self.relu, self.bits = bool(relu), int(bits)

    def prepare_input(self, x):
        return x

    def _kernel_args(self):
        """(w_scale per column, bias) as the native call reads them, made once."""
        cached = self.__dict__.get("_kernel_args_cache")
        if cached is None:
            cached = self.__dict__["_kernel_args_cache"] = (
                np.ascontiguousarray(np.broadcast_to(self.w_scale, (self.packed.n,)), np.float32),
                None if self.bias is None else np.ascontiguousarray(self.bias, np.float32))
        return cached

    def runner(self, shape: tuple):
        """matmul of float32 inputs of `shape` (..., K) as one function of x
        (see StaticInt8Core.runner): the batch's range, its quantization, the
        GEMM and the epilogue (ReLU fused) in one native call; None where the
        direct call does not apply."""
        n, k = self.weight_q.shape
        rows = math.prod(shape[:-1])
        if not shape or shape[-1] != k or k > EXACT_K or rows == 0 or rows * k * n > INTERRUPTIBLE_MACS:
            return None
        w_scale, bias = self._kernel_args()
        packed, relu, out_shape = self.packed._native, self.relu, (*shape[:-1], n)

        def call(x):
            lo, hi = float(x.min()), float(x.max())
            if not (math.isfinite(lo) and math.isfinite(hi)):
                raise ValueError("x: contains NaN or infinity; its quantization range is undefined")
            out = np.empty(out_shape, np.float32)
            _qk.dynamic_linear(x, rows, k, min(lo, 0.0), max(hi, 0.0), packed, w_scale, bias, relu, out)
            return out
        return call

    def matmul(self, x2d):
        x2d = np.ascontiguousarray(x2d)
        if x2d.dtype == np.float32 and _direct_gemm(x2d, self.weight_q):
            call = self.runner(x2d.shape)
            if call is not None:
                return call(x2d)
        return _relu(qk.dynamic_linear(x2d, self.packed, self.w_scale, self.bias), self.relu)

    def arrays(self):
        return dict(**stored_int_weight(self.weight_q, self.bits), w_scale=self.w_scale, bias=self.bias)

    def meta(self):
        return dict(relu=self.relu, bits=self.bits, k=self.weight_q.shape[1])


def pack_int4(q: np.ndarray) -> np.ndarray:
    """Two signed 4-bit values per byte (low nibble first) along the last axis (padded to even)."""
    if q.shape[-1] % 2:
        q = np.concatenate([q, np.zeros(q.shape[:-1] + (1,), q.dtype)], axis=-1)
    u = (q.astype(np.int16) & 0xF).astype(np.uint8)
    return (u[..., 0::2] | (u[..., 1::2] << 4)).astype(np.uint8)


def unpack_int4(packed: np.ndarray, length: int) -> np.ndarray:
    lo = (packed & 0xF).astype(np.int8)
    hi = (packed >> 4).astype(np.int8)
    out = np.empty(packed.shape[:-1] + (2 * packed.shape[-1],), np.int8)
    out[..., 0::2], out[..., 1::2] = lo, hi
    out = np.where(out > 7, out - 16, out).astype(np.int8)  # sign-extend the nibbles
    return out[..., :length]


def stored_int_weight(weight_q: np.ndarray, bits: int) -> dict:
    """The arrays a saved model keeps for an (N, K) integer weight: two values
    per byte at 4 bits and below, one int8 per value otherwise (the GEMM runs
    on int8 either way; this is the size on disk and in `model_size`)."""
    return {"weight_q4": pack_int4(weight_q)} if bits <= 4 else {"weight_q": weight_q}


def int_weight_from_stored(arrays: dict, k: int) -> np.ndarray:
    """Inverse of `stored_int_weight`."""
    return unpack_int4(arrays["weight_q4"], k) if "weight_q4" in arrays else arrays["weight_q"]


class WeightOnlyCore:
    """Integer weights, float activations. With `group_size`, each output row
    has one scale per group of `group_size` input columns."""

    kind = "weight_only"
    pad_value = 0

    def __init__(self, weight_q: np.ndarray, scales: np.ndarray, bias, relu: bool, bits: int,
                 group_size: int | None = None):
        n, k = weight_q.shape
        self.n, self.k, self.bits = n, k, int(bits)
        self.group_size = group_size
        self.stored = pack_int4(weight_q) if bits <= 4 else np.ascontiguousarray(weight_q, np.int8)
        self.scales = np.asarray(scales, np.float32)  # (N,) or (N, groups)
        self.bias = None if bias is None else np.asarray(bias, np.float32)
        self.relu = bool(relu)

    def weight_q(self) -> np.ndarray:
        return unpack_int4(self.stored, self.k) if self.bits <= 4 else self.stored

    def dequantized_weight(self) -> np.ndarray:
        q = self.weight_q()
        if self.group_size is None:
            return qk.dequantize(q, self.scales, 0, axis=0)
        g = self.group_size
        groups = -(-self.k // g)
        padded = np.zeros((self.n, groups * g), np.int8)
        padded[:, : self.k] = q
        w = qk.dequantize(padded.reshape(self.n * groups, g), self.scales.reshape(-1), 0, axis=0)
        return w.reshape(self.n, groups * g)[:, : self.k]

    def prepare_input(self, x):
        return x

    def matmul(self, x2d):
        y = x2d @ self.dequantized_weight().T
        if self.bias is not None:
            y += self.bias
        return _relu(y, self.relu)

    def arrays(self):
        return dict(stored=self.stored, scales=self.scales, bias=self.bias)

    def meta(self):
        return dict(n=self.n, k=self.k, bits=self.bits, group_size=self.group_size, relu=self.relu)


class FP16Core:
    kind = "fp16"
    pad_value = 0

    def __init__(self, weight: np.ndarray, bias, relu: bool):
        self.weight_half = qk.fp32_to_fp16(np.ascontiguousarray(weight, np.float32))
        self.bias = None if bias is None else qk.fp32_to_fp16(np.asarray(bias, np.float32))
        self.relu = bool(relu)

    def prepare_input(self, x):
        return x

    def matmul(self, x2d):
        y = x2d @ qk.fp16_to_fp32(self.weight_half).T
        if self.bias is not None:
            y += qk.fp16_to_fp32(self.bias)
        return _relu(y, self.relu)

    def arrays(self):
        return dict(weight_half=self.weight_half, bias=self.bias)

    def meta(self):
        return dict(relu=self.relu)
