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
