"""The transformer float ops of the graph executor (exact GELU, softmax,
LayerNorm) on qk's native kernels against the NumPy formulas they replace
and PyTorch, at MiniLM's sizes (8 sentences x 128 tokens: the FFN's
1536-wide activations, 12 heads of 128 x 128 attention scores, 384-wide
hidden states)."""

import numpy as np
import pytest

from qk import _float_ops
from qk.graph.ops import normal_cdf
from _suite import sizes

ROWS = sizes(1024, 64)  # tokens
IMPLS = ["qk", "numpy", "torch"]


def _torch():
    torch = pytest.importorskip("torch")
    from _suite import THREADS

    torch.set_num_threads(THREADS)
    return torch


def _numpy_softmax(x):
    y = np.exp(x - x.max(-1, keepdims=True))
    y /= y.sum(-1, keepdims=True)
    return y


def _numpy_layer_norm(x, g, b):
    centered = x - x.mean(-1, keepdims=True)
    return centered / np.sqrt((centered * centered).mean(-1, keepdims=True) + np.float32(1e-12)) * g + b


@pytest.mark.parametrize("impl", IMPLS)
def test_gelu(measure, benchmark, impl):
    x = np.random.default_rng(0).standard_normal((ROWS, 1536)).astype(np.float32)
    benchmark.group = f"gelu {ROWS}x1536"
    if impl == "torch":
        torch = _torch()
        t = torch.from_numpy(x)
        fn = lambda: torch.nn.functional.gelu(t)  # noqa: E731
    else:
        fn = (lambda: _float_ops.gelu(x)) if impl == "qk" else (lambda: x * normal_cdf(x))
    measure(impl, fn, bytes=2 * x.nbytes)


@pytest.mark.parametrize("impl", IMPLS)
def test_softmax(measure, benchmark, impl):
    x = np.random.default_rng(0).standard_normal((ROWS * 12, 128)).astype(np.float32)
    benchmark.group = f"softmax {ROWS * 12}x128"
    if impl == "torch":
        torch = _torch()
        t = torch.from_numpy(x)
        fn = lambda: torch.softmax(t, -1)  # noqa: E731
    else:
        fn = (lambda: _float_ops.softmax(x)) if impl == "qk" else (lambda: _numpy_softmax(x))
    measure(impl, fn, bytes=2 * x.nbytes)


@pytest.mark.parametrize("impl", IMPLS)
def test_layer_norm(measure, benchmark, impl):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((ROWS, 384)).astype(np.float32)
    g, b = rng.standard_normal((2, 384)).astype(np.float32)
    benchmark.group = f"layer norm {ROWS}x384"
    if impl == "torch":
        torch = _torch()
        t, tg, tb = (torch.from_numpy(a) for a in (x, g, b))
        fn = lambda: torch.nn.functional.layer_norm(t, (384,), tg, tb, 1e-12)  # noqa: E731
    elif impl == "qk":
        fn = lambda: _float_ops.layer_norm(x, g, b, 1e-12, -1)  # noqa: E731
    else:
        fn = lambda: _numpy_layer_norm(x, g, b)  # noqa: E731
    measure(impl, fn, bytes=2 * x.nbytes)
