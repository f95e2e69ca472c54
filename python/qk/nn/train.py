"""Training loop and evaluation."""

from __future__ import annotations

import contextlib
import sys
import time

import numpy as np

from .tensor import Tensor, no_grad


def _batches(n: int, batch_size: int, rng: np.random.Generator | None):
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start: start + batch_size]


def _check_data(x, y, name="data"):
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"{name}: inputs and labels differ in length ({len(x)} vs {len(y)})")
    return x.astype(np.float32, copy=False), y


class _Progress:
    """tqdm when installed, else one line per epoch."""

    def __init__(self, total: int, desc: str, enabled: bool):
        self.bar, self.enabled, self.desc = None, enabled, desc
        if enabled:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, desc=desc, leave=False)
            except ImportError:
                pass

    def update(self, n: int, **info) -> None:
        if self.bar is not None:
            self.bar.update(n)
            self.bar.set_postfix(info, refresh=False)

    def close(self, line: str) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.enabled:
            print(f"{self.desc}: {line}", file=sys.stderr)


@contextlib.contextmanager
def blas_threads(n):
    """Limits NumPy's BLAS to `n` threads inside the block (needs threadpoolctl,
    which scikit-learn installs; without it, or with n=None, changes nothing).

    The matrices of small models are too small for a multi-threaded BLAS: on a
    2-core machine one thread trains the digits CNN several times faster."""
    if n is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=int(n), user_api="blas"):
        yield


def fit(model, loss_fn, optimizer, data, epochs: int, batch_size: int = 64, seed: int = 0, scheduler=None,
        progress: bool = True, after_step=None, blas_threads=None) -> list[float]:
    """Trains `model` on `data` = (inputs, integer labels) for `epochs`, shuffling
    with `seed`. `scheduler.step()` runs after every optimizer step, then
    `after_step(step)` if given. `blas_threads` limits NumPy's BLAS threads
    while training (1 is fastest for small models). Returns the mean loss of each epoch."""
    with _limit_blas(blas_threads):
        return _fit(model, loss_fn, optimizer, data, epochs, batch_size, seed, scheduler, progress, after_step)


_limit_blas = blas_threads


def _fit(model, loss_fn, optimizer, data, epochs, batch_size, seed, scheduler, progress, after_step):
    x, y = _check_data(*data)
    rng = np.random.default_rng(seed)
    history, step = [], 0
    model.train()
    for epoch in range(epochs):
        bar = _Progress(len(x), f"epoch {epoch + 1}/{epochs}", progress)
        start, total, seen = time.perf_counter(), 0.0, 0
        for idx in _batches(len(x), batch_size, rng):
            optimizer.zero_grad()
            loss = loss_fn(model(Tensor(x[idx])), y[idx])
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            step += 1
            if after_step is not None:
                after_step(step)
            total += loss.item() * len(idx)
            seen += len(idx)
            bar.update(len(idx), loss=f"{total / seen:.4f}")
        history.append(total / seen)
        bar.close(f"loss {history[-1]:.4f} ({time.perf_counter() - start:.1f} s)")
    model.eval()
    return history


def predict(model, x, batch_size: int = 512) -> np.ndarray:
    """Model outputs for `x` in eval mode, without recording a graph."""
    x = np.asarray(x, dtype=np.float32)
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    with no_grad():
        outs = [np.asarray(_data(model(Tensor(x[i: i + batch_size])))) for i in range(0, len(x), batch_size)]
    if was_training:
        model.train()
    return np.concatenate(outs) if outs else np.zeros((0,), np.float32)


def _data(out):
    return out.data if isinstance(out, Tensor) else out


def evaluate(model, data, batch_size: int = 512) -> float:
    """Classification accuracy (fraction in [0, 1]) of `model` on `data` = (inputs, labels)."""
    x, y = _check_data(*data)
    if len(x) == 0:
        raise ValueError("data: no examples to evaluate")
    return float((predict(model, x, batch_size).argmax(axis=1) == y).mean())
