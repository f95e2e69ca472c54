"""Command line: `python -m qk info | ptq | bench`."""

from __future__ import annotations

import argparse
import platform
import sys


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def info() -> None:
    import qk

    print(f"qk {qk.__version__}  (Python {platform.python_version()}, {platform.machine()})")
    print(f"CPU: {_cpu_model()}")
    features = qk.cpu_features()
    shown = ["avx2", "f16c", "fma", "avx_vnni", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "amx_int8"]
    print("features: " + "  ".join(f"{k}={'yes' if features[k] else 'no'}" for k in shown))
    print(f"available ISA paths: {', '.join(qk.available_isas())}")
    print(f"ISA cap: {qk.get_isa()}")
    for family, isa in qk.kernel_paths().items():
        print(f"  {family:<6} kernels run on: {isa}")
    print(f"threads: {qk.get_num_threads()}")


def bench(args: list[str]) -> int:
    """Runs bench/report.py of the qk checkout (the benchmarks are not installed with the package)."""
    import subprocess
    from pathlib import Path

    candidates = [Path.cwd() / "bench" / "report.py", Path(__file__).resolve().parents[2] / "bench" / "report.py"]
    script = next((p for p in candidates if p.is_file()), None)
    if script is None:
        print("python -m qk bench: no bench/report.py here; run it from a qk source checkout", file=sys.stderr)
        return 2
    return subprocess.run([sys.executable, str(script), *args]).returncode


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qk", description="qk command line")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="CPU features, ISA paths, threads and version")
    sub.add_parser("ptq", help="post-training quantization of the digits models: accuracy, size, latency")
    sub.add_parser("bench", help="benchmark report (bench/report.py of a checkout; arguments passed through)",
                   add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command == "bench":
        return bench(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "info":
        info()
    elif args.command == "ptq":
        from qk.ptq.report import main as ptq_main

        ptq_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
