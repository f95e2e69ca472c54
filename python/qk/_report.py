"""Pieces shared by the command-line reports (`python -m qk ptq`, `python -m qk demo`):
run header, timing, latency measured side by side, Markdown tables."""

from __future__ import annotations

import time

import numpy as np


def header(what: str) -> str:
    """One line naming the qk version, ISA path and threads the numbers below come from."""
    import qk

    return f"qk {qk.__version__}, ISA {qk.get_isa()}, {qk.get_num_threads()} threads; {what}"


def timed(fn, *args, **kwargs):
    """(fn(*args, **kwargs), wall seconds it took)."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def latencies(models, x: np.ndarray, repeats: int = 20, threads: int | None = None) -> list[float]:
    """Median seconds of one forward pass on batch `x` for each model.

    The models take turns within each round, so on a shared, noisy machine
    they all see the same load and their ratios stay meaningful. `threads`
    limits both qk's kernels and NumPy's BLAS meanwhile (None: as configured)."""
    import qk
    from . import nn

    if repeats < 1:
        raise ValueError(f"repeats: expected a positive int, got {repeats!r}")
    inputs = nn.Tensor(x)
    times = [[] for _ in models]
    previous = qk.get_num_threads()
    if threads is not None:
        qk.set_num_threads(threads)
    try:
        with nn.no_grad(), nn.blas_threads(threads):
            for model in models:  # warm-up: first call allocates, packs, fills caches
                model(inputs)
            for _ in range(repeats):
                for model, ts in zip(models, times):
                    start = time.perf_counter()
                    model(inputs)
                    ts.append(time.perf_counter() - start)
    finally:
        qk.set_num_threads(previous)
    return [float(np.median(ts)) for ts in times]


def latency(model, x: np.ndarray, repeats: int = 20) -> float:
    """Median seconds for one forward pass of `model` on batch `x`."""
    return latencies([model], x, repeats)[0]


def markdown_table(columns, rows) -> str:
    """A Markdown table: `columns` names, `rows` sequences of already formatted cells."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
