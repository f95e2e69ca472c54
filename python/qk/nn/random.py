"""One seeded NumPy generator for weight initialization and dropout.

``manual_seed(seed)`` makes model construction and training reproducible.
"""

from __future__ import annotations

import numpy as np

_rng = np.random.default_rng(0)


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the generator used by layer initialization and Dropout."""
    global _rng
    _rng = np.random.default_rng(seed)
    return _rng


def default_rng() -> np.random.Generator:
    return _rng
