"""Shared benchmark setup: pinned threads, quick mode, and each measurement
tagged with what it is (implementation, bytes moved, operations, ISA path)
for bench/report.py."""

import os

import pytest

import qk
from _suite import THREADS as BENCH_THREADS


def pytest_addoption(parser):
    group = parser.getgroup("qk bench")
    group.addoption("--bench-quick", action="store_true", help="small sizes only (also implied by --benchmark-disable)")
    group.addoption("--bench-qk-only", action="store_true",
                    help="only qk implementations (the report re-runs those on every ISA path; baselines and peers once)")


def pytest_configure(config):
    # Before the bench files are imported: their size lists read this.
    if config.getoption("--bench-quick") or config.getoption("benchmark_disable", default=False):
        os.environ["QK_BENCH_QUICK"] = "1"


def pytest_collection_modifyitems(config, items):
    if not config.getoption("--bench-qk-only"):
        return
    keep, drop = [], []
    for item in items:
        impl = getattr(item, "callspec", None) and item.callspec.params.get("impl")
        (keep if isinstance(impl, str) and impl.startswith("qk") else drop).append(item)
    config.hook.pytest_deselected(items=drop)
    items[:] = keep


@pytest.fixture(autouse=True, scope="session")
def pinned_threads():
    from qk.nn import blas_threads

    qk.set_num_threads(BENCH_THREADS)
    try:
        import torch

        torch.set_num_threads(BENCH_THREADS)
    except ImportError:
        pass
    with blas_threads(BENCH_THREADS):
        yield


@pytest.fixture
def measure(benchmark):
    """measure(impl, fn, *args, bytes=0, ops=0): times fn(*args) as `impl`.

    `bytes` (memory traffic of one call) and `ops` (arithmetic operations of
    one call) let the report print GB/s and GOP/s and compare with the
    machine's ceilings; the ISA cap and each kernel family's path are recorded."""

    def run(impl, fn, *args, bytes=0, ops=0):
        benchmark.extra_info.update(impl=impl, bytes=bytes, ops=ops, threads=BENCH_THREADS, isa=qk.get_isa(),
                                    paths=qk.kernel_paths(), quick=os.environ.get("QK_BENCH_QUICK") == "1")
        return benchmark(fn, *args)

    return run
