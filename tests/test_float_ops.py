"""The native float32 GELU, softmax and LayerNorm (qk._float_ops) against
float64 references, on every ISA path and thread count, bit-identical to
the scalar path; edge values (NaN, +-inf, -inf rows, +-0) as NumPy's
formulas give them; awkward lengths around the 16-lane blocks."""

from __future__ import annotations

import math

import numpy as np
import pytest

import qk
from qk import _float_ops
from qk.graph.ops import normal_cdf

LENGTHS = [1, 3, 15, 16, 17, 31, 33, 128, 384, 1000]
EDGES = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, -1e-30, 1e30, -1e30, 88.0, -88.0, 9.0, -9.0, 40.0,
                  -40.0], np.float32)


def _on_scalar(fn):
    """fn() computed on the scalar path, whatever the cap was."""
    previous = qk.get_isa()
    qk.set_isa("scalar")
    try:
        return fn()
    finally:
        qk.set_isa(previous)


def _assert_same_bits(a, b):
    np.testing.assert_array_equal(np.asarray(a).view(np.int32), np.asarray(b).view(np.int32))


def _gelu_reference(x):
    x64 = x.astype(np.float64)
    return x64 * 0.5 * np.vectorize(math.erfc)(-x64 / math.sqrt(2))


@pytest.mark.parametrize("n", [0, *LENGTHS, 70001])
def test_gelu(isa, threads, n):
    rng = np.random.default_rng(n)
    x = (rng.standard_normal(n) * 4).astype(np.float32)
    y = _float_ops.gelu(x)
    _assert_same_bits(y, _on_scalar(lambda: _float_ops.gelu(x)))
    if n:
        ref = _gelu_reference(x)
        ok = np.abs(ref) > 1e-30
        assert np.max(np.abs(y - ref)[ok] / np.abs(ref)[ok]) < 2e-5  # Numerical Recipes' erfc in float32
        with np.errstate(all="ignore"):
            np.testing.assert_allclose(y, x * normal_cdf(x), rtol=1e-6, atol=1e-37)  # NumPy's same formula


def test_gelu_edge_values(isa):
    y = _float_ops.gelu(np.tile(EDGES, 3))[: EDGES.size]
    with np.errstate(all="ignore"):
        want = EDGES * normal_cdf(EDGES)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(want))  # NaN and -inf (-inf * 0) give NaN
    np.testing.assert_allclose(y[~np.isnan(y)], want[~np.isnan(want)], rtol=1e-6)
    assert np.signbit(_float_ops.gelu(np.array([-0.0], np.float32))[0])


