"""`python -m qk inspect model.onnx` and `python -m qk run model.onnx --input name=file.npy`."""

from __future__ import annotations

import hashlib
import time

import numpy as np


def add_parsers(sub) -> None:
    p = sub.add_parser("inspect", help="what an ONNX model holds and what qk supports of it, node by node")
    p.add_argument("model", help="path of an .onnx file")
    r = sub.add_parser("run", help="run an ONNX model on qk: output shapes, checksums, time")
    r.add_argument("model", help="path of an .onnx file")
    r.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy",
                   help="an input array (repeat for each input)")
    r.add_argument("--random", action="store_true",
                   help="fill inputs not given with random data (symbolic dimensions = 1; integer inputs = 0)")
    r.add_argument("--repeat", type=int, default=5, metavar="N", help="timed runs; the median is printed (default 5)")
    r.add_argument("--compare-ort", action="store_true", help="also run ONNX Runtime and print the max difference")
    r.add_argument("--profile", action="store_true",
                   help="print where a forward pass spends its time, per op type (medians over --repeat runs)")
    q = sub.add_parser("quantize", help="post-training quantization of an ONNX model, written back as QDQ ONNX",
                       description="Quantizes the Conv/Gemm/MatMul layers of an ONNX model (static INT8 from "
                                   "calibration data, or dynamic INT8), prints a per-node table (SQNR and cosine "
                                   "against FP32 on the calibration data), plots the per-node SQNR and writes "
                                   "the quantized model as ONNX that ONNX Runtime runs on integer kernels.")
    q.add_argument("model", help="path of the FP32 .onnx file")
    q.add_argument("-o", "--output", required=True, metavar="OUT.onnx", help="where the quantized model goes")
    q.add_argument("--calib", metavar="CALIB.npz",
                   help="calibration data: one array per model input, first axis = samples (static: required)")
    q.add_argument("--method", choices=["static", "dynamic", "weight-only", "fp16"], default="static",
                   help="static / dynamic INT8, weight-only (--bits, float activations) or FP16 weights "
                        "(default: static)")
    q.add_argument("--bits", type=int, choices=[8, 4], default=8, help="weight bits for weight-only (default 8)")
    q.add_argument("--calibration", choices=["minmax", "entropy", "percentile", "mse"], default="minmax",
                   help="how activation ranges are chosen (static; default minmax)")
    q.add_argument("--exclude", nargs="+", default=[], metavar="NODE",
                   help="node names or op types to keep in float")
    q.add_argument("--smooth", type=float, metavar="ALPHA",
                   help="SmoothQuant first (static or dynamic, needs --calib): move activation outliers into the "
                        "weights of Linear/MatMul/Gemm layers by this exponent in [0, 1]; 0.5-0.8 suits "
                        "transformer encoders")
    q.add_argument("--activation-matmul", action="store_true",
                   help="static: also quantize MatMuls of two activations (attention's QK^T and PV); on the "
                        "MiniLM encoder 8-17%% less time, min cosine to FP32 within 0.002")
    q.add_argument("--uint8", nargs="+", default=[], metavar="OP",
                   help="static: also run these on uint8, inside the integer chains of the layers around them: "
                        "Add (of two activations), GlobalAveragePool, ReduceMean (over H and W), or such nodes by "
                        "name; on the benchmarks' ResNet and MobileNet (Add and the pool) 1.5-4.9x faster")
    q.add_argument("--batch-size", type=int, default=16, metavar="N", help="calibration batch size (default 16)")
    q.add_argument("--max-drop", type=float, metavar="X",
                   help="keep the most sensitive layers in float until the top-1 drop on --eval is at most X "
                        "(a fraction: 0.005 = half a point)")
    q.add_argument("--eval", metavar="EVAL.npz",
                   help="evaluation data for --max-drop: one array per input, and `labels` (class per sample; "
                        "without it, agreement with the FP32 model's top-1 is measured)")


