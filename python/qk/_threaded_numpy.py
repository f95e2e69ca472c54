"""NumPy's stacked float matmul split over qk's thread count.

A stack of small matrices (attention's QK^T and PV: 96 products of 128 x 32
x 128 per MiniLM layer) gains nothing from BLAS threads, which split each
small product; splitting the stack does. NumPy releases the GIL inside
matmul, so each part runs on its own Python thread, its BLAS on that thread.
Every matrix product is the same BLAS call as in `a @ b`: the same bits."""

from __future__ import annotations

import concurrent.futures
import math
import os
import threading

import numpy as np

from . import _qk
from ._runtime import _openblas_thread_local_setter, blas_on_calling_thread

# Below this many multiply-adds a hand-off to a thread (tens of us) costs more than it saves.
_MIN_MACS = 1 << 22

_lock = threading.Lock()
_executor: tuple | None = None  # (pid, workers, executor): a forked child starts its own


def _workers(n: int) -> concurrent.futures.ThreadPoolExecutor:
    """The executor of `n` worker threads (the caller is the other thread),
    replacing one of another size, which is shut down."""
    global _executor
    with _lock:
        if _executor is None or _executor[0] != os.getpid() or _executor[1] != n:
            if _executor is not None and _executor[0] == os.getpid():
                _executor[2].shutdown(wait=False)
            setter = _openblas_thread_local_setter()
            init = (lambda: setter(1)) if setter is not None else None
            _executor = (os.getpid(), n, concurrent.futures.ThreadPoolExecutor(n, "qk-matmul", init))
        return _executor[2]


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b; a stack of float products of at least 4 Mi multiply-adds in all
    is split along its first batch dimension over `qk.get_num_threads()` threads."""
    threads = _qk.get_num_threads()
    if (threads < 2 or max(a.ndim, b.ndim) < 3 or min(a.ndim, b.ndim) < 2 or a.dtype != b.dtype
            or a.dtype.kind != "f"):
        return a @ b
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    if b.shape[-2] != k or batch[0] < 2 or math.prod(batch) * m * k * n < _MIN_MACS:
        return a @ b
    a = np.broadcast_to(a, batch + (m, k))
    b = np.broadcast_to(b, batch + (k, n))
    out = np.empty(batch + (m, n), a.dtype)
    parts = min(threads, batch[0])
    bounds = [batch[0] * i // parts for i in range(parts + 1)]

    def part(i):
        lo, hi = bounds[i], bounds[i + 1]
        np.matmul(a[lo:hi], b[lo:hi], out=out[lo:hi])

    workers = _workers(threads - 1)  # sized by the thread count, not by this stack, so it is kept across calls
    futures = [workers.submit(part, i) for i in range(1, parts)]
    with blas_on_calling_thread():
        part(0)
    for f in futures:
        f.result()
    return out
