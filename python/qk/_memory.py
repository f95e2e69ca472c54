"""qk's pool for NumPy array data (csrc/memory/array_pool.h).

While a GraphModule runs, NumPy allocates array data from qk's pool: large
blocks freed by one forward pass are kept and handed to the next, instead of
being unmapped and faulted in again page by page. Arrays allocated in the pool
may outlive the pass; freeing them returns their blocks to the pool, which
keeps at most `limit_bytes` idle and frees the rest."""

from __future__ import annotations

from . import _qk
from ._validate import require_int

_HANDLER = _qk.array_pool_handler()


class pooled_arrays:  # noqa: N801 (used as a context manager, like contextlib's)
    """NumPy allocates from qk's pool inside this block (this thread and
    context only); a no-op on a NumPy without memory handlers. A class, not
    a generator: every forward pass enters one, and at batch 1 contextlib's
    machinery was a visible part of the pass."""

    __slots__ = ("_previous",)

    def __enter__(self):
        self._previous = _qk.set_numpy_handler(_HANDLER)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            _qk.set_numpy_handler(self._previous)


def memory_pool_stats() -> dict[str, int]:
    """The pool's state: `idle_bytes` kept for reuse, `limit_bytes` (the most
    kept), and the large allocations `reused` from it and taken `fresh`
    from the system."""
    return dict(_qk.array_pool_stats())


def set_memory_pool_limit(nbytes: int) -> None:
    """Keeps at most `nbytes` of freed array memory for reuse (default 512 MiB);
    idle blocks above it are released now. 0 keeps none."""
    _qk.set_array_pool_limit(require_int(nbytes, "nbytes", 0, 2**63 - 1))
