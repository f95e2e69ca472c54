"""The AVX-512 quant kernels and the AVX-VNNI / AVX-512 VNNI GEMM tiles, run
under SIMDe emulation on machines without those instructions (so the paths
are executed somewhere, not only compiled). Skipped unless g++ and the SIMDe
headers (libsimde-dev) are present; on a CPU that has the instructions the
regular tests run these paths natively."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import qk

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent / "simde"
KERNELS = ["quant/quant_avx512.cc", "gemm/gemm_avx_vnni.cc", "gemm/gemm_avx512_vnni.cc"]


def test_avx512_and_vnni_kernels_match_scalar_under_simde(tmp_path):
    cxx = shutil.which(os.environ.get("CXX", "g++"))
    if cxx is None or not Path("/usr/include/simde/x86/avx512.h").exists():
        pytest.skip("needs g++ and the SIMDe headers (apt install libsimde-dev)")
    features = qk.cpu_features()
    if not (features.get("avx2") and features.get("f16c") and features.get("fma")):
        pytest.skip("the emulation harness itself is built for AVX2 + F16C + FMA")
    sources = []
    for rel in KERNELS:
        text = (ROOT / "csrc" / rel).read_text()
        assert "#include <immintrin.h>" in text
        dst = tmp_path / Path(rel).name
        dst.write_text(text.replace("#include <immintrin.h>", '#include "simde_kernels_shim.h"'))
        sources.append(str(dst))
    exe = tmp_path / "check"
    subprocess.run([cxx, "-std=c++17", "-O2", "-mavx2", "-mf16c", "-mfma", "-Wno-psabi", f"-I{ROOT / 'csrc'}",
                    f"-I{HERE}", *sources, str(ROOT / "csrc/quant/quant_scalar.cc"),
                    str(ROOT / "csrc/gemm/pack_a.cc"),  # the kernels' A formats
                    str(HERE / "check_quant_gemm_simde.cc"), "-o", str(exe)], check=True)
    result = subprocess.run([str(exe)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and "ok" in result.stdout, result.stdout + result.stderr
