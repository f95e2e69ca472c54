"""Shared benchmark setup: pinned threads, and each measurement tagged with
what it is (implementation, bytes moved, operations) for bench/report.py."""

import os

import pytest

import qk

BENCH_THREADS = int(os.environ.get("QK_BENCH_THREADS", "2"))


@pytest.fixture(autouse=True, scope="session")
def pinned_threads():
    qk.set_num_threads(BENCH_THREADS)
    try:
        import torch

        torch.set_num_threads(BENCH_THREADS)
    except ImportError:
        pass
    yield


@pytest.fixture
def measure(benchmark):
    """measure(impl, fn, *args, bytes=0, ops=0): times fn(*args) as `impl`.

    `bytes` (memory traffic of one call) and `ops` (arithmetic operations of
    one call) let the report print GB/s and GOP/s."""

    def run(impl, fn, *args, bytes=0, ops=0):
        benchmark.extra_info.update(impl=impl, bytes=bytes, ops=ops, threads=BENCH_THREADS, isa=qk.get_isa())
        return benchmark(fn, *args)

    return run
