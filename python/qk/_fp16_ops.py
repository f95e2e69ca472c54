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


def _convert(kernel, arr, kernel_in_dtype, out, out_dtype, kernel_out_dtype):
    """Runs `kernel` on the validated contiguous `arr` into `out` (new or checked)."""
    out = make_out(out, "out", arr.shape, out_dtype)
    if out.size == 0:
        return out
    if not arr.flags.aligned:  # the kernels assume element-aligned pointers
        arr = arr.copy()
    # A user's `out` that overlaps the input would be read after being
    # written; an unaligned one is written through an aligned buffer.
    unsafe = not out.flags.aligned or np.may_share_memory(arr, out)
    target = np.empty_like(out) if unsafe else out
    kernel(arr.view(kernel_in_dtype), target.view(kernel_out_dtype))
    if target is not out:
        np.copyto(out, target)
    return out


def fp32_to_fp16(x, *, out=None):
    """Converts float32 `x` to float16: IEEE round to nearest even, overflow
    to inf, subnormals kept, NaN kept (identical to ``x.astype(np.float16)``)."""
    x = require_array(x, "x", [np.float32])
    return _convert(_qk.fp32_to_fp16, x, np.float32, out, np.float16, np.uint16)


def fp16_to_fp32(h, *, out=None):
    """Converts float16 `h` to float32, exactly (identical to ``h.astype(np.float32)``)."""
    h = require_array(h, "h", [np.float16])
    return _convert(_qk.fp16_to_fp32, h, np.uint16, out, np.float32, np.float32)


def fp32_to_bf16(x, *, out=None):
    """Converts float32 `x` to bfloat16, returned as a uint16 array of bfloat16
    bit patterns: the top 16 bits of each float rounded to nearest even
    (overflow gives inf); NaN stays NaN with its sign and top payload bits,
    quieted (the quiet bit 0x0040 set) so the result is never inf."""
    x = require_array(x, "x", [np.float32])
    return _convert(_qk.fp32_to_bf16, x, np.float32, out, np.uint16, np.uint16)


def bf16_to_fp32(b, *, out=None):
    """Converts bfloat16 bit patterns (a uint16 array) to float32, exactly:
    each value's bits shifted up by 16."""
    b = require_array(b, "b", [np.uint16])
    return _convert(_qk.bf16_to_fp32, b, np.uint16, out, np.float32, np.float32)
