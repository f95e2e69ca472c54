"""qk's pool for NumPy array data (qk._memory): arrays allocated in it behave
like any NumPy array (values, alignment, growth, zeros from a dirty block,
lifetimes beyond the pool's scope, threads), the idle limit holds, and a
GraphModule runs in it with the same results."""

import threading

import numpy as np
import pytest

import qk
from qk._memory import pooled_arrays

try:
    from numpy._core.multiarray import get_handler_name
except ImportError:  # NumPy 1.x
    from numpy.core.multiarray import get_handler_name

BIG = 1 << 20  # float32 elements: 4 MiB, a pooled size


@pytest.fixture
def limit():
    before = qk.memory_pool_stats()["limit_bytes"]
    yield
    qk.set_memory_pool_limit(before)


def test_arrays_come_from_the_pool_only_inside_the_scope():
    with pooled_arrays():
        inside = np.empty(BIG, np.float32)
        small = np.arange(5)
    outside = np.empty(BIG, np.float32)
    assert get_handler_name(inside) == get_handler_name(small) == "qk_array_pool"
    assert get_handler_name(outside) != "qk_array_pool"
    assert inside.ctypes.data % 64 == 0 and small.ctypes.data % 64 == 0


def test_freed_blocks_are_reused_and_the_limit_holds(limit):
    qk.set_memory_pool_limit(64 << 20)
    with pooled_arrays():
        a = np.ones(BIG, np.float32)
        address = a.ctypes.data
        del a
        before = qk.memory_pool_stats()
        b = np.empty(BIG - 100, np.float32)  # the same size class
        after = qk.memory_pool_stats()
    assert b.ctypes.data == address and after["reused"] == before["reused"] + 1
    assert after["idle_bytes"] == before["idle_bytes"] - (BIG * 4)
    del b
    qk.set_memory_pool_limit(0)
    assert qk.memory_pool_stats()["idle_bytes"] == 0
    with pooled_arrays():
        c = np.ones(BIG, np.float32)
    del c
    assert qk.memory_pool_stats()["idle_bytes"] == 0  # nothing is kept above the limit


def test_zeros_and_growth_from_dirty_blocks(limit):
    qk.set_memory_pool_limit(64 << 20)
    with pooled_arrays():
        dirty = np.full(BIG, 7.0, np.float32)
        del dirty
        z = np.zeros(BIG, np.float32)  # calloc: a kept block must be cleared
        assert not z.any()
        grown = np.arange(1000, dtype=np.float64)
        grown.resize(BIG, refcheck=False)  # realloc: values kept, across size classes
        assert np.array_equal(grown[:1000], np.arange(1000)) and grown.shape == (BIG,)
        grown.resize(10, refcheck=False)
        assert np.array_equal(grown, np.arange(10))
        it = np.fromiter((i * 0.5 for i in range(300_000)), np.float64)  # grows by realloc as it goes
    assert np.array_equal(it, np.arange(300_000) * 0.5)


def test_arrays_outlive_the_scope_and_other_threads_free_them():
    with pooled_arrays():
        kept = [np.full(BIG // 4 + i, i, np.float32) for i in range(8)]
    assert all((k == i).all() for i, k in enumerate(kept))

    def work(seed):
        rng = np.random.default_rng(seed)
        with pooled_arrays():
            for _ in range(50):
                x = rng.standard_normal(int(rng.integers(1, 2 * BIG)), dtype=np.float32)
                assert np.isfinite(x.sum())
        kept.pop()  # freed on this thread, allocated on the main one

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(kept) == 4


def test_graph_runs_in_the_pool_with_the_same_results(limit):
    nn = qk.nn
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 32 * 32, 10))
    x = np.random.default_rng(0).standard_normal((64, 1, 32, 32)).astype(np.float32)
    gm = qk.graph.GraphModule(qk.graph.trace(model, x))
    qk.set_memory_pool_limit(0)
    expected = gm.run({"input": x})["output"]
    qk.set_memory_pool_limit(64 << 20)
    reused = qk.memory_pool_stats()["reused"]
    for _ in range(3):
        out = gm.run({"input": x})["output"]
        assert get_handler_name(out) == "qk_array_pool"
        assert np.array_equal(out, expected)
    assert qk.memory_pool_stats()["reused"] > reused  # the passes after the first reuse its blocks


def test_limit_is_checked():
    with pytest.raises(ValueError, match="nbytes"):
        qk.set_memory_pool_limit(-1)
    with pytest.raises(TypeError, match="nbytes"):
        qk.set_memory_pool_limit(1.5)
