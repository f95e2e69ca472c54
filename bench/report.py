"""Runs the benchmark suite on every ISA path and thread count, and writes one
Markdown report (medians, GB/s or GOP/s, ratios to the FP32 baseline and to
each peer, and how close each kernel gets to the machine's measured ceiling)
with PNG plots. Also compares two saved runs.

    python bench/report.py                          # every ISA path x 1 and 2 threads -> bench/report/
    python bench/report.py --quick --isa best       # small sizes, best path only: a few minutes
    python bench/report.py --threads 2 bench/bench_gemm.py bench/bench_ceilings.py
    python bench/report.py --load bench/report/run.json --out docs/bench    # re-render a saved run
    python bench/report.py --compare old.json new.json --threshold 0.10     # regressions: exit status 1
    python -m qk bench ...                          # the same, from a qk checkout

Each (ISA, threads) pair is one pytest subprocess with QK_ISA and
QK_BENCH_THREADS set (and the BLAS/OpenMP thread variables). The best ISA
runs everything; the others re-run only the qk rows (baselines and peers do
not depend on qk's ISA cap). Arguments after `--` go to pytest.

In a group (one kernel, one shape), "numpy" is the FP32 / plain-NumPy
baseline, "copy" is np.copyto of the float32 input, rows named torch* or
onnxruntime* are peers, and rows named qk* are qk. Ceilings come from
bench/bench_ceilings.py in the same run: STREAM-like copy/triad bandwidth
for the elementwise kernels, the probed int8 multiply-accumulate peak of the
path's inner instruction for GEMM.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import math
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ISA_ORDER = ["scalar", "avx2", "avx_vnni", "avx512", "avx512_vnni", "amx"]
DEFAULT_FILES = ["bench_ceilings.py", "bench_quant.py", "bench_fp16.py", "bench_gemm.py", "bench_models.py"]
FLAGS = ["avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx_vnni",
         "amx_int8", "amx_tile"]
PEER_PREFIXES = ("torch", "onnxruntime")
BANDWIDTH_GROUP = "ceiling: memory bandwidth"
PEAK_GROUP = "ceiling: int8 multiply-accumulate peak"
CLOCK_GROUP = "ceiling: core clock"


# --- reading runs ---------------------------------------------------------------


def load(path) -> dict:
    return json.loads(Path(path).read_text())


def rows_of(data: dict) -> list[dict]:
    """One flat dict per benchmark of a pytest-benchmark JSON (one run or merged)."""
    rows = []
    for b in data["benchmarks"]:
        info = b.get("extra_info", {})
        rows.append(dict(
            group=b.get("group") or b["name"], name=b.get("fullname", b["name"]), impl=info.get("impl", b["name"]),
            isa=info.get("isa"), threads=info.get("threads"), paths=info.get("paths", {}), probe=info.get("probe"),
            median=b["stats"]["median"], min=b["stats"].get("min", b["stats"]["median"]), bytes=info.get("bytes", 0), ops=info.get("ops", 0),
            error=info.get("max_abs_error")))
    return rows


def is_peer(impl: str) -> bool:
    return impl.startswith(PEER_PREFIXES)


def kernel_path(row: dict) -> str:
    """The ISA path a qk row's kernels ran on (the cap for whole models)."""
    g = row["group"]
    family = "gemm" if row["ops"] else "fp16" if ("fp16" in g or "bf16" in g) else "quant"
    if g.startswith("model"):
        return row["isa"] or ""
    return row["paths"].get(family, row["isa"] or "")


def ceilings(rows: list[dict]) -> dict:
    """Measured ceilings by thread count: memory GB/s, int8 GOP/s per path, clock GHz.
    From each probe's fastest round (a ceiling is what the machine can do; on a
    shared machine the median is depressed by other work)."""
    bw, peak, clock = {}, {}, {}
    for r in rows:
        t = r["threads"]
        if r["group"] == BANDWIDTH_GROUP:
            bw[t] = max(bw.get(t, 0.0), r["bytes"] / r["min"] / 1e9)
        elif r["group"] == PEAK_GROUP:
            peak.setdefault(t, {})[r["probe"]] = r["ops"] / r["min"] / 1e9
        elif r["group"] == CLOCK_GROUP:
            clock[t] = r["ops"] / r["min"] / 1e9
    return {"bandwidth": bw, "peak": peak, "clock": clock}


