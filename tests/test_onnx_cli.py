"""python -m qk inspect / run / quantize, end to end on small ONNX files."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from onnx_zoo import ort_quantized_session  # noqa: E402
from qk.__main__ import main  # noqa: E402


def _cnn(path):
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]), helper.make_node("GlobalAveragePool", ["r"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]), helper.make_node("Gemm", ["f", "w2", "b2"], ["y"], transB=1)]
    inits = [numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b"),
             numpy_helper.from_array(rng.standard_normal((4, 8)).astype(np.float32), "w2"),
             numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b2")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def _quantize_setup(tmp_path):
    """The small CNN, its calibration file and the quantize command line up to its options."""
    path = _cnn(tmp_path / "m.onnx")
    x = np.random.default_rng(1).standard_normal((40, 3, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "calib.npz", x=x)
    out = tmp_path / "m.int8.onnx"
    return path, x, out, ["quantize", str(path), "-o", str(out), "--calib", str(tmp_path / "calib.npz")]


def _assert_ort_agrees(ort, path, out, x):
    """ORT on the quantized file within 5% of the output's magnitude of ORT on the FP32 one."""
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = ort_quantized_session(out).run(None, {"x": x})[0]
    assert np.abs(got - ref).max() <= 0.05 * np.abs(ref).max()


def test_inspect_reports_support(tmp_path, capsys):
    assert main(["inspect", str(_cnn(tmp_path / "m.onnx"))]) == 0
    out = capsys.readouterr().out
    assert "supported: every node" in out and "Conv x1" in out and "input  x: float32 (?, 3, 8, 8)" in out
    bad = helper.make_model(helper.make_graph([helper.make_node("Hardmax", ["x"], ["y"], name="hm")], "g",
                                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]),
                            opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(bad, str(tmp_path / "bad.onnx"))
    assert main(["inspect", str(tmp_path / "bad.onnx")]) == 1
    assert "NOT supported (1)" in capsys.readouterr().out


def test_run_with_inputs_and_random(tmp_path, capsys):
    path = _cnn(tmp_path / "m.onnx")
    np.save(tmp_path / "x.npy", np.ones((2, 3, 8, 8), np.float32))
    assert main(["run", str(path), "--input", f"x={tmp_path / 'x.npy'}", "--repeat", "2"]) == 0
    assert "y: float32 (2, 4)" in capsys.readouterr().out
    pytest.importorskip("onnxruntime")
    assert main(["run", str(path), "--random", "--compare-ort"]) == 0
    assert "max |qk - onnxruntime|" in capsys.readouterr().out


def test_run_profile_lists_every_op(tmp_path, capsys):
    assert main(["run", str(_cnn(tmp_path / "m.onnx")), "--random", "--repeat", "2", "--profile"]) == 0
    out = capsys.readouterr().out
    assert "| op | nodes | ms | share |" in out
    for op in ("Conv", "Relu", "GlobalAveragePool", "Flatten", "Gemm"):
        assert f"| {op} | 1 |" in out


def test_run_and_quantize_refuse_bad_options(tmp_path, capsys):
    path = _cnn(tmp_path / "m.onnx")
    for argv, message in [(["run", str(path)], "missing input 'x'"),
                          (["run", str(path), "--input", "x"], "NAME=FILE.npy"),
                          (["run", str(path), "--input", "z=a.npy"], "no input 'z'"),
                          (["run", str(tmp_path / "none.onnx"), "--random"], "no such file"),
                          (["quantize", str(path), "-o", str(tmp_path / "q.onnx")], "--calib"),
                          (["quantize", str(path), "-o", str(tmp_path / "q.onnx"), "--calib", "nope.npz"],
                           "cannot read")]:
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
        assert message in capsys.readouterr().err


