"""bench/report.py's logic on a synthetic pytest-benchmark JSON: tables,
ratios, ceilings, run comparison with regression flagging, plots. No timing."""

import importlib.util
import json
from pathlib import Path

import pytest

REPORT = Path(__file__).resolve().parents[1] / "bench" / "report.py"


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("qk_bench_report", REPORT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bench(group, impl, median, threads=2, isa="avx512_vnni", bytes=0, ops=0, probe=None, minimum=None, paths=None):
    info = dict(impl=impl, bytes=bytes, ops=ops, threads=threads, isa=isa,
                paths=paths or {"quant": "avx512", "fp16": "avx512", "gemm": isa})
    if probe:
        info["probe"] = probe
    return {"group": group, "name": f"test[{impl}]", "fullname": f"bench/x.py::test[{group}-{impl}]",
            "stats": {"median": median, "min": minimum or median}, "extra_info": info}


def synthetic():
    return {"benchmarks": [
        bench("ceiling: memory bandwidth", "stream copy", 0.02, bytes=400e6, minimum=0.01),  # 40 GB/s best
        bench("ceiling: int8 multiply-accumulate peak", "probe vpdpbusd zmm", 1.0, ops=400e9, probe="avx512_vnni"),
        bench("ceiling: int8 multiply-accumulate peak", "probe vpmaddwd ymm", 1.0, ops=100e9, probe="avx2"),
        bench("ceiling: core clock", "probe dependent adds", 1.0, ops=3.5e9),
        bench("quantize per-channel 4096x4096", "qk", 0.002, bytes=40e6),    # 20 GB/s
        bench("quantize per-channel 4096x4096", "numpy", 0.020, bytes=40e6),
        bench("quantize per-channel 4096x4096", "torch", 0.010, bytes=40e6),
        bench("int8_matmul 512x1024x1024", "qk", 0.010, ops=2e9),             # 200 GOP/s
        bench("int8_matmul 512x1024x1024", "qk", 0.020, ops=2e9, isa="avx2"),  # 100 GOP/s
        bench("int8_matmul 512x1024x1024", "numpy", 0.040, ops=2e9),
        bench("int8_matmul 512x1024x1024", "onnxruntime", 0.015, ops=2e9),
        bench("int8_matmul 1x1024x1024", "qk", 0.0001, ops=2e6),
        bench("int8_matmul 1x1024x1024", "numpy", 0.0002, ops=2e6),
    ]}


def test_ceilings_use_fastest_round(report):
    ceil = report.ceilings(report.rows_of(synthetic()))
    assert ceil["bandwidth"][2] == pytest.approx(40.0)
    assert ceil["peak"][2] == pytest.approx({"avx512_vnni": 400.0, "avx2": 100.0})
    assert ceil["clock"][2] == pytest.approx(3.5)


def test_group_tables_ratios_and_ceiling_share(report):
    rows = report.rows_of(synthetic())
    text = report.group_tables(rows, report.ceilings(rows))
    # qk quantize: 10x the NumPy baseline, 5x torch, 20 GB/s = 50% of 40 GB/s.
    assert "| qk [avx512, cap avx512_vnni] | 2.00 ms | 20.0 GB/s | 50% | 10.00x | 5.00x |" in text
    # Each GEMM row against its own path's peak: 200/400 and 100/100.
    assert "| qk [avx512_vnni] | 10.00 ms | 200.0 GOP/s | 50% | 4.00x | 1.50x |" in text
    assert "| qk [avx2] | 20.00 ms | 100.0 GOP/s | 100% | 2.00x | 0.75x |" in text
    assert "**int8_matmul 512x1024x1024**, 2 threads" in text
    assert "ceiling" not in text.split("**")[1]  # the ceiling groups are not kernel tables


def test_summary_picks_fastest_qk_row(report):
    rows = report.rows_of(synthetic())
    text = report.summary_table(rows, report.ceilings(rows))
    line = next(l for l in text.splitlines() if l.startswith("| int8_matmul 512x1024x1024"))
    assert "qk [avx512_vnni]" in line and "| 4.00x |" in line and "1.50x" in line
    assert "vs torch" in text and "vs onnxruntime" in text


def test_render_without_report_metadata(report):
    text = report.render(synthetic())  # a plain pytest-benchmark JSON, machine read here
    assert text.startswith("# qk benchmark report") and "## Summary" in text and "40.0 GB/s" in text


def test_compare_flags_regressions(report, tmp_path):
    old = synthetic()
    new = json.loads(json.dumps(old))
    new["benchmarks"][4]["stats"]["median"] *= 1.5    # qk quantize 50% slower
    new["benchmarks"][7]["stats"]["median"] *= 0.5    # qk GEMM twice as fast
    new["benchmarks"][5]["stats"]["median"] *= 1.05   # within threshold
    del new["benchmarks"][-1]
    table, regressions = report.compare(old, new, threshold=0.10)
    assert regressions == 1
    lines = table.splitlines()
    assert "1.50 | **REGRESSION** |" in lines[2]  # worst first
    assert any("0.50 | faster |" in l for l in lines)
    assert any("1.05 |  |" in l for l in lines)
    assert "1 present in only one run" in table
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "new.json").write_text(json.dumps(new))
    assert report.main(["--compare", str(tmp_path / "old.json"), str(tmp_path / "new.json")]) == 1
    assert report.main(["--compare", str(tmp_path / "old.json"), str(tmp_path / "old.json")]) == 0


def test_load_writes_report_and_plots(report, tmp_path):
    pytest.importorskip("matplotlib")
    (tmp_path / "run.json").write_text(json.dumps(synthetic()))
    out = tmp_path / "out"
    assert report.main(["--load", str(tmp_path / "run.json"), "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    assert "![gemm_gops](gemm_gops.png)" in text and "![roofline](roofline.png)" in text
    for png in ("gemm_gops.png", "roofline.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
