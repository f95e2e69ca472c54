"""The thread pool under the kernels: results independent of the thread
count (including more threads than cores), several Python threads at once,
and a forked child (which has none of its parent's worker threads)."""

import multiprocessing
import threading

import numpy as np
import pytest

import qk

RNG = np.random.default_rng(7)
X = RNG.standard_normal(3_000_001).astype(np.float32)
A = RNG.integers(-128, 128, (301, 700)).astype(np.int8)
B = RNG.integers(-128, 128, (700, 257)).astype(np.int8)


def expected():
    return qk.quantize(X, 0.01, 3, dtype=np.int8), A.astype(np.int32) @ B.astype(np.int32)


@pytest.fixture
def restore_threads():
    before = qk.get_num_threads()
    yield
    qk.set_num_threads(before)


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
def test_same_results_for_any_thread_count(threads, restore_threads):
    qk.set_num_threads(1)
    q_ref, c_ref = expected()
    qk.set_num_threads(threads)
    assert np.array_equal(qk.quantize(X, 0.01, 3, dtype=np.int8), q_ref)
    assert np.array_equal(qk.int8_matmul(A, B), c_ref)


def test_python_threads_sharing_the_pool(restore_threads):
    qk.set_num_threads(4)
    q_ref, c_ref = expected()
    failures = []

    def worker():
        for _ in range(10):
            if not np.array_equal(qk.quantize(X, 0.01, 3, dtype=np.int8), q_ref):
                failures.append("quantize")
            if not np.array_equal(qk.int8_matmul(A, B), c_ref):
                failures.append("int8_matmul")

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def _child_check(_):
    q_ref, c_ref = expected()
    return bool(np.array_equal(qk.int8_matmul(A, B), c_ref)) and bool(np.array_equal(
        qk.quantize(X, 0.01, 3, dtype=np.int8), q_ref))


def _stacked_matmul_cases():
    rng = np.random.default_rng(3)
    heads = rng.standard_normal((4, 128, 6, 64)).astype(np.float32)
    yield heads.transpose(0, 2, 1, 3), heads.transpose(0, 2, 3, 1)  # strided views, as attention's
    yield rng.standard_normal((7, 64, 96)), rng.standard_normal((96, 80))  # float64, b broadcast
    yield rng.standard_normal((64, 96)).astype(np.float32), rng.standard_normal((5, 1, 96, 80)).astype(np.float32)
    yield rng.standard_normal((2, 3, 4)).astype(np.float32), rng.standard_normal((4, 5)).astype(np.float32)  # small


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("min_macs", [0, 1 << 22])
def test_threaded_stacked_matmul_is_numpys_matmul(threads, min_macs, restore_threads, monkeypatch):
    from qk import _threaded_numpy
    from qk._threaded_numpy import matmul

    monkeypatch.setattr(_threaded_numpy, "_MIN_MACS", min_macs)  # 0: every case split
    qk.set_num_threads(threads)
    for a, b in _stacked_matmul_cases():
        got = matmul(a, b)
        assert got.dtype == (a @ b).dtype and np.array_equal(got, a @ b)


def test_threaded_matmul_keeps_its_threads_across_stack_sizes(restore_threads, monkeypatch):
    from qk import _threaded_numpy

    monkeypatch.setattr(_threaded_numpy, "_MIN_MACS", 0)
    qk.set_num_threads(3)
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((8, 4, 5)), rng.standard_normal((8, 5, 6))
    _threaded_numpy.matmul(a, b)
    workers = _threaded_numpy._executor[2]
    for stack in (2, 8, 3):  # stacks shorter than the thread count use fewer of the same workers
        assert np.array_equal(_threaded_numpy.matmul(a[:stack], b[:stack]), a[:stack] @ b[:stack])
    assert _threaded_numpy._executor[2] is workers


def _child_matmul(_):
    from qk._threaded_numpy import matmul

    return all(np.array_equal(matmul(a, b), a @ b) for a, b in _stacked_matmul_cases())


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork on this platform")
def test_threaded_matmul_in_forked_children(restore_threads):
    qk.set_num_threads(2)
    assert _child_matmul(0)  # the parent's matmul threads exist now
    with multiprocessing.get_context("fork").Pool(2) as pool:
        assert pool.map(_child_matmul, range(2), chunksize=1) == [True] * 2


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork on this platform")
def test_forked_children_after_the_pool_started(restore_threads):
    qk.set_num_threads(2)
    expected()  # the parent's pool has its workers now
    with multiprocessing.get_context("fork").Pool(2) as pool:
        assert pool.map(_child_check, range(4), chunksize=1) == [True] * 4


def test_gemm_blocking_follows_the_reported_l2():
    from qk import _runtime

    caches, blk = _runtime.cache_sizes(), _runtime.gemm_blocking()
    assert set(caches) == {"l1d", "l2", "l3"} and all(v >= 0 for v in caches.values())
    l2 = caches["l2"] or 1 << 20
    assert blk["a_block_bytes"] == min(max(l2 // 8 * 3, 96 << 10), 3 << 20)
    assert blk["b_run_bytes"] == min(max(l2 // 16, 16 << 10), 256 << 10)


def test_pool_shrinks_when_the_thread_count_goes_down():
    """After a burst at 16 threads, lowering the count lets surplus workers exit
    (every job used to wake every worker: small calls got ~20x slower)."""
    import time

    import numpy as np

    from qk import _qk

    previous = qk.get_num_threads()
    a = np.random.default_rng(0).integers(0, 256, (512, 512)).astype(np.uint8)
    w = qk.pack_int8_weight(np.ones((512, 512), np.int8))
    try:
        qk.set_num_threads(16)
        want = qk.int8_matmul(a, w)
        assert _qk.pool_workers() >= 15
        qk.set_num_threads(2)
        deadline = time.monotonic() + 5
        while _qk.pool_workers() > 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _qk.pool_workers() <= 1
        assert np.array_equal(qk.int8_matmul(a, w), want)  # and the pool still works
    finally:
        qk.set_num_threads(previous)


def test_blas_on_calling_thread_sets_and_restores_this_threads_count():
    from qk._runtime import blas_on_calling_thread, _openblas_thread_local_setter

    setter = _openblas_thread_local_setter()
    if setter is None:
        pytest.skip("NumPy's BLAS has no thread-local thread count (not OpenBLAS >= 0.3.27)")
    original = setter(3)
    try:
        a = RNG.standard_normal((300, 300)).astype(np.float32)
        with blas_on_calling_thread():
            assert setter(1) == 1
            np.testing.assert_allclose(a @ a, a.astype(np.float64) @ a, rtol=1e-4, atol=1e-3)
        assert setter(3) == 3  # restored on the way out
    finally:
        setter(original)
