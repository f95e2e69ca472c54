"""Runs the benchmark suite (or reads a saved run) and prints Markdown tables
of medians with ratios measured side by side in the same run.

    python bench/report.py                      # run every bench/bench_*.py
    python bench/report.py bench/bench_quant.py  # run some files
    python bench/report.py --json run.json       # also keep pytest-benchmark's JSON
    python bench/report.py --load run.json       # print tables from a saved run

In each group (one kernel on one shape), every row is compared with the
NumPy row ("numpy": the FP32 / plain-NumPy baseline) and, where present,
with the memory-bandwidth yardstick ("copy": np.copyto of the float32 input).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_suite(files: list[str], json_path: str, extra: list[str]) -> None:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files,
           f"--benchmark-json={json_path}", "--benchmark-min-rounds=5", *extra]
    print("$ " + " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True, cwd=HERE.parent, stdout=sys.stderr)


def _fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"


def machine_line() -> str:
    import numpy as np

    import qk

    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = [f"qk {qk.__version__}", f"numpy {np.__version__}"]
    for mod in ("torch", "onnxruntime"):
        try:
            versions.append(f"{mod} {__import__(mod).__version__}")
        except ImportError:
            pass
    return (f"CPU: {cpu}, {os.cpu_count()} cores; ISA paths: {', '.join(qk.available_isas())}; "
            f"Python {platform.python_version()}; " + ", ".join(versions))


def tables(data: dict) -> str:
    groups: dict[str, list[dict]] = {}
    for b in data["benchmarks"]:
        groups.setdefault(b.get("group") or b["name"], []).append(b)
    out = []
    for group, rows in groups.items():
        medians = {r["extra_info"].get("impl", r["name"]): r["stats"]["median"] for r in rows}
        base, copy = medians.get("numpy"), medians.get("copy")
        threads = rows[0]["extra_info"].get("threads", "?")
        out.append(f"\n**{group}** ({threads} threads)\n")
        head = "| impl | ISA | median | GB/s | GOP/s | speedup vs numpy |" + (" time / copy |" if copy else "")
        out.append(head)
        out.append("|" + "---|" * (head.count("|") - 1))
        for r in rows:
            info = r["extra_info"]
            impl, med = info.get("impl", r["name"]), r["stats"]["median"]
            gbs = f"{info['bytes'] / med / 1e9:.1f}" if info.get("bytes") else ""
            gops = f"{info['ops'] / med / 1e9:.1f}" if info.get("ops") else ""
            isa = info.get("isa", "") if impl.startswith("qk") else ""
            speed = f"{base / med:.2f}x" if base else ""
            line = f"| {impl} | {isa} | {_fmt_time(med)} | {gbs} | {gops} | {speed} |"
            if copy:
                line += f" {med / copy:.2f} |"
            out.append(line)
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", help="benchmark files (default: every bench/bench_*.py)")
    parser.add_argument("--json", help="keep pytest-benchmark's JSON of this run here")
    parser.add_argument("--load", help="print tables from a saved pytest-benchmark JSON instead of running")
    args, extra = parser.parse_known_args(argv)

    if args.load:
        data = json.loads(Path(args.load).read_text())
    else:
        files = args.files or sorted(str(p.relative_to(HERE.parent)) for p in HERE.glob("bench_*.py"))
        json_path = args.json or tempfile.mkstemp(suffix=".json")[1]
        run_suite(files, json_path, extra)
        data = json.loads(Path(json_path).read_text())
    print(machine_line())
    print(tables(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
