"""ISA paths and threads: what the machine can run, and the caps in force."""

from __future__ import annotations

import ctypes
import functools

from . import _qk
from ._validate import require_int

# Kernel families whose path is reported by `kernel_paths()`, in build order.
_FAMILIES = ("quant", "fp16", "gemm", "depthwise", "float_ops")


def available_isas() -> list[str]:
    """The ISA paths this CPU and OS can run, best last."""
    return [name for name in _qk.isa_names() if _qk.isa_supported(name)]


def get_isa() -> str:
    """The ISA cap in force (from `set_isa`, else `QK_ISA`, else the best available)."""
    return _qk.get_isa()


def set_isa(name: str) -> None:
    """Caps the ISA path for the whole process; each kernel family then runs
    its best implementation at or below the cap."""
    if not isinstance(name, str):
        raise TypeError(f"name: expected a str, got {type(name).__name__}")
    available = available_isas()
    if name not in available:
        raise ValueError(f"name: ISA {name!r} is not available on this machine; available: {', '.join(available)}")
    _qk.set_isa(name)


def get_num_threads() -> int:
    """Threads used for large problems."""
    return _qk.get_num_threads()


def set_num_threads(n: int) -> None:
    """Sets the threads used for large problems (small ones stay on one thread)."""
    _qk.set_num_threads(require_int(n, "n", 1, 4096))


def cpu_features() -> dict[str, bool]:
    """CPU features relevant to qk, as usable by this process (OS support included),
    by the architecture's own names (x86-64: avx2, avx512f, amx_int8, ...; aarch64:
    asimd, asimddp, i8mm)."""
    return dict(_qk.cpu_features())


def cache_sizes() -> dict[str, int]:
    """Data cache sizes in bytes the CPU reports, one instance each (l1d, l2, l3; 0 if unknown)."""
    return dict(_qk.cache_sizes())


def gemm_blocking() -> dict[str, int]:
    """The INT8 GEMM's cache blocking, derived from `cache_sizes()`: bytes of the
    packed A block kept in L2 and of the B run every row tile of a block reuses."""
    return dict(_qk.gemm_blocking())


def kernel_paths() -> dict[str, str]:
    """The ISA path each kernel family runs on under the current cap."""
    return {f: getattr(_qk, f"{f}_path")() for f in _FAMILIES if hasattr(_qk, f"{f}_path")}


@functools.cache
def _openblas_thread_local_setter():
    """openblas_set_num_threads_local (OpenBLAS >= 0.3.27) of the OpenBLAS this
    process loaded (NumPy's wheels bundle one), or None (another BLAS, or not Linux)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({f[-1] for f in (line.split() for line in maps) if "openblas" in f[-1].rsplit("/", 1)[-1]})
    except OSError:
        return None
    for path in paths:
        try:
            setter = ctypes.CDLL(path).openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        setter.restype, setter.argtypes = ctypes.c_int, [ctypes.c_int]
        return setter
    return None


class blas_on_calling_thread:  # noqa: N801 (used as a context manager, like contextlib's)
    """NumPy's BLAS runs on the calling thread only inside this block (for
    this thread; other threads keep their setting). A model's float MatMuls
    then leave the cores to qk's pool: OpenBLAS's workers spin after each call
    and took them from qk's kernels (MiniLM on two cores: 266 -> 236 ms).
    A class, not a generator, for the same reason as pooled_arrays."""

    __slots__ = ("_setter", "_previous")

    def __enter__(self):
        self._setter = _openblas_thread_local_setter()
        self._previous = self._setter(1) if self._setter is not None else None
        return self

    def __exit__(self, *exc):
        if self._setter is not None:
            self._setter(self._previous)