def ceiling_of(row: dict, ceil: dict) -> float | None:
    """Best rate the machine allows this row: GB/s for elementwise rows, GOP/s for GEMM rows."""
    t = row["threads"]
    if row["ops"]:
        peaks = ceil["peak"].get(t, {})
        path = kernel_path(row) if row["impl"].startswith("qk") else None
        return peaks.get(path) if path else (max(peaks.values()) if peaks else None)
    if row["bytes"]:
        return ceil["bandwidth"].get(t)
    return None


def rate(row: dict) -> tuple[float, str] | None:
    if row["ops"]:
        return row["ops"] / row["median"] / 1e9, "GOP/s"
    if row["bytes"]:
        return row["bytes"] / row["median"] / 1e9, "GB/s"
    return None


# --- tables -----------------------------------------------------------------------


def fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"


def label(row: dict) -> str:
    """qk rows name the path their kernels ran on, and the ISA cap when it is a
    different one (under an avx512_vnni cap the quant kernels run on avx512)."""
    if not row["impl"].startswith("qk"):
        return row["impl"]
    path, cap = kernel_path(row), row["isa"]
    return f"{row['impl']} [{path}]" if not cap or cap == path else f"{row['impl']} [{path}, cap {cap}]"


def _groups(rows):
    """{(group, threads): rows}, kernel groups only, in first-seen order."""
    out: dict[tuple, list] = {}
    for r in rows:
        if not r["group"].startswith("ceiling"):
            out.setdefault((r["group"], r["threads"]), []).append(r)
    return out


def _peers(rows) -> list[str]:
    return sorted({r["impl"] for r in rows if is_peer(r["impl"])})


def _pct(row, ceil) -> str:
    c, r = ceiling_of(row, ceil), rate(row)
    return f"{100 * r[0] / c:.0f}%" if c and r else ""


def group_tables(rows: list[dict], ceil: dict) -> str:
    """One table per (group, threads): every row with its rate, share of the
    ceiling, speedup vs the FP32 baseline and vs each peer (>1: this row is faster)."""
    out = []
    for (group, threads), grows in _groups(rows).items():
        base = next((r["median"] for r in grows if r["impl"] == "numpy"), None)
        peers = {p: min(r["median"] for r in grows if r["impl"] == p) for p in _peers(grows)}
        errors = any(r.get("error") is not None for r in grows)
        head = ["impl [path]", "median", "rate", "of ceiling", "vs FP32"] + [f"vs {p}" for p in peers]
        head += ["max error vs exact"] if errors else []
        out += [f"\n**{group}**, {threads} thread{'s' * (threads != 1)}\n", "| " + " | ".join(head) + " |",
                "|" + "---|" * len(head)]
        for r in sorted(grows, key=lambda r: r["median"]):
            rt = rate(r)
            cells = [label(r), fmt_time(r["median"]), f"{rt[0]:.1f} {rt[1]}" if rt else "", _pct(r, ceil),
                     f"{base / r['median']:.2f}x" if base else ""]
            cells += [f"{m / r['median']:.2f}x" for m in peers.values()]
            if errors:
                cells.append(f"{r['error']:.0f}" if r.get("error") is not None else "")
            out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def summary_table(rows: list[dict], ceil: dict) -> str:
    """One line per (group, threads): qk's fastest row vs the FP32 baseline and the fastest row of each peer."""
    groups = _groups(rows)
    peers = _peers(rows)
    prefixes = [p for p in PEER_PREFIXES if any(x.startswith(p) for x in peers)]
    head = ["kernel", "threads", "fastest qk [path]", "median", "rate", "of ceiling", "vs FP32"] + [
        f"vs {p}" for p in prefixes]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (group, threads), grows in groups.items():
        qk_rows = [r for r in grows if r["impl"].startswith("qk")]
        if not qk_rows:
            continue
        best = min(qk_rows, key=lambda r: r["median"])
        base = next((r["median"] for r in grows if r["impl"] == "numpy"), None)
        rt = rate(best)
        cells = [group, str(threads), label(best), fmt_time(best["median"]), f"{rt[0]:.1f} {rt[1]}" if rt else "",
                 _pct(best, ceil), f"{base / best['median']:.2f}x" if base else ""]
        for p in prefixes:
            pm = [r["median"] for r in grows if r["impl"].startswith(p)]
            cells.append(f"{min(pm) / best['median']:.2f}x" if pm else "")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def ceiling_table(ceil: dict) -> str:
    out = ["| threads | memory bandwidth (STREAM-like, best of copy/triad) | core clock (probe) | "
           "int8 MAC peak per path (probe) |", "|---|---|---|---|"]
    for t in sorted(set(ceil["bandwidth"]) | set(ceil["peak"])):
        bw = ceil["bandwidth"].get(t)
        clock = ceil["clock"].get(t)
        peaks = ", ".join(f"{p}: {v:.0f} GOP/s" for p, v in sorted(ceil["peak"].get(t, {}).items(),
                                                                    key=lambda kv: kv[1]))
        out.append(f"| {t} | {f'{bw:.1f} GB/s' if bw else 'not measured'} | "
                   f"{f'{clock:.2f} GHz' if clock else 'not measured'} | {peaks or 'not measured'} |")
    return "\n".join(out)