def _load_inputs(args, parser, model) -> dict:
    feeds = {}
    for item in args.input:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            parser.error(f"--input: expected NAME=FILE.npy, got {item!r}")
        if name not in model.input_names:
            parser.error(f"--input: the model has no input {name!r} (inputs: {', '.join(model.input_names)})")
        try:
            feeds[name] = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            parser.error(f"--input {name}: cannot read {path!r} as a .npy array ({e})")
    rng = np.random.default_rng(0)
    for name in model.input_names:
        if name in feeds:
            continue
        if not args.random:
            parser.error(f"--input: missing input {name!r} (give it, or --random)")
        v = model.graph.values[name]
        shape = tuple(1 if d is None else d for d in (v.shape or ()))
        dtype = v.dtype or np.dtype(np.float32)
        feeds[name] = rng.standard_normal(shape).astype(dtype) if dtype.kind == "f" else np.zeros(shape, dtype)
    return feeds


def inspect_main(args, parser) -> int:
    from . import inspect
    from .inspect import format_report

    try:
        info = inspect(args.model)
    except (ValueError, ImportError) as e:
        parser.error(str(e))
    print(format_report(info))
    return 0 if not info["unsupported"] else 1


def profile_table(rows: list[dict]) -> str:
    """A Markdown table of GraphModule.profile rows summed per op type, the largest first."""
    per_op = {}
    for r in rows:
        ms, count = per_op.get(r["op"], (0.0, 0))
        per_op[r["op"]] = (ms + r["ms"], count + 1)
    total = sum(ms for ms, _ in per_op.values()) or 1.0
    lines = ["| op | nodes | ms | share |", "|---|---|---|---|"]
    for op, (ms, count) in sorted(per_op.items(), key=lambda kv: -kv[1][0]):
        lines.append(f"| {op} | {count} | {ms:.3f} | {ms / total:.0%} |")
    return "\n".join(lines)


def run_main(args, parser) -> int:
    from . import load

    if args.repeat < 1:
        parser.error(f"--repeat: expected a positive count, got {args.repeat}")
    try:
        model = load(args.model)
    except (ValueError, ImportError) as e:
        parser.error(str(e))
    feeds = _load_inputs(args, parser, model)
    try:
        outputs = model.run(feeds)
    except (ValueError, TypeError) as e:
        parser.error(str(e))
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        model.run(feeds)
        times.append(time.perf_counter() - t0)
    for name, arr in outputs.items():
        digest = hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()[:12]
        total = float(np.sum(arr, dtype=np.float64)) if arr.dtype.kind in "fiub" else float("nan")
        print(f"{name}: {arr.dtype} {arr.shape}  sum={total:.6g}  sha256={digest}")
    print(f"qk: median {np.median(times) * 1e3:.3f} ms over {args.repeat} runs")
    if args.profile:
        print(profile_table(model.profile(feeds, args.repeat)))
    if args.compare_ort:
        try:
            import onnxruntime as ort
        except ImportError:
            parser.error("--compare-ort: onnxruntime is not installed (pip install 'qk[peers]')")
        sess = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
        ref = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
        t0 = time.perf_counter()
        for _ in range(args.repeat):
            sess.run(None, feeds)
        ort_ms = (time.perf_counter() - t0) / args.repeat * 1e3
        for name, arr in outputs.items():
            diff = float(np.max(np.abs(arr.astype(np.float64) - ref[name]))) if arr.size else 0.0
            peak = float(np.abs(ref[name]).max()) if arr.size else 0.0
            print(f"{name}: max |qk - onnxruntime| = {diff:.3g} (output magnitude {peak:.3g})")
        print(f"onnxruntime: mean {ort_ms:.3f} ms over {args.repeat} runs")
    return 0


