"""qk.quantized_add (the uint8 Add of integer chains) against its NumPy
formulation, bit for bit: dequantize each side on its grid, add in float32,
requantize with round half to even, clamp (ReLU raises the floor to the zero
point). On every ISA path: each has its own copy of the kernel."""

from __future__ import annotations

import numpy as np
import pytest

import qk


def reference(a, b, sa, za, sb, zb, so, zo, relu=False):
    y = np.float32(sa) * (a.astype(np.float32) - np.float32(za)) + np.float32(sb) * (b.astype(np.float32) - np.float32(zb))
    q = np.rint(y / np.float32(so)) + np.float32(zo)
    return np.clip(q, zo if relu else 0, 255).astype(np.uint8)


PARAMS = [(0.02, 3, 0.05, 128, 0.04, 7), (0.0123, 0, 0.0123, 0, 0.0246, 0), (1e-3, 255, 2.0, 0, 1e-4, 255),
          (3.0, 128, 1e-6, 128, 1e-7, 128), (0.5, 0, 0.5, 0, 1.0, 0)]


@pytest.mark.parametrize("shape", [(0,), (1,), (7,), (63,), (65,), (2, 3, 17, 33), (1 << 17,)], ids=str)
@pytest.mark.parametrize("params", PARAMS, ids=lambda p: "-".join(map(str, p)))
@pytest.mark.parametrize("relu", [False, True])
def test_quantized_add_matches_the_reference(isa, shape, params, relu, threads):
    rng = np.random.default_rng(len(shape) * 7 + int(relu))
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    b = rng.integers(0, 256, shape, dtype=np.uint8)
    np.testing.assert_array_equal(qk.quantized_add(a, b, *params, relu=relu), reference(a, b, *params, relu))


def test_quantized_add_ties_round_to_even_and_extremes_clamp(isa):
    # (a - 0) * 0.5 on a grid of 1: halves everywhere, rounded to even
    a = np.arange(256, dtype=np.uint8)
    b = np.zeros(256, np.uint8)
    got = qk.quantized_add(a, b, 0.5, 0, 1.0, 0, 1.0, 0)
    np.testing.assert_array_equal(got, np.rint(np.arange(256) * 0.5).astype(np.uint8))
    # sums far outside the output range clamp to 0 / 255
    full = np.full(8, 255, np.uint8)
    assert (qk.quantized_add(full, full, 1.0, 0, 1.0, 0, 1e-6, 0) == 255).all()
    assert (qk.quantized_add(b[:8], b[:8], 1.0, 255, 1.0, 255, 1e-6, 255) == 0).all()


def test_quantized_add_out_and_aliasing():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, 1000, dtype=np.uint8)
    b = rng.integers(0, 256, 1000, dtype=np.uint8)
    want = reference(a, b, 0.02, 3, 0.05, 128, 0.04, 7)
    out = np.empty_like(a)
    assert qk.quantized_add(a, b, 0.02, 3, 0.05, 128, 0.04, 7, out=out) is out
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(qk.quantized_add(a, b, 0.02, 3, 0.05, 128, 0.04, 7, out=a), want)  # in place
    np.testing.assert_array_equal(a, want)


@pytest.mark.parametrize("args, kwargs, error, match", [
    ((np.zeros(3, np.int8), np.zeros(3, np.uint8)), {}, TypeError, "a: expected dtype uint8"),
    ((np.zeros(3, np.uint8), np.zeros(4, np.uint8)), {}, ValueError, r"b: expected the shape of a \(3,\)"),
    ((np.zeros(3, np.uint8), [0, 0, 0]), {}, TypeError, "b: expected a numpy.ndarray"),
    ((np.zeros(3, np.uint8), np.zeros(3, np.uint8)), {"a_scale": 0.0}, ValueError, "a_scale: must be finite and > 0"),
    ((np.zeros(3, np.uint8), np.zeros(3, np.uint8)), {"out_scale": float("nan")}, ValueError, "out_scale"),
    ((np.zeros(3, np.uint8), np.zeros(3, np.uint8)), {"b_zero_point": 256}, ValueError, r"b_zero_point: .*\[0, 255\]"),
    ((np.zeros(3, np.uint8), np.zeros(3, np.uint8)), {"relu": 1}, TypeError, "relu: expected a bool"),
    ((np.zeros(3, np.uint8), np.zeros(3, np.uint8)), {"out": np.zeros(3, np.int32)}, TypeError, "out: expected dtype"),
])
def test_quantized_add_bad_input_names_the_argument(args, kwargs, error, match):
    params = dict(a_scale=0.1, a_zero_point=0, b_scale=0.1, b_zero_point=0, out_scale=0.1, out_zero_point=0)
    params.update(kwargs)
    with pytest.raises(error, match=match):
        qk.quantized_add(*args, **params)
