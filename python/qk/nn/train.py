"""A small training loop: ``fit`` (batches, seeded shuffling, progress) and ``evaluate``."""

from __future__ import annotations

import contextlib
import sys
import time

import numpy as np

from .tensor import Tensor, no_grad


@contextlib.contextmanager
def blas_threads(n):
    """Limit NumPy's BLAS to ``n`` threads inside the block (needs threadpoolctl; else does nothing).

    The matrices of small models (the digits CNN: 512 x 144 im2col blocks) are
    too small for a multi-threaded BLAS: on this 2-core machine one BLAS thread
    trains the CNN several times faster than two.  ``n=None`` changes nothing.
    """
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


_limit_blas = blas_threads


def _check_data(data, name):
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise TypeError(f"{name} must be a pair (inputs, labels) of arrays")
    x, y = np.asarray(data[0]), np.asarray(data[1])
    if len(x) != len(y):
        raise ValueError(f"{name}: {len(x)} inputs but {len(y)} labels")
    return x, y


def _batches(n, batch_size, order):
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def _progress(total, desc, enabled):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, leave=False)


def fit(model, loss, optimizer, data, epochs=1, batch_size=64, seed=0, shuffle=True,
        scheduler=None, val_data=None, progress=True, blas_threads=None):
    """Train ``model`` on ``data = (inputs, labels)``.

    ``loss(output, labels) -> scalar Tensor`` (e.g. ``qk.nn.cross_entropy``).
    Each epoch shuffles with ``np.random.default_rng(seed + epoch)`` (so a
    seed gives the same run), steps ``optimizer`` per batch and ``scheduler``
    (if any) per epoch.  Progress is shown with tqdm if installed, otherwise
    one line per epoch (``progress=False`` for silence).

    ``blas_threads`` limits NumPy's BLAS threads during training (see
    ``blas_threads``; 1 is fastest for small models).

    Returns a list with one dict per epoch: ``loss`` (mean over batches),
    ``seconds``, and ``val_accuracy`` when ``val_data`` is given.
    """
    x, y = _check_data(data, "data")
    if batch_size < 1 or epochs < 0:
        raise ValueError(f"fit: batch_size must be >= 1 and epochs >= 0, got {batch_size}, {epochs}")
    with _limit_blas(blas_threads):
        return _fit(model, loss, optimizer, x, y, epochs, batch_size, seed, shuffle, scheduler, val_data, progress)


def _fit(model, loss, optimizer, x, y, epochs, batch_size, seed, shuffle, scheduler, val_data, progress):
    n = len(x)
    history = []
    for epoch in range(epochs):
        model.train()
        start = time.perf_counter()
        order = np.random.default_rng(seed + epoch).permutation(n) if shuffle else np.arange(n)
        bar = _progress((n + batch_size - 1) // batch_size, f"epoch {epoch + 1}/{epochs}", progress)
        total, count = 0.0, 0
        for idx in _batches(n, batch_size, order):
            out = model(Tensor(x[idx]))
            value = loss(out, y[idx])
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
            total += value.item() * len(idx)
            count += len(idx)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        if scheduler is not None:
            scheduler.step()
        record = {"epoch": epoch + 1, "loss": total / max(count, 1), "seconds": time.perf_counter() - start}
        if val_data is not None:
            record["val_accuracy"] = evaluate(model, val_data)
        history.append(record)
        if progress:
            line = f"epoch {epoch + 1}/{epochs}  loss {record['loss']:.4f}"
            if "val_accuracy" in record:
                line += f"  val_acc {record['val_accuracy']:.4f}"
            print(line + f"  ({record['seconds']:.2f}s)", file=sys.stderr)
    model.train()
    return history


def predict(model, inputs, batch_size=256) -> np.ndarray:
    """Model outputs for ``inputs`` in eval mode without a graph (restores the mode after)."""
    was_training = model.training
    model.eval()
    outs = []
    try:
        with no_grad():
            for start in range(0, len(inputs), batch_size):
                outs.append(model(Tensor(np.asarray(inputs[start : start + batch_size]))).data)
    finally:
        model.train(was_training)
    return np.concatenate(outs) if outs else np.zeros((0,), np.float32)


def evaluate(model, data, batch_size=256) -> float:
    """Classification accuracy (fraction of argmax predictions equal to the labels)."""
    x, y = _check_data(data, "data")
    if len(x) == 0:
        raise ValueError("evaluate: data is empty")
    return float((predict(model, x, batch_size).argmax(axis=1) == y).mean())
