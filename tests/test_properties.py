"""Property tests (hypothesis, a fixed example budget): every public kernel
against its NumPy reference on random data, with the output written into a
buffer that aliases the input, or misaligned, as well as a fresh one."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import qk
from test_quant import ref_dequantize, ref_fake_quantize, ref_quantize

PLACEMENTS = st.sampled_from(["fresh", "alias", "misaligned"])


def _place(kind, src: np.ndarray, dtype, shape):
    """An out= buffer of `dtype` and `shape`: fresh, over src's own bytes, or misaligned."""
    n = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if kind == "alias" and src.nbytes >= n:
        return src.reshape(-1).view(np.uint8)[:n].view(dtype).reshape(shape)
    if kind == "misaligned" and np.dtype(dtype).itemsize > 1:
        return np.frombuffer(bytearray(n + 1), dtype, count=int(np.prod(shape)), offset=1).reshape(shape)
    return np.empty(shape, dtype)


def _floats(draw_n, seed):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(draw_n) * 10.0 ** rng.integers(-2, 3, draw_n)).astype(np.float32)


@settings(max_examples=80, deadline=None)
@given(n=st.integers(0, 3000), seed=st.integers(0, 10 ** 6), scale=st.floats(1e-3, 10.0), zp=st.integers(-20, 20),
       where=PLACEMENTS)
def test_quantize_and_fake_quantize(n, seed, scale, zp, where):
    x = _floats(n, seed)
    want_q = ref_quantize(x, np.float32(scale), zp, np.int8)
    want_f = ref_fake_quantize(x, np.float32(scale), zp, -128, 127)
    xa = x.copy()
    assert np.array_equal(qk.quantize(xa, scale, zp, out=_place(where, xa, np.int8, x.shape)), want_q)
    xb = x.copy()
    got = qk.fake_quantize(xb, scale, zp, out=_place(where, xb, np.float32, x.shape))
    assert np.array_equal(got, want_f, equal_nan=True)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 3000), seed=st.integers(0, 10 ** 6), scale=st.floats(1e-3, 10.0), zp=st.integers(0, 255),
       where=PLACEMENTS)
def test_dequantize(n, seed, scale, zp, where):
    q = np.random.default_rng(seed).integers(0, 256, 4 * n).astype(np.uint8)  # room for a float32 alias
    want = ref_dequantize(q[:n], np.float32(scale), zp)
    got = qk.dequantize(q[:n], scale, zp, out=_place(where, q, np.float32, (n,)))
    assert np.array_equal(got, want)


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 24), k=st.integers(1, 200), n=st.integers(1, 40), seed=st.integers(0, 10 ** 6),
       where=PLACEMENTS)
def test_int8_matmul_and_quantized_linear(m, k, n, seed, where):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (m, max(k, 4 * n))).astype(np.uint8)[:, :k].copy()
    w = rng.integers(-128, 128, (k, n)).astype(np.int8)
    want = a.astype(np.int64) @ w.astype(np.int64)
    a1 = a.copy()  # an aliased out overwrites its input: each call gets its own copy
    got = qk.int8_matmul(a1, w, out=_place(where, a1, np.int32, (m, n)))
    assert np.array_equal(got, want.astype(np.int32))
    ws = rng.uniform(1e-3, 1e-2, n).astype(np.float32)
    a2 = a.copy()
    y = qk.quantized_linear(a2, w, x_scale=0.05, x_zero_point=3, w_scale=ws,
                            out=_place(where, a2, np.float32, (m, n)))
    ref = (want - 3 * w.astype(np.int64).sum(0)).astype(np.float32) * (np.float32(0.05) * ws)
    assert np.array_equal(y, ref)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 3000), seed=st.integers(0, 10 ** 6), where=PLACEMENTS)
def test_fp16_round_trip(n, seed, where):
    x = _floats(n, seed)
    want = x.astype(np.float16)  # before an aliased out overwrites x
    h = qk.fp32_to_fp16(x, out=_place(where, x, np.float16, x.shape))
    assert np.array_equal(h.view(np.uint16), want.view(np.uint16))
    assert np.array_equal(qk.fp16_to_fp32(h.copy()), h.astype(np.float32), equal_nan=True)
