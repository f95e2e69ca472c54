"""qk.quant: schemes, choose_qparams, observers (hand-computed values,
degenerate inputs, merging, histogram methods, properties, PyTorch parity)."""

import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import qk
from qk.quant import (
    EPS,
    HistogramObserver,
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    MovingAveragePerChannelMinMaxObserver,
    NotCalibratedError,
    PerChannelMinMaxObserver,
    QConfig,
    QScheme,
    choose_qparams,
)
from qk.quant import observers as obs_mod

F32 = np.float32
U8 = QScheme(8, signed=False)
S8_SYM = QScheme(8, signed=True, symmetric=True)
S8_AFF = QScheme(8, signed=True)
U8_SYM = QScheme(8, signed=False, symmetric=True)


def fq_mse(scheme, x, scale, zp):
    y = scheme.fake_quantize(x, scale, zp)
    return float(np.mean((y.astype(np.float64) - x) ** 2))


# ---------------------------------------------------------------------------
# QScheme
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bits,signed,narrow,qmin,qmax,dtype",
    [
        (8, True, False, -128, 127, np.int8),
        (8, False, False, 0, 255, np.uint8),
        (8, True, True, -127, 127, np.int8),
        (4, True, False, -8, 7, np.int8),
        (4, False, False, 0, 15, np.uint8),
        (2, True, False, -2, 1, np.int8),
        (2, True, True, -1, 1, np.int8),
        (3, False, False, 0, 7, np.uint8),
    ],
)
def test_scheme_grid(bits, signed, narrow, qmin, qmax, dtype):
    s = QScheme(bits, signed=signed, narrow_range=narrow)
    assert (s.qmin, s.qmax, s.dtype) == (qmin, qmax, np.dtype(dtype))
    assert not s.per_channel and s.with_axis(1).per_channel and s.with_axis(1).axis == 1


@pytest.mark.parametrize(
    "kwargs,exc,word",
    [
        ({"bits": 1}, ValueError, "bits"),
        ({"bits": 9}, ValueError, "bits"),
        ({"bits": 8.0}, TypeError, "bits"),
        ({"bits": True}, TypeError, "bits"),
        ({"signed": "yes"}, TypeError, "signed"),
        ({"symmetric": 1}, TypeError, "symmetric"),
        ({"axis": 1.5}, TypeError, "axis"),
        ({"signed": False, "narrow_range": True}, ValueError, "narrow_range"),
    ],
)
def test_scheme_bad_arguments(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        QScheme(**kwargs)


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 8])
@pytest.mark.parametrize("signed", [True, False])
def test_scheme_quantize_matches_reference(bits, signed, isa):
    rng = np.random.default_rng(bits)
    x = (rng.standard_normal((5, 37)) * 3).astype(F32)
    x[0, :4] = [np.nan, np.inf, -np.inf, 0.0]
    s = QScheme(bits, signed=signed)
    scale, zp = F32(0.37), (s.qmin + s.qmax) // 2
    with np.errstate(invalid="ignore"):
        ref = np.rint(x / scale) + zp
    ref = np.where(np.isnan(ref), zp, ref)
    ref = np.clip(ref, s.qmin, s.qmax).astype(s.dtype)
    q = s.quantize(x, scale, zp)
    assert q.dtype == s.dtype
    np.testing.assert_array_equal(q, ref)
    deq = s.dequantize(q, scale, zp)
    np.testing.assert_array_equal(deq, (ref.astype(F32) - F32(zp)) * scale)
    fq = s.fake_quantize(x, scale, zp)
    np.testing.assert_array_equal(fq[~np.isnan(x)], deq[~np.isnan(x)])


def test_scheme_per_channel_helpers():
    s = QScheme(4, signed=True, symmetric=True, axis=1)
    x = np.linspace(-2, 2, 24, dtype=F32).reshape(4, 6)
    obs = PerChannelMinMaxObserver(s)
    obs.observe(x)
    scale, zp = obs.qparams()
    q = s.quantize(x, scale, zp)
    assert q.min() >= -8 and q.max() <= 7
    ref = np.clip(np.rint(x / scale[None, :]) + zp[None, :], -8, 7).astype(np.int8)
    np.testing.assert_array_equal(q, ref)


# ---------------------------------------------------------------------------
# choose_qparams: hand-computed values
# ---------------------------------------------------------------------------