def _softmax_reference(x, axis):
    x64 = x.astype(np.float64)
    with np.errstate(all="ignore"):
        e = np.exp(x64 - x64.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("cols", LENGTHS)
def test_softmax(isa, threads, cols):
    rng = np.random.default_rng(cols)
    x = (rng.standard_normal((300, cols)) * 6).astype(np.float32)
    x[3] = -np.inf  # a fully masked row: NaN, as exp(x - max) gives it
    x[4, 0] = np.nan
    x[5, -1] = np.inf
    x[6, : cols // 2] = -3.4e38  # an additive attention mask
    x[7, : cols // 2] = -np.inf
    y = _float_ops.softmax(x)
    _assert_same_bits(y, _on_scalar(lambda: _float_ops.softmax(x)))
    ref = _softmax_reference(x, -1)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    ok = ~np.isnan(ref)
    np.testing.assert_allclose(y[ok], ref[ok], rtol=3e-6, atol=1e-7)
    clean = np.arange(300) > 7
    np.testing.assert_allclose(y[clean].sum(-1), 1, rtol=2e-6)


@pytest.mark.parametrize("axis", [0, 1, -1, -3])
def test_softmax_along_any_axis(isa, axis):
    x = np.random.default_rng(1).standard_normal((3, 17, 5)).astype(np.float32)
    y = _float_ops.softmax(x, axis)
    assert y.shape == x.shape
    np.testing.assert_allclose(y, _softmax_reference(x, axis), rtol=3e-6, atol=1e-7)
    assert _float_ops.softmax(np.array(2.5, np.float32), 0) == 1.0


@pytest.mark.parametrize("cols", LENGTHS)
@pytest.mark.parametrize("with_beta", [True, False])
def test_layer_norm(isa, threads, cols, with_beta):
    rng = np.random.default_rng(cols)
    x = (rng.standard_normal((257, cols)) * 3 + 5).astype(np.float32)
    gamma, beta = rng.standard_normal((2, cols)).astype(np.float32)
    beta = beta if with_beta else None
    y, mean, inv = _float_ops.layer_norm(x, gamma, beta, 1e-5, -1)
    for a, b in zip((y, mean, inv), _on_scalar(lambda: _float_ops.layer_norm(x, gamma, beta, 1e-5, -1))):
        _assert_same_bits(a, b)
    x64 = x.astype(np.float64)
    mu = x64.mean(-1, keepdims=True)
    inv64 = 1 / np.sqrt(((x64 - mu) ** 2).mean(-1, keepdims=True) + 1e-5)
    ref = (x64 - mu) * inv64 * gamma + (0 if beta is None else beta)
    assert mean.shape == inv.shape == (257, 1)
    np.testing.assert_allclose(mean, mu, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(inv, inv64, rtol=1e-5)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def test_layer_norm_over_several_axes_with_broadcast_weights():
    x = np.random.default_rng(3).standard_normal((2, 3, 4, 5)).astype(np.float32)
    y, mean, inv = _float_ops.layer_norm(x, np.float32(2.0), np.zeros(5, np.float32), 1e-3, 2)
    assert mean.shape == (2, 3, 1, 1)
    x64 = x.astype(np.float64)
    mu = x64.mean((2, 3), keepdims=True)
    ref = 2 * (x64 - mu) / np.sqrt(((x64 - mu) ** 2).mean((2, 3), keepdims=True) + 1e-3)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def _masked_reference(x, mask, axis=-1):
    """The ops a masked softmax stands for, each on qk's own kernels: Add, Softmax, Where(IsNaN, 0)."""
    with np.errstate(invalid="ignore"):
        y = _float_ops.softmax(x + mask, axis)
    return np.where(np.isnan(y), np.float32(0), y)


@pytest.mark.parametrize("cols", [1, 15, 17, 128])
def test_masked_softmax_is_the_add_softmax_and_guard(isa, threads, cols):
    rng = np.random.default_rng(cols)
    x = (rng.standard_normal((3, 4, 5, cols)) * 6).astype(np.float32)
    x[0, 0, 0, 0] = np.nan
    padding = np.where(rng.random((3, 1, 1, cols)) < 0.3, -np.inf, 0).astype(np.float32)
    padding[1] = -3.4e38  # every key masked: a row of -inf sums
    padding[2, ..., 0] = -np.inf
    for mask in (padding, np.broadcast_to(padding, (3, 1, 5, cols)).copy(),
                 rng.standard_normal((4, 5, cols)).astype(np.float32), rng.standard_normal(cols).astype(np.float32),
                 rng.standard_normal((3, 4, 5, cols)).astype(np.float32)):
        for guard in (False, True):
            y = _float_ops.softmax(x, mask=mask, nan_to_zero=guard)
            want = _masked_reference(x, mask) if guard else _float_ops.softmax(x + mask)
            _assert_same_bits(y, want)
            _assert_same_bits(y, _on_scalar(lambda: _float_ops.softmax(x, mask=mask, nan_to_zero=guard)))


def test_masked_softmax_other_layouts_take_the_plain_ops():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 6)).astype(np.float32)
    for mask, axis in ((rng.standard_normal((2, 3, 1)).astype(np.float32), -1),  # broadcast along the row
                       (np.float32(-1.0), -1), (rng.standard_normal((3, 6)).astype(np.float32), 1)):
        _assert_same_bits(_float_ops.softmax(x, axis, mask=np.asarray(mask), nan_to_zero=True),
                          _masked_reference(x, mask, axis))
    with pytest.raises(ValueError, match="mask: expected a shape that broadcasts to \\(2, 3, 6\\), got \\(4,\\)"):
        _float_ops.softmax(x, mask=np.zeros(4, np.float32))
    with pytest.raises(TypeError, match="mask: expected a float32 numpy array"):
        _float_ops.softmax(x, mask=np.zeros(6))


def test_bad_input_is_named():
    with pytest.raises(TypeError, match="x: expected a float32 numpy array, got float64"):
        _float_ops.gelu(np.zeros(3))
    with pytest.raises(TypeError, match="x: expected a float32 numpy array, got list"):
        _float_ops.softmax([1.0, 2.0])
    with pytest.raises(ValueError, match="axis: expected an axis of a 2-d array, got 2"):
        _float_ops.softmax(np.zeros((2, 2), np.float32), 2)
    with pytest.raises(ValueError, match="gamma, beta: expected shapes that broadcast to \\(4,\\)"):
        _float_ops.layer_norm(np.zeros((2, 4), np.float32), np.ones(3, np.float32), None, 1e-5, -1)


def test_the_graph_executor_runs_on_them():
    """Gelu, Softmax and LayerNormalization nodes give the native kernels' bits
    when nothing needs a gradient, and keep their gradients otherwise."""
    from qk.graph import ops as graph_ops
    from qk.nn import Tensor, no_grad

    x = np.random.default_rng(4).standard_normal((4, 40)).astype(np.float32)
    gamma, beta = np.ones(40, np.float32), np.zeros(40, np.float32)
    with no_grad():
        _assert_same_bits(graph_ops.data_of(graph_ops.get("Gelu").run({}, x)), _float_ops.gelu(x))
        _assert_same_bits(graph_ops.data_of(graph_ops.get("Softmax").run({"axis": -1}, x)), _float_ops.softmax(x))
        y = graph_ops.get("LayerNormalization").run({"axis": -1, "epsilon": 1e-5}, x, gamma, beta)[0]
        _assert_same_bits(graph_ops.data_of(y), _float_ops.layer_norm(x, gamma, beta, 1e-5, -1)[0])
    t = Tensor(x, requires_grad=True)
    y = graph_ops.get("LayerNormalization").run({"axis": -1, "epsilon": 1e-5}, t, gamma, beta)[0]
    y.sum().backward()
    assert t.grad is not None and np.abs(t.grad).max() < 1e-4  # d/dx sum(normalized) = 0
