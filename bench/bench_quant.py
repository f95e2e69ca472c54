"""Per-channel quantize, dequantize and fake_quantize: qk vs the NumPy
expression of the same maths vs PyTorch, with np.copyto of the float32
tensor as the memory-bandwidth yardstick."""

import numpy as np
import pytest

import qk

SHAPES = {"4096x4096": (4096, 4096), "256x1024": (256, 1024)}


@pytest.fixture(scope="module", params=list(SHAPES))
def case(request):
    rows, cols = SHAPES[request.param]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, cols), dtype=np.float32)
    scale = (np.abs(x).max(axis=1) / 127).astype(np.float32)
    zp = np.zeros(rows, np.int32)
    q = qk.quantize(x, scale, zp, axis=0)
    return request.param, x, scale, zp, q


def numpy_quantize(x, scale, zp):
    s, z = scale[:, None], zp[:, None].astype(np.float32)
    v = np.clip(np.rint(x / s) + z, -128, 127)
    return np.where(np.isnan(x), z, v).astype(np.int8)


def numpy_dequantize(q, scale, zp):
    return (q.astype(np.float32) - zp[:, None].astype(np.float32)) * scale[:, None]


def numpy_fake_quantize(x, scale, zp):
    return numpy_dequantize(numpy_quantize(x, scale, zp), scale, zp)


def _torch():
    return pytest.importorskip("torch")


# --- quantize -----------------------------------------------------------------


@pytest.mark.parametrize("impl", ["qk", "numpy", "torch", "copy"])
def test_quantize_per_channel(measure, benchmark, case, impl):
    name, x, scale, zp, _ = case
    benchmark.group = f"quantize per-channel {name}"
    traffic = x.nbytes + x.size
    if impl == "qk":
        out = np.empty(x.shape, np.int8)
        measure(impl, lambda: qk.quantize(x, scale, zp, axis=0, out=out), bytes=traffic)
    elif impl == "numpy":
        measure(impl, numpy_quantize, x, scale, zp, bytes=traffic)
    elif impl == "torch":
        torch = _torch()
        xt, st, zt = torch.from_numpy(x), torch.from_numpy(scale.astype(np.float64)), torch.from_numpy(zp.astype(np.int64))
        measure(impl, torch.quantize_per_channel, xt, st, zt, 0, torch.qint8, bytes=traffic)
    else:
        dst = np.empty_like(x)
        measure(impl, np.copyto, dst, x, bytes=2 * x.nbytes)


# --- dequantize ---------------------------------------------------------------


@pytest.mark.parametrize("impl", ["qk", "numpy", "torch", "copy"])
def test_dequantize_per_channel(measure, benchmark, case, impl):
    name, x, scale, zp, q = case
    benchmark.group = f"dequantize per-channel {name}"
    traffic = q.nbytes + x.nbytes
    if impl == "qk":
        out = np.empty(x.shape, np.float32)
        measure(impl, lambda: qk.dequantize(q, scale, zp, axis=0, out=out), bytes=traffic)
    elif impl == "numpy":
        measure(impl, numpy_dequantize, q, scale, zp, bytes=traffic)
    elif impl == "torch":
        torch = _torch()
        st, zt = torch.from_numpy(scale.astype(np.float64)), torch.from_numpy(zp.astype(np.int64))
        qt = torch.quantize_per_channel(torch.from_numpy(x), st, zt, 0, torch.qint8)
        measure(impl, qt.dequantize, bytes=traffic)
    else:
        dst = np.empty_like(x)
        measure(impl, np.copyto, dst, x, bytes=2 * x.nbytes)


# --- fake_quantize ------------------------------------------------------------


@pytest.mark.parametrize("impl", ["qk", "numpy", "torch", "copy"])
def test_fake_quantize_per_channel(measure, benchmark, case, impl):
    name, x, scale, zp, _ = case
    benchmark.group = f"fake_quantize per-channel {name}"
    traffic = 2 * x.nbytes
    if impl == "qk":
        out = np.empty_like(x)
        measure(impl, lambda: qk.fake_quantize(x, scale, zp, axis=0, out=out), bytes=traffic)
    elif impl == "numpy":
        measure(impl, numpy_fake_quantize, x, scale, zp, bytes=traffic)
    elif impl == "torch":
        torch = _torch()
        xt = torch.from_numpy(x)
        st, zt = torch.from_numpy(scale), torch.from_numpy(zp)
        measure(impl, torch.fake_quantize_per_channel_affine, xt, st, zt, 0, -128, 127, bytes=traffic)
    else:
        dst = np.empty_like(x)
        measure(impl, np.copyto, dst, x, bytes=2 * x.nbytes)