def test_choose_qparams_hand_computed():
    # uint8 affine [-1, 3]: scale 4/255, zp = 0 - round(-1 / (4/255)) = round(63.75) = 64
    s, z = choose_qparams(-1.0, 3.0, U8)
    assert s == F32(4) / F32(255) and z == 64
    assert isinstance(s, np.float32) and isinstance(z, int)
    # int8 symmetric [-2, 1]: scale 2 / 127.5, zp 0
    s, z = choose_qparams(-2.0, 1.0, S8_SYM)
    assert s == F32(2) / F32(127.5) and z == 0
    # uint8 symmetric: zp 128
    assert choose_qparams(-2.0, 1.0, U8_SYM) == (F32(2) / F32(127.5), 128)
    # int4 affine [-1, 2]: scale 3/15 = 0.2, zp = -8 - round(-1/0.2) = -3
    s, z = choose_qparams(-1.0, 2.0, QScheme(4))
    assert s == F32(3) / F32(15) and z == -3
    # int4 unsigned symmetric: zp 8
    assert choose_qparams(-1.0, 1.0, QScheme(4, signed=False, symmetric=True))[1] == 8
    # narrow range: max|x| / 127 exactly
    assert choose_qparams(-5.0, 3.0, QScheme(8, narrow_range=True, symmetric=True))[0] == F32(5) / F32(127)
    # a positive-only range is widened to include 0
    assert choose_qparams(2.0, 5.0, U8) == (F32(5) / F32(255), 0)
    assert choose_qparams(2.0, 5.0, S8_AFF) == (F32(5) / F32(255), -128)
    assert choose_qparams(-5.0, -2.0, U8) == (F32(5) / F32(255), 255)


@pytest.mark.parametrize("scheme", [U8, S8_SYM, S8_AFF, U8_SYM, QScheme(2), QScheme(4, symmetric=True)])
@pytest.mark.parametrize("lo,hi", [(0.0, 0.0), (1e-30, 1e-30), (-1e-45, 0.0), (7.0, 7.0), (-3e38, 3e38), (-1e-9, 2e-9)])
def test_choose_qparams_degenerate_ranges(scheme, lo, hi):
    s, z = choose_qparams(lo, hi, scheme)
    assert np.isfinite(s) and s > 0 and s >= F32(EPS)
    assert scheme.qmin <= z <= scheme.qmax
    x = np.array([lo, hi, 0.0], dtype=F32)
    q = scheme.quantize(x, s, z)
    assert scheme.dequantize(q, s, z)[2] == 0.0


def test_choose_qparams_all_zero_is_eps():
    assert choose_qparams(0.0, 0.0, U8) == (F32(EPS), 0)
    assert choose_qparams(0.0, 0.0, S8_AFF) == (F32(EPS), -128)
    assert choose_qparams(0.0, 0.0, S8_SYM) == (F32(EPS), 0)
    assert choose_qparams(0.0, 0.0, U8, eps=1e-3) == (F32(1e-3), 0)


def test_choose_qparams_per_channel_arrays():
    lo = np.array([-1.0, 0.0, 2.0, -4.0])
    hi = np.array([3.0, 0.0, 5.0, -1.0])
    s, z = choose_qparams(lo, hi, U8)
    assert s.dtype == np.float32 and z.dtype == np.int32 and s.shape == z.shape == (4,)
    for k in range(4):
        assert (s[k], z[k]) == choose_qparams(lo[k], hi[k], U8)


@pytest.mark.parametrize(
    "args,exc,word",
    [
        ((2.0, 1.0, U8), ValueError, "min_val"),
        ((np.nan, 1.0, U8), ValueError, "min_val"),
        ((0.0, np.inf, U8), ValueError, "max_val"),
        (("a", 1.0, U8), TypeError, "min_val"),
        ((0.0, [1.0, 2.0], U8), ValueError, "max_val"),
        ((0.0, 1.0, "int8"), TypeError, "scheme"),
        (([[0.0]], [[1.0]], U8), ValueError, "min_val"),
    ],
)
def test_choose_qparams_bad_arguments(args, exc, word):
    with pytest.raises(exc, match=word):
        choose_qparams(*args)
    with pytest.raises(ValueError, match="eps"):
        choose_qparams(0.0, 1.0, U8, eps=0.0)


# ---------------------------------------------------------------------------
# Min/max observers: hand-computed values
# ---------------------------------------------------------------------------


def test_minmax_observer_hand_computed():
    o = MinMaxObserver()  # uint8 affine
    x = o.observe(np.array([0.5, -1.0, 2.0], dtype=F32))
    assert x.dtype == np.float32
    o(np.array([[3.0, -0.5]], dtype=np.float64))
    assert (o.min_val, o.max_val) == (F32(-1.0), F32(3.0))
    assert o.qparams() == (F32(4) / F32(255), 64)
    o.reset()
    with pytest.raises(NotCalibratedError, match="observe"):
        o.qparams()


def test_moving_average_hand_computed():
    o = MovingAverageMinMaxObserver(S8_SYM, averaging_constant=0.5)
    o.observe(np.array([-2.0, 4.0], dtype=F32))
    o.observe(np.array([-6.0, 2.0], dtype=F32))  # min -2 + .5 (-6 + 2) = -4 ; max 4 + .5 (2 - 4) = 3
    assert (o.min_val, o.max_val) == (F32(-4.0), F32(3.0))
    assert o.qparams() == (F32(4) / F32(127.5), 0)
    with pytest.raises(ValueError, match="averaging_constant"):
        MovingAverageMinMaxObserver(averaging_constant=0.0)
    with pytest.raises(TypeError, match="merge"):
        o.merge(o)


