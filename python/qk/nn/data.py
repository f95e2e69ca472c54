"""The handwritten digits that scikit-learn ships, with a fixed seeded split."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class DigitsSplit(NamedTuple):
    """Each field is a pair ``(inputs float32, labels int64)``."""

    train: tuple
    calib: tuple
    test: tuple


def load_digits(images: bool = False, seed: int = 0, n_test: int = 360, n_calib: int = 180) -> DigitsSplit:
    """1,797 8x8 digits scaled to [0, 1], split into train / calibration / test.

    The split is a permutation drawn from ``np.random.default_rng(seed)``:
    the first ``n_test`` images are the test set, the next ``n_calib`` the
    calibration set (for PTQ), the rest (1,257 by default) the training set.
    ``images=True`` gives inputs of shape (N, 1, 8, 8), otherwise (N, 64).
    Needs scikit-learn (``pip install qk[demo]``).
    """
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError:
        raise ImportError(
            "qk.nn.load_digits needs scikit-learn; install it with `pip install qk[demo]` "
            "(or `pip install scikit-learn`)"
        ) from None
    bunch = _sk_load_digits()
    x = (bunch.data.astype(np.float32) / 16.0)
    y = bunch.target.astype(np.int64)
    if n_test + n_calib >= len(x):
        raise ValueError(f"load_digits: n_test + n_calib must be < {len(x)}")
    if images:
        x = x.reshape(-1, 1, 8, 8)
    order = np.random.default_rng(seed).permutation(len(x))
    test, calib, train = np.split(order, [n_test, n_test + n_calib])
    return DigitsSplit(train=(x[train], y[train]), calib=(x[calib], y[calib]), test=(x[test], y[test]))
