"""qk.ptq.load on untrusted files: every mutated description or damaged file is
a ValueError (or loads), fast, with nothing large allocated first."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

import qk
from qk import nn


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    nn.manual_seed(0)
    model = nn.models.digits_mlp()
    x = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
    d = tmp_path_factory.mktemp("fuzz")
    files = {}
    for name, qm in (("static", qk.ptq.convert(qk.ptq.calibrate(qk.ptq.prepare(model), x, progress=False))),
                     ("int4", qk.ptq.quantize_weight_only(model, 4)), ("fp16", qk.ptq.quantize_fp16(model))):
        path = d / f"{name}.npz"
        qk.ptq.save(qm, path)
        with np.load(path) as f:
            files[name] = {k: f[k] for k in f.files}
    return d, files


def _mutations(node, rng):
    """Paths into the JSON tree, each with a hostile replacement value."""
    out = []

    def walk(v, path):
        if isinstance(v, dict):
            for k, c in v.items():
                walk(c, path + [k])
        elif isinstance(v, list):
            for i, c in enumerate(v):
                walk(c, path + [i])
        out.append(path)

    walk(node, [])
    hostile = [10 ** 12, -1, 0, 1.5, "x", None, [], {}, True, [10 ** 9, 10 ** 9], float("nan")]
    return [(p, hostile[rng.integers(len(hostile))]) for p in out if p]


def _set(tree, path, value):
    for k in path[:-1]:
        tree = tree[k]
    tree[path[-1]] = value


def test_mutated_descriptions_are_value_errors(saved):
    d, files = saved
    rng = np.random.default_rng(1)
    tried = 0
    for name, arrays in files.items():
        header = json.loads(bytes(arrays["__qk_model__"]).decode())
        for path, value in _mutations(header, rng):
            bad = json.loads(json.dumps(header))
            _set(bad, path, value)
            target = d / f"bad_{name}.npz"
            np.savez(target, **dict(arrays, __qk_model__=np.frombuffer(json.dumps(bad).encode(), np.uint8)))
            t0 = time.perf_counter()
            try:
                qk.ptq.load(target)
            except ValueError:
                pass
            assert time.perf_counter() - t0 < 2, (name, path, value)
            tried += 1
    assert tried > 50


def test_wrong_arrays_are_value_errors(saved):
    d, files = saved
    arrays = files["static"]
    for key in [k for k in arrays if k != "__qk_model__"]:
        for replacement in (arrays[key].astype(np.float64), arrays[key].reshape(-1)[:1], np.zeros((2, 3, 4))):
            np.savez(d / "arr.npz", **dict(arrays, **{key: replacement}))
            try:
                qk.ptq.load(d / "arr.npz")
            except ValueError:
                pass
    np.savez(d / "float_q.npz", **{k: (v.astype(np.float32) if k.endswith("weight_q") else v)
                                   for k, v in arrays.items()})
    with pytest.raises(ValueError, match="weight_q has dtype float32"):
        qk.ptq.load(d / "float_q.npz")


def test_flipped_bytes_are_value_errors(saved):
    d, _ = saved
    raw = (d / "int4.npz").read_bytes()
    rng = np.random.default_rng(2)
    for i in range(60):
        b = bytearray(raw)
        for pos in rng.integers(0, len(b), 1 + i % 4):
            b[pos] ^= 0xFF
        (d / "flip.npz").write_bytes(bytes(b))
        try:
            qk.ptq.load(d / "flip.npz")
        except ValueError:
            pass


def test_a_small_file_claiming_gigabytes_is_refused_before_allocating(saved, tmp_path):
    import io
    import zipfile

    _, files = saved
    header = np.lib.format.header_data_from_array_1_0(np.zeros(1, np.float32))
    header["shape"] = (50_000, 50_000)  # 10 GB of float32 in a file of a few hundred bytes
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as z:
        z.writestr("__qk_model__.npy", _npy(files["static"]["__qk_model__"]))
        z.writestr("m/0/weight_q.npy", buf.getvalue() + bytes(64))
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="declares shape"):
        qk.ptq.load(tmp_path / "huge.npz")
    assert time.perf_counter() - t0 < 1


def _npy(arr):
    import io

    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()
