"""`out=` that overlaps an input gives the same result as separate buffers,
and quantized_linear / dynamic_linear stay exact past the int32 bound of K
(int8_matmul keeps its NumPy-like wrap)."""

from __future__ import annotations

import numpy as np
import pytest

import qk
from qk._gemm_ops import EXACT_K

RNG = np.random.default_rng(0)


def test_dequantize_into_its_own_input_buffer(isa, threads):
    buf = np.zeros(64 * 4, np.uint8)
    q = buf[: 64]
    q[:] = RNG.integers(0, 256, 64)
    want = qk.dequantize(q.copy(), 0.5, 3)
    out = buf.view(np.float32)[:64]  # the float32 view of q's own bytes
    got = qk.dequantize(q, 0.5, 3, out=out)
    assert got is out and np.array_equal(got, want)


@pytest.mark.parametrize("fn", ["quantize", "fake_quantize"])
def test_shifted_overlap(fn, isa, threads):
    a = RNG.standard_normal(100_003).astype(np.float32)
    x = a[:-1]
    if fn == "quantize":
        want = qk.quantize(x.copy(), 0.03)
        out = a.view(np.int8)[: x.size]  # the first quarter of x's own bytes
        assert np.array_equal(qk.quantize(x, 0.03, out=out), want)
    else:
        want = qk.fake_quantize(x.copy(), 0.03)
        assert np.array_equal(qk.fake_quantize(x, 0.03, out=a[1:]), want)


def test_per_channel_params_that_alias_out():
    x = RNG.standard_normal((4, 8)).astype(np.float32)
    out = np.empty((4, 8), np.float32)
    scale = out[:, 0]  # a column of out as the scales: read before written
    scale[:] = [0.1, 0.2, 0.3, 0.4]
    want = qk.fake_quantize(x, scale.copy(), axis=0)
    assert np.array_equal(qk.fake_quantize(x, scale, axis=0, out=out), want)


def test_gemm_outputs_that_alias_inputs(isa, threads):
    a = RNG.integers(0, 256, (16, 64)).astype(np.uint8)
    w = RNG.integers(-127, 128, (64, 16)).astype(np.int8)
    want = qk.int8_matmul(a, w)
    buf = np.zeros(16 * 16, np.int32)
    a_view = buf.view(np.uint8)[: a.size].reshape(a.shape)
    a_view[:] = a
    assert np.array_equal(qk.int8_matmul(a_view, w, out=buf.reshape(16, 16)), want)

    ws = np.full(16, 0.01, np.float32)
    out = np.zeros((16, 16), np.float32)
    bias = out[3]  # a bias that is a row of out
    bias[:] = np.arange(16)
    want = qk.quantized_linear(a, w, x_scale=0.1, x_zero_point=7, w_scale=ws, bias=bias.copy())
    assert np.array_equal(qk.quantized_linear(a, w, x_scale=0.1, x_zero_point=7, w_scale=ws, bias=bias, out=out),
                          want)
    x = RNG.standard_normal((16, 64)).astype(np.float32)
    out = np.zeros((16, 16), np.float32)
    bias = out[0]
    bias[:] = 1.0
    want = qk.dynamic_linear(x, w, ws, bias.copy())
    assert np.array_equal(qk.dynamic_linear(x, w, ws, bias, out=out), want)


@pytest.mark.parametrize("k", [EXACT_K, EXACT_K + 1, 70_000])
def test_long_rows_stay_exact(k):
    """All-255 activations x weight 127: the int32 sum passes 2^31 past EXACT_K."""
    a = np.full((2, k), 255, np.uint8)
    w = np.full((k, 3), 127, np.int8)
    w[:, 1] = -128
    y = qk.quantized_linear(a, w, x_scale=1.0, x_zero_point=0, w_scale=np.full(3, 1e-3, np.float32))
    want = np.float32(k * 255.0) * np.array([127, -128, 127], np.float64) * 1e-3
    np.testing.assert_allclose(y[0], want, rtol=1e-6)
    x = np.full((1, k), 1.0, np.float32)
    x[0, 0] = -1.0  # a range that includes 0: x_scale = 2 / 255, zero point 128
    yd = qk.dynamic_linear(x, w, np.full(3, 1e-3, np.float32))
    ref = (x.astype(np.float64) @ w.astype(np.float64)) * 1e-3
    np.testing.assert_allclose(yd[0], ref[0], rtol=1e-2)
    if k <= EXACT_K:  # below the bound both paths agree exactly with the native kernel's
        assert np.array_equal(qk.int8_matmul(a, w)[0, 0], np.int32(k * 255 * 127))


def test_int8_matmul_keeps_its_documented_wrap():
    k = 70_000
    acc = qk.int8_matmul(np.full((1, k), 255, np.uint8), np.full((k, 1), 127, np.int8))
    assert acc[0, 0] == np.int32(np.int64(k * 255 * 127) - 2 ** 32)