def test_per_channel_observer_hand_computed():
    x = np.array([[1.0, -2.0, 0.0], [-3.0, 0.5, 0.0]], dtype=F32)
    o = PerChannelMinMaxObserver(axis=1)  # int8 symmetric
    o.observe(x)
    s, z = o.qparams()
    np.testing.assert_array_equal(s, np.array([3, 2, EPS], dtype=F32) / np.array([127.5, 127.5, 1], dtype=F32))
    np.testing.assert_array_equal(z, [0, 0, 0])
    o2 = PerChannelMinMaxObserver(U8, axis=-1)
    o2.observe(x)
    s2, z2 = o2.qparams()
    np.testing.assert_array_equal(s2, np.array([4, 2.5, EPS], dtype=F32) / np.array([255, 255, 1], dtype=F32))
    np.testing.assert_array_equal(z2, [191, 204, 0])  # 0 - round(-3 / (4/255)) = 191.25 -> 191 ; 204
    o3 = PerChannelMinMaxObserver(axis=0)
    o3.observe(x)
    assert o3.qparams()[0].shape == (2,)


def test_moving_average_per_channel():
    o = MovingAveragePerChannelMinMaxObserver(U8, axis=0, averaging_constant=0.5)
    o.observe(np.array([[0.0, 2.0], [np.nan, np.nan]], dtype=F32))
    o.observe(np.array([[0.0, 4.0], [-1.0, 1.0]], dtype=F32))
    np.testing.assert_array_equal(o.max_val, [3.0, 1.0])  # channel 1 starts with the second batch
    np.testing.assert_array_equal(o.min_val, [0.0, -1.0])


# ---------------------------------------------------------------------------
# Degenerate inputs and bad arguments
# ---------------------------------------------------------------------------

ALL_PER_TENSOR = [
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    functools.partial(HistogramObserver, method="minmax"),
    functools.partial(HistogramObserver, method="percentile"),
    functools.partial(HistogramObserver, method="entropy"),
    functools.partial(HistogramObserver, method="mse"),
]
DEGENERATE = {
    "zeros": np.zeros(100, F32),
    "constant": np.full(50, 3.25, F32),
    "negative_constant": np.full(50, -7.0, F32),
    "single": np.array([0.125], F32),
    "nan_present": np.array([np.nan, 1.0, -2.0, np.nan], F32),
    "all_nan": np.full(10, np.nan, F32),
    "inf_present": np.array([np.inf, -np.inf, 0.5, -0.25], F32),
    "tiny": np.array([1e-45, 3e-45], F32),
    "huge": np.array([-3.4e38, 3.4e38, 0], F32),
    "float16": np.array([1.0, -0.5], np.float16),
}


@pytest.mark.parametrize("factory", ALL_PER_TENSOR)
@pytest.mark.parametrize("scheme", [U8, S8_SYM, QScheme(4, signed=False, symmetric=True), QScheme(3)])
@pytest.mark.parametrize("case", list(DEGENERATE))
def test_degenerate_inputs_give_valid_qparams(factory, scheme, case):
    x = DEGENERATE[case]
    o = factory(scheme)
    o.observe(x)
    o.observe(x)
    s, z = o.qparams()
    assert isinstance(s, np.float32) and np.isfinite(s) and s > 0
    assert isinstance(z, int) and scheme.qmin <= z <= scheme.qmax
    q = scheme.quantize(np.zeros(1, F32), s, z)
    assert scheme.dequantize(q, s, z)[0] == 0.0
    finite = x[np.isfinite(x)].astype(F32)
    if case in ("constant", "negative_constant", "single") and getattr(o, "method", "minmax") == "minmax":
        # the constant itself is represented to within half a step
        err = np.abs(scheme.fake_quantize(finite, s, z) - finite)
        assert np.all(err <= 0.5 * s * (1 + 1e-5))


@pytest.mark.parametrize("case", list(DEGENERATE))
def test_degenerate_inputs_per_channel(case):
    x = np.stack([DEGENERATE[case].astype(F32), np.zeros(DEGENERATE[case].size, F32)])
    for factory in (PerChannelMinMaxObserver, MovingAveragePerChannelMinMaxObserver):
        o = factory(U8, axis=0)
        o.observe(x)
        o.observe(x)
        s, z = o.qparams()
        assert np.all(np.isfinite(s)) and np.all(s > 0) and np.all((z >= 0) & (z <= 255))


@pytest.mark.parametrize("factory", ALL_PER_TENSOR + [PerChannelMinMaxObserver, MovingAveragePerChannelMinMaxObserver])
def test_bad_inputs(factory):
    o = factory()
    with pytest.raises(NotCalibratedError, match="nothing observed"):
        o.qparams()
    with pytest.raises(ValueError):  # NotCalibratedError is a ValueError (and a RuntimeError)
        o.qparams()
    o.observe(np.zeros((0, 3), F32))  # empty: ignored
    assert not o.observed
    with pytest.raises(TypeError, match="x"):
        o.observe(np.arange(6, dtype=np.int32).reshape(2, 3))
    with pytest.raises(TypeError, match="x"):
        o.observe([1.0, 2.0])
    with pytest.raises(TypeError, match="x"):
        o.observe(np.ones(3, np.complex64))
    with pytest.raises(TypeError, match="scheme"):
        factory("int8")
    with pytest.raises(ValueError, match="eps"):
        factory(eps=-1.0)


