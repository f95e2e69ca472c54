"""Accuracy helpers from the PTQ literature: GPTQ-style error-compensating
rounding and bias correction. Both use statistics of a layer's inputs
gathered during calibration (`InputStats`)."""

from __future__ import annotations

import numpy as np


class InputStats:
    """Running sum, count and Gram matrix X^T X of a layer's (im2col'd) inputs."""

    def __init__(self, k: int):
        self.sum = np.zeros(k, np.float64)
        self.gram = np.zeros((k, k), np.float64)
        self.count = 0

    def update(self, x2d: np.ndarray) -> None:
        x = x2d.astype(np.float64)
        self.sum += x.sum(axis=0)
        self.gram += x.T @ x
        self.count += x.shape[0]

    @property
    def mean(self) -> np.ndarray:
        return self.sum / max(self.count, 1)


def gptq_quantize(w: np.ndarray, gram: np.ndarray, scale: np.ndarray, qmin: int, qmax: int,
                  damp: float = 0.01) -> np.ndarray:
    """Quantizes w (N, K) column by column on the symmetric grid `scale` (N,),
    pushing each column's rounding error onto the columns not yet quantized in
    proportion to the inverse input Hessian, which minimises ||X w^T - X q^T||
    (Frantar et al., GPTQ, 2022). Returns int8 codes (N, K)."""
    w = w.astype(np.float64).copy()
    n, k = w.shape
    h = gram.astype(np.float64).copy()
    dead = np.diag(h) == 0  # inputs that were always zero: their weights do not matter
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    h[np.diag_indices(k)] += damp * np.mean(np.diag(h))
    # Upper Cholesky factor of H^-1: row j holds how column j's error spreads to later columns.
    u = np.linalg.cholesky(np.linalg.inv(h)).T
    s = scale.astype(np.float64).reshape(n)
    q = np.empty((n, k), np.int8)
    for j in range(k):
        col = w[:, j]
        qj = np.clip(np.rint(col / s), qmin, qmax)
        q[:, j] = qj
        err = (col - qj * s) / u[j, j]
        w[:, j + 1:] -= np.outer(err, u[j, j + 1:])
    return q


def corrected_bias(bias: np.ndarray | None, w: np.ndarray, w_dequantized: np.ndarray, mean_input: np.ndarray):
    """Bias correction: adds E[(W - Wq) x] so the quantized layer's mean output matches the float one."""
    shift = (w.astype(np.float64) - w_dequantized) @ mean_input
    base = np.zeros(w.shape[0]) if bias is None else bias.astype(np.float64)
    return (base + shift).astype(np.float32)
