"""INT8 GEMM against the NumPy int32 reference, bit for bit, on every ISA path."""

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qk

# The amx parameter of the isa fixture runs the emulated AMX tiles on CPUs without AMX (conftest.py).
AMX_BY_EMULATION = True

DIMS = [1, 2, 3, 7, 15, 16, 17, 31, 33, 63, 64, 65, 127, 129, 255, 257, 1000]


def ref(a, b):
    return a.astype(np.int32) @ b.astype(np.int32)


def operands(m, k, n, dtype, seed=0, extreme=None):
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    if extreme == "max":
        a = np.full((m, k), info.max, dtype)
        b = np.full((k, n), -128, np.int8)
    elif extreme == "alternating":
        a = np.where(np.indices((m, k)).sum(0) % 2, info.min, info.max).astype(dtype)
        b = np.where(np.indices((k, n)).sum(0) % 2, 127, -128).astype(np.int8)
    else:
        a = rng.integers(info.min, info.max + 1, (m, k)).astype(dtype)
        b = rng.integers(-128, 128, (k, n)).astype(np.int8)
    return a, b


def shape_grid():
    """Every dimension value against a few values of the other two (the full
    cartesian product is 4913 shapes: too many to run on every path)."""
    few = [1, 17, 64]
    shapes = set()
    for d in DIMS:
        for x in few:
            shapes.update({(d, x, 33), (x, d, 17), (17, x, d)})
    return sorted(shapes)


@pytest.mark.parametrize("m,k,n", shape_grid())
def test_shapes_signed_and_unsigned(isa, m, k, n):
    for dtype in (np.int8, np.uint8):
        a, b = operands(m, k, n, dtype, seed=m * 7 + k * 3 + n)
        np.testing.assert_array_equal(qk.int8_matmul(a, b), ref(a, b))


@pytest.mark.parametrize("extreme", ["max", "alternating"])
@pytest.mark.parametrize("m,k,n", [(5, 1000, 33), (64, 257, 16), (3, 4099, 7), (37, 2601, 50)])
def test_extreme_values(isa, threads, m, k, n, extreme):
    for dtype in (np.int8, np.uint8):
        a, b = operands(m, k, n, dtype, extreme=extreme)
        w = qk.pack_int8_weight(b)
        np.testing.assert_array_equal(qk.int8_matmul(a, w), ref(a, b))


def test_int32_wraps_like_numpy(isa):
    # 255 * 127 * K exceeds 2**31 for K > 66,313: the sums wrap modulo 2**32.
    k = 140_000
    a = np.full((2, k), 255, np.uint8)
    b = np.full((k, 3), 127, np.int8)
    b[:, 1] = -128
    expected = ref(a, b)
    assert expected[0, 0] != 255 * 127 * k  # it did wrap
    np.testing.assert_array_equal(qk.int8_matmul(a, b), expected)


def test_large_problem_one_and_two_threads_agree(isa):
    a, b = operands(300, 700, 515, np.int8, seed=4)
    w = qk.pack_int8_weight(b)
    results = []
    for t in (1, 2):
        previous = qk.get_num_threads()
        qk.set_num_threads(t)
        try:
            results.append(qk.int8_matmul(a, w))
        finally:
            qk.set_num_threads(previous)
    np.testing.assert_array_equal(results[0], ref(a, b))
    np.testing.assert_array_equal(results[1], results[0])


@pytest.mark.parametrize("m,k,n", [(301, 2603, 45), (1, 5000, 200), (9, 3000, 100)])
def test_blocking_over_rows_and_k(isa, threads, m, k, n):
    # Several row blocks (with a short last one), several runs over K (with a
    # short last one) and a short last column group, on 1 and 2 threads.
    for dtype in (np.int8, np.uint8):
        a, b = operands(m, k, n, dtype, seed=m + k + n)
        np.testing.assert_array_equal(qk.int8_matmul(a, qk.pack_int8_weight(b)), ref(a, b))


def test_batch_dims_vectors_and_views(isa):
    rng = np.random.default_rng(1)
    a = rng.integers(-128, 128, (2, 3, 5, 19)).astype(np.int8)
    b = rng.integers(-128, 128, (19, 11)).astype(np.int8)
    np.testing.assert_array_equal(qk.int8_matmul(a, b), ref(a, b))
    v = a[0, 0, 0]
    np.testing.assert_array_equal(qk.int8_matmul(v, b), ref(v, b))
    big = rng.integers(0, 256, (40, 60)).astype(np.uint8)
    view = big[::2, 1:39:2]  # non-contiguous (20, 19)
    bview = rng.integers(-128, 128, (11, 38)).astype(np.int8).T[::2]  # (19, 11) non-contiguous
    np.testing.assert_array_equal(qk.int8_matmul(view, bview), ref(view, bview))


