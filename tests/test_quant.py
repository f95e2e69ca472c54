"""quantize / dequantize / fake_quantize against the NumPy reference of DESIGN.md, on every ISA path."""

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import qk

SIZES = [0, 1, 15, 16, 17, 63, 64, 65, 1000003]
SPECIALS = np.array(
    [np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1e38, -1e38, 3e38, 1e-45, -1e-45, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5],
    dtype=np.float32,
)


def _broadcast(params, shape, axis):
    p = np.asarray(params, dtype=np.float32)
    if axis is None:
        return p.reshape(())
    view = [1] * len(shape)
    view[axis] = -1
    return p.reshape(view)


def ref_grid(x, scale, zero_point, qmin, qmax, axis=None):
    """clip(rint(x / scale) + zero_point, qmin, qmax) in float32; NaN -> zero_point."""
    s = _broadcast(scale, x.shape, axis)
    z = _broadcast(zero_point, x.shape, axis)
    with np.errstate(all="ignore"):
        v = np.clip(np.rint(x / s) + z, np.float32(qmin), np.float32(qmax))
    return np.where(np.isnan(x), z, v).astype(np.float32)


def ref_quantize(x, scale, zero_point, dtype, axis=None):
    info = np.iinfo(dtype)
    return ref_grid(x, scale, zero_point, info.min, info.max, axis).astype(dtype)


def ref_dequantize(q, scale, zero_point, axis=None):
    s = _broadcast(scale, q.shape, axis)
    z = _broadcast(zero_point, q.shape, axis)
    return ((q.astype(np.float32) - z) * s).astype(np.float32)


def ref_fake_quantize(x, scale, zero_point, qmin, qmax, axis=None):
    s = _broadcast(scale, x.shape, axis)
    z = _broadcast(zero_point, x.shape, axis)
    return ((ref_grid(x, scale, zero_point, qmin, qmax, axis) - z) * s).astype(np.float32)