def _calibration_batches(path, model, batch_size, parser):
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as e:
        parser.error(f"--calib: cannot read {path!r} as .npz ({e})")
    missing = [n for n in model.input_names if n not in arrays]
    if missing:
        parser.error(f"--calib: {path!r} has no arrays for inputs {missing} (it has {sorted(arrays)})")
    counts = {len(arrays[n]) for n in model.input_names}
    if len(counts) != 1 or 0 in counts:
        parser.error(f"--calib: the inputs' first axes (samples) must be equal and non-zero, got {sorted(counts)}")
    n = counts.pop()
    return [{k: arrays[k][i: i + batch_size] for k in model.input_names} for i in range(0, n, batch_size)]


def _plot(rows, path) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no plot (matplotlib is not installed)"
    fig, ax = plt.subplots(figsize=(max(6, 0.25 * len(rows)), 3.5))
    ax.bar(range(len(rows)), [min(r["sqnr_db"], 99) for r in rows], color="tab:blue")
    ax.set_ylabel("SQNR vs FP32 (dB)")
    ax.set_xlabel("quantized node, in graph order")
    ax.set_title("per-node output SQNR on the calibration data")
    ax.axhline(20, color="tab:red", lw=0.8, ls="--")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"plot: {path}"


def _top1(model, feeds, labels):
    out = next(iter(model.run(feeds).values()))
    return out.reshape(len(out), -1).argmax(1) if labels is None else (out.reshape(len(out), -1).argmax(1) == labels)


def _quantize_within(fp, source, args, parser, batches):
    """auto_mixed_precision of `source` (fp, or fp smoothed): the most sensitive
    layers stay float until the top-1 drop against fp is within --max-drop."""
    import functools

    import qk
    from qk.quant import FP16, HistogramObserver, MinMaxObserver, QConfig, QScheme, int8_dynamic, int8_static

    ev = _calibration_batches(args.eval, fp, 1 << 30, parser)[0]
    try:
        with np.load(args.eval, allow_pickle=False) as f:
            labels = f["labels"] if "labels" in f.files else None
    except (OSError, ValueError) as e:
        parser.error(f"--eval: cannot read {args.eval!r} ({e})")
    reference = _top1(fp, ev, None)

    def accuracy(model):
        got = _top1(model, ev, None)
        return float(np.mean(got == (reference if labels is None else labels)))

    if args.method == "static":
        observer = MinMaxObserver if args.calibration == "minmax" else \
            functools.partial(HistogramObserver, method=args.calibration)
        cfg = int8_static(observer)
    elif args.method == "dynamic":
        cfg = int8_dynamic()
    elif args.method == "fp16":
        cfg = FP16
    else:
        cfg = QConfig(weight=QScheme(args.bits, signed=True, symmetric=True, axis=0), mode="weight_only")
    qm, report = qk.ptq.auto_mixed_precision(source, batches, accuracy, cfg, max_drop=args.max_drop,
                                            exclude=args.exclude)
    kept = ", ".join(report["kept"]) or "none"
    print(f"top-1 on --eval: FP32 {report['baseline']:.2%}, quantized {report['accuracy']:.2%} "
          f"(drop {report['drop']:.2%}, limit {args.max_drop:.2%}); kept in float: {kept}")
    return qm