@pytest.mark.parametrize("method", ["static", "dynamic", "weight-only", "fp16"])
def test_quantize_end_to_end(tmp_path, capsys, method):
    ort = pytest.importorskip("onnxruntime")
    path = _cnn(tmp_path / "m.onnx")
    x = np.random.default_rng(1).standard_normal((40, 3, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "calib.npz", x=x)
    out = tmp_path / "m.int8.onnx"
    argv = ["quantize", str(path), "-o", str(out), "--calib", str(tmp_path / "calib.npz"), "--method", method]
    assert main(argv + (["--calibration", "percentile"] if method == "static" else [])) == 0
    captured = capsys.readouterr()
    assert "2 layers quantized" in captured.out and "| node | op | scheme | SQNR (dB) | cosine |" in captured.out
    if method == "static":
        assert "calibrating [" in captured.err  # the progress bar
    _assert_ort_agrees(ort, path, out, x)


def test_quantize_with_smooth_quant(tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    path, x, out, base = _quantize_setup(tmp_path)
    assert main(base + ["--smooth", "0.5"]) == 0
    captured = capsys.readouterr()
    assert "(static INT8, SmoothQuant alpha 0.5)" in captured.out and "smoothing [" in captured.err
    assert "Mul" in {n.op_type for n in onnx.load(str(out)).graph.node}  # before the Gemm
    _assert_ort_agrees(ort, path, out, x)
    for argv, message in [(base + ["--smooth", "2"], "--smooth: expected an exponent in [0, 1], got 2.0"),
                          (base + ["--smooth", "0.5", "--method", "fp16"], "not fp16"),
                          (base[:4] + ["--smooth", "0.5", "--method", "dynamic"], "needs calibration data")]:
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2 and message in capsys.readouterr().err


def test_quantize_activation_matmuls(tmp_path, capsys):
    """--activation-matmul quantizes x @ (x W)^T too (static only), and ORT runs the file alike."""
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(2)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Transpose", ["h"], ["ht"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["x", "ht"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 5, 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          initializer=[numpy_helper.from_array(rng.standard_normal((6, 6)).astype(np.float32), "w")])
    path = tmp_path / "a.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    x = rng.standard_normal((16, 5, 6)).astype(np.float32)
    np.savez(tmp_path / "calib.npz", x=x)
    out = tmp_path / "a.int8.onnx"
    base = ["quantize", str(path), "-o", str(out), "--calib", str(tmp_path / "calib.npz")]
    assert main(base + ["--activation-matmul"]) == 0
    assert "2 layers quantized (static INT8, activation MatMuls too)" in capsys.readouterr().out
    _assert_ort_agrees(ort, path, out, x)
    with pytest.raises(SystemExit) as e:
        main(base + ["--activation-matmul", "--method", "dynamic"])
    assert e.value.code == 2 and "--activation-matmul: for --method static" in capsys.readouterr().err


def test_quantize_runs_the_pool_on_uint8_on_request(tmp_path, capsys):
    """--uint8 GlobalAveragePool: the pool sums the conv's uint8 output (one
    more quantized node), and ORT runs the file alike; other ops are refused."""
    ort = pytest.importorskip("onnxruntime")
    path, x, out, base = _quantize_setup(tmp_path)
    assert main(base + ["--uint8", "GlobalAveragePool"]) == 0
    assert "3 layers quantized (static INT8, on uint8 too: GlobalAveragePool)" in capsys.readouterr().out
    _assert_ort_agrees(ort, path, out, x)
    for extra, message in [(["--uint8", "Relu"], "--uint8: expected Add, GlobalAveragePool, ReduceMean or the name"),
                           (["--uint8", "Add", "--method", "dynamic"], "--uint8: for --method static")]:
        with pytest.raises(SystemExit) as e:
            main(base + extra)
        assert e.value.code == 2 and message in capsys.readouterr().err


def test_quantize_within_an_accuracy_budget(tmp_path, capsys):
    path = _cnn(tmp_path / "m.onnx")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((64, 3, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "calib.npz", x=x[:32])
    np.savez(tmp_path / "eval.npz", x=x[32:])  # no labels: agreement with FP32's top-1
    out = tmp_path / "q.onnx"
    base = ["quantize", str(path), "-o", str(out), "--calib", str(tmp_path / "calib.npz"), "--method", "weight-only",
            "--bits", "4"]
    assert main(base + ["--max-drop", "0", "--eval", str(tmp_path / "eval.npz")]) == 0
    text = capsys.readouterr().out
    assert "drop 0.00%" in text and "kept in float" in text
    with pytest.raises(SystemExit):
        main(base + ["--max-drop", "0.01"])
    assert "give both" in capsys.readouterr().err
