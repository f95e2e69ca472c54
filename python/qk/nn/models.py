"""Reference FP32 models for the digits, to quantize with PTQ and QAT."""

from __future__ import annotations

from .data import load_digits
from .modules import BatchNorm2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential, manual_seed
from .optim import Adam, CosineLR
from .functional import cross_entropy
from .train import evaluate, fit


def digits_mlp() -> Sequential:
    """64-256-128-10 MLP on flattened 8x8 digits."""
    return Sequential(Linear(64, 256), ReLU(), Linear(256, 128), ReLU(), Linear(128, 10))


def digits_cnn() -> Sequential:
    """Two 3x3 conv + BN + ReLU + 2x2 max-pool blocks, then a linear classifier, on (N, 1, 8, 8) digits."""
    return Sequential(
        Conv2d(1, 16, 3, padding=1), BatchNorm2d(16), ReLU(), MaxPool2d(2),
        Conv2d(16, 32, 3, padding=1), BatchNorm2d(32), ReLU(), MaxPool2d(2),
        Flatten(), Linear(32 * 2 * 2, 10),
    )


REFERENCE = {
    "mlp": dict(build=digits_mlp, images=False, epochs=30, lr=2e-3),
    "cnn": dict(build=digits_cnn, images=True, epochs=30, lr=3e-3),
}


def train_reference(name: str, seed: int = 0, epochs: int | None = None, path=None, progress: bool = False):
    """Trains reference model `name` ("mlp" or "cnn") on the digits with a fixed
    seed; returns (model, test accuracy). Saves the state dict to `path` (.npz) if given."""
    if name not in REFERENCE:
        raise ValueError(f"name: expected one of {sorted(REFERENCE)}, got {name!r}")
    spec = REFERENCE[name]
    data = load_digits(images=spec["images"])
    manual_seed(seed)
    model = spec["build"]()
    epochs = spec["epochs"] if epochs is None else epochs
    batch_size = 64
    steps = epochs * -(-len(data.train[0]) // batch_size)
    optimizer = Adam(model.parameters(), lr=spec["lr"])
    fit(model, cross_entropy, optimizer, data.train, epochs, batch_size=batch_size, seed=seed,
        scheduler=CosineLR(optimizer, steps), progress=progress, blas_threads=1)
    accuracy = evaluate(model, data.test)
    if path is not None:
        model.save(path)
    return model, accuracy
