"""qk.int8_conv2d against its reference formulation (im2col in NumPy, the
exact int32 product, the epilogue expression), bit for bit, on every ISA
path, over a grid that crosses the GEMM tiles and blocks and the depthwise
kernel's channel vectors."""

from __future__ import annotations

import itertools
import zlib

import numpy as np
import pytest

import qk

# The amx parameter of the isa fixture runs the emulated AMX tiles on CPUs without AMX (conftest.py).
AMX_BY_EMULATION = True


def im2col_reference(x, w, zp, groups, strides, dilations, pads):
    """int32 sums of (x - zp) * w, from im2col in NumPy and an int64 matmul."""
    n, h, wd, c = x.shape
    o, cg, kh, kw = w.shape
    pt, pl, pb, pr = pads
    xp = np.pad(x.astype(np.int64) - zp, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    oh = (h + pt + pb - dilations[0] * (kh - 1) - 1) // strides[0] + 1
    ow = (wd + pl + pr - dilations[1] * (kw - 1) - 1) // strides[1] + 1
    og = o // groups
    out = np.zeros((n, oh, ow, o), np.int64)
    for g in range(groups):
        taps = [xp[:, i * dilations[0]:i * dilations[0] + strides[0] * (oh - 1) + 1:strides[0],
                   j * dilations[1]:j * dilations[1] + strides[1] * (ow - 1) + 1:strides[1], g * cg:(g + 1) * cg]
                for i in range(kh) for j in range(kw)]
        a = np.concatenate(taps, axis=-1).reshape(n * oh * ow, -1)
        b = w[g * og:(g + 1) * og].transpose(2, 3, 1, 0).reshape(-1, og).astype(np.int64)
        out[..., g * og:(g + 1) * og] = (a @ b).reshape(n, oh, ow, og)
    return out.astype(np.int32)


def float_epilogue(acc, x_scale, w_scale, bias, relu):
    y = acc.astype(np.float32) * (np.float32(x_scale) * w_scale) + bias
    return np.maximum(y, 0) if relu else y


def requantize(y, scale, zp):
    return np.clip(np.rint(y / np.float32(scale)) + zp, 0, 255).astype(np.uint8)


# (batch, channels, groups ("dw": depthwise), out channels, kernel, strides, dilations, pads, image)
GRID = [
    (b, c, g, k, s, d, p, hw)
    for (b, c, g), k, s, d, p, hw in itertools.product(
        [(1, 1, 1), (2, 3, 1), (3, 8, 2), (1, 17, 1), (1, 64, 1), (2, 8, "dw"), (1, 17, "dw"), (1, 64, "dw")],
        [(1, 1), (3, 3), (5, 5), (1, 3)],
        [(1, 1), (2, 1), (2, 2)],
        [(1, 1), (2, 2)],
        [(0, 0, 0, 0), (1, 1, 1, 1), (0, 1, 2, 3)],
        [(1, 1), (5, 7), (12, 9)])
    if (hw[0] + p[0] + p[2] >= d[0] * (k[0] - 1) + 1 and hw[1] + p[1] + p[3] >= d[1] * (k[1] - 1) + 1)
]
# Thinned to a fixed, varied sample so every ISA path runs it in seconds; the 7x7 cases and the
# depthwise channel-block edges are added whole.
SAMPLE = GRID[::7] + [(2, 3, 1, (7, 7), (2, 2), (1, 1), (3, 3, 3, 3), (16, 16)),
                      (1, 64, "dw", (7, 7), (1, 1), (1, 1), (3, 3, 3, 3), (9, 9)),
                      (2, 24, 3, (3, 3), (1, 1), (2, 2), (2, 2, 2, 2), (10, 10)),
                      # depthwise channel blocks: 16 + 8 (+ 3) and 32 + 8 + 4 on the x86 paths
                      (1, 27, "dw", (3, 3), (1, 1), (1, 1), (1, 1, 1, 1), (6, 7)),
                      (2, 44, "dw", (3, 3), (2, 2), (1, 1), (0, 1, 2, 3), (9, 8))]


def _case(seed, b, c, g, k, hw, extremes=False):
    rng = np.random.default_rng(seed)
    groups = c if g == "dw" else g
    o = c if g == "dw" else {1: 24, 2: 6, 3: 9}[groups]
    x = rng.integers(0, 256, (b, *hw, c), dtype=np.uint8)
    w = rng.integers(-128, 128, (o, c // groups, *k), dtype=np.int8)
    if extremes:
        x[...] = 255
        w[...] = -128
    return x, w, groups, o


@pytest.mark.parametrize("case", SAMPLE, ids=lambda c: "-".join(map(str, c)).replace(" ", ""))
def test_int8_conv2d_matches_im2col_reference(isa, case):
    b, c, g, k, s, d, p, hw = case
    x, w, groups, o = _case(zlib.crc32(repr(case).encode()), b, c, g, k, hw)
    packed = qk.pack_int8_conv_weight(w, groups)
    assert packed.depthwise == (g == "dw")
    zp = 9
    want = im2col_reference(x, w, zp, groups, s, d, p)
    np.testing.assert_array_equal(qk.int8_conv2d(x, packed, x_zero_point=zp, strides=s, dilations=d, pads=p), want)
    rng = np.random.default_rng(1)
    w_scale = rng.uniform(1e-3, 1e-2, o).astype(np.float32)
    bias = rng.normal(size=o).astype(np.float32)
    for relu in (False, True):
        y = qk.int8_conv2d(x, packed, x_zero_point=zp, x_scale=0.02, w_scale=w_scale, bias=bias, strides=s,
                           dilations=d, pads=p, relu=relu)
        want_y = float_epilogue(want, 0.02, w_scale, bias, relu)
        np.testing.assert_array_equal(y, want_y)
        q = qk.int8_conv2d(x, packed, x_zero_point=zp, x_scale=0.02, w_scale=w_scale, bias=bias, strides=s,
                           dilations=d, pads=p, relu=relu, out_dtype=np.uint8, out_scale=0.05, out_zero_point=3)
        np.testing.assert_array_equal(q, requantize(want_y, 0.05, 3))


@pytest.mark.parametrize("g", [1, "dw"])
def test_int8_conv2d_extreme_values_and_threads(isa, threads, g):
    x, w, groups, _ = _case(0, 2, 64, g, (3, 3), (30, 30), extremes=True)
    want = im2col_reference(x, w, 0, groups, (1, 1), (1, 1), (1, 1, 1, 1))
    got = qk.int8_conv2d(x, qk.pack_int8_conv_weight(w, groups), x_zero_point=0, pads=1)
    np.testing.assert_array_equal(got, want)


def test_int8_conv2d_infers_groups_from_a_raw_weight():
    x, w, groups, _ = _case(3, 1, 8, "dw", (3, 3), (6, 6))
    np.testing.assert_array_equal(qk.int8_conv2d(x, w, x_zero_point=4, pads=1),
                                  im2col_reference(x, w, 4, groups, (1, 1), (1, 1), (1, 1, 1, 1)))


def test_int8_conv2d_out_aliasing_and_empty_batch():
    x, w, groups, o = _case(4, 1, 3, 1, (1, 1), (4, 4))
    out = np.empty((1, 4, 4, o), np.int32)
    assert qk.int8_conv2d(x, w, x_zero_point=0, out=out) is out
    np.testing.assert_array_equal(out, im2col_reference(x, w, 0, 1, (1, 1), (1, 1), (0, 0, 0, 0)))
    empty = qk.int8_conv2d(x[:0], w, x_zero_point=0)
    assert empty.shape == (0, 4, 4, o) and empty.dtype == np.int32


def test_int8_conv_weight_round_trips():
    import pickle

    w = np.arange(-64, 64, dtype=np.int8).reshape(8, 4, 2, 2)
    packed = qk.pack_int8_conv_weight(w, 2)
    np.testing.assert_array_equal(packed.unpack(), w)
    again = pickle.loads(pickle.dumps(packed))
    assert again.shape == packed.shape and again.groups == 2


@pytest.mark.parametrize("kwargs, error, match", [
    ({"x_q": np.zeros((1, 4, 4, 3), np.float32)}, TypeError, "x_q"),
    ({"x_q": np.zeros((4, 4, 3), np.uint8)}, ValueError, "x_q: expected a 4-D"),
    ({"w": np.zeros((4, 2, 3, 3), np.int8)}, ValueError, "w: expected an int8"),
    ({"w": np.zeros((4, 3, 9, 9), np.int8)}, ValueError, "larger than the padded input"),
    ({"strides": 0}, ValueError, "strides"),
    ({"dilations": (1, 2, 3)}, ValueError, "dilations"),
    ({"pads": (1, 2, 3)}, ValueError, "pads"),
    ({"pads": -1}, ValueError, "pads"),
    ({"x_zero_point": 256}, ValueError, "x_zero_point"),
    ({"x_scale": 0.1}, ValueError, "x_scale"),
    ({"bias": np.zeros(4, np.float32)}, ValueError, "bias"),
    ({"x_scale": 0.1, "w_scale": -1.0}, ValueError, "w_scale"),
    ({"x_scale": 0.1, "w_scale": 1.0, "bias": np.zeros(3, np.float32)}, ValueError, "bias"),
    ({"x_scale": 0.1, "w_scale": 1.0, "out_dtype": np.uint8}, ValueError, "out_scale"),
    ({"x_scale": 0.1, "w_scale": 1.0, "out_dtype": np.int16}, TypeError, "out_dtype"),
    ({"x_scale": 0.1, "w_scale": 1.0, "out": np.zeros((1, 4, 4, 4), np.float64)}, TypeError, "out"),
])
def test_int8_conv2d_bad_input_names_the_argument(kwargs, error, match):
    args = {"x_q": np.zeros((1, 4, 4, 3), np.uint8), "w": np.zeros((4, 3, 3, 3), np.int8), "x_zero_point": 0,
            "pads": 1}
    args.update(kwargs)
    x_q, w = args.pop("x_q"), args.pop("w")
    with pytest.raises(error, match=match):
        qk.int8_conv2d(x_q, w, **args)


@pytest.mark.parametrize("w, groups, match", [
    (np.zeros((4, 3, 3), np.int8), 1, "4-D"),
    (np.zeros((4, 3, 3, 3), np.int16), 1, "w"),
    (np.zeros((4, 3, 3, 3), np.int8), 3, "groups"),
    (np.zeros((4, 3, 0, 3), np.int8), 1, ">= 1"),
])
def test_pack_int8_conv_weight_bad_input(w, groups, match):
    with pytest.raises((TypeError, ValueError), match=match):
        qk.pack_int8_conv_weight(w, groups)


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 64, 64), (3, 17, 5, 7), (1, 64, 33, 31), (0, 3, 4, 4)], ids=str)
def test_native_layout_transposes_at_the_chain_edges(shape, threads):
    from qk.quantization.graph import _to_nchw, _to_nhwc

    rng = np.random.default_rng(0)
    q = rng.integers(0, 256, shape, dtype=np.uint8)
    np.testing.assert_array_equal(_to_nhwc(q), q.transpose(0, 2, 3, 1))
    y = rng.standard_normal(shape).astype(np.float32)
    np.testing.assert_array_equal(_to_nchw(y), y.transpose(0, 3, 1, 2))
