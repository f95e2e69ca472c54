"""Hostile use of the public and private surfaces: clear exceptions, never a
crash or a silently different meaning."""

from __future__ import annotations

import numpy as np
import pytest

import qk
from qk import _qk


def test_private_bindings_refuse_sizes_that_wrap():
    w = qk.pack_int8_weight(np.ones((2, 2), np.int8))
    with pytest.raises(ValueError, match="overflows"):
        _qk.int8_matmul(np.zeros(2, np.uint8), True, 2 ** 63 + 1, 2, w._native, np.zeros(4, np.int32))
    with pytest.raises(ValueError, match="overflows"):
        _qk.quantize(np.zeros(2, np.float32), np.zeros(2, np.int8), False, 2 ** 62, 4, 1,
                     np.ones(4, np.float32), np.zeros(4, np.float32), -128.0, 127.0)


def test_private_bindings_refuse_misaligned_buffers():
    x = np.frombuffer(bytearray(4 * 8 + 1), np.float32, count=8, offset=1)
    assert not x.flags.aligned
    with pytest.raises(ValueError, match="aligned"):
        _qk.quantize(x, np.zeros(8, np.int8), False, 1, 1, 8, np.ones(1, np.float32), np.zeros(1, np.float32),
                     -128.0, 127.0)


def test_misaligned_arrays_work_through_the_public_api():
    x = np.frombuffer(bytearray(4 * 33 + 1), np.float32, count=33, offset=1)
    x[:] = np.linspace(-3, 3, 33)
    assert np.array_equal(qk.quantize(x, 0.1), qk.quantize(x.copy(), 0.1))
    out = np.frombuffer(bytearray(4 * 33 + 1), np.float32, count=33, offset=1)
    q = np.arange(33, dtype=np.uint8)
    assert np.array_equal(qk.dequantize(q, 0.5, out=out), q.astype(np.float32) * 0.5)


def test_refused_inputs():
    w = qk.pack_int8_weight(np.ones((2, 2), np.int8))
    with pytest.raises(TypeError, match="pack_int8_weight"):
        qk.PackedInt8Weight(42)
    with pytest.raises(TypeError, match="masked"):
        qk.quantize(np.ma.masked_array(np.ones(3, np.float32), [0, 1, 0]), 0.1)
    with pytest.raises(TypeError, match="real numbers"):
        qk.quantized_linear(np.zeros((2, 2), np.uint8), w, x_scale=1.0, x_zero_point=0,
                            w_scale=np.ones(2, np.float32), bias=np.ones(2, complex))
    with pytest.raises(TypeError, match="real numbers"):
        qk.dynamic_linear(np.zeros((2, 2), np.float32), w, np.ones(2, np.float32), bias=np.array([1, "a"], object))
    with pytest.raises(ValueError, match="w_scale"):
        qk.quantized_linear(np.zeros((2, 2), np.uint8), w, x_scale=1.0, x_zero_point=0,
                            w_scale=np.zeros(0, np.float32))


def test_k_zero_with_leading_dimensions():
    out = qk.int8_matmul(np.zeros((2, 3, 0), np.uint8), np.zeros((0, 4), np.int8))
    assert out.shape == (2, 3, 4) and not out.any()


def test_ctrl_c_interrupts_a_long_gemm():
    """A GEMM of minutes' worth of rows runs as blocks: SIGINT raises KeyboardInterrupt soon, not at the end."""
    import os
    import signal
    import threading
    import time

    a = np.ones((6144, 6144), np.uint8)
    w = qk.pack_int8_weight(np.ones((6144, 6144), np.int8))
    timer = threading.Timer(0.05, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        qk.int8_matmul(a, w)
    timer.join()
    assert time.perf_counter() - t0 < 60  # a generous bound: the point is that it is raised at all


def test_all_nan_calibration_is_refused():
    from qk import nn

    p = qk.ptq.prepare(nn.models.digits_mlp())
    qk.ptq.calibrate(p, np.full((10, 64), np.nan, np.float32), progress=False)
    with pytest.raises(qk.quant.NotCalibratedError, match="no finite value"):
        qk.ptq.convert(p)
    g = qk.graph.GraphModule(qk.graph.trace(nn.models.digits_mlp(), np.zeros((1, 64), np.float32)))
    pg = qk.ptq.calibrate(qk.ptq.prepare(g), np.full((10, 64), np.nan, np.float32), progress=False)
    with pytest.raises(qk.quant.NotCalibratedError, match="no finite value"):
        qk.ptq.convert(pg)
