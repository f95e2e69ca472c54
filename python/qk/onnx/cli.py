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
            print(f"{name}: max |qk - onnxruntime| = {diff:.3g} (output magnitude {float(np.abs(ref[name]).max()):.3g})")
        print(f"onnxruntime: mean {ort_ms:.3f} ms over {args.repeat} runs")
    return 0


COMMANDS = {"inspect": inspect_main, "run": run_main}
