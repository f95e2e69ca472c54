"""Command line: `python -m qk info | ptq | demo | bench | inspect | run`."""

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
    features = qk.cpu_features()  # the architecture's own names
    print("features: " + "  ".join(f"{k}={'yes' if v else 'no'}" for k, v in features.items()))
    print(f"available ISA paths: {', '.join(qk.available_isas())}")
    print(f"ISA cap: {qk.get_isa()}")
    paths = qk.kernel_paths()
    width = max(map(len, paths), default=0)
    for family, isa in paths.items():
        print(f"  {family:<{width}} kernels run on: {isa}")
    caches = qk._runtime.cache_sizes()
    print("caches (one instance each, as the CPU reports): "
          + ", ".join(f"{k} {v // 1024} KiB" if v else f"{k} unknown" for k, v in caches.items()))
    blk = qk._runtime.gemm_blocking()
    print(f"GEMM blocking: A block {blk['a_block_bytes'] // 1024} KiB, B run {blk['b_run_bytes'] // 1024} KiB "
          "(from the L2 size)")
    print(f"threads: {qk.get_num_threads()}")


def _int_list(text: str) -> tuple:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _name_list(text: str) -> tuple:
    return tuple(v.strip() for v in text.split(","))


def _add_demo_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("demo", help="the main job: PTQ vs QAT of the digits MLP and CNN at 8/4/3/2 weight bits",
                       description="PTQ vs QAT of the digits MLP and CNN: accuracy, time to quantize, size, "
                                   "latency; one table, written as Markdown and plotted (matplotlib) in --out.")
    p.add_argument("--out", default=".", metavar="DIR", help="where qk_demo.md and qk_demo.png go (default: .)")
    p.add_argument("--quick", action="store_true",
                   help="fewer epochs, widths (8,4,2) and latency repeats: seconds, for tests and CI")
    p.add_argument("--seed", type=int, default=0, help="seed of FP32 training and QAT shuffling (default: 0)")
    p.add_argument("--bits", type=_int_list, metavar="LIST", help="weight widths, e.g. 8,4,3,2 (2 to 8)")
    p.add_argument("--models", type=_name_list, metavar="LIST", help="mlp,cnn (default) or one of them")
    p.add_argument("--qat-epochs", type=int, metavar="N", help="QAT epochs per width (default 10; --quick: 2)")
    p.add_argument("--lsq", action="store_true", help="QAT learns the quantizer scales (LSQ)")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="where trained FP32 models are cached (default: $QK_CACHE_DIR or ~/.cache/qk)")
    p.add_argument("--no-cache", action="store_true", help="always train the FP32 models, cache nothing")
    return p


def _demo(args, parser: argparse.ArgumentParser) -> int:
    from qk import demo

    overrides = {k: v for k, v in (("bits", args.bits), ("models", args.models), ("qat_epochs", args.qat_epochs))
                 if v is not None}
    overrides["lsq"] = args.lsq
    if args.no_cache and args.cache_dir is not None:
        parser.error("--no-cache, --cache-dir: give one or the other")
    try:
        settings = (demo.Settings.quick if args.quick else demo.Settings)(seed=args.seed, **overrides)
        out = demo.check_out_dir(args.out)
    except (TypeError, ValueError) as e:
        name, _, why = str(e).partition(": ")  # the checks name the setting first: "bits: expected ..."
        parser.error(f"--{name.replace('_', '-')}: {why}")
    cache_dir = None if args.no_cache else (args.cache_dir or demo.default_cache_dir())
    return demo.main(settings, out, cache_dir)


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
    demo_parser = _add_demo_parser(sub)
    from qk.onnx import cli as onnx_cli

    onnx_cli.add_parsers(sub)
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
    elif args.command == "demo":
        return _demo(args, demo_parser)
    elif args.command in onnx_cli.COMMANDS:
        return onnx_cli.COMMANDS[args.command](args, sub.choices[args.command])
    return 0


if __name__ == "__main__":
    sys.exit(main())
