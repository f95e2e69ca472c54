"""FP32 <-> FP16 and FP32 <-> BF16 conversion: bit-identical to NumPy on every ISA path."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import qk

U32 = np.uint32

# NumPy warns when a cast overflows to inf; that is the expected behaviour here.
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")


# ---------------------------------------------------------------------------
# References
# ---------------------------------------------------------------------------

def ref_f32_to_f16(u):
    """float32 bit patterns (uint32) -> NumPy's float16 bits (uint16), by
    plain bit manipulation (verified against astype below)."""
    u = np.asarray(u, dtype=U32)
    a = u & U32(0x7FFFFFFF)
    sign = ((u >> U32(16)) & U32(0x8000)).astype(np.uint16)
    # Normal halves: rebias the exponent, round to nearest even on 13 bits.
    norm = (a + U32((0xFFF - 0x38000000) % 2**32) + ((a >> U32(13)) & U32(1))) >> U32(13)
    # Subnormal halves: |x| / 2^-24 rounded half to even (exact in float32).
    with np.errstate(all="ignore"):
        sub = np.rint(a.view(np.float32) * np.float32(2.0**24)).astype(U32)
    h = np.where(a < U32(0x38800000), sub, norm)
    h = np.where(a >= U32(0x477FF000), U32(0x7C00), h)  # >= 65520 rounds to inf
    nan = U32(0x7C00) | np.maximum((a >> U32(13)) & U32(0x3FF), U32(1))  # NaN: payload kept, never 0
    h = np.where(a > U32(0x7F800000), nan, h)
    return h.astype(np.uint16) | sign


def ref_f32_to_bf16(u):
    """float32 bit patterns -> bfloat16 bits: round to nearest even on the
    low 16 bits; NaN keeps sign and top payload with the quiet bit set."""
    u = np.asarray(u, dtype=U32)
    rounded = (u + U32(0x7FFF) + ((u >> U32(16)) & U32(1))) >> U32(16)
    nan = (u & U32(0x7FFFFFFF)) > U32(0x7F800000)
    return np.where(nan, (u >> U32(16)) | U32(0x40), rounded).astype(np.uint16)


def bits32(x):
    return np.asarray(x).view(np.uint32)


def bits16(x):
    return np.asarray(x).view(np.uint16)


def special_f32_bits():
    """Every sign and exponent with mantissas around each rounding boundary,
    plus the float32 values at the edges of the half range."""
    low = np.arange(1 << 14, dtype=U32)  # all patterns of the rounded-off bits and the kept LSB
    rest = np.random.default_rng(11).integers(0, 1 << 23, 1 << 12, dtype=U32)
    mant = np.concatenate([low, low[:1 << 12] | U32(0x7FC000), rest])
    se = np.arange(512, dtype=U32) << U32(23)
    pats = (se[:, None] | mant[None, :]).ravel()
    edges = np.array([0x477FEFFF, 0x477FF000, 0x477FF001, 0x477FE000, 0x38800000, 0x387FFFFF, 0x387FF000,
                      0x33000000, 0x33000001, 0x32FFFFFF, 0x33800000, 0x7F800000, 0x7F800001, 0x7FC00000,
                      0x7FFFFFFF, 0x7F802000, 0x7F801FFF, 0x00000001, 0x00000000], dtype=U32)
    return np.concatenate([pats, edges, edges | U32(0x80000000)])


def random_f32_bits(n, seed=0):
    return np.random.default_rng(seed).integers(0, 2**32, size=n, dtype=np.uint64).astype(U32)


# ---------------------------------------------------------------------------
# The references themselves agree with NumPy
# ---------------------------------------------------------------------------

def test_reference_matches_astype():
    u = np.concatenate([special_f32_bits(), random_f32_bits(1 << 21)])
    with np.errstate(all="ignore"):
        expected = u.view(np.float32).astype(np.float16)
    np.testing.assert_array_equal(ref_f32_to_f16(u), bits16(expected))


def test_reference_numpy_nan_behaviour():
    # NumPy does not quiet signalling NaNs; the reference (and qk) follow it.
    u = np.array([0x7F800001, 0xFF800001, 0x7FA00000, 0x7FC00000], dtype=U32)
    np.testing.assert_array_equal(bits16(u.view(np.float32).astype(np.float16)), [0x7C01, 0xFC01, 0x7D00, 0x7E00])
    np.testing.assert_array_equal(ref_f32_to_f16(u), [0x7C01, 0xFC01, 0x7D00, 0x7E00])
    h = np.array([0x7C01, 0xFE00], dtype=np.uint16)
    np.testing.assert_array_equal(bits32(h.view(np.float16).astype(np.float32)), [0x7F802000, 0xFFC00000])


def test_bf16_reference_by_float64_rounding():
    # Independent check of the bf16 reference: round to 8 significant bits in
    # float64 (exact) with round half to even, for finite values in range.
    u = random_f32_bits(1 << 18, seed=3)
    x = u.view(np.float32)
    finite = np.isfinite(x) & (np.abs(x) < np.float32(3.0e38))
    x64 = x[finite].astype(np.float64)
    # Quantum of an 8-bit significand; bf16 subnormals share float32's 2^-126 floor.
    q_exp = np.maximum(np.frexp(x64)[1], -125) - 8
    r = np.ldexp(np.rint(np.ldexp(x64, -q_exp)), q_exp)
    expected = bits32(r.astype(np.float32)) >> U32(16)
    np.testing.assert_array_equal(ref_f32_to_bf16(u[finite]), expected.astype(np.uint16))


# ---------------------------------------------------------------------------
# Kernels vs NumPy on every ISA path
# ---------------------------------------------------------------------------

def test_kernel_path_follows_cap(isa):
    # The best path the fp16 family has at or below the cap (x86-64, then aarch64).
    expected = {"scalar": "scalar", "avx2": "avx2", "avx_vnni": "avx2", "avx512": "avx512", "avx512_vnni": "avx512",
                "amx": "avx512", "neon": "neon", "neon_dotprod": "neon", "i8mm": "neon"}[isa]
    assert qk.kernel_paths()["fp16"] == expected


def test_fp16_to_fp32_all_halves(isa):
    h = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    np.testing.assert_array_equal(bits32(qk.fp16_to_fp32(h)), bits32(h.astype(np.float32)))


def test_fp32_to_fp16_specials_and_random(isa):
    u = np.concatenate([special_f32_bits(), random_f32_bits(1 << 20, seed=1)])
    x = u.view(np.float32)
    with np.errstate(all="ignore"):
        expected = bits16(x.astype(np.float16))
    np.testing.assert_array_equal(bits16(qk.fp32_to_fp16(x)), expected)


def test_fp16_roundtrip_every_half(isa):
    h = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    np.testing.assert_array_equal(bits16(qk.fp32_to_fp16(qk.fp16_to_fp32(h))), bits16(h))


def test_bf16_to_fp32_all_patterns(isa):
    b = np.arange(1 << 16, dtype=np.uint16)
    np.testing.assert_array_equal(bits32(qk.bf16_to_fp32(b)), b.astype(U32) << U32(16))


def test_fp32_to_bf16_specials_and_random(isa):
    u = np.concatenate([special_f32_bits(), random_f32_bits(1 << 20, seed=2),
                        np.array([0x7F7FFFFF, 0x7F7F8000, 0x7F7F7FFF, 0xFF7FFFFF, 0x00008000, 0x00018000,
                                  0x7F800001, 0xFF810000, 0x7F800000], dtype=U32)])
    np.testing.assert_array_equal(qk.fp32_to_bf16(u.view(np.float32)), ref_f32_to_bf16(u))


def test_bf16_nan_never_becomes_inf(isa):
    # Payloads only in the low 16 bits would truncate to inf.
    u = np.array([0x7F800001, 0xFF80FFFF, 0x7F808000, 0x7FC00000], dtype=U32)
    b = qk.fp32_to_bf16(u.view(np.float32))
    np.testing.assert_array_equal(b, [0x7FC0, 0xFFC0, 0x7FC0, 0x7FC0])
    assert np.isnan(qk.bf16_to_fp32(b)).all()


def test_bf16_overflow_and_ties(isa):
    u = np.array([0x7F7FFFFF, 0x3F808000, 0x3F818000, 0x3F808001, 0xBF808000], dtype=U32)
    np.testing.assert_array_equal(qk.fp32_to_bf16(u.view(np.float32)), [0x7F80, 0x3F80, 0x3F82, 0x3F81, 0xBF80])


# ---------------------------------------------------------------------------
# The floating-point environment (DAZ, FTZ, rounding mode) changes nothing
# ---------------------------------------------------------------------------

def _mxcsr_setter():
    """(get, set) of the calling thread's MXCSR through glibc's fenv_t
    (x86-64 Linux: MXCSR is the last 4 bytes of the 32-byte fenv_t)."""
    import ctypes
    import ctypes.util
    import platform

    if platform.machine() not in ("x86_64", "AMD64") or not ctypes.util.find_library("m"):
        pytest.skip("needs x86-64 glibc to set MXCSR")
    libm = ctypes.CDLL(ctypes.util.find_library("m"))

    def get():
        env = (ctypes.c_ubyte * 32)()
        assert libm.fegetenv(env) == 0
        return env

    def set_mxcsr(env, value):
        new = (ctypes.c_ubyte * 32).from_buffer_copy(bytes(env))
        new[28:32] = list(value.to_bytes(4, "little"))
        assert libm.fesetenv(new) == 0

    return get, set_mxcsr


@pytest.mark.parametrize("rounding", [0x0000, 0x2000, 0x4000, 0x6000], ids=["rne", "down", "up", "zero"])
def test_independent_of_daz_ftz_and_rounding_mode(isa, rounding):
    get, set_mxcsr = _mxcsr_setter()
    u = np.concatenate([special_f32_bits()[::8], random_f32_bits(1 << 16, seed=9)])
    x = u.view(np.float32)
    h = np.arange(1 << 16, dtype=np.uint16)
    with np.errstate(all="ignore"):
        want = (bits16(x.astype(np.float16)), bits32(h.view(np.float16).astype(np.float32)),
                ref_f32_to_bf16(u), h.astype(U32) << U32(16))
    previous_threads = qk.get_num_threads()
    qk.set_num_threads(1)  # the kernels then run on this thread, under its MXCSR
    saved = get()
    mxcsr = int.from_bytes(bytes(saved[28:32]), "little")
    try:
        # DAZ (0x40) and FTZ (0x8000) on, rounding control (bits 13-14) as given.
        set_mxcsr(saved, (mxcsr & ~0x6000) | 0x8040 | rounding)
        probe = np.array([1e-40], np.float32) * np.float32(1)  # DAZ really is on: a subnormal reads as 0
        got = (bits16(qk.fp32_to_fp16(x)), bits32(qk.fp16_to_fp32(h.view(np.float16))),
               qk.fp32_to_bf16(x), bits32(qk.bf16_to_fp32(h)))
    finally:
        set_mxcsr(saved, mxcsr)
        qk.set_num_threads(previous_threads)
    assert probe[0] == 0
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


# ---------------------------------------------------------------------------
# Exhaustive: all 2^32 float32 bit patterns (slow; CI runs it)
# ---------------------------------------------------------------------------

MANT = 1 << 23  # one (sign, exponent) pair per chunk of 2^23 patterns


@pytest.fixture(scope="module")
def mantissas():
    return np.arange(MANT, dtype=U32)


def ref_f16_chunk(sign, exp, m, tables):
    """NumPy's half bits for the 2^23 float32 patterns with this sign and
    biased exponent (mantissa = m): ref_f32_to_f16 specialised per exponent
    (checked equal to it by test_chunk_reference_matches)."""
    round13, nan = tables
    s = np.uint16(sign << 15)
    if exp == 255:
        return nan | s
    if exp >= 143:  # >= 2^16: inf
        return np.full(MANT, 0x7C00, np.uint16) | s
    if exp >= 113:  # normal half; a round-up carries into the exponent (142 -> inf)
        return round13 + np.uint16(((exp - 112) << 10) | (sign << 15))
    if exp < 102:  # < 2^-25: signed zero
        return np.full(MANT, s, np.uint16)
    return ref_f32_to_f16((U32(sign << 31) | U32(exp << 23)) | m)


@pytest.fixture(scope="module")
def f16_tables(mantissas):
    m = mantissas
    round13 = ((m + U32(0xFFF) + ((m >> U32(13)) & U32(1))) >> U32(13)).astype(np.uint16)
    nan = (U32(0x7C00) | np.maximum(m >> U32(13), U32(1))).astype(np.uint16)
    nan[0] = 0x7C00  # mantissa 0 is inf
    return round13, nan


@pytest.mark.slow
def test_chunk_reference_matches(mantissas, f16_tables):
    # The per-exponent reference equals the general one (and so astype) on a
    # sample of every chunk: all low-14-bit patterns plus random mantissas.
    rng = np.random.default_rng(5)
    idx = np.concatenate([np.arange(1 << 14), rng.integers(0, MANT, 1 << 14)])
    for sign in (0, 1):
        for exp in range(256):
            full = ref_f16_chunk(sign, exp, mantissas, f16_tables)
            u = U32(sign << 31) | U32(exp << 23) | mantissas[idx]
            np.testing.assert_array_equal(full[idx], ref_f32_to_f16(u), err_msg=f"sign={sign} exp={exp}")


def _skip_duplicate_path(isa):
    # A cap without its own fp16 kernels (avx_vnni, avx512_vnni, amx) runs a
    # lower path that is tested exhaustively under its own name.
    if qk.kernel_paths()["fp16"] != isa:
        pytest.skip(f"cap {isa} runs the {qk.kernel_paths()['fp16']} fp16 kernels, tested on their own")


@pytest.mark.slow
def test_fp32_to_fp16_all_float32_bit_patterns(isa, mantissas, f16_tables):
    _skip_duplicate_path(isa)
    out = np.empty(MANT, np.float16)
    for sign in (0, 1):
        for exp in range(256):
            x = (U32(sign << 31) | U32(exp << 23) | mantissas).view(np.float32)
            qk.fp32_to_fp16(x, out=out)
            expected = ref_f16_chunk(sign, exp, mantissas, f16_tables)
            if not np.array_equal(bits16(out), expected):
                bad = np.flatnonzero(bits16(out) != expected)[0]
                pytest.fail(f"float32 bits {bits32(x)[bad]:#010x}: qk {bits16(out)[bad]:#06x}, "
                            f"numpy {expected[bad]:#06x}")


@pytest.mark.slow
def test_fp32_to_bf16_all_float32_bit_patterns(isa, mantissas):
    _skip_duplicate_path(isa)
    m = mantissas
    round16 = ((m + U32(0x7FFF) + ((m >> U32(16)) & U32(1))) >> U32(16)).astype(np.uint16)
    nan = ((m >> U32(16)) | U32(0x40)).astype(np.uint16)
    out = np.empty(MANT, np.uint16)
    for sign in (0, 1):
        for exp in range(256):
            top = np.uint16((sign << 15) | (exp << 7))
            x = (U32(sign << 31) | U32(exp << 23) | m).view(np.float32)
            qk.fp32_to_bf16(x, out=out)
            if exp == 255:
                expected = nan | top
                expected[0] = top  # inf
            else:
                expected = round16 + top
            if not np.array_equal(out, expected):
                bad = np.flatnonzero(out != expected)[0]
                pytest.fail(f"float32 bits {bits32(x)[bad]:#010x}: qk {out[bad]:#06x}, ref {expected[bad]:#06x}")


# ---------------------------------------------------------------------------
# Shapes, strides, out=, threads
# ---------------------------------------------------------------------------

SHAPES = [(), (0,), (1,), (15,), (16,), (17,), (63,), (64,), (65,), (1000003,), (0, 3), (37, 29), (2, 3, 5, 7)]


def _values(shape, seed=0):
    rng = np.random.default_rng(seed)
    x = np.asarray(rng.standard_normal(shape) * 1000, dtype=np.float32)
    flat = x.reshape(-1)
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 65520.0, 1e-8, 6e-8], np.float32)
    flat[: min(flat.size, specials.size)] = specials[: flat.size]
    return x


def _check_all(x):
    with np.errstate(all="ignore"):
        h = x.astype(np.float16)
    got_h = qk.fp32_to_fp16(x)
    assert got_h.dtype == np.float16 and got_h.shape == x.shape
    np.testing.assert_array_equal(bits16(got_h), bits16(h))
    got_x = qk.fp16_to_fp32(h)
    assert got_x.dtype == np.float32 and got_x.shape == x.shape
    np.testing.assert_array_equal(bits32(got_x), bits32(h.astype(np.float32)))
    b = qk.fp32_to_bf16(x)
    assert b.dtype == np.uint16 and b.shape == x.shape
    np.testing.assert_array_equal(b, ref_f32_to_bf16(bits32(np.ascontiguousarray(x))).reshape(x.shape))
    y = qk.bf16_to_fp32(b)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_array_equal(bits32(y), b.astype(U32) << U32(16))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_shapes(isa, threads, shape):
    _check_all(_values(shape))


def test_large_arrays_across_thread_counts(isa, threads):
    # Big enough for threads and streaming stores; odd length; misaligned starts.
    n = (3 << 20) + 5
    x = _values((n + 7,), seed=4)
    for offset in (0, 1, 3):
        _check_all(x[offset:offset + n])
    buf = np.empty(n + 16, np.float16)
    for offset in (0, 1, 5):
        out = buf[offset:offset + n]
        assert qk.fp32_to_fp16(x[:n], out=out) is out
        with np.errstate(all="ignore"):
            np.testing.assert_array_equal(bits16(out), bits16(x[:n].astype(np.float16)))
    fbuf = np.empty(n + 16, np.float32)
    h = x[:n].astype(np.float16)
    for offset in (0, 3, 7):
        out = fbuf[offset:offset + n]
        assert qk.fp16_to_fp32(h, out=out) is out
        np.testing.assert_array_equal(bits32(out), bits32(h.astype(np.float32)))


def test_non_contiguous_views(isa):
    x = _values((64, 80), seed=6)
    for view in (x[::2], x.T, x[:, ::-3], x[5:50:7, 3:70:2], x.reshape(8, 8, 80)[:, ::2, 1::3]):
        _check_all(view)


def test_unaligned_buffers(isa):
    n = 1001
    raw = np.zeros(4 * n + 8, np.uint8)
    x = np.ndarray((n,), np.float32, buffer=raw, offset=1)
    x[...] = _values((n,), seed=7)
    assert not x.flags.aligned
    _check_all(x)
    out_raw = np.zeros(2 * n + 4, np.uint8)
    out = np.ndarray((n,), np.float16, buffer=out_raw, offset=1)
    assert qk.fp32_to_fp16(x, out=out) is out
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(bits16(out), bits16(x.astype(np.float16)))


def test_out_overlapping_input(isa):
    n = 4099
    buf = np.zeros(n, np.float32)
    buf[:] = _values((n,), seed=8)
    expected = ref_f32_to_bf16(bits32(buf.copy()))
    out = buf.view(np.uint16)[1:n + 1]  # shares memory with buf
    assert qk.fp32_to_bf16(buf, out=out) is out
    np.testing.assert_array_equal(out, expected)


def test_out_argument():
    x = _values((3, 4))
    out = np.empty((3, 4), np.float16)
    assert qk.fp32_to_fp16(x, out=out) is out
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(bits16(out), bits16(x.astype(np.float16)))
    fout = np.empty((3, 4), np.float32)
    assert qk.fp16_to_fp32(out, out=fout) is fout
    bout = np.empty((3, 4), np.uint16)
    assert qk.fp32_to_bf16(x, out=bout) is bout
    assert qk.bf16_to_fp32(bout, out=fout) is fout

    cases = [
        (qk.fp32_to_fp16, x, np.empty((3, 4), np.float32), TypeError),
        (qk.fp32_to_fp16, x, np.empty((3, 4), np.uint16), TypeError),
        (qk.fp32_to_fp16, x, np.empty((4, 3), np.float16), ValueError),
        (qk.fp32_to_fp16, x, np.empty(12, np.float16), ValueError),
        (qk.fp32_to_fp16, x, np.empty((3, 8), np.float16)[:, ::2], ValueError),
        (qk.fp32_to_fp16, x, [0.0] * 12, TypeError),
        (qk.fp16_to_fp32, out, np.empty((3, 4), np.float64), TypeError),
        (qk.fp16_to_fp32, out, np.empty((3, 5), np.float32), ValueError),
        (qk.fp32_to_bf16, x, np.empty((3, 4), np.int16), TypeError),
        (qk.fp32_to_bf16, x, np.empty((3, 4), np.float16), TypeError),
        (qk.bf16_to_fp32, bout, np.empty((3, 4), np.float16), TypeError),
    ]
    for fn, arg, bad_out, exc in cases:
        with pytest.raises(exc, match="out"):
            fn(arg, out=bad_out)
    readonly = np.empty((3, 4), np.float16)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="out.*read-only"):
        qk.fp32_to_fp16(x, out=readonly)


@pytest.mark.parametrize(
    "fn, name, bad",
    [
        (qk.fp32_to_fp16, "x", [1.0, 2.0]),
        (qk.fp32_to_fp16, "x", np.ones(3, np.float64)),
        (qk.fp32_to_fp16, "x", np.ones(3, np.float16)),
        (qk.fp32_to_fp16, "x", 1.0),
        (qk.fp32_to_fp16, "x", np.float32(1.0)),
        (qk.fp16_to_fp32, "h", np.ones(3, np.float32)),
        (qk.fp16_to_fp32, "h", np.ones(3, np.uint16)),
        (qk.fp16_to_fp32, "h", None),
        (qk.fp32_to_bf16, "x", np.ones(3, np.int32)),
        (qk.bf16_to_fp32, "b", np.ones(3, np.int16)),
        (qk.bf16_to_fp32, "b", np.ones(3, np.float16)),
        (qk.bf16_to_fp32, "b", "abc"),
    ],
)
def test_bad_input(fn, name, bad):
    with pytest.raises(TypeError, match=f"^{name}:"):
        fn(bad)


def test_keyword_only_out():
    x = np.ones(3, np.float32)
    with pytest.raises(TypeError):
        qk.fp32_to_fp16(x, np.empty(3, np.float16))


# ---------------------------------------------------------------------------
# Property tests
# ---------------------------------------------------------------------------

_f32_arrays = hnp.arrays(
    np.float32,
    hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=40),
    elements=st.floats(width=32, allow_nan=True, allow_infinity=True, allow_subnormal=True),
)
_u32_arrays = hnp.arrays(np.uint32, st.integers(0, 300), elements=st.integers(0, 2**32 - 1))


@settings(max_examples=60, deadline=None)
@given(x=_f32_arrays, step=st.integers(1, 3))
def test_property_matches_numpy(x, step):
    view = x[..., ::step] if x.ndim else x
    _check_all(view)


@settings(max_examples=60, deadline=None)
@given(u=_u32_arrays)
def test_property_any_bit_pattern(u):
    x = u.view(np.float32)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(bits16(qk.fp32_to_fp16(x)), bits16(x.astype(np.float16)))
    np.testing.assert_array_equal(qk.fp32_to_bf16(x), ref_f32_to_bf16(u))


@settings(max_examples=60, deadline=None)
@given(u=_u32_arrays)
def test_property_bf16_roundtrip_of_representable(u):
    # Values already on the bf16 grid (low 16 bits zero, not NaN) survive a round trip.
    u = u & U32(0xFFFF0000)
    u = u[(u & U32(0x7FFFFFFF)) <= U32(0x7F800000)]
    x = u.view(np.float32)
    np.testing.assert_array_equal(bits32(qk.bf16_to_fp32(qk.fp32_to_bf16(x))), u)