# --- comparing two runs -------------------------------------------------------------


def compare(old: dict, new: dict, threshold: float = 0.10) -> tuple[str, int]:
    """Markdown table of new/old median per benchmark present in both runs
    (matched by name, ISA and threads), worst first; returns it and the number
    of regressions (new slower than old by more than `threshold`)."""
    def keyed(data):
        return {(r["name"], r["isa"], r["threads"]): r for r in rows_of(data)}

    a, b = keyed(old), keyed(new)
    common = sorted(set(a) & set(b), key=lambda k: -(b[k]["median"] / a[k]["median"]))
    out = [f"| benchmark | ISA | threads | old | new | new / old | |", "|---|---|---|---|---|---|---|"]
    regressions = 0
    for k in common:
        ratio = b[k]["median"] / a[k]["median"]
        if ratio > 1 + threshold:
            flag, regressions = "**REGRESSION**", regressions + 1
        elif ratio < 1 / (1 + threshold):
            flag = "faster"
        else:
            flag = ""
        out.append(f"| {k[0]} | {k[1] or ''} | {k[2] or ''} | {fmt_time(a[k]['median'])} | "
                   f"{fmt_time(b[k]['median'])} | {ratio:.2f} | {flag} |")
    only = len(set(a) ^ set(b))
    out.append(f"\n{len(common)} benchmarks compared, {regressions} regressions beyond {threshold:.0%}"
               + (f"; {only} present in only one run" if only else "") + ".")
    return "\n".join(out), regressions


# --- plots ---------------------------------------------------------------------------


def _gemm_shape(group: str):
    m = re.search(r"(\d+)x(\d+)x(\d+)$", group)
    return tuple(map(int, m.groups())) if m else None


