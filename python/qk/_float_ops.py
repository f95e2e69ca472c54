"""The native float32 transformer ops the graph executor and qk.nn run on
(C++, every ISA path bit-identical, threads, GIL released): the exact GELU,
softmax and LayerNorm. float32 only; callers keep NumPy for other dtypes."""

from __future__ import annotations

import numpy as np

from . import _qk


def _float32(x: np.ndarray, name: str) -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.dtype != np.float32:
        raise TypeError(f"{name}: expected a float32 numpy array, got "
                        f"{getattr(x, 'dtype', type(x).__name__)}")
    return np.ascontiguousarray(x)


def gelu(x: np.ndarray) -> np.ndarray:
    """x * Phi(x) (the exact, erf GELU) of a float32 array; Phi from Numerical
    Recipes' erfc (relative error < 1.2e-7 before float32 rounding)."""
    x = _float32(x, "x")
    out = np.empty_like(x)
    if x.size:
        _qk.gelu(x, out)
    return out


def softmax(x: np.ndarray, axis: int = -1, mask: np.ndarray | None = None, nan_to_zero: bool = False) -> np.ndarray:
    """exp(z - max) * (1 / sum) along `axis` of z = x, or z = x + mask (a float32
    array that broadcasts to x's shape, added in the same pass), for a
    float32 x. NaN where NumPy's formula gives NaN (a row of -inf, a NaN or
    +inf in the row), or 0 there when `nan_to_zero`."""
    x = _float32(x, "x")
    if not isinstance(axis, (int, np.integer)) or not -x.ndim <= axis < max(x.ndim, 1):
        raise ValueError(f"axis: expected an axis of a {x.ndim}-d array, got {axis!r}")
    moved = x.ndim > 0 and axis % x.ndim != x.ndim - 1
    if mask is not None:
        mask = _float32(mask, "mask")
        try:
            np.broadcast_shapes(mask.shape, x.shape)
        except ValueError as e:
            raise ValueError(f"mask: expected a shape that broadcasts to {x.shape}, got {mask.shape}") from e
        if moved or mask.ndim == 0 or mask.ndim > x.ndim or mask.shape[-1] != x.shape[-1] or not x.size:
            return softmax(x + mask, axis, nan_to_zero=nan_to_zero)  # rows of the mask are not rows of x
    rows = np.ascontiguousarray(np.moveaxis(x, axis, -1)) if moved else x
    out = np.empty_like(rows)
    if rows.size:
        mask_rows = None if mask is None else _mask_row_offsets(mask, x.shape)
        _qk.softmax(rows, rows.shape[-1] if rows.ndim else 1, out, mask, mask_rows, bool(nan_to_zero))
    return np.moveaxis(out, -1, axis) if moved else out


def _mask_row_offsets(mask: np.ndarray, shape: tuple) -> np.ndarray:
    """For each row of an array of `shape` (C order), the offset in elements of
    its row of the C-contiguous `mask` broadcast to that shape."""
    lead = shape[:-1]
    padded = (1,) * (len(shape) - mask.ndim) + mask.shape
    offsets = np.zeros(lead, np.int64)
    stride = shape[-1]
    for axis in range(len(lead) - 1, -1, -1):
        if padded[axis] != 1:
            offsets += (np.arange(lead[axis], dtype=np.int64) * stride).reshape((-1,) + (1,) * (len(lead) - 1 - axis))
        stride *= padded[axis]
    return np.ascontiguousarray(offsets).reshape(-1)


def layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray | None, eps: float, axis: int):
    """LayerNormalization over the axes from `axis` on of a float32 array:
    (y, mean, inv_std), mean and inv_std with those axes kept as 1; gamma and
    beta broadcast to the normalized shape."""
    x = _float32(x, "x")
    if not isinstance(axis, (int, np.integer)) or not -x.ndim <= axis < x.ndim:
        raise ValueError(f"axis: expected an axis of a {x.ndim}-d array, got {axis!r}")
    axis %= x.ndim
    inner = x.shape[axis:]
    try:
        g = np.ascontiguousarray(np.broadcast_to(np.asarray(gamma, np.float32), inner))
        b = None if beta is None else np.ascontiguousarray(np.broadcast_to(np.asarray(beta, np.float32), inner))
    except ValueError as e:
        raise ValueError(f"gamma, beta: expected shapes that broadcast to {inner}") from e
    stats_shape = x.shape[:axis] + (1,) * len(inner)
    y, mean, inv = np.empty_like(x), np.empty(stats_shape, np.float32), np.empty(stats_shape, np.float32)
    if x.size:
        _qk.layer_norm(x, g, b, float(eps), y, mean, inv)
    return y, mean, inv