def test_per_channel_bad_axis_and_shapes():
    with pytest.raises(TypeError, match="axis"):
        PerChannelMinMaxObserver(axis=0.5)
    o = PerChannelMinMaxObserver(axis=2)
    with pytest.raises(ValueError, match="axis"):
        o.observe(np.ones((3, 4), F32))
    o = PerChannelMinMaxObserver(axis=0)
    with pytest.raises(ValueError, match="0-d"):
        o.observe(np.array(1.0, F32))
    o.observe(np.ones((3, 4), F32))
    with pytest.raises(ValueError, match="channels"):
        o.observe(np.ones((4, 4), F32))
    with pytest.raises(ValueError, match="per-tensor"):
        MinMaxObserver(S8_SYM.with_axis(0))
    with pytest.raises(ValueError, match="per-tensor"):
        HistogramObserver(S8_SYM.with_axis(0))


def test_histogram_bad_arguments():
    with pytest.raises(ValueError, match="method"):
        HistogramObserver(method="kl")
    with pytest.raises(ValueError, match="bins"):
        HistogramObserver(bins=4)
    with pytest.raises(TypeError, match="bins"):
        HistogramObserver(bins=100.0)
    with pytest.raises(ValueError, match="percentile"):
        HistogramObserver(method="percentile", percentile=0)
    with pytest.raises(ValueError, match="percentile"):
        HistogramObserver(method="percentile", percentile=101)
    with pytest.raises(TypeError, match="other"):
        HistogramObserver().merge(MinMaxObserver())
    with pytest.raises(ValueError, match="bins"):
        HistogramObserver(bins=64).merge(HistogramObserver(bins=128))


# ---------------------------------------------------------------------------
# Merging across batches
# ---------------------------------------------------------------------------


def _batches(seed, n=6):
    rng = np.random.default_rng(seed)
    scales = [0.01, 1.0, 5.0, 0.3, 20.0, 2.0][:n]
    return [(rng.standard_t(4, size=(rng.integers(1, 3000), 4)) * s + rng.normal(0, s)).astype(F32) for s in scales]


@pytest.mark.parametrize("scheme", [U8, S8_SYM, S8_AFF])
def test_minmax_batches_equal_one_shot(scheme):
    data = _batches(1)
    a, b = MinMaxObserver(scheme), MinMaxObserver(scheme)
    for d in data:
        a.observe(d)
    b.observe(np.concatenate(data))
    assert a.qparams() == b.qparams()
    c, d_ = MinMaxObserver(scheme), MinMaxObserver(scheme)
    for d in data[:3]:
        c.observe(d)
    for d in data[3:]:
        d_.observe(d)
    assert c.merge(d_).qparams() == b.qparams()
    pa, pb = PerChannelMinMaxObserver(scheme, axis=1), PerChannelMinMaxObserver(scheme, axis=1)
    for d in data:
        pa.observe(d)
    pb.observe(np.concatenate(data))
    for u, v in zip(pa.qparams(), pb.qparams()):
        np.testing.assert_array_equal(u, v)
    pc = PerChannelMinMaxObserver(scheme, axis=1)
    for d in data[:2]:
        pc.observe(d)
    pd = PerChannelMinMaxObserver(scheme, axis=1)
    for d in data[2:]:
        pd.observe(d)
    for u, v in zip(pc.merge(pd).qparams(), pb.qparams()):
        np.testing.assert_array_equal(u, v)


def _cdf_at(obs, points):
    """Mass of the observer's histogram below each point (uniform within bins)."""
    cdf = np.concatenate([[0.0], np.cumsum(obs.hist)])
    return np.interp(points, obs.bin_edges, cdf)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_histogram_batches_match_one_shot(seed):
    data = _batches(seed)
    seq, one = HistogramObserver(U8), HistogramObserver(U8)
    for d in data:
        seq.observe(d)
    whole = np.concatenate(data)
    one.observe(whole)
    # no data lost, same exact min/max
    assert seq.hist.sum() == one.hist.sum() == whole.size
    assert seq.range() == one.range() == (float(whole.min()), float(whole.max()))
    # the histograms agree to within a bin: the empirical CDF at any point lies
    # between the sequential histogram's CDF one bin either side
    pts = np.linspace(whole.min(), whole.max(), 257)
    emp = np.searchsorted(np.sort(whole.ravel()), pts, side="right")
    w = seq.width
    assert np.all(emp >= _cdf_at(seq, pts - w) - 1e-6) and np.all(emp <= _cdf_at(seq, pts + w) + 1e-6)
    # percentile and mse ranges within a couple of bins
    for method in ("percentile", "mse"):
        for scheme in (U8, S8_SYM):
            a, b = HistogramObserver(scheme, method=method), HistogramObserver(scheme, method=method)
            for d in data:
                a.observe(d)
            b.observe(whole)
            ra, rb = a.range(), b.range()
            tol = 2 * max(a.width, b.width)
            assert abs(ra[0] - rb[0]) <= tol and abs(ra[1] - rb[1]) <= tol, (method, ra, rb)


