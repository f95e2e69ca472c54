"""`python -m qk ptq`: post-training quantization of the digits MLP and CNN,
one table of accuracy, size, latency and time to quantize per method."""

from __future__ import annotations

from .. import nn
from .._report import header, latencies, markdown_table, timed
from ..quant import FP16, INT8_STATIC, QConfig, QScheme, UINT8_ACTIVATION
from .analysis import auto_mixed_precision, model_size
from .workflow import calibrate, convert, prepare, quantize_dynamic, quantize_weight_only


def _static(model, calib, qconfig=INT8_STATIC, **options):
    prepared = prepare(model, qconfig, **options)
    calibrate(prepared, calib, progress=False)
    return convert(prepared)


def methods(calib, eval_fn):
    int4 = QConfig(weight=QScheme(4, signed=True, symmetric=True, axis=0), activation=UINT8_ACTIVATION)
    return [
        ("INT8 static", lambda m: _static(m, calib)),
        ("INT8 dynamic", lambda m: quantize_dynamic(m)),
        ("INT4 weights + INT8 act.", lambda m: _static(m, calib, int4)),
        ("INT4 weights + INT8 act., GPTQ", lambda m: _static(m, calib, int4, rounding="gptq")),
        ("INT4 weight-only", lambda m: quantize_weight_only(m, 4)),
        ("INT4 weight-only, GPTQ", lambda m: quantize_weight_only(m, 4, calibration_data=calib, rounding="gptq")),
        ("FP16 weights", lambda m: _static(m, calib, FP16)),
        ("auto mixed (INT4, max drop 0.5 pt)",
         lambda m: auto_mixed_precision(m, calib, eval_fn, int4, max_drop=0.005)[0]),
    ]


COLUMNS = ["model", "method", "accuracy", "drop (pt)", "size (KiB)", "latency", "speedup vs FP32",
           "time to quantize"]


def run(batch: int = 256) -> str:
    rows = []
    for name in ("mlp", "cnn"):
        model, fp32_acc = nn.models.train_reference(name, seed=0)
        data = nn.load_digits(images=name == "cnn")

        def eval_fn(m, data=data):
            return nn.evaluate(m, data.test)

        results = []
        for label, make in methods(data.calibration, eval_fn):
            qmodel, seconds = timed(make, model)
            results.append((label, qmodel, eval_fn(qmodel), seconds))
        # Side by side on one thread, as in `python -m qk demo` (see qk._report.latencies).
        fp32_latency, *lats = latencies([model] + [r[1] for r in results], data.test[0][:batch], threads=1)
        rows.append([name, "FP32", f"{fp32_acc:.2%}", "", f"{model_size(model) / 1024:.1f}",
                     f"{fp32_latency * 1e3:.2f} ms", "1.00x", ""])
        for (label, qmodel, acc, seconds), lat in zip(results, lats):
            rows.append([name, label, f"{acc:.2%}", f"{100 * (fp32_acc - acc):+.2f}",
                         f"{model_size(qmodel) / 1024:.1f}", f"{lat * 1e3:.2f} ms", f"{fp32_latency / lat:.2f}x",
                         f"{seconds:.2f} s"])
    return markdown_table(COLUMNS, rows)


def main() -> None:
    print(header("digits test set, seed 0; latency: median of 20 runs at batch 256 on 1 thread (qk and BLAS)") + "\n")
    print(run())
