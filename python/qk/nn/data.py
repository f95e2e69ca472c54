"""The handwritten digits that scikit-learn ships (1,797 8x8 images), split
with a fixed seed into train / calibration / test sets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class DigitsSplit:
    train: tuple[np.ndarray, np.ndarray]
    calibration: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]


def load_digits(images: bool = False, seed: int = 0, test_fraction: float = 0.2,
                calibration_size: int = 200) -> DigitsSplit:
    """Pixels scaled to [0, 1], float32, as (N, 64) or, with `images=True`,
    (N, 1, 8, 8); labels int64. The calibration set (for PTQ) is a fixed
    subset of the training data, as in common practice: calibration only
    observes ranges, and the test set stays unseen."""
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError as e:
        raise ImportError("load_digits needs scikit-learn: pip install 'qk[demo]'") from e
    bunch = sk_load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    if images:
        x = x.reshape(-1, 1, 8, 8)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    calib = train[:calibration_size]
    return DigitsSplit(train=(x[train], y[train]), calibration=(x[calib], y[calib]), test=(x[test], y[test]))
