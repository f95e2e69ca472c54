"""quantized_linear / dynamic_linear epilogues against a float64 reference, and bad input."""

import numpy as np
import pytest

import qk

# The amx parameter of the isa fixture runs the emulated AMX tiles on CPUs without AMX (conftest.py).
AMX_BY_EMULATION = True


def make(m, k, n, x_dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    info = np.iinfo(x_dtype)
    x_q = rng.integers(info.min, info.max + 1, (m, k)).astype(x_dtype)
    w = rng.integers(-127, 128, (k, n)).astype(np.int8)
    w_scale = rng.uniform(0.001, 0.02, n).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    return x_q, w, w_scale, bias


def reference(x_q, w, x_scale, x_zp, w_scale, bias=None, relu=False):
    acc = x_q.astype(np.int64) @ w.astype(np.int64) - x_zp * w.astype(np.int64).sum(0)
    y = np.float64(np.float32(x_scale)) * np.asarray(w_scale, np.float64) * acc
    if bias is not None:
        y = y + bias
    return np.maximum(y, 0) if relu else y


@pytest.mark.parametrize("m,k,n", [(1, 64, 16), (7, 33, 17), (64, 257, 129), (130, 100, 3)])
@pytest.mark.parametrize("x_dtype,x_zp", [(np.uint8, 131), (np.int8, -3)])
@pytest.mark.parametrize("relu", [False, True])
def test_float_output(isa, m, k, n, x_dtype, x_zp, relu):
    x_q, w, w_scale, bias = make(m, k, n, x_dtype)
    y = qk.quantized_linear(x_q, qk.pack_int8_weight(w), x_scale=0.02, x_zero_point=x_zp, w_scale=w_scale,
                            bias=bias, relu=relu)
    assert y.dtype == np.float32 and y.shape == (m, n)
    np.testing.assert_allclose(y, reference(x_q, w, 0.02, x_zp, w_scale, bias, relu), rtol=2e-6, atol=2e-6)


def test_per_tensor_weight_scale_and_no_bias(isa):
    x_q, w, _, _ = make(5, 40, 9)
    y = qk.quantized_linear(x_q, w, x_scale=0.1, x_zero_point=0, w_scale=0.01)
    np.testing.assert_allclose(y, reference(x_q, w, 0.1, 0, np.full(9, 0.01, np.float32)), rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("out_dtype,out_zp", [(np.int8, 5), (np.uint8, 100)])
@pytest.mark.parametrize("relu", [False, True])
def test_requantized_output_equals_quantize_of_float_result(isa, out_dtype, out_zp, relu):
    x_q, w, w_scale, bias = make(33, 70, 45, seed=3)
    w = qk.pack_int8_weight(w)
    common = dict(x_scale=0.05, x_zero_point=128, w_scale=w_scale, bias=bias, relu=relu)
    y = qk.quantized_linear(x_q, w, **common)
    q = qk.quantized_linear(x_q, w, **common, out_dtype=out_dtype, out_scale=0.07, out_zero_point=out_zp)
    info = np.iinfo(out_dtype)
    expected = np.clip(np.rint(y / np.float32(0.07)) + np.float32(out_zp), info.min, info.max).astype(out_dtype)
    np.testing.assert_array_equal(q, expected)


EDGE_VALUES = np.array([-2.5, -1.5, -0.5, -0.0, 0.5, 1.5, 2.5, 3.5, 126.5, 127.5, 128.5, 254.5, 255.5, -127.5,
                        -128.5, -129.5, 0.49999997, 1e30, -1e30, 3.4e38, np.inf, -np.inf, np.nan], np.float32)


@pytest.mark.parametrize("out_dtype,out_zp", [(np.int8, 0), (np.int8, -7), (np.uint8, 0), (np.uint8, 128)])
@pytest.mark.parametrize("out_scale", [1.0, 0.5, 3e-39])
def test_requantize_ties_saturation_and_nan(isa, out_dtype, out_zp, out_scale):
    """Zero activations make y = bias exactly, so the bias feeds the requantizer
    ties (round half to even), values beyond the range, +-inf and NaN (-> zero point)."""
    n = EDGE_VALUES.size
    x_q = np.zeros((3, 8), np.uint8)
    w = np.ones((8, n), np.int8)
    q = qk.quantized_linear(x_q, w, x_scale=1.0, x_zero_point=0, w_scale=1.0, bias=EDGE_VALUES,
                            out_dtype=out_dtype, out_scale=out_scale, out_zero_point=out_zp)
    info = np.iinfo(out_dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        t = np.rint(EDGE_VALUES / np.float32(out_scale)) + np.float32(out_zp)
    expected = np.where(np.isnan(EDGE_VALUES), out_zp, np.clip(t, info.min, info.max)).astype(out_dtype)
    np.testing.assert_array_equal(q, np.broadcast_to(expected, (3, n)))


def test_paths_agree_bit_for_bit():
    x_q, w, w_scale, bias = make(50, 300, 70, seed=5)
    outs = []
    previous = qk.get_isa()
    try:
        for isa in qk.available_isas():
            qk.set_isa(isa)
            outs.append(qk.quantized_linear(x_q, w, x_scale=0.03, x_zero_point=77, w_scale=w_scale, bias=bias))
    finally:
        qk.set_isa(previous)
    for o in outs[1:]:
        np.testing.assert_array_equal(o.view(np.uint32), outs[0].view(np.uint32))


@pytest.mark.parametrize("m,k,n", [(1, 64, 10), (16, 300, 33), (200, 64, 128)])
def test_dynamic_linear_matches_its_definition(isa, m, k, n):
    rng = np.random.default_rng(m)
    x = rng.standard_normal((m, k)).astype(np.float32)
    _, w, w_scale, bias = make(m, k, n)
    y = qk.dynamic_linear(x, qk.pack_int8_weight(w), w_scale, bias)
    lo, hi = min(x.min(), 0), max(x.max(), 0)
    scale = np.float32((hi - lo) / 255)
    zp = int(np.clip(round(-lo / scale), 0, 255))
    x_q = qk.quantize(x, scale, zp, dtype=np.uint8)
    np.testing.assert_allclose(y, reference(x_q, w, scale, zp, w_scale, bias), rtol=2e-6, atol=2e-6)
    # And it approximates the float product.
    exact = x @ (w.astype(np.float32) * w_scale) + bias
    assert np.abs(y - exact).max() < 0.02 * np.abs(exact).max() + 1e-3


def test_dynamic_linear_edge_inputs():
    w = np.ones((4, 3), np.int8)
    np.testing.assert_array_equal(qk.dynamic_linear(np.zeros((2, 4), np.float32), w, 0.1), np.zeros((2, 3)))
    assert qk.dynamic_linear(np.zeros((0, 4), np.float32), w, 0.1).shape == (0, 3)
    with pytest.raises(ValueError, match="x"):
        qk.dynamic_linear(np.array([[np.nan, 1, 2, 3]], np.float32), w, 0.1)


def dynamic_by_definition(x, w, w_scale, bias=None):
    """dynamic_linear's documented definition through the public kernels."""
    lo, hi = min(float(x.min()), 0.0) if x.size else 0.0, max(float(x.max()), 0.0) if x.size else 0.0
    scale = np.float32((hi - lo) / 255.0)
    scale = scale if scale > 0 else np.float32(1.0)
    zp = min(max(round(-lo / float(scale)), 0), 255)
    x_q = qk.quantize(x, scale, zp, dtype=np.uint8)
    return qk.quantized_linear(x_q, w, x_scale=scale, x_zero_point=zp, w_scale=w_scale, bias=bias)


@pytest.mark.parametrize("kind", ["normal", "positive", "negative", "tiny", "huge", "constant", "one row", "1-d",
                                  "batch dims", "strided", "k=0"])
def test_dynamic_linear_bit_for_bit_with_its_definition(isa, kind):
    rng = np.random.default_rng(len(kind))
    shape = {"one row": (1, 37), "1-d": (37,), "batch dims": (2, 3, 37), "k=0": (5, 0)}.get(kind, (19, 37))
    x = rng.standard_normal(shape).astype(np.float32)
    if kind == "positive":
        x = np.abs(x)
    elif kind == "negative":
        x = -np.abs(x)
    elif kind == "tiny":
        x *= np.float32(1e-38)
    elif kind == "huge":
        x *= np.float32(1e37)
    elif kind == "constant":
        x = np.full(shape, 2.5, np.float32)
    elif kind == "strided":
        x = rng.standard_normal((19, 74)).astype(np.float32)[:, ::2]
    k = shape[-1]
    w = rng.integers(-127, 128, (k, 29)).astype(np.int8)
    w_scale = rng.uniform(0.001, 0.02, 29).astype(np.float32)
    bias = rng.standard_normal(29).astype(np.float32)
    for ws in (w_scale, np.float32(0.01), w_scale.astype(np.float64)):
        y = qk.dynamic_linear(x, qk.pack_int8_weight(w), ws, bias)
        expected = dynamic_by_definition(x, w, ws, bias)
        assert y.shape == x.shape[:-1] + (29,)
        np.testing.assert_array_equal(y.view(np.uint32), expected.view(np.uint32))


def test_dynamic_linear_rejects_non_finite_input_and_bad_scales():
    w = np.ones((4, 3), np.int8)
    for bad in (np.inf, -np.inf, np.nan):
        with pytest.raises(ValueError, match="^x: .*NaN or infinity"):
            qk.dynamic_linear(np.array([[1, 2, bad, 3]], np.float32), w, 0.1)
    x = np.ones((2, 4), np.float32)
    with pytest.raises(ValueError, match="^w_scale"):
        qk.dynamic_linear(x, w, np.array([0.1, -0.1, 0.1], np.float32))
    with pytest.raises(ValueError, match="^w_scale"):
        qk.dynamic_linear(x, w, np.array([0.1, np.nan, 0.1], np.float32))
    with pytest.raises(ValueError, match="^w_scale"):  # x_scale * w_scale underflows to 0 in float32
        qk.dynamic_linear(x * np.float32(1e-30), w, np.array([1e-20] * 3, np.float32))
    with pytest.raises(ValueError, match="^bias"):
        qk.dynamic_linear(x, w, 0.1, bias=np.zeros(2, np.float32))


X = np.zeros((3, 8), np.uint8)
W = np.zeros((8, 4), np.int8)


@pytest.mark.parametrize(
    "call,exc,name",
    [
        (lambda: qk.int8_matmul(X.astype(np.float32), W), TypeError, "a"),
        (lambda: qk.int8_matmul(X.astype(np.int16), W), TypeError, "a"),
        (lambda: qk.int8_matmul(X, W.astype(np.uint8)), TypeError, "b"),
        (lambda: qk.int8_matmul(X, W.astype(np.int16)), TypeError, "b"),
        (lambda: qk.int8_matmul(X, [[1]]), TypeError, "b"),
        (lambda: qk.int8_matmul(X, np.zeros((7, 4), np.int8)), ValueError, "b"),
        (lambda: qk.int8_matmul(X, qk.pack_int8_weight(np.zeros((9, 4), np.int8))), ValueError, "b"),
        (lambda: qk.int8_matmul(np.zeros((), np.int8), W), ValueError, "a"),
        (lambda: qk.int8_matmul(X, W, out=np.zeros((3, 4), np.int64)), TypeError, "out"),
        (lambda: qk.int8_matmul(X, W, out=np.zeros((4, 3), np.int32)), ValueError, "out"),
        (lambda: qk.int8_matmul(X, W, out=np.zeros((3, 8), np.int32)[:, ::2]), ValueError, "out"),
        (lambda: qk.pack_int8_weight(np.zeros(4, np.int8)), ValueError, "b"),
        (lambda: qk.quantized_linear(X, W, x_scale=0.1, x_zero_point=0, w_scale=np.ones(3)), ValueError, "w_scale"),
        (lambda: qk.quantized_linear(X, W, x_scale=0.1, x_zero_point=0, w_scale=-1.0), ValueError, "w_scale"),
        (lambda: qk.quantized_linear(X, W, x_scale=0.0, x_zero_point=0, w_scale=1.0), ValueError, "x_scale"),
        (lambda: qk.quantized_linear(X, W, x_scale=0.1, x_zero_point=256, w_scale=1.0), ValueError, "x_zero_point"),
        (lambda: qk.quantized_linear(X, W, x_scale=0.1, x_zero_point=0, w_scale=1.0, bias=np.ones(5)),
         ValueError, "bias"),
        (lambda: qk.quantized_linear(X, W, x_scale=0.1, x_zero_point=0, w_scale=1.0, out_dtype=np.int8),
         ValueError, "out_scale"),
        (lambda: qk.quantized_linear(X, W, x_scale=0.1, x_zero_point=0, w_scale=1.0, out_dtype=np.int16),
         TypeError, "out_dtype"),
        (lambda: qk.quantized_linear(X, W, x_scale=0.1, x_zero_point=0, w_scale=1.0, out_dtype=np.uint8,
                                     out_scale=0.1, out_zero_point=-1), ValueError, "out_zero_point"),
        (lambda: qk.quantized_linear(X, W, x_scale=0.1, x_zero_point=0, w_scale=1.0, relu=1), TypeError, "relu"),
        (lambda: qk.dynamic_linear(X, W, 0.1), TypeError, "x"),
    ],
)
def test_bad_input_names_the_argument(call, exc, name):
    with pytest.raises(exc, match=rf"\b{name}\b"):
        call()
