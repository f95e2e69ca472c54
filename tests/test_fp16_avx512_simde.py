"""The AVX-512 fp16 kernels, run under SIMDe emulation on machines without
AVX-512 (so that path is executed somewhere, not only compiled). Skipped
unless a C++ compiler and the SIMDe headers (libsimde-dev) are present."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import qk

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent / "simde"


@pytest.mark.slow
def test_avx512_kernels_match_scalar_under_simde(tmp_path):
    cxx = shutil.which(os.environ.get("CXX", "g++"))
    if cxx is None or not Path("/usr/include/simde/x86/avx512.h").exists():
        pytest.skip("needs g++ and the SIMDe headers (apt install libsimde-dev)")
    features = qk.cpu_features()
    if not (features.get("avx2") and features.get("f16c")):
        pytest.skip("the emulation harness itself is built for AVX2 + F16C")
    src = (ROOT / "csrc/fp16/fp16_avx512.cc").read_text().replace("#include <immintrin.h>", '#include "simde_shim.h"')
    (tmp_path / "fp16_avx512_sim.cc").write_text(src)
    exe = tmp_path / "check"
    subprocess.run([cxx, "-std=c++17", "-O2", "-mavx2", "-mf16c", "-mfma", "-Wno-psabi", f"-I{ROOT / 'csrc'}", f"-I{HERE}",
                    str(tmp_path / "fp16_avx512_sim.cc"), str(HERE / "check_fp16_avx512.cc"),
                    str(ROOT / "csrc/fp16/fp16_scalar.cc"), "-o", str(exe)], check=True)
    result = subprocess.run([str(exe)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
