"""The native MaxPools, uint8 NHWC (QuantizedMaxPool, in integer chains) and
float32 NCHW (MaxPool at inference), against the NumPy taps of the float
MaxPool (the path that records gradients) on the same values, exactly:
kernels, strides, dilations, asymmetric pads, ceil mode, odd and tiny
images; NaN, infinities and signed zeros for the float one."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from qk.graph import ops as graph_ops
from qk.nn import Tensor

CASES = [dict(kernel_shape=k, strides=s, dilations=d, pads=p, ceil_mode=c)
         for k, s, d, p, c in itertools.product([(1, 1), (2, 2), (3, 3), (3, 2)], [(1, 1), (2, 2), (2, 1)],
                                                [(1, 1), (2, 2)], [(0, 0, 0, 0), (1, 1, 1, 1), (1, 0, 2, 1)], [0, 1])
         if p[0] < k[0] and p[2] < k[0] and p[1] < k[1] and p[3] < k[1]]


def numpy_max_pool(attrs, x):
    """The float MaxPool's NumPy taps (it takes them for a tensor that records gradients)."""
    y = graph_ops.get("MaxPool").run(dict(attrs), Tensor(x, requires_grad=True))
    assert y.requires_grad  # the recording path, not the native kernel
    return graph_ops.data_of(y)


@pytest.mark.parametrize("attrs", CASES, ids=lambda a: "-".join(str(v) for v in a.values()))
@pytest.mark.parametrize("shape", [(1, 5, 7, 3), (2, 9, 8, 17), (1, 16, 16, 64)], ids=str)
def test_uint8_max_pool_matches_the_float_pool(attrs, shape, threads):
    rng = np.random.default_rng(hash(shape) % 1000)
    x = rng.integers(0, 256, shape, dtype=np.uint8)
    try:
        want = numpy_max_pool(attrs, x.transpose(0, 3, 1, 2).astype(np.float32))
    except ValueError:
        pytest.skip("a geometry the float pool refuses")
    want = want.transpose(0, 2, 3, 1).astype(np.uint8)
    got = graph_ops.get("QuantizedMaxPool").run(dict(attrs), x)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("attrs", CASES, ids=lambda a: "-".join(str(v) for v in a.values()))
@pytest.mark.parametrize("shape", [(1, 3, 5, 7), (2, 17, 9, 8)], ids=str)
def test_float_max_pool_at_inference_matches_the_numpy_taps(attrs, shape, threads):
    """Bit for bit (assert_array_equal with the signs of zeros compared),
    NaN propagating from any tap, -inf and +inf as values."""
    rng = np.random.default_rng(sum(shape))
    x = rng.choice(np.array([0.0, -0.0, 1.5, -2.25, np.inf, -np.inf, np.nan], np.float32), shape,
                   p=[0.2, 0.2, 0.2, 0.2, 0.08, 0.08, 0.04])
    x = np.where(rng.random(shape) < 0.5, rng.standard_normal(shape).astype(np.float32), x)
    try:
        want = numpy_max_pool(attrs, x)
    except ValueError:
        pytest.skip("a geometry the float pool refuses")
    got = graph_ops.data_of(graph_ops.get("MaxPool").run(dict(attrs), x))
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 8, 8, 64), (3, 5, 7, 17)], ids=str)
def test_uint8_global_average_pool_sums_exactly(shape):
    """From uint8 NHWC (chained) or from float NCHW values on the grid, the same
    result, which is the float pool's up to float32 rounding."""
    rng = np.random.default_rng(sum(shape))
    q = rng.integers(0, 256, shape, dtype=np.uint8)
    scale, zp = 0.0173, 37
    attrs = {"qparams": (scale, zp)}
    op = graph_ops.get("QuantizedGlobalAveragePool").run
    chained = graph_ops.data_of(op(dict(attrs, in_nhwc=True), q))
    floats = (q.transpose(0, 3, 1, 2).astype(np.float32) - np.float32(zp)) * np.float32(scale)
    plain = graph_ops.data_of(op(dict(attrs), floats))
    np.testing.assert_array_equal(chained, plain)
    want = floats.astype(np.float64).mean(axis=(2, 3), keepdims=True)
    np.testing.assert_allclose(chained, want, rtol=1e-6, atol=1e-6 * scale * 255)
    assert chained.shape == (shape[0], shape[3], 1, 1) and chained.dtype == np.float32
