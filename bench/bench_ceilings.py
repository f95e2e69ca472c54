"""The machine's ceilings, measured in the same run as the kernels so the
report can say how close each kernel gets:

- memory bandwidth: a STREAM-like copy (b = a) and triad (a = b + s * c) on
  arrays far larger than the caches, split over QK_BENCH_THREADS threads
  (NumPy releases the GIL for both). The elementwise kernels' ceiling.
- int8 multiply-accumulate peak of each GEMM path's inner instruction
  (bench/int8_peak.c, built here with the system C compiler), run on
  QK_BENCH_THREADS threads; and the core clock from a chain of dependent adds.
  The GEMM kernels' ceiling. Skipped when there is no C compiler.
"""

import ctypes
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import qk
from _suite import THREADS, sizes

N = sizes(1 << 25, 1 << 23)  # float32 elements per array: 128 MiB (quick: 32 MiB), both far beyond the caches
BLOCK = 1 << 16  # triad block: its temporary stays in L2, so memory sees 3 streams
ITERS = sizes(2_000_000, 200_000)
# For each GEMM path's probe: int8 multiply-accumulates per instruction, the
# instruction, how many run per loop iteration (the accumulators of
# int8_peak.c), and the iterations (a tdpbusd takes about 16 cycles).
PROBES = {"scalar": (8, "pmaddwd xmm", 12, ITERS), "avx2": (16, "vpmaddwd ymm", 12, ITERS),
          "avx_vnni": (32, "vpdpbusd ymm", 12, ITERS), "avx512_vnni": (64, "vpdpbusd zmm", 12, ITERS),
          "amx": (16 * 16 * 64, "tdpbusd", 6, ITERS // 32)}


@pytest.fixture(scope="module")
def pool():
    with ThreadPoolExecutor(THREADS) as ex:
        yield ex


def _parallel(pool, fn, *arrays):
    """fn(*slices) on THREADS contiguous slices of the arrays at once."""
    bounds = np.linspace(0, len(arrays[0]), THREADS + 1).astype(int)
    list(pool.map(lambda i: fn(*(a[bounds[i]:bounds[i + 1]] for a in arrays)), range(THREADS)))


def _triad(a, b, c):
    for s in range(0, len(a), BLOCK):
        blk = slice(s, s + BLOCK)
        np.multiply(c[blk], np.float32(3.0), out=a[blk])
        np.add(a[blk], b[blk], out=a[blk])


@pytest.mark.parametrize("impl", ["stream copy", "stream triad"])
def test_memory_bandwidth(measure, benchmark, pool, impl):
    benchmark.group = "ceiling: memory bandwidth"
    a, b, c = (np.full(N, i, np.float32) for i in (1, 2, 3))
    if impl == "stream copy":
        measure(impl, _parallel, pool, np.copyto, b, a, bytes=2 * a.nbytes)
    else:
        measure(impl, _parallel, pool, _triad, a, b, c, bytes=3 * a.nbytes)


@pytest.fixture(scope="module")
def probe_lib(tmp_path_factory):
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler: the GEMM instruction ceiling is not measured")
    lib = tmp_path_factory.mktemp("probe") / "int8_peak.so"
    src = Path(__file__).with_name("int8_peak.c")
    done = subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(lib), str(src)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"int8_peak.c does not build here: {done.stderr.strip()[:200]}")
    return ctypes.CDLL(str(lib))


def _probe(lib, name):
    fn = getattr(lib, name)
    fn.restype, fn.argtypes = ctypes.c_int64, [ctypes.c_int64, ctypes.c_int32]
    return fn


@pytest.mark.parametrize("path", list(PROBES))
def test_int8_peak(measure, benchmark, pool, probe_lib, path):
    if path not in qk.available_isas():
        pytest.skip(f"this machine cannot run the {path} path")
    benchmark.group = "ceiling: int8 multiply-accumulate peak"
    benchmark.extra_info["probe"] = path
    macs, instruction, per_iteration, iters = PROBES[path]
    fn = _probe(probe_lib, path)
    if path == "amx" and fn(1, 1) < 0:  # the kernel refused the tile data permission
        pytest.skip(f"the {path} probe cannot run here")
    ops = 2 * macs * per_iteration * iters * THREADS
    # ctypes releases the GIL, so THREADS calls run on THREADS cores at once.
    measure(f"probe {instruction}", lambda: list(pool.map(lambda i: fn(iters, i + 1), range(THREADS))), ops=ops)


def test_clock(measure, benchmark, probe_lib):
    benchmark.group = "ceiling: core clock"
    fn = _probe(probe_lib, "clock_adds")
    measure("probe dependent adds", fn, ITERS, 1, ops=16 * ITERS)  # one add per cycle: GOP/s = GHz