def quantize_main(args, parser) -> int:
    import functools
    import os

    import qk
    from qk.quant import HistogramObserver, MinMaxObserver, int8_static

    from . import export, load

    if args.batch_size < 1:
        parser.error(f"--batch-size: expected a positive count, got {args.batch_size}")
    if args.method == "static" and not args.calib:
        parser.error("--calib: static quantization needs calibration data (or use --method dynamic)")
    try:
        fp = load(args.model)
    except (ValueError, ImportError) as e:
        parser.error(str(e))
    batches = _calibration_batches(args.calib, fp, args.batch_size, parser) if args.calib else []
    if (args.max_drop is None) != (args.eval is None):
        parser.error("--max-drop, --eval: give both (the drop is measured on the evaluation data) or neither")
    if args.max_drop is not None and args.max_drop < 0:
        parser.error(f"--max-drop: expected a non-negative fraction, got {args.max_drop}")
    if args.activation_matmul and (args.method != "static" or args.max_drop is not None):
        parser.error("--activation-matmul: for --method static without --max-drop (activation x activation "
                     "MatMuls are quantized statically only)")
    uint8_ops = ("Add", "GlobalAveragePool", "ReduceMean")
    if args.uint8:
        if args.method != "static" or args.max_drop is not None:
            parser.error("--uint8: for --method static without --max-drop")
        op_of = {n.name: n.op_type for n in fp.graph.nodes}
        for name in args.uint8:
            if name not in uint8_ops and op_of.get(name) not in uint8_ops:
                parser.error(f"--uint8: expected {', '.join(uint8_ops)} or the name of such a node, got {name!r}")
    if args.smooth is not None:
        if args.method not in ("static", "dynamic"):
            parser.error(f"--smooth: SmoothQuant is for methods that quantize activations (static, dynamic), "
                         f"not {args.method}")
        if not args.calib:
            parser.error("--smooth: SmoothQuant needs calibration data (--calib) for the activation ranges")
        if not 0.0 <= args.smooth <= 1.0:
            parser.error(f"--smooth: expected an exponent in [0, 1], got {args.smooth}")
    t0 = time.perf_counter()
    try:
        source = fp if args.smooth is None else qk.ptq.smooth_quant(fp, batches, args.smooth)
        if args.max_drop is not None:
            qm = _quantize_within(fp, source, args, parser, batches)
        elif args.method == "dynamic":
            qm = qk.ptq.quantize_dynamic(source, exclude=args.exclude)
        elif args.method == "weight-only":
            qm = qk.ptq.quantize_weight_only(fp, args.bits, exclude=args.exclude)
        elif args.method == "fp16":
            qm = qk.ptq.quantize_fp16(fp, exclude=args.exclude)
        else:
            observer = MinMaxObserver if args.calibration == "minmax" else \
                functools.partial(HistogramObserver, method=args.calibration)
            qconfig = int8_static(observer)
            prepared = qk.ptq.prepare(source, qconfig, exclude=args.exclude, activation_matmul=args.activation_matmul,
                                      layers={name: qconfig for name in args.uint8})
            qm = qk.ptq.convert(qk.ptq.calibrate(prepared, batches, progress=True))
    except ValueError as e:
        parser.error(str(e))
    seconds = time.perf_counter() - t0
    export(qm, args.output)
    rows = qk.ptq.compare_layers(fp, qm, batches[:4]) if batches else []
    if rows:
        print("| node | op | scheme | SQNR (dB) | cosine |\n|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['layer']} | {r['op']} | {r['scheme']} | {r['sqnr_db']:.1f} | {r['cosine']:.5f} |")
        print(_plot(rows, os.path.splitext(args.output)[0] + ".sqnr.png"))
    n_q = sum(1 for n in qm.graph.nodes if n.op_type.startswith("Quantized"))
    before, after = os.path.getsize(args.model), os.path.getsize(args.output)
    label = {"static": "static INT8", "dynamic": "dynamic INT8", "fp16": "FP16 weights",
             "weight-only": f"INT{args.bits} weight-only"}[args.method]
    if args.activation_matmul:
        label += ", activation MatMuls too"
    if args.uint8:
        label += f", on uint8 too: {' '.join(args.uint8)}"
    if args.smooth is not None:
        label += f", SmoothQuant alpha {args.smooth:g}"
    print(f"{n_q} layers quantized ({label}) in {seconds:.2f} s; "
          f"size {before / 2 ** 20:.2f} MiB -> {after / 2 ** 20:.2f} MiB ({before / after:.2f}x smaller); "
          f"written to {args.output}")
    return 0


COMMANDS = {"inspect": inspect_main, "run": run_main, "quantize": quantize_main}