def test_histogram_no_growth_is_exact():
    rng = np.random.default_rng(3)
    big = rng.standard_normal(5000).astype(F32) * 4
    small = [rng.standard_normal(700).astype(F32) for _ in range(4)]
    a, b = HistogramObserver(), HistogramObserver()
    a.observe(big)
    for s in small:
        a.observe(s)
    b.observe(np.concatenate([big] + small))
    assert a.width == b.width  # the first batch held the whole range
    np.testing.assert_array_equal(a.hist, b.hist)


def test_histogram_growth_from_zero_and_small_ranges():
    o = HistogramObserver(U8, bins=64)
    o.observe(np.zeros(10, F32))
    assert o.width == 0.0
    o.observe(np.array([1e-6, 2e-6], F32))
    o.observe(np.array([-5.0, 100.0], F32))
    assert o.hist.sum() == 14
    assert o.bin_edges[0] <= -5.0 and o.bin_edges[-1] >= 100.0
    # the ten zeros and two tiny values are in the bin starting at 0
    assert o.hist[o.zero_bin] == 12


def test_histogram_merge_observers():
    data = _batches(4)
    a, b, one = HistogramObserver(U8), HistogramObserver(U8), HistogramObserver(U8)
    for d in data[:3]:
        a.observe(d)
    for d in data[3:]:
        b.observe(d)
    whole = np.concatenate(data)
    one.observe(whole)
    a.merge(b)
    assert abs(a.hist.sum() - whole.size) < 1e-6
    assert (a.min_val, a.max_val) == (one.min_val, one.max_val)
    pts = np.linspace(whole.min(), whole.max(), 129)
    emp = np.searchsorted(np.sort(whole.ravel()), pts, side="right")
    w = 2 * max(a.width, b.width)
    assert np.all(emp >= _cdf_at(a, pts - w) - 1e-6) and np.all(emp <= _cdf_at(a, pts + w) + 1e-6)
    empty = HistogramObserver(U8)
    empty.merge(one)
    np.testing.assert_array_equal(empty.hist, one.hist)


# ---------------------------------------------------------------------------
# Histogram methods
# ---------------------------------------------------------------------------


def test_percentile_hand_computed():
    x = np.arange(1, 10001, dtype=F32) / 100  # 0.01 .. 100
    o = HistogramObserver(U8, method="percentile", percentile=99.0)
    o.observe(x)
    lo, hi = o.range()
    assert lo == pytest.approx(0.01, abs=0.1) and hi == pytest.approx(99.0, abs=0.1)
    o = HistogramObserver(S8_SYM, method="percentile", percentile=90.0)
    o.observe(np.concatenate([x, -x]))
    lo, hi = o.range()
    assert (lo, hi) == pytest.approx((-90.0, 90.0), abs=0.15)
    o = HistogramObserver(U8, method="percentile", percentile=100.0)
    o.observe(x - 30)
    assert o.range() == (float(F32(-29.99)), 70.0)


@pytest.mark.parametrize("dist", ["laplace", "student"])
@pytest.mark.parametrize("scheme", [QScheme(4, symmetric=True), QScheme(4, signed=False), QScheme(5, symmetric=True)])
def test_entropy_and_mse_clip_heavy_tails_and_lower_error(dist, scheme):
    rng = np.random.default_rng(7)
    x = (rng.laplace(size=60000) if dist == "laplace" else rng.standard_t(3, size=60000)).astype(F32)
    mm = HistogramObserver(scheme, method="minmax")
    mm.observe(x)
    base = fq_mse(scheme, x, *mm.qparams())
    for method in ("entropy", "mse"):
        o = HistogramObserver(scheme, method=method)
        o.observe(x)
        lo, hi = o.range()
        assert max(-lo, hi) < 0.8 * max(-mm.range()[0], mm.range()[1]), method
        assert fq_mse(scheme, x, *o.qparams()) < 0.7 * base, method


@pytest.mark.parametrize("scheme", [U8, S8_SYM, S8_AFF])
def test_mse_never_worse_than_minmax_at_8_bits(scheme):
    rng = np.random.default_rng(11)
    for x in (rng.standard_t(2, 40000), rng.laplace(size=40000), np.maximum(rng.standard_normal(40000), 0),
              np.concatenate([rng.standard_normal(40000), [60.0, -45.0, 80.0]])):
        x = x.astype(F32)
        a, b = HistogramObserver(scheme, method="mse"), HistogramObserver(scheme, method="minmax")
        a.observe(x)
        b.observe(x)
        assert fq_mse(scheme, x, *a.qparams()) <= 1.02 * fq_mse(scheme, x, *b.qparams())


def test_entropy_clips_outliers_for_int8():
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.standard_normal(100000), [60, -45, 80, -70, 55]]).astype(F32)
    for scheme in (U8, S8_SYM):
        o = HistogramObserver(scheme, method="entropy")
        o.observe(x)
        lo, hi = o.range()
        assert 3.0 < hi < 20.0 and -20.0 < lo < -3.0
        # the bulk of the data is quantized far more finely than with min/max
        mm = MinMaxObserver(scheme)
        mm.observe(x)
        bulk = x[np.abs(x) < 3]
        assert fq_mse(scheme, bulk, *o.qparams()) < 0.1 * fq_mse(scheme, bulk, *mm.qparams())


