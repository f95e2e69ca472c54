"""Reference models for the digits: an MLP and a small CNN, and a seeded trainer."""

from __future__ import annotations

import numpy as np

from . import functional as F
from .data import load_digits
from .modules import BatchNorm1d, BatchNorm2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential
from .optim import SGD, AdamW, CosineLR
from .random import manual_seed
from .train import evaluate, fit


def digits_mlp() -> Sequential:
    """64-256-128-10 MLP, Linear + BatchNorm1d + ReLU per hidden layer; input (N, 64)."""
    return Sequential(
        Linear(64, 256), BatchNorm1d(256), ReLU(),
        Linear(256, 128), BatchNorm1d(128), ReLU(),
        Linear(128, 10),
    )


def digits_cnn() -> Sequential:
    """Two conv(3x3) + BN + ReLU + maxpool(2) blocks and a linear head; input (N, 1, 8, 8)."""
    return Sequential(
        Conv2d(1, 16, 3, padding=1), BatchNorm2d(16), ReLU(), MaxPool2d(2),   # 16 x 4 x 4
        Conv2d(16, 32, 3, padding=1), BatchNorm2d(32), ReLU(), MaxPool2d(2),  # 32 x 2 x 2
        Flatten(),
        Linear(32 * 2 * 2, 10),
    )


# name -> (constructor, image inputs?, epochs, make optimizer)
_RECIPES = {
    "mlp": (digits_mlp, False, 20, lambda params: AdamW(params, lr=3e-3, weight_decay=1e-2)),
    "cnn": (digits_cnn, True, 10, lambda params: SGD(params, lr=0.05, momentum=0.9, weight_decay=1e-4)),
}


def train_reference(name: str, seed: int = 0, epochs: int | None = None, path=None, progress: bool = False):
    """Build and train reference model ``name`` ("mlp" or "cnn") on the digits.

    Deterministic for a given ``seed`` (initialization and shuffling).  If
    ``path`` is given, saves ``model.state_dict()`` there as ``.npz``.
    Returns ``(model, test_accuracy)``; the model is left in eval mode.
    """
    if name not in _RECIPES:
        raise ValueError(f"train_reference: unknown model {name!r}; choose from {sorted(_RECIPES)}")
    build, images, default_epochs, make_opt = _RECIPES[name]
    data = load_digits(images=images)
    manual_seed(seed)
    model = build()
    epochs = default_epochs if epochs is None else int(epochs)
    optimizer = make_opt(model.parameters())
    scheduler = CosineLR(optimizer, total=max(epochs, 1))
    fit(model, F.cross_entropy, optimizer, data.train, epochs=epochs, batch_size=32, seed=seed,
        scheduler=scheduler, progress=progress, blas_threads=1)
    model.eval()
    accuracy = evaluate(model, data.test)
    if path is not None:
        np.savez(path, **model.state_dict())
    return model, accuracy