def sample(n, seed=0, scale=1.0):
    """Random values over several magnitudes, with every special value mixed in."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(n) * scale * 10.0 ** rng.integers(-2, 3, n)).astype(np.float32)
    if n:
        idx = rng.integers(0, n, min(n, 4 * len(SPECIALS)))
        x[idx] = np.resize(SPECIALS, len(idx))
    return x


def assert_same_bits(actual, expected):
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    if actual.dtype == np.float32:
        # Bit equality, except that any NaN matches any NaN (none are expected here).
        same = (actual.view(np.uint32) == expected.view(np.uint32)) | (np.isnan(actual) & np.isnan(expected))
        assert same.all(), f"{(~same).sum()} mismatches, first at {np.argmax(~same)}"
    else:
        np.testing.assert_array_equal(actual, expected)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_quantize_per_tensor(isa, threads, n, dtype):
    x = sample(n, seed=n)
    zp = 3 if dtype == np.int8 else 128
    for scale in (0.1, 0.5, 3.7e-3):
        assert_same_bits(qk.quantize(x, scale, zp, dtype=dtype), ref_quantize(x, scale, zp, dtype))


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_dequantize_per_tensor(isa, threads, n, dtype):
    info = np.iinfo(dtype)
    q = np.random.default_rng(n).integers(info.min, info.max + 1, n).astype(dtype)
    zp = -7 if dtype == np.int8 else 200
    assert_same_bits(qk.dequantize(q, 0.037, zp), ref_dequantize(q, 0.037, zp))


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("qmin,qmax,zp", [(-128, 127, 0), (0, 255, 77), (-8, 7, -1), (0, 3, 1), (-2, 1, 0), (5, 5, 5)])
def test_fake_quantize_per_tensor(isa, threads, n, qmin, qmax, zp):
    x = sample(n, seed=n + 1)
    for scale in (0.1, 0.25):
        out = qk.fake_quantize(x, scale, zp, qmin=qmin, qmax=qmax)
        assert_same_bits(out, ref_fake_quantize(x, scale, zp, qmin, qmax))


def test_halfway_values_round_to_even(isa):
    k = np.arange(-300, 300, dtype=np.float32)
    for scale in (0.5, 0.25, 2.0):  # halfway points are exact for powers of two
        x = ((k + np.float32(0.5)) * np.float32(scale)).astype(np.float32)
        assert_same_bits(qk.quantize(x, scale, 0), ref_quantize(x, scale, 0, np.int8))
        expected = np.clip(np.rint(k + 0.5), -128, 127).astype(np.int8)
        np.testing.assert_array_equal(qk.quantize(x, scale, 0), expected)


def test_special_values(isa):
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30], dtype=np.float32)
    np.testing.assert_array_equal(qk.quantize(x, 0.1, 5), [5, 127, -128, 5, 5, 127, -128])
    np.testing.assert_array_equal(qk.quantize(x, 0.1, 5, dtype=np.uint8), [5, 255, 0, 5, 5, 255, 0])
    y = qk.fake_quantize(x, 0.5, 0, qmin=-8, qmax=7)
    np.testing.assert_array_equal(y, np.array([0, 3.5, -4, 0, 0, 3.5, -4], dtype=np.float32))


SHAPES_2D_4D = [(5, 7), (3, 200), (130, 3), (2, 3, 5, 7), (4, 65, 2, 3), (2, 3, 9, 70)]


@pytest.mark.parametrize("shape", SHAPES_2D_4D)
def test_per_channel_every_axis(isa, threads, shape):
    rng = np.random.default_rng(len(shape))
    x = sample(int(np.prod(shape)), seed=7).reshape(shape)
    for axis in range(-len(shape), len(shape)):
        c = shape[axis]
        scale = rng.uniform(0.01, 0.5, c).astype(np.float32)
        zp_i8 = rng.integers(-20, 20, c)
        zp_u8 = rng.integers(100, 150, c)
        a = axis % len(shape)
        assert_same_bits(qk.quantize(x, scale, zp_i8, axis=axis), ref_quantize(x, scale, zp_i8, np.int8, a))
        q = qk.quantize(x, scale, zp_u8, axis=axis, dtype=np.uint8)
        assert_same_bits(q, ref_quantize(x, scale, zp_u8, np.uint8, a))
        assert_same_bits(qk.dequantize(q, scale, zp_u8, axis=axis), ref_dequantize(q, scale, zp_u8, a))
        fq = qk.fake_quantize(x, scale, zp_i8 // 4, axis=axis, qmin=-8, qmax=7)
        assert_same_bits(fq, ref_fake_quantize(x, scale, zp_i8 // 4, -8, 7, a))


def test_per_channel_large_tensor_splits_across_threads(isa, threads):
    x = sample(512 * 1031, seed=3).reshape(512, 1031)
    scale = np.linspace(0.01, 1.0, 1031, dtype=np.float32)
    assert_same_bits(qk.quantize(x, scale, np.zeros(1031, np.int64), axis=1),
                     ref_quantize(x, scale, 0, np.int8, 1))
    scale0 = np.linspace(0.01, 1.0, 512, dtype=np.float32)
    assert_same_bits(qk.fake_quantize(x, scale0, 0, axis=0), ref_fake_quantize(x, scale0, 0, -128, 127, 0))


def test_non_contiguous_input(isa):
    base = sample(40 * 60, seed=5).reshape(40, 60)
    view = base[::3, 1::2].T  # neither C- nor F-contiguous
    assert_same_bits(qk.quantize(view, 0.1, 0), ref_quantize(np.ascontiguousarray(view), 0.1, 0, np.int8))
    scale = np.full(view.shape[0], 0.2, np.float32)
    assert_same_bits(qk.fake_quantize(view, scale, 0, axis=0),
                     ref_fake_quantize(np.ascontiguousarray(view), scale, 0, -128, 127, 0))
    q = qk.quantize(base, 0.1, 0)[::2, ::-1]
    assert_same_bits(qk.dequantize(q, 0.1, 0), ref_dequantize(np.ascontiguousarray(q), 0.1, 0))


def test_zero_d_and_empty():
    x0 = np.array(2.6, dtype=np.float32)
    q0 = qk.quantize(x0, 1.0, 0)
    assert q0.shape == () and q0.dtype == np.int8 and int(q0) == 3
    assert qk.dequantize(q0, 0.5, 1).shape == ()
    for shape in [(0,), (3, 0), (0, 4, 5)]:
        x = np.zeros(shape, np.float32)
        assert qk.quantize(x, 1.0).shape == shape
        assert qk.fake_quantize(x, 1.0).shape == shape
        assert qk.dequantize(x.astype(np.int8), 1.0).shape == shape
    x = np.zeros((0, 4), np.float32)
    assert qk.quantize(x, np.ones(4), np.zeros(4, int), axis=1).shape == (0, 4)


def test_out_argument(isa):
    x = sample(100, seed=9)
    out = np.empty(100, np.uint8)
    r = qk.quantize(x, 0.1, 128, dtype=np.uint8, out=out)
    assert r is out
    assert_same_bits(out, ref_quantize(x, 0.1, 128, np.uint8))
    y = np.empty(100, np.float32)
    assert qk.fake_quantize(x, 0.1, out=y) is y
    z = np.empty(100, np.float32)
    assert qk.dequantize(out, 0.1, 128, out=z) is z
    # In place is allowed for fake_quantize (elementwise).
    x2 = x.copy()
    qk.fake_quantize(x2, 0.1, out=x2)
    assert_same_bits(x2, ref_fake_quantize(x, 0.1, 0, -128, 127))


def test_concurrent_calls_from_many_threads(isa):
    x = sample(300_001, seed=11)
    expected = ref_quantize(x, 0.05, 0, np.int8)
    errors = []

    def work():
        for _ in range(5):
            if not np.array_equal(qk.quantize(x, 0.05, 0), expected):
                errors.append("mismatch")

    workers = [threading.Thread(target=work) for _ in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors


finite_f32 = st.floats(width=32, allow_nan=True, allow_infinity=True)


@settings(max_examples=60, deadline=None)
@given(
    x=hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=40), elements=finite_f32),
    scale=st.floats(min_value=2.0**-20, max_value=1024.0, width=32),
    zp=st.integers(-128, 127),
    bits=st.integers(2, 8),
)
def test_property_fake_quantize_matches_quantize_dequantize(x, scale, zp, bits):
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    zp = int(np.clip(zp, qmin, qmax))
    for isa in qk.available_isas():
        qk.set_isa(isa)
        try:
            fq = qk.fake_quantize(x, scale, zp, qmin=qmin, qmax=qmax)
            assert_same_bits(fq, ref_fake_quantize(x, scale, zp, qmin, qmax))
            q = qk.quantize(x, scale, zp)
            assert_same_bits(q, ref_quantize(x, scale, zp, np.int8))
            # On the grid, fake_quantize equals quantize-then-dequantize.
            if bits == 8:
                assert_same_bits(fq, qk.dequantize(q, scale, zp))
        finally:
            qk.set_isa(qk.available_isas()[-1])


@settings(max_examples=40, deadline=None)
@given(
    shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=9),
    data=st.data(),
)
def test_property_per_channel_equals_per_tensor_slices(shape, data):
    axis = data.draw(st.integers(0, len(shape) - 1))
    x = sample(int(np.prod(shape)), seed=len(shape)).reshape(shape)
    c = shape[axis]
    scale = np.array(data.draw(st.lists(st.floats(2.0**-10, 16.0, width=32), min_size=c, max_size=c)), np.float32)
    q = qk.quantize(x, scale, np.zeros(c, int), axis=axis)
    for i in range(c):
        sl = [slice(None)] * len(shape)
        sl[axis] = i
        np.testing.assert_array_equal(q[tuple(sl)], qk.quantize(np.ascontiguousarray(x[tuple(sl)]), scale[i], 0))


@pytest.mark.parametrize("offset", [0, 1, 3])
def test_large_outputs_streamed_past_the_cache(isa, threads, offset):
    # Over 16 MiB of float32 output: paths may use non-temporal stores, which
    # need an aligned head; `offset` misaligns the output buffer on purpose.
    n = 4_500_001
    x = sample(n, seed=13)
    buf = np.empty(n + offset, np.float32)
    out = buf[offset:]
    assert_same_bits(qk.fake_quantize(x, 0.07, 3, out=out), ref_fake_quantize(x, 0.07, 3, -128, 127))
    q = qk.quantize(x, 0.07, 3)
    assert_same_bits(qk.dequantize(q, 0.07, 3, out=out), ref_dequantize(q, 0.07, 3))
    x2 = x[: 3 * 1_500_000].reshape(3, 1_500_000)
    scale = np.array([0.05, 0.1, 0.2], np.float32)
    out2 = buf[offset: offset + x2.size].reshape(x2.shape)
    assert_same_bits(qk.fake_quantize(x2, scale, 0, axis=0, out=out2), ref_fake_quantize(x2, scale, 0, -128, 127, 0))
