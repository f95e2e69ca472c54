"""FP32 <-> FP16 and FP32 <-> BF16 conversion.

Results are bit-identical to NumPy: ``fp32_to_fp16(x)`` equals
``x.astype(np.float16)`` and ``fp16_to_fp32(h)`` equals ``h.astype(np.float32)``
for every input, including signalling NaNs (whose payloads NumPy keeps
unquieted). bfloat16 has no NumPy dtype: it travels as uint16 bit patterns.
"""

from __future__ import annotations

import numpy as np

from . import _qk
from ._validate import make_out, require_array

_F32, _F16, _U16 = np.dtype(np.float32), np.dtype(np.float16), np.dtype(np.uint16)


def _convert(kernel, value, name, in_dtype, out, out_dtype):
    """Runs `kernel(in, out)`: `value` must be an ndarray of `in_dtype` (any
    strides); `out` is None (a new array) or a checked user array."""
    if (type(value) is np.ndarray and value.dtype == in_dtype
            and value.flags.c_contiguous and value.flags.aligned):
        # Fast paths for the common calls: microseconds matter on small tensors.
        if out is None:
            result = np.empty(value.shape, out_dtype)
            kernel(value, result)
            return result
        if (type(out) is np.ndarray and out.dtype == out_dtype and out.shape == value.shape
                and out.flags.c_contiguous and out.flags.aligned and out.flags.writeable
                and not np.may_share_memory(value, out)):
            kernel(value, out)
            return out
    arr = require_array(value, name, [in_dtype])
    out = make_out(out, "out", arr.shape, out_dtype)
    if out.size == 0:
        return out
    if not arr.flags.aligned:  # the kernels assume element-aligned pointers
        arr = arr.copy()
    # A user's `out` that overlaps the input would be read after being
    # written; an unaligned one is written through an aligned buffer.
    unsafe = not out.flags.aligned or np.may_share_memory(arr, out)
    target = np.empty_like(out) if unsafe else out
    kernel(arr, target)
    if target is not out:
        np.copyto(out, target)
    return out


def fp32_to_fp16(x, *, out=None):
    """Converts float32 `x` to float16: IEEE round to nearest even, overflow
    to inf, subnormals kept, NaN kept (identical to ``x.astype(np.float16)``)."""
    return _convert(_qk.fp32_to_fp16, x, "x", _F32, out, _F16)


def fp16_to_fp32(h, *, out=None):
    """Converts float16 `h` to float32, exactly (identical to ``h.astype(np.float32)``)."""
    return _convert(_qk.fp16_to_fp32, h, "h", _F16, out, _F32)


def fp32_to_bf16(x, *, out=None):
    """Converts float32 `x` to bfloat16, returned as a uint16 array of bfloat16
    bit patterns: the top 16 bits of each float rounded to nearest even
    (overflow gives inf); NaN stays NaN with its sign and top payload bits,
    quieted (the quiet bit 0x0040 set) so the result is never inf."""
    return _convert(_qk.fp32_to_bf16, x, "x", _F32, out, _U16)


def bf16_to_fp32(b, *, out=None):
    """Converts bfloat16 bit patterns (a uint16 array) to float32, exactly:
    each value's bits shifted up by 16."""
    return _convert(_qk.bf16_to_fp32, b, "b", _U16, out, _F32)
