"""qk's PTQ against ONNX Runtime's quantizer, same FP32 files, same calibration data.

- MiniLM encoder, padded calibration batches (64 English sentences in
  batches of 8), with and without SmoothQuant: cosine of each mean-pooled
  sentence embedding to FP32 (min
  and mean), nearest-neighbour agreement, file size, time to quantize, and
  latency of one padded batch (qk running its model; ORT its file); and
  the cosines on sentences 33-64 when 1-32 are the calibration data;
- the ResNet-style and MobileNet-style CNNs trained in torch on the digits
  (upscaled to 3 x 32 x 32): top-1 on the test split, calibration on 200
  training images.

    python bench/compare_ort_quantizer.py [--out DIR]

prints Markdown tables (and writes them to DIR/ort_quantizer.md).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import onnx_zoo  # noqa: E402

import qk  # noqa: E402
import qk.onnx  # noqa: E402
from qk.quant import HistogramObserver, int8_static  # noqa: E402


HELD_OUT_ALPHA = 0.7  # the held-out table's best static alpha
MIXED_MAX_DROP = 0.002
SMOOTH_ALPHA = 0.8  # the best of 0.5 / 0.7 / 0.8 / 0.9 on this encoder (docs/onnx.md)


def embed(hidden, mask):
    m = mask[..., None].astype(np.float32)
    e = (hidden * m).sum(1) / m.sum(1)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def median_ms(fn, repeat=5):
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3


def digits_3x32():
    """The digits as (N, 3, 32, 32) float32 images (nearest upscaling x4, gray to 3 channels)."""
    from qk import nn

    data = nn.load_digits(images=True)

    def up(x):
        return np.ascontiguousarray(np.repeat(np.repeat(np.repeat(x, 3, axis=1), 4, axis=2), 4, axis=3))

    return (up(data.train[0]), data.train[1]), (up(data.test[0]), data.test[1])


def train_torch(model, train, epochs=6):
    import torch

    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = torch.from_numpy(train[0]), torch.from_numpy(train[1].astype(np.int64))
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 64):
            idx = perm[i: i + 64]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


def ort_reader(feeds: list):
    """A fresh onnxruntime CalibrationDataReader over `feeds` (dicts of input name -> array)."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(feeds)

        def get_next(self):
            return next(self.it, None)

    return Reader()


def cnn_tables(work, session):
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quantize_dynamic, quantize_static)

    train, test = digits_3x32()
    calib = train[0][:200]
    lines = ["Digits CNNs (trained in torch, 6 epochs; test split of 359 images; calibration: 200 training images)",
             "", "| model | FP32 | qk static INT8 | qk dynamic INT8 | ORT static QDQ MinMax | ORT static QDQ Entropy "
             "| ORT dynamic |", "|---|---|---|---|---|---|---|"]
    for name in ("resnet", "mobilenet"):
        import torch

        torch.manual_seed(0)
        model, _ = getattr(onnx_zoo, name)()
        train_torch(model, train)
        path = os.path.join(work, f"{name}_digits.onnx")
        onnx_zoo.export(model, (torch.from_numpy(calib[:2]),), path, False, ["x"], None)
        fp = qk.onnx.load(path)

        def top1(run):
            return float((run(test[0]).argmax(1) == test[1]).mean())

        cells = [top1(lambda x: fp.run({"x": x})["out"])]
        static = qk.ptq.convert(qk.ptq.calibrate(qk.ptq.prepare(fp), calib, progress=False))
        cells.append(top1(lambda x: static.run({"x": x})["out"]))
        dynamic = qk.ptq.quantize_dynamic(fp)
        cells.append(top1(lambda x: dynamic.run({"x": x})["out"]))

        feeds = [{"x": calib[i: i + 20]} for i in range(0, len(calib), 20)]
        for method in (CalibrationMethod.MinMax, CalibrationMethod.Entropy):
            out = os.path.join(work, f"{name}_{method.name}.onnx")
            quantize_static(path, out, ort_reader(feeds), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=method)
            s = session(out)
            cells.append(top1(lambda x: s.run(None, {"x": x})[0]))
        out = os.path.join(work, f"{name}_dynamic.onnx")
        quantize_dynamic(path, out, per_channel=True, weight_type=QuantType.QInt8)
        s = session(out)
        cells.append(top1(lambda x: s.run(None, {"x": x})[0]))
        lines.append(f"| {name}-style | " + " | ".join(f"{c:.2%}" for c in cells) + " |")
    return lines


