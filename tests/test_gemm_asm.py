"""The register-blocked GEMM tiles compile as designed: each ISA file is
compiled to assembly here with the build's flags (CMakeLists.txt), and the
inner loop of its largest tile must touch no stack slot (no spilled
accumulator), and the AVX2 tile must widen B with the memory-source form of
vpmovsxbw (the register form plus vextracti128 costs a multiply port on Zen).
Speed lives in the benchmarks; this checks the code shape that speed needs."""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The flags of each ISA's files, from the one list the build reads (csrc/cpu/isa_list.h).
_ISA_LINES = re.findall(r'QK_ON_x86_64\(X\((\w+), *"([^"]*)"\)\)', (ROOT / "csrc/cpu/isa_list.h").read_text())
FLAGS = {name: flags.split() for name, flags in _ISA_LINES if name in ("avx2", "avx_vnni", "avx512_vnni", "amx")}
# function name fragment of the largest tile in each file
LARGEST = {"avx2": "tile<6>", "avx512_vnni": "Zmm, 8, 2>", "avx_vnni": "Ymm, 4, 1>"}


def _assembly(isa: str) -> str:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("the x86-64 tiles' assembly needs an x86-64 compiler")
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler to read the tiles' assembly with")
    src = ROOT / "csrc" / "gemm" / f"gemm_{isa}.cc"
    if not src.exists():
        pytest.skip(f"{src.name} is not in this checkout")
    cmd = [cxx, "-std=c++17", "-O3", "-fno-math-errno", "-ffp-contract=off", *FLAGS[isa], f"-I{ROOT / 'csrc'}",
           "-S", "-o", "-", str(src)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        pytest.fail(f"{src.name} does not compile: {done.stderr[:500]}")
    demangle = shutil.which("c++filt")
    if demangle:
        done = subprocess.run([demangle], input=done.stdout, capture_output=True, text=True)
    return done.stdout


def _functions(asm: str) -> dict:
    out, name, body = {}, None, []
    for line in asm.splitlines():
        label = re.match(r"^(\S.*):$", line)
        if label and not line.startswith(".L"):
            if name:
                out[name] = body
            name, body = label.group(1), []
        elif name:
            body.append(line.strip())
    if name:
        out[name] = body
    return out


def _inner_loop(body: list) -> list:
    """The instructions of the hottest loop: the backward jump whose span holds the most multiplies."""
    labels = {l[:-1]: i for i, l in enumerate(body) if re.match(r"^\.L\w+:$", l)}
    best = []
    for i, line in enumerate(body):
        m = re.match(r"^j\w+\s+(\.L\w+)$", line)
        if m and m.group(1) in labels and labels[m.group(1)] < i:
            span = body[labels[m.group(1)]: i + 1]
            if sum(("madd" in s or "dpbusd" in s) for s in span) > sum(("madd" in s or "dpbusd" in s) for s in best):
                best = span
    return best


@pytest.mark.parametrize("isa", sorted(set(FLAGS) - {"amx"}))
def test_largest_tile_inner_loop_has_no_spills(isa):
    funcs = _functions(_assembly(isa))
    name = next((n for n in funcs if LARGEST[isa] in n), None)
    assert name is not None, f"no {LARGEST[isa]} in gemm_{isa}.cc's assembly: {sorted(funcs)[:10]}"
    loop = _inner_loop(funcs[name])
    assert loop, f"{name}: no inner loop found"
    stack = [s for s in loop if re.search(r"\((%rsp|%rbp)\)", s)]
    assert not stack, f"{name}: the inner loop touches the stack (spilled registers): {stack[:4]}"


def test_avx2_tile_widens_b_from_memory():
    funcs = _functions(_assembly("avx2"))
    loop = _inner_loop(funcs[next(n for n in funcs if LARGEST["avx2"] in n)])
    widen = [s for s in loop if s.startswith("vpmovsxbw")]
    assert len(widen) == 2 and all("(" in s for s in widen), widen  # memory operands
    assert not [s for s in loop if s.startswith("vextracti128")]
    assert sum(s.startswith("vpmaddwd") for s in loop) == 12  # 6 rows x 2 halves per step


def test_amx_tile_configuration_is_thread_local_and_released():
    """The compiler-sensitive points of the AMX kernel: ldtilecfg reads the static
    thread-local configuration (not a stack copy that could be optimised away),
    the tiles are released, and the four tile shapes (16 or 32 rows x 1 or 2
    panels) use immediate tile numbers: 1 + 2 + 2 + 4 tdpbusd. Signed A is
    shifted to unsigned by the packer, so tdpbssd is never needed."""
    asm = _assembly("amx")
    cfg = [line.strip() for line in asm.splitlines() if line.strip().startswith("ldtilecfg")]
    assert cfg and all("%fs:" in line and "tile_config" in line for line in cfg), cfg
    assert "tilerelease" in asm
    assert len(re.findall(r"^\s*tdpbusd\s+%tmm[67], %tmm[45], %tmm[0-3]$", asm, re.M)) == 9
    assert "tdpbssd" not in asm