def test_empty_dimensions():
    for m, k, n in [(0, 5, 3), (4, 0, 3), (4, 5, 0), (0, 0, 0)]:
        a, b = np.zeros((m, k), np.int8), np.zeros((k, n), np.int8)
        got = qk.int8_matmul(a, b)
        assert got.shape == (m, n) and got.dtype == np.int32 and not got.any()


def test_packed_weight_survives_isa_changes_and_pickling():
    import pickle

    a, b = operands(9, 77, 45, np.int8, seed=2)
    w = qk.pack_int8_weight(b)
    assert w.shape == (77, 45) and w.k == 77 and w.n == 45
    np.testing.assert_array_equal(w.unpack(), b)
    np.testing.assert_array_equal(w.column_sums(), b.astype(np.int32).sum(0))
    previous = qk.get_isa()
    try:
        for isa in qk.available_isas():
            qk.set_isa(isa)
            np.testing.assert_array_equal(qk.int8_matmul(a, w), ref(a, b))
    finally:
        qk.set_isa(previous)
    w2 = pickle.loads(pickle.dumps(w))
    np.testing.assert_array_equal(qk.int8_matmul(a, w2), ref(a, b))


def test_out_argument(isa):
    a, b = operands(6, 40, 9, np.uint8)
    out = np.empty((6, 9), np.int32)
    assert qk.int8_matmul(a, b, out=out) is out
    np.testing.assert_array_equal(out, ref(a, b))


def test_many_python_threads_at_once(isa):
    a, b = operands(200, 300, 150, np.int8, seed=9)
    w = qk.pack_int8_weight(b)
    expected = ref(a, b)
    errors = []

    def work():
        for _ in range(4):
            if not np.array_equal(qk.int8_matmul(a, w), expected):
                errors.append(1)

    workers = [threading.Thread(target=work) for _ in range(6)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert not errors


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 40), k=st.integers(0, 300), n=st.integers(1, 40), signed=st.booleans(), seed=st.integers(0, 99))
def test_property_matches_reference_on_every_path(m, k, n, signed, seed):
    a, b = operands(m, k, n, np.int8 if signed else np.uint8, seed=seed)
    expected = ref(a, b)
    previous = qk.get_isa()
    try:
        for isa in qk.available_isas():
            qk.set_isa(isa)
            np.testing.assert_array_equal(qk.int8_matmul(a, b), expected)
    finally:
        qk.set_isa(previous)


@pytest.mark.parametrize("m", [5, 6, 7, 11, 12, 13])
@pytest.mark.parametrize("n", [15, 16, 17, 31, 33])
def test_shapes_around_the_tiles(isa, m, n):
    """Rows around the 6-row AVX2 tile (and the 4- and 8-row ones), columns around a 16-wide panel."""
    for dtype in (np.int8, np.uint8):
        a, b = operands(m, 67, n, dtype, seed=m * 31 + n)
        np.testing.assert_array_equal(qk.int8_matmul(a, b), ref(a, b))


@pytest.fixture(params=[(32 << 10, 256 << 10, 8 << 20), (48 << 10, 32 << 20, 256 << 20)], ids=["small", "large"])
def caches(request):
    """GEMMs blocked as on a CPU with small (256 KiB L2) or large (32 MiB L2) caches."""
    qk._qk.set_cache_sizes_for_testing(request.param)
    yield qk._qk.gemm_blocking()
    qk._qk.set_cache_sizes_for_testing(None)


@pytest.mark.parametrize("m,k,n", [(301, 2603, 45), (97, 4099, 33), (13, 1500, 70), (6, 300, 17)])
def test_blockings_of_other_caches(isa, threads, caches, m, k, n):
    """The blocking follows the caches (clamped), and every blocking gives the exact product."""
    assert caches["a_block_bytes"] in (96 << 10, 3 << 20) and caches["b_run_bytes"] in (16 << 10, 256 << 10)
    for dtype in (np.int8, np.uint8):
        a, b = operands(m, k, n, dtype, seed=m + k)
        np.testing.assert_array_equal(qk.int8_matmul(a, b), ref(a, b))
    assert qk._qk.gemm_blocking() == caches
