"""Bad input to quantize / dequantize / fake_quantize raises a clear, named error."""

import numpy as np
import pytest

import qk

X = np.ones((4, 3), np.float32)
Q = np.ones((4, 3), np.int8)


@pytest.mark.parametrize(
    "call,exc,name",
    [
        (lambda: qk.quantize(X.astype(np.float64), 1.0), TypeError, "x"),
        (lambda: qk.quantize([1.0, 2.0], 1.0), TypeError, "x"),
        (lambda: qk.dequantize(Q.astype(np.int16), 1.0), TypeError, "q"),
        (lambda: qk.dequantize(X, 1.0), TypeError, "q"),
        (lambda: qk.fake_quantize(X.astype(np.float16), 1.0), TypeError, "x"),
        (lambda: qk.quantize(X, 1.0, dtype=np.int16), TypeError, "dtype"),
        (lambda: qk.quantize(X, 0.0), ValueError, "scale"),
        (lambda: qk.quantize(X, -1.0), ValueError, "scale"),
        (lambda: qk.quantize(X, float("nan")), ValueError, "scale"),
        (lambda: qk.quantize(X, float("inf")), ValueError, "scale"),
        (lambda: qk.quantize(X, 1e-50), ValueError, "scale"),  # underflows to 0 in float32
        (lambda: qk.quantize(X, "a"), TypeError, "scale"),
        (lambda: qk.quantize(X, np.ones(3)), ValueError, "scale"),  # per-tensor needs a scalar
        (lambda: qk.quantize(X, np.ones(4), axis=1), ValueError, "scale"),
        (lambda: qk.quantize(X, np.ones((3, 1)), axis=1), ValueError, "scale"),
        (lambda: qk.quantize(X, np.ones(3), np.zeros(4, int), axis=1), ValueError, "zero_point"),
        (lambda: qk.quantize(X, np.array([1.0, 0.0, 1.0]), axis=1), ValueError, "scale"),
        (lambda: qk.quantize(X, 1.0, axis=2), ValueError, "axis"),
        (lambda: qk.quantize(X, 1.0, axis=-3), ValueError, "axis"),
        (lambda: qk.quantize(X, 1.0, axis=1.0), TypeError, "axis"),
        (lambda: qk.quantize(np.ones((), np.float32), np.ones(1), axis=0), ValueError, "axis"),
        (lambda: qk.quantize(X, 1.0, 128), ValueError, "zero_point"),
        (lambda: qk.quantize(X, 1.0, -1, dtype=np.uint8), ValueError, "zero_point"),
        (lambda: qk.quantize(X, 1.0, 0.5), ValueError, "zero_point"),
        (lambda: qk.dequantize(Q, 1.0, 300), ValueError, "zero_point"),
        (lambda: qk.fake_quantize(X, 1.0, 9, qmin=-8, qmax=7), ValueError, "zero_point"),
        (lambda: qk.fake_quantize(X, 1.0, qmin=5, qmax=4), ValueError, "qmin"),
        (lambda: qk.fake_quantize(X, 1.0, qmin=-129), ValueError, "qmin"),
        (lambda: qk.fake_quantize(X, 1.0, qmax=256), ValueError, "qmax"),
        (lambda: qk.fake_quantize(X, 1.0, qmin=1.5), TypeError, "qmin"),
        (lambda: qk.quantize(X, 1.0, out=np.empty((4, 3), np.uint8)), TypeError, "out"),
        (lambda: qk.quantize(X, 1.0, out=np.empty((3, 4), np.int8)), ValueError, "out"),
        (lambda: qk.quantize(X, 1.0, out=np.empty((4, 6), np.int8)[:, ::2]), ValueError, "out"),
        (lambda: qk.fake_quantize(X, 1.0, out=[0.0]), TypeError, "out"),
        (lambda: qk.dequantize(Q, 1.0, out=np.empty((4, 3), np.float64)), TypeError, "out"),
    ],
)
def test_bad_input_names_the_argument(call, exc, name):
    with pytest.raises(exc, match=rf"\b{name}\b"):
        call()


def test_read_only_out():
    out = np.empty((4, 3), np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="out"):
        qk.fake_quantize(X, 1.0, out=out)


def test_runtime_controls():
    with pytest.raises(ValueError, match="available"):
        qk.set_isa("no_such_isa")
    with pytest.raises(TypeError, match="name"):
        qk.set_isa(3)
    with pytest.raises(ValueError, match="n"):
        qk.set_num_threads(0)
    with pytest.raises(TypeError, match="n"):
        qk.set_num_threads(1.5)
    assert qk.available_isas()[0] == "scalar"
    assert qk.get_isa() in qk.available_isas()
