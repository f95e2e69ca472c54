"""Command line: `python -m qk info`."""

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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qk", description="qk command line")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="CPU features, ISA paths, threads and version")
    sub.add_parser("ptq", help="post-training quantization of the digits models: accuracy, size, latency")
    args = parser.parse_args(argv)
    if args.command == "info":
        info()
    elif args.command == "ptq":
        from qk.ptq.report import main as ptq_main

        ptq_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