def held_out_table(fp, path, batches, work, session) -> list:
    """Min / mean cosine on sentences 33-64 of qk's and ORT's INT8 models calibrated (and smoothed) on 1-32."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    calib, held = batches[: len(batches) // 2], batches[len(batches) // 2:]
    ref = np.concatenate([embed(fp.run(b)["out"], b["attention_mask"]) for b in held])

    calib_ref = np.concatenate([embed(fp.run(b)["out"], b["attention_mask"]) for b in calib])

    def cosines(run, on=None):
        got = np.concatenate([embed(run(b), b["attention_mask"]) for b in (on or held)])
        return (got * (ref if on is None else calib_ref)).sum(1)

    def qk_static(m):
        return qk.ptq.convert(qk.ptq.calibrate(qk.ptq.prepare(m), calib, progress=False))

    static_path, dynamic_path = os.path.join(work, "held_static.onnx"), os.path.join(work, "held_dynamic.onnx")
    quantize_static(path, static_path, ort_reader(calib), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    quantize_dynamic(path, dynamic_path, per_channel=True, weight_type=QuantType.QInt8)
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for alpha in (None, 0.7, 0.8):
            m = fp if alpha is None else qk.ptq.smooth_quant(fp, calib, alpha, progress=False)
            label = "" if alpha is None else f", SmoothQuant {alpha}"
            for kind, qm in (("static", qk_static(m)), ("dynamic", qk.ptq.quantize_dynamic(m))):
                rows.append((f"qk {kind} INT8{label}", cosines(lambda b: qm.run(b)["out"])))
        # the layers to keep float chosen on the calibration sentences alone (their min cosine within
        # MIXED_MAX_DROP of FP32), scored on the held-out ones
        m = qk.ptq.smooth_quant(fp, calib, HELD_OUT_ALPHA, progress=False)
        qm, report = qk.ptq.auto_mixed_precision(
            m, calib, lambda q: float(cosines(lambda b: q.run(b)["out"], calib).min()), max_drop=MIXED_MAX_DROP)
        rows.append((f"qk static INT8, SmoothQuant {HELD_OUT_ALPHA}, the {len(report['kept'])} most sensitive of "
                     f"{len(report['sensitivity'])} layers float (`auto_mixed_precision`, max_drop {MIXED_MAX_DROP} "
                     "in min cosine on the calibration sentences)", cosines(lambda b: qm.run(b)["out"])))
    for label, p in (("ORT quantize_static QDQ, MinMax", static_path), ("ORT quantize_dynamic, per-channel",
                                                                         dynamic_path)):
        s = session(p)
        rows.append((label, cosines(lambda b: s.run(None, b)[0])))
    lines = [f"Held out: calibrated (and smoothed) on sentences 1-{8 * len(calib)}, evaluated on the other "
             f"{8 * len(held)}", "", "| method | min cosine | mean cosine |", "|---|---|---|"]
    lines += [f"| {label} | {c.min():.4f} | {c.mean():.4f} |" for label, c in rows]
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=".", help="where ort_quantizer.md goes")
    args = ap.parse_args()
    import onnxruntime as ort
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quantize_dynamic, quantize_static)

    work = tempfile.mkdtemp(prefix="qk_ortq_")
    exports, tok = onnx_zoo.export_minilm(work)
    path = exports["torchscript"]
    batches = [onnx_zoo.token_feeds(tok, onnx_zoo.ENGLISH[i: i + 8]) for i in range(0, len(onnx_zoo.ENGLISH), 8)]
    fp = qk.onnx.load(path)
    ref = np.concatenate([embed(fp.run(b)["out"], b["attention_mask"]) for b in batches])
    ref_nn = np.argsort(-(ref @ ref.T), axis=1)[:, 1]

    def score(run):
        got = np.concatenate([embed(run(b), b["attention_mask"]) for b in batches])
        cos = (got * ref).sum(1)
        nn_agree = (np.argsort(-(got @ got.T), axis=1)[:, 1] == ref_nn).mean()
        return cos.min(), cos.mean(), nn_agree

    def session(p):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        return ort.InferenceSession(p, opts, providers=["CPUExecutionProvider"])

    rows = []
    fp_size = os.path.getsize(path)

    def qk_row(label, make):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            qm = make()
        seconds = time.perf_counter() - t0
        out = os.path.join(work, label.replace(" ", "_").replace(",", "") + ".onnx")
        qk.onnx.export(qm, out)
        s = session(out)
        cmin, cmean, agree = score(lambda b: qm.run(b)["out"])
        rows.append((label, cmin, cmean, agree, os.path.getsize(out), seconds, median_ms(lambda: qm.run(batches[0])),
                     median_ms(lambda: s.run(None, batches[0]))))

    def static(observer=None, model=fp):
        prepared = qk.ptq.prepare(model, int8_static(observer))
        return qk.ptq.convert(qk.ptq.calibrate(prepared, batches, progress=False))

    def smoothed():
        return qk.ptq.smooth_quant(fp, batches, SMOOTH_ALPHA, progress=False)

    qk_row("qk static INT8, minmax", static)
    qk_row("qk static INT8, mse", lambda: static(functools.partial(HistogramObserver, method="mse")))
    qk_row(f"qk static INT8, minmax, SmoothQuant {SMOOTH_ALPHA}", lambda: static(model=smoothed()))
    qk_row("qk dynamic INT8", lambda: qk.ptq.quantize_dynamic(fp))
    qk_row(f"qk dynamic INT8, SmoothQuant {SMOOTH_ALPHA}", lambda: qk.ptq.quantize_dynamic(smoothed()))

    def ort_row(label, make):
        out = os.path.join(work, label.replace(" ", "_").replace(",", "") + ".onnx")
        t0 = time.perf_counter()
        try:
            make(out)
        except Exception as e:  # noqa: BLE001 (a peer's failure is a result to report)
            rows.append((label, None, None, None, None, None, None, f"failed: {type(e).__name__}: {str(e)[:80]}"))
            return
        seconds = time.perf_counter() - t0
        s = session(out)
        cmin, cmean, agree = score(lambda b: s.run(None, b)[0])
        rows.append((label, cmin, cmean, agree, os.path.getsize(out), seconds, None,
                     median_ms(lambda: s.run(None, batches[0]))))

    for method in (CalibrationMethod.MinMax, CalibrationMethod.Entropy, CalibrationMethod.Percentile):
        ort_row(f"ORT quantize_static QDQ, {method.name}", lambda out, m=method: quantize_static(
            path, out, ort_reader(batches), quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8, calibrate_method=m))
    ort_row("ORT quantize_dynamic, per-channel", lambda out: quantize_dynamic(
        path, out, per_channel=True, weight_type=QuantType.QInt8))
    fp_session = session(path)
    fp_ms = median_ms(lambda: fp_session.run(None, batches[0]))

    lines = [f"MiniLM-L6 encoder, 64 sentences in padded batches of 8 (calibration = evaluation text); "
             f"FP32 file {fp_size / 2 ** 20:.1f} MiB, ORT FP32 {fp_ms:.1f} ms per batch of 8 (1 thread)", "",
             "| method | min cosine | mean cosine | NN agreement | size (MiB) | time to quantize | "
             "qk latency | ORT latency of the file |", "|---|---|---|---|---|---|---|---|"]
    for label, cmin, cmean, agree, size, secs, qk_ms, ort_ms in rows:
        if cmin is None:
            lines.append(f"| {label} | {ort_ms} | | | | | | |")
            continue
        lines.append(f"| {label} | {cmin:.4f} | {cmean:.4f} | {agree:.0%} | {size / 2 ** 20:.1f} | {secs:.2f} s | "
                     f"{'' if qk_ms is None else f'{qk_ms:.1f} ms'} | {ort_ms:.1f} ms |")
    lines += ["", *held_out_table(fp, path, batches, work, session), "", *cnn_tables(work, session)]
    text = "\n".join(lines)
    print(text)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    Path(args.out, "ort_quantizer.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
