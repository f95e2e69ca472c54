"""The AMX-INT8 micro-kernel (csrc/gemm/amx_kernel.inc) on the generic GEMM
driver, proven on every machine by compiling it against a scalar emulation of
the AMX intrinsics, and run on the real tiles where this machine has them
(`pytest -k amx`). The GEMM, epilogue and convolution grids also run on the
emulated tiles (their isa fixture's amx parameter, conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest

import qk
from qk import _qk

# Around the 16- and 32-row tiles, the 16-column panels and the 64-element k-step.
SHAPES = [(1, 1, 1), (1, 64, 16), (16, 64, 16), (17, 64, 17), (31, 63, 15), (32, 64, 32), (33, 65, 33),
          (40, 70, 35), (70, 300, 50), (5, 0, 7), (2, 1000, 3), (64, 128, 64), (65, 129, 47)]


def _operands(m, k, n, signed, seed=0, extreme=False):
    rng = np.random.default_rng(seed)
    if extreme:
        a = np.full((m, k), -128 if signed else 255, np.int8 if signed else np.uint8)
        b = np.full((k, n), -128, np.int8)
    else:
        a = rng.integers(-128 if signed else 0, 128 if signed else 256, (m, k)).astype(np.int8 if signed else np.uint8)
        b = rng.integers(-128, 128, (k, n)).astype(np.int8)
    return a, b


def amx_matmul(a, b, emulated: bool):
    w = qk.pack_int8_weight(b)
    out = np.empty((a.shape[0], b.shape[1]), np.int32)
    _qk.amx_int8_matmul(a, a.dtype == np.int8, a.shape[0], a.shape[1], w._native, out, emulated)
    return out


def reference(a, b):
    return (a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32)  # int32 wrap, like the tiles


@pytest.mark.parametrize("signed", [False, True], ids=["u8-a", "s8-a"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_amx_emulated_against_the_reference(shape, signed, threads):
    a, b = _operands(*shape, signed)
    assert np.array_equal(amx_matmul(a, b, emulated=True), reference(a, b))


@pytest.mark.parametrize("signed", [False, True], ids=["u8-a", "s8-a"])
def test_amx_emulated_extremes_and_wrap(signed):
    for shape in [(17, 130, 20), (2, 70_000, 2)]:  # the second sum passes 2^31 and wraps
        a, b = _operands(*shape, signed, extreme=True)
        assert np.array_equal(amx_matmul(a, b, emulated=True), reference(a, b))


def test_amx_real_path_needs_the_hardware():
    a, b = _operands(4, 8, 4, False)
    if "amx" not in qk.available_isas():
        with pytest.raises(ValueError, match="cannot run AMX"):
            amx_matmul(a, b, emulated=False)
        pytest.skip("this machine has no AMX tiles (amx_tile, amx_int8 and the Linux XTILEDATA permission)")
    assert np.array_equal(amx_matmul(a, b, emulated=False), reference(a, b))


@pytest.mark.parametrize("signed", [False, True], ids=["u8-a", "s8-a"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_amx_real_matches_emulated_bit_for_bit(shape, signed, threads):
    if "amx" not in qk.available_isas():
        pytest.skip("this machine has no AMX tiles")
    a, b = _operands(*shape, signed, seed=1)
    assert np.array_equal(amx_matmul(a, b, emulated=False), amx_matmul(a, b, emulated=True))


@pytest.mark.parametrize("shape", [(1, 64, 16), (33, 65, 33), (70, 300, 50)], ids=lambda s: "x".join(map(str, s)))
def test_amx_tiles_with_the_shared_epilogues(shape, threads):
    """int8_matmul, quantized_linear (float, ReLU, requantized) and dynamic_linear
    on the AMX tiles give the bits the other paths give."""
    m, k, n = shape
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (m, k)).astype(np.uint8)
    s = rng.integers(-128, 128, (m, k)).astype(np.int8)
    b = rng.integers(-128, 128, (k, n)).astype(np.int8)
    x = rng.standard_normal((m, k)).astype(np.float32)
    ws = rng.uniform(1e-3, 1e-2, n).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    calls = [lambda w: qk.int8_matmul(a, w), lambda w: qk.int8_matmul(s, w),
             lambda w: qk.quantized_linear(a, w, x_scale=0.02, x_zero_point=9, w_scale=ws, bias=bias, relu=True),
             lambda w: qk.quantized_linear(s, w, x_scale=0.02, x_zero_point=-3, w_scale=ws, out_dtype=np.uint8,
                                           out_scale=0.05, out_zero_point=128),
             lambda w: qk.dynamic_linear(x, w, ws, bias)]
    w = qk.pack_int8_weight(b)
    want = [f(w) for f in calls]
    _qk.set_amx_emulation(True)
    try:
        got = [f(qk.pack_int8_weight(b)) for f in calls]
    finally:
        _qk.set_amx_emulation(False)
    for g, e in zip(got, want):
        assert np.array_equal(g, e)