def plots(rows: list[dict], ceil: dict, out: Path) -> list[Path]:
    """GOP/s vs shape per GEMM kernel, path and peer; a roofline of the GEMM rows
    and the elementwise kernels' share of memory bandwidth. Needs matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    threads = max((r["threads"] for r in rows if r["threads"]), default=None)
    gemm = [r for r in rows if r["ops"] and _gemm_shape(r["group"]) and r["threads"] == threads]
    kernels = sorted({r["group"].rsplit(" ", 1)[0] for r in gemm})
    if kernels:
        fig, axes = plt.subplots(1, len(kernels), figsize=(5.5 * len(kernels), 4.2), squeeze=False)
        for ax, kernel in zip(axes[0], kernels):
            krows = [r for r in gemm if r["group"].rsplit(" ", 1)[0] == kernel]
            shapes = sorted({r["group"].rsplit(" ", 1)[1] for r in krows},
                            key=lambda s: (math.prod(_gemm_shape(s)), s))
            for lab in sorted({label(r) for r in krows}):
                pts = {r["group"].rsplit(" ", 1)[1]: rate(r)[0] for r in krows if label(r) == lab}
                xs = [i for i, s in enumerate(shapes) if s in pts]
                ax.plot(xs, [pts[shapes[i]] for i in xs], marker="o", label=lab)
            ax.set_xticks(range(len(shapes)), shapes, rotation=30, ha="right", fontsize=8)
            ax.set_ylabel("GOP/s")
            ax.set_yscale("log")
            ax.set_title(f"{kernel}, {threads} threads")
            ax.legend(fontsize=7)
        fig.tight_layout()
        written.append(out / "gemm_gops.png")
        fig.savefig(written[-1], dpi=90)
        plt.close(fig)

    bw = ceil["bandwidth"].get(threads)
    peaks = ceil["peak"].get(threads, {})
    if gemm or bw:
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
        if bw or peaks:
            xs = [2 ** (i / 4) for i in range(-16, 49)]
            top = max(peaks.values(), default=bw * 256 if bw else 1)
            if bw:
                ax.plot(xs, [min(bw * x, top) for x in xs], "k--", label=f"memory {bw:.0f} GB/s")
            for path, p in sorted(peaks.items(), key=lambda kv: kv[1]):
                ax.axhline(p, lw=0.8, ls=":", color="gray")
                ax.text(xs[0], p * 1.05, f"{path} peak {p:.0f}", fontsize=7)
        for lab in sorted({label(r) for r in gemm if r["impl"].startswith("qk") or r["impl"] == "numpy"
                           or is_peer(r["impl"])}):
            pts = []
            for r in gemm:
                if label(r) == lab:
                    m, k, n = _gemm_shape(r["group"])
                    pts.append((2 * m * k * n / (m * k + k * n + 4 * m * n), rate(r)[0]))
            ax.scatter(*zip(*pts), s=14, label=lab)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("arithmetic intensity (ops per byte of A, B, C)")
        ax.set_ylabel("GOP/s")
        ax.set_title(f"GEMM roofline, {threads} threads")
        ax.legend(fontsize=6)
        elem = [r for r in rows if r["bytes"] and not r["ops"] and r["threads"] == threads
                and not r["group"].startswith("ceiling") and (r["impl"].startswith("qk") or r["impl"] == "copy")]
        best: dict[str, dict] = {}
        for r in elem:
            key = f"{r['group']}: {'copy' if r['impl'] == 'copy' else 'qk'}"
            if key not in best or r["median"] < best[key]["median"]:
                best[key] = r
        if best:
            names = list(best)
            ax2.barh(range(len(names)), [rate(best[k])[0] for k in names],
                     color=["gray" if k.endswith("copy") else "tab:blue" for k in names])
            ax2.set_yticks(range(len(names)), names, fontsize=6)
            if bw:
                ax2.axvline(bw, color="k", ls="--", label=f"memory bandwidth {bw:.0f} GB/s")
                ax2.legend(fontsize=7)
            ax2.set_xlabel("GB/s")
            ax2.set_title(f"elementwise kernels (fastest qk path) vs np.copyto, {threads} threads")
        fig.tight_layout()
        written.append(out / "roofline.png")
        fig.savefig(written[-1], dpi=90)
        plt.close(fig)
    return written


# --- the machine and the run ------------------------------------------------------------


def machine_info() -> dict:
    import numpy as np

    import qk

    cpu, flags = platform.processor() or "unknown", set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    versions = {"python": platform.python_version(), "qk": qk.__version__, "numpy": np.__version__}
    for mod in ("torch", "onnxruntime", "onnx", "pytest_benchmark", "matplotlib"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            pass
    return {"cpu": cpu, "cores": os.cpu_count(), "flags": [f for f in FLAGS if f in flags],
            "isas": qk.available_isas(), "versions": versions, "platform": platform.platform()}


def render_machine(info: dict, runs: list[dict]) -> str:
    lines = [f"- CPU: {info['cpu']}, {info['cores']} logical cores; flags: {' '.join(info['flags'])}",
             f"- qk ISA paths: {', '.join(info['isas'])}; {info['platform']}",
             "- versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items())]
    if runs:
        total = sum(r["seconds"] for r in runs)
        lines.append("- runs (ISA cap x threads, wall time): " + ", ".join(
            f"{r['isa']} x {r['threads']} ({r['seconds']:.0f} s{', qk rows only' if r['qk_only'] else ''})"
            for r in runs) + f"; total {total / 60:.1f} min" + ("; quick sizes" if runs[0].get("quick") else ""))
    return "\n".join(lines)


def render(data: dict) -> str:
    rows = rows_of(data)
    ceil = ceilings(rows)
    meta = data.get("qk_report", {})
    parts = ["# qk benchmark report\n", render_machine(meta.get("machine") or machine_info(), meta.get("runs", [])),
             "\nMedians. Rates: GB/s of the memory a call must move, or GOP/s (2 ops per multiply-accumulate). "
             "\"of ceiling\": the rate over the ceiling measured in this run, from the fastest round of each probe (memory bandwidth "
             "for elementwise kernels; for GEMM, the probed int8 multiply-accumulate peak of the row's path, or of the best path "
             "for baselines and peers). Inputs that fit in cache can exceed the memory ceiling. "
             "\"vs X\": X's median / this row's median (above 1: this row is faster).\n",
             "## Ceilings\n", ceiling_table(ceil), "\n## Summary\n", summary_table(rows, ceil),
             "\n## Every row\n", group_tables(rows, ceil)]
    return "\n".join(parts) + "\n"


def run_suite(files, isas, threads, quick, extra) -> dict:
    """Runs pytest once per (ISA, threads) and merges the JSONs (each benchmark tagged with both)."""
    with tempfile.TemporaryDirectory() as tmp:
        return _run_suite(files, isas, threads, quick, Path(tmp), extra)


def _run_suite(files, isas, threads, quick, json_dir: Path, extra) -> dict:
    merged, runs = None, []
    best = isas[-1]
    for t in threads:
        for isa in reversed(isas):
            path = json_dir / f"run-{isa}-{t}.json"
            env = dict(os.environ, QK_ISA=isa, QK_BENCH_THREADS=str(t), OMP_NUM_THREADS=str(t),
                       OPENBLAS_NUM_THREADS=str(t), MKL_NUM_THREADS=str(t))
            if quick:
                env["QK_BENCH_QUICK"] = "1"
            cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files, f"--benchmark-json={path}",
                   "--benchmark-min-rounds=5", "-W", "ignore::DeprecationWarning", "-W", "ignore::UserWarning",
                   *(["--bench-qk-only"] if isa != best else []), *extra]
            print(f"$ QK_ISA={isa} QK_BENCH_THREADS={t} " + " ".join(cmd[1:]), file=sys.stderr)
            start = time.perf_counter()
            done = subprocess.run(cmd, cwd=HERE.parent, env=env, stdout=sys.stderr)
            runs.append(dict(isa=isa, threads=t, seconds=time.perf_counter() - start, qk_only=isa != best, quick=quick))
            if done.returncode not in (0, 5) or not path.exists():  # 5: everything deselected
                raise SystemExit(f"benchmark run failed (QK_ISA={isa}, {t} threads): pytest exit {done.returncode}")
            data = load(path)
            if merged is None:
                merged = data
            else:
                merged["benchmarks"] += data["benchmarks"]
    merged["qk_report"] = {"machine": machine_info(), "runs": runs}
    return merged


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="bench/report.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", help="benchmark files (default: " + ", ".join(DEFAULT_FILES) + ")")
    parser.add_argument("--all", action="store_true", help="every bench/bench_*.py (adds observers, training, ...)")
    parser.add_argument("--isa", default="all", help="comma-separated ISA caps, 'best' or 'all' (default)")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    parser.add_argument("--quick", action="store_true", help="small sizes (QK_BENCH_QUICK=1)")
    parser.add_argument("--out", default=str(HERE / "report"), help="output directory (default bench/report/)")
    parser.add_argument("--load", help="render a saved run (report.py's run.json or any pytest-benchmark JSON)")
    parser.add_argument("--compare", nargs=2, metavar=("OLD", "NEW"), help="compare two saved runs")
    parser.add_argument("--threshold", type=float, default=0.10, help="regression threshold for --compare (0.10)")
    argv = sys.argv[1:] if argv is None else list(argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)

    if args.compare:
        table, regressions = compare(load(args.compare[0]), load(args.compare[1]), args.threshold)
        print(table)
        return 1 if regressions else 0

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.load:
        data = load(args.load)
    else:
        import qk

        available = qk.available_isas()
        if args.isa == "all":
            isas = available
        elif args.isa == "best":
            isas = available[-1:]
        else:
            isas = sorted(args.isa.split(","), key=ISA_ORDER.index)
            missing = [i for i in isas if i not in available]
            if missing:
                parser.error(f"--isa: {missing} not available here; available: {', '.join(available)}")
        threads = [int(t) for t in args.threads.split(",")]
        if args.all:
            files = sorted(str(p.relative_to(HERE.parent)) for p in HERE.glob("bench_*.py"))
        else:
            files = args.files or [f"bench/{f}" for f in DEFAULT_FILES]
        data = run_suite(files, isas, threads, args.quick, extra)
        (out / "run.json").write_text(json.dumps(data))
    text = render(data)
    try:
        pngs = plots(rows_of(data), ceilings(rows_of(data)), out)
        text += "\n## Plots\n\n" + "\n".join(f"![{p.stem}]({p.name})" for p in pngs) + "\n"
    except ImportError:
        text += "\n(matplotlib is not installed: no plots)\n"
    (out / "report.md").write_text(text)
    print(text)
    print(f"wrote {out / 'report.md'}" + ("" if args.load else f" and {out / 'run.json'}"), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