def test_entropy_one_sided_affine_uses_all_levels():
    rng = np.random.default_rng(6)
    x = np.maximum(rng.standard_t(3, 50000), 0).astype(F32)  # ReLU output, heavy tail
    o = HistogramObserver(U8, method="entropy")
    o.observe(x)
    lo, hi = o.range()
    assert lo == 0.0 and 1.0 < hi < x.max()
    s, z = o.qparams()
    assert z == 0 and s == F32(hi) / F32(255)


def test_qconfig_custom_observers():
    c = QConfig(
        weight=QScheme(4, symmetric=True, axis=1),
        activation=U8,
        weight_observer=functools.partial(MovingAveragePerChannelMinMaxObserver, averaging_constant=0.1),
        activation_observer=functools.partial(HistogramObserver, method="percentile", percentile=99.9),
    )
    w = c.make_weight_observer()
    assert isinstance(w, MovingAveragePerChannelMinMaxObserver) and w.axis == 1 and w.averaging_constant == 0.1
    a = c.make_activation_observer()
    assert a.method == "percentile" and a.percentile == 99.9
    assert c.make_weight_observer() is not w  # a fresh observer each time


def _kl_reference(hist, levels):
    """Plain transcription of TensorRT's entropy calibration (one candidate at a time)."""
    hist = np.asarray(hist, dtype=np.float64)
    last = np.nonzero(hist)[0][-1] + 1
    if last <= levels:
        return last
    best, best_kl = last, np.inf
    for i in range(levels, last + 1):
        p = hist[:i].copy()
        p[i - 1] += hist[i:].sum()
        if hist[:i].sum() == 0:
            continue
        q = np.zeros(i)
        edges = [(k * i) // levels for k in range(levels + 1)]
        for k in range(levels):
            a, b = edges[k], edges[k + 1]
            nz = p[a:b] > 0
            if nz.any():
                q[a:b][nz] = hist[a:b].sum() / nz.sum()

        def smooth(v, eps=1e-4):
            z = v == 0
            nzc = (~z).sum()
            if nzc == 0:
                return None
            out = v + np.where(z, eps, -eps * z.sum() / nzc)
            return np.maximum(out, eps * 1e-3)

        ps, qs = smooth(p), smooth(q)
        if ps is None or qs is None:
            continue
        ps, qs = ps / ps.sum(), qs / qs.sum()
        kl = np.sum(ps * np.log(ps / qs))
        if kl < best_kl:
            best, best_kl = i, kl
    return best


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("levels", [8, 16])
def test_kl_threshold_matches_reference(seed, levels):
    rng = np.random.default_rng(seed)
    x = np.abs(rng.standard_t(3, 20000))
    hist = np.histogram(x, bins=160, range=(0, x.max()))[0].astype(np.float64)
    hist[rng.integers(0, 160, 5)] = 0  # some empty bins
    assert obs_mod._kl_threshold(hist, levels) == _kl_reference(hist, levels)


def test_mse_search_matches_brute_force():
    rng = np.random.default_rng(9)
    hist = rng.integers(0, 50, 40).astype(np.float64)
    zero_bin = 15
    steps = 15
    centers = np.arange(40) - zero_bin + 0.5
    best = (np.inf, None)
    for i in range(zero_bin + 1):
        for j in range(40 - zero_bin + 1):
            if i == 0 and j == 0:
                continue
            scale = (i + j) / steps
            inside = (centers > -i) & (centers < j)
            err = hist[inside].sum() * scale**2 / 12
            below = centers < -i
            above = centers > j
            err += np.sum(hist[below] * ((centers[below] + i) ** 2 + 1 / 12))
            err += np.sum(hist[above] * ((centers[above] - j) ** 2 + 1 / 12))
            if err < best[0] - 1e-9:
                best = (err, (i, j))
    assert obs_mod._mse_affine(hist, zero_bin, steps) == best[1]
    # symmetric: a threshold t over |x| bins
    habs = hist[:20]
    best = (np.inf, None)
    for t in range(1, 21):
        c = np.arange(20) + 0.5
        err = habs[c < t].sum() * (t / 7.5) ** 2 / 12 + np.sum(habs[c > t] * ((c[c > t] - t) ** 2 + 1 / 12))
        if err < best[0] - 1e-9:
            best = (err, t)
    assert obs_mod._mse_symmetric(habs, 7.5) == best[1]


# ---------------------------------------------------------------------------
# Hypothesis properties
# ---------------------------------------------------------------------------

schemes = st.builds(
    QScheme,
    bits=st.integers(2, 8),
    signed=st.booleans(),
    symmetric=st.booleans(),
)
float_arrays = hnp.arrays(
    np.float32,
    st.integers(1, 64),
    elements=st.one_of(
        st.floats(-2.0**100, 2.0**100, width=32),
        st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45]),
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(x=float_arrays, scheme=schemes, scale_pow=st.integers(-40, 30))
# a range wider than float32 (its top grid point once dequantized to inf)
@example(x=np.array([1.0398755e30, -8.6160037e29] * 2, F32), scheme=QScheme(2, signed=False), scale_pow=28)
def test_property_minmax_zero_exact_and_range_covered(x, scheme, scale_pow):
    with np.errstate(over="ignore", invalid="ignore"):
        x = (x * F32(2.0**scale_pow)).astype(F32)
    o = MinMaxObserver(scheme)
    o.observe(x)
    s, z = o.qparams()
    assert isinstance(s, np.float32) and np.isfinite(s) and s > 0
    assert scheme.qmin <= z <= scheme.qmax
    # 0.0 is exact
    zero = np.zeros(3, F32)
    assert np.all(scheme.dequantize(scheme.quantize(zero, s, z), s, z) == 0.0)
    assert np.all(scheme.fake_quantize(zero, s, z) == 0.0)
    # every finite value is within half a step of the grid (nothing clipped)
    finite = x[np.isfinite(x)]
    if finite.size:
        err = np.abs(scheme.fake_quantize(finite, s, z).astype(np.float64) - finite)
        # (plus float32 rounding of the dequantized value itself)
        assert np.all(err <= 0.5 * np.float64(s) * (1 + 1e-5) + np.abs(finite) * 2.0**-22 + 1e-45)


@settings(max_examples=60, deadline=None)
@given(x=float_arrays, scheme=schemes, method=st.sampled_from(["minmax", "percentile", "entropy", "mse"]))
def test_property_histogram_qparams_valid(x, scheme, method):
    o = HistogramObserver(scheme, method=method, bins=128)
    with np.errstate(invalid="ignore"):
        y = x[::-1] * F32(0.5)
    o.observe(x)
    o.observe(y)
    s, z = o.qparams()
    assert np.isfinite(s) and s > 0 and scheme.qmin <= z <= scheme.qmax
    lo, hi = o.range()
    both = np.concatenate([x, y])
    finite = both[np.isfinite(both)]
    if finite.size:
        assert finite.min() <= lo or lo == 0.0
        assert hi <= max(finite.max(), 0.0) or hi == 0.0
    assert np.all(scheme.fake_quantize(np.zeros(2, F32), s, z) == 0.0)


@settings(max_examples=60, deadline=None)
@given(
    x=hnp.arrays(np.float32, st.tuples(st.integers(1, 5), st.integers(1, 9)),
                 elements=st.floats(-2.0**20, 2.0**20, width=32)),
    scheme=schemes,
    axis=st.sampled_from([0, 1, -1]),
)
def test_property_per_channel_matches_per_tensor_on_each_channel(x, scheme, axis):
    o = PerChannelMinMaxObserver(scheme, axis=axis)
    o.observe(x)
    s, z = o.qparams()
    moved = np.moveaxis(x, axis, 0)
    for k in range(moved.shape[0]):
        t = MinMaxObserver(scheme)
        t.observe(moved[k])
        assert (s[k], z[k]) == t.qparams()


# ---------------------------------------------------------------------------
# QConfig
# ---------------------------------------------------------------------------


def test_ready_made_configs():
    c = qk.quant.INT8_STATIC
    assert c.mode == "static" and c.weight == QScheme(8, True, True, axis=0) and c.activation == U8
    assert isinstance(c.make_weight_observer(), PerChannelMinMaxObserver)
    assert isinstance(c.make_activation_observer(), MinMaxObserver)
    c = qk.quant.int8_static(functools.partial(HistogramObserver, method="entropy"), per_channel=False)
    a = c.make_activation_observer()
    assert isinstance(a, HistogramObserver) and a.method == "entropy" and a.scheme == U8
    assert isinstance(c.make_weight_observer(), MinMaxObserver) and c.weight.axis is None
    c = qk.quant.INT8_DYNAMIC
    assert c.mode == "dynamic" and c.activation == U8
    c = qk.quant.INT4_WEIGHT_ONLY
    assert c.mode == "weight_only" and c.weight.bits == 4 and c.weight.symmetric and c.activation is None
    assert c.make_activation_observer() is None
    c = qk.quant.FP16
    assert c.mode == "fp16" and c.weight is None and c.make_weight_observer() is None


@pytest.mark.parametrize(
    "kwargs,exc,word",
    [
        ({"mode": "int8"}, ValueError, "mode"),
        ({"weight": "int8", "activation": U8}, TypeError, "weight"),
        ({"weight": S8_SYM}, ValueError, "activation"),
        ({"weight": S8_SYM, "activation": U8, "mode": "fp16"}, ValueError, "weight"),
        ({"weight": S8_SYM, "activation": U8, "mode": "weight_only"}, ValueError, "activation"),
        ({"weight": S8_SYM, "activation": U8.with_axis(1)}, ValueError, "activation"),
        ({"weight": S8_SYM, "activation": U8, "activation_observer": 3}, TypeError, "activation_observer"),
    ],
)
def test_qconfig_bad_arguments(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        QConfig(**kwargs)


# ---------------------------------------------------------------------------
# PyTorch parity
# ---------------------------------------------------------------------------

TORCH_SCHEMES = [(False, False), (False, True), (True, False), (True, True)]  # (signed, symmetric)


def _torch_dtype(torch, signed):
    return torch.qint8 if signed else torch.quint8


@pytest.mark.parametrize("signed,symmetric", TORCH_SCHEMES)
def test_torch_parity_minmax(signed, symmetric):
    torch = pytest.importorskip("torch")
    from torch.ao.quantization import observer as tobs

    rng = np.random.default_rng(21)
    qs = torch.per_tensor_symmetric if symmetric else torch.per_tensor_affine
    for trial in range(40):
        batches = [
            (rng.standard_normal((3, 17)) * rng.uniform(1e-3, 50) + rng.uniform(-20, 20)).astype(F32)
            for _ in range(3)
        ]
        if trial == 0:
            batches = [np.zeros((2, 2), F32)]
        if trial == 1:
            batches = [np.full((2, 2), 3.5, F32)]
        scheme = QScheme(8, signed=signed, symmetric=symmetric)
        for ours, theirs in (
            (MinMaxObserver(scheme), tobs.MinMaxObserver(dtype=_torch_dtype(torch, signed), qscheme=qs)),
            (
                MovingAverageMinMaxObserver(scheme),
                tobs.MovingAverageMinMaxObserver(dtype=_torch_dtype(torch, signed), qscheme=qs),
            ),
        ):
            for b in batches:
                ours.observe(b)
                theirs(torch.from_numpy(b))
            s, z = theirs.calculate_qparams()
            assert ours.qparams() == (F32(s.item()), int(z.item()))


@pytest.mark.parametrize("signed,symmetric", TORCH_SCHEMES)
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_torch_parity_per_channel(signed, symmetric, axis):
    torch = pytest.importorskip("torch")
    from torch.ao.quantization import observer as tobs

    rng = np.random.default_rng(22 + axis)
    qs = torch.per_channel_symmetric if symmetric else torch.per_channel_affine
    scheme = QScheme(8, signed=signed, symmetric=symmetric)
    for _ in range(10):
        ours = PerChannelMinMaxObserver(scheme, axis=axis)
        theirs = tobs.PerChannelMinMaxObserver(ch_axis=axis, dtype=_torch_dtype(torch, signed), qscheme=qs)
        for _ in range(2):
            b = (rng.standard_normal((4, 5, 6)) * rng.uniform(1e-3, 30, size=(1, 5, 1))).astype(F32)
            b[0, 0, 0] = 0.0
            ours.observe(b)
            theirs(torch.from_numpy(b))
        s, z = theirs.calculate_qparams()
        S, Z = ours.qparams()
        np.testing.assert_array_equal(S, s.numpy())
        np.testing.assert_array_equal(Z, z.numpy())


@pytest.mark.parametrize("bits", [4, 6])
@pytest.mark.parametrize("signed,symmetric", [(True, False), (True, True), (False, False)])
def test_torch_parity_custom_bit_width(bits, signed, symmetric):
    """PyTorch's quant_min/quant_max give the same grid for bits < 8 (except
    unsigned symmetric, whose zero point differs: we use 2**(bits-1))."""
    torch = pytest.importorskip("torch")
    from torch.ao.quantization import observer as tobs

    scheme = QScheme(bits, signed=signed, symmetric=symmetric)
    qs = torch.per_tensor_symmetric if symmetric else torch.per_tensor_affine
    rng = np.random.default_rng(bits)
    for _ in range(10):
        x = (rng.standard_normal(100) * rng.uniform(0.01, 10) + rng.uniform(-5, 5)).astype(F32)
        ours = MinMaxObserver(scheme)
        theirs = tobs.MinMaxObserver(
            dtype=_torch_dtype(torch, signed), qscheme=qs, quant_min=scheme.qmin, quant_max=scheme.qmax
        )
        ours.observe(x)
        theirs(torch.from_numpy(x))
        s, z = theirs.calculate_qparams()
        assert ours.qparams() == (F32(s.item()), int(z.item()))


def test_extreme_float64_and_range_jumps():
    big = np.array([-1e300, 5.0, 1e300], np.float64)
    tiny = np.array([1e-300, -1e-300, 0.0], np.float64)
    for factory in ALL_PER_TENSOR:
        o = factory(U8)
        o.observe(tiny)
        o.observe(big)
        o.observe(np.array([1e-45, 2.0], np.float32))
        s, z = o.qparams()
        assert np.isfinite(s) and s > 0 and 0 <= z <= 255
    p = PerChannelMinMaxObserver(U8, axis=0)
    p.observe(np.stack([big, tiny]))
    s, z = p.qparams()
    assert np.all(np.isfinite(s)) and np.all(s > 0)
    h = HistogramObserver(U8, bins=16)
    h.observe(np.array([1e-30, 2e-30], np.float32))
    h.observe(np.array([-3e38, 3e38], np.float32))
    assert h.hist.sum() == 4 and h.bin_edges[0] <= -3e38 and h.bin_edges[-1] >= 3e38
