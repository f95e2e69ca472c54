"""`python -m qk demo`: qk's main job, post-training quantization (PTQ) against
quantization-aware training (QAT) on the digits MLP and CNN.

For each model: train the FP32 reference with a fixed seed (or load it from
the cache), then for each weight width (8, 4, 3, 2 bits; symmetric,
per-channel; uint8 affine activations, static):

- PTQ: `qk.ptq.prepare` -> `calibrate` (the 200-image calibration split) ->
  `convert`, timed end to end;
- QAT: the recipe of the `qk.qat` docstring: `qk.qat.from_ptq` (the
  calibrated PTQ model is the starting point) -> `qk.nn.fit` (Adam 1e-3,
  cosine decay, 10 epochs, observers frozen halfway) -> `qk.qat.convert`,
  timed including the calibration it starts from.

One table (accuracy and drop of each, time to quantize, model size,
latency and speedup vs FP32, measured side by side on one thread), written
as Markdown and plotted (accuracy vs bits, PTQ vs QAT, one panel per model)
when matplotlib is installed. PTQ and QAT convert to the same integer layers, so size and
latency are those of the converted model and do not depend on the method.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from . import nn
from ._report import header, latencies, markdown_table, timed
from .ptq import calibrate, convert, model_size, prepare
from .quant import QConfig, QScheme, UINT8_ACTIVATION

MODELS = ("mlp", "cnn")
BITS = (8, 4, 3, 2)


@dataclass(frozen=True)
class Settings:
    """What one demo run does. `quick()` is the CI / test variant."""

    models: tuple = MODELS
    bits: tuple = BITS
    seed: int = 0
    fp32_epochs: int | None = None  # None: the reference recipe (qk.nn.models.REFERENCE)
    qat_epochs: int = 10
    qat_lr: float = 1e-3
    lsq: bool = False
    batch_size: int = 64
    latency_batch: int = 256
    latency_repeats: int = 30

    @classmethod
    def quick(cls, **overrides) -> "Settings":
        """Fewer epochs, widths and latency repeats: the whole run in seconds."""
        return cls(**{**dict(bits=(8, 4, 2), fp32_epochs=10, qat_epochs=2, latency_repeats=3), **overrides})

    def __post_init__(self):
        object.__setattr__(self, "models", check_models(self.models))
        object.__setattr__(self, "bits", check_bits(self.bits))
        for name in ("seed", "qat_epochs", "batch_size", "latency_batch", "latency_repeats"):
            _check_int(getattr(self, name), name, minimum=0 if name == "seed" else 1)
        if self.fp32_epochs is not None:
            _check_int(self.fp32_epochs, "fp32_epochs", minimum=1)
        if not (isinstance(self.qat_lr, (int, float)) and 0 < self.qat_lr < 1):
            raise ValueError(f"qat_lr: expected a learning rate in (0, 1), got {self.qat_lr!r}")


@dataclass
class Row:
    """One weight width of one model (bits None: the FP32 model itself)."""

    model: str
    bits: int | None
    fp32_accuracy: float
    size: int
    latency: float
    fp32_latency: float
    ptq_accuracy: float | None = None
    ptq_seconds: float | None = None
    qat_accuracy: float | None = None  # None: qk.qat is not available
    qat_seconds: float | None = None


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return value


def check_models(models) -> tuple:
    models = tuple(models)
    bad = [m for m in models if m not in MODELS]
    if not models or bad or len(set(models)) != len(models):
        raise ValueError(f"models: expected distinct names from {', '.join(MODELS)}, "
                         f"got {', '.join(map(str, models)) or 'none'}")
    return models


def check_bits(bits) -> tuple:
    bits = tuple(bits)
    bad = [b for b in bits if isinstance(b, bool) or not isinstance(b, int) or not 2 <= b <= 8]
    if not bits or bad or len(set(bits)) != len(bits):
        raise ValueError(f"bits: expected distinct weight widths from 2 to 8, "
                         f"got {', '.join(map(str, bits)) or 'none'}")
    return bits


def qconfig(bits: int) -> QConfig:
    """`bits`-bit signed symmetric per-channel weights, uint8 affine activations, static."""
    return QConfig(weight=QScheme(bits, signed=True, symmetric=True, axis=0), activation=UINT8_ACTIVATION,
                   mode="static")


def default_cache_dir() -> Path:
    """$QK_CACHE_DIR, else $XDG_CACHE_HOME/qk, else ~/.cache/qk."""
    if os.environ.get("QK_CACHE_DIR"):
        return Path(os.environ["QK_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "qk"


def reference_model(name: str, seed: int, epochs: int | None, cache_dir, log=None):
    """(FP32 model, test accuracy, seconds, whether it came from the cache).

    Training is deterministic for a seed, so a cached state dict gives the
    same model; `cache_dir=None` always trains. A cache file that does not
    load (other qk version, damaged) is retrained and replaced."""
    from . import __version__

    spec = nn.models.REFERENCE[name]
    data = nn.load_digits(images=spec["images"])
    epochs = spec["epochs"] if epochs is None else epochs
    path = None if cache_dir is None else Path(cache_dir) / f"digits-{name}-seed{seed}-e{epochs}-qk{__version__}.npz"
    if path is not None and path.exists():
        try:
            model, seconds = timed(lambda: spec["build"]().load(path).eval())
            return model, nn.evaluate(model, data.test), seconds, True
        except (OSError, ValueError) as e:
            if log:
                log(f"cache {path} unusable ({e}); retraining")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    (model, accuracy), seconds = timed(nn.models.train_reference, name, seed=seed, epochs=epochs, path=path)
    return model, accuracy, seconds, False


def _qat():
    """qk.qat, or None when this build has no QAT (the demo then reports PTQ only)."""
    try:
        from . import qat
    except ImportError:
        return None
    return qat


def quantization_aware(prepared, data, settings: Settings):
    """QAT from a calibrated PTQ model (qk.qat's recommended recipe): the converted integer model."""
    qat = _qat()
    model = qat.from_ptq(prepared, lsq=settings.lsq)
    steps = settings.qat_epochs * -(-len(data.train[0]) // settings.batch_size)  # observers freeze halfway
    optimizer = nn.Adam(model.parameters(), lr=settings.qat_lr)
    nn.fit(model, nn.functional.cross_entropy, optimizer, data.train, settings.qat_epochs,
           batch_size=settings.batch_size, seed=settings.seed, scheduler=nn.CosineLR(optimizer, steps),
           progress=False, after_step=qat.freeze_observers_after(steps // 2), blas_threads=1)
    return qat.convert(model)


def run(settings: Settings = Settings(), cache_dir=None, log=None) -> list[Row]:
    """Runs the demo; `log(line)` reports progress. Returns the table's rows."""
    has_qat = _qat() is not None
    rows = []
    for name in settings.models:
        model, fp32_acc, seconds, cached = reference_model(name, settings.seed, settings.fp32_epochs, cache_dir, log)
        if log:
            log(f"{name}: FP32 {fp32_acc:.2%} ({'loaded from cache' if cached else 'trained'} in {seconds:.1f} s)")
        data = nn.load_digits(images=nn.models.REFERENCE[name]["images"])
        measured = []
        for bits in settings.bits:
            def calibrated(bits=bits):
                prepared = prepare(model, qconfig(bits))
                return calibrate(prepared, data.calibration, progress=False)

            prepared, calib_seconds = timed(calibrated)
            ptq_model, convert_seconds = timed(convert, prepared)
            row = Row(name, bits, fp32_acc, model_size(ptq_model), 0.0, 0.0,
                      ptq_accuracy=nn.evaluate(ptq_model, data.test), ptq_seconds=calib_seconds + convert_seconds)
            if has_qat:
                qat_model, qat_seconds = timed(quantization_aware, prepared, data, settings)
                row.qat_accuracy, row.qat_seconds = nn.evaluate(qat_model, data.test), calib_seconds + qat_seconds
            if log:
                qat_part = f", QAT {row.qat_accuracy:.2%} ({row.qat_seconds:.1f} s)" if has_qat else ""
                log(f"{name} INT{bits}: PTQ {row.ptq_accuracy:.2%} ({row.ptq_seconds:.2f} s){qat_part}")
            measured.append((row, ptq_model))
        x = data.test[0][: settings.latency_batch]
        # One thread for qk and for BLAS: these matrices are too small to gain from two, and on a
        # busy machine a second thread mostly waits for a core (qk's INT8 MLP: 0.5 ms -> 15 ms here).
        times = latencies([model] + [m for _, m in measured], x, settings.latency_repeats, threads=1)
        rows.append(Row(name, None, fp32_acc, model_size(model), times[0], times[0]))
        for (row, _), t in zip(measured, times[1:]):
            row.latency, row.fp32_latency = t, times[0]
            rows.append(row)
    return rows


COLUMNS = ["model", "weights", "FP32 acc.", "PTQ acc.", "PTQ drop (pt)", "PTQ time", "QAT acc.", "QAT drop (pt)",
           "QAT time", "size (KiB)", "latency", "speedup vs FP32"]


def _drop(fp32: float, acc: float | None) -> str:
    return "" if acc is None else f"{100 * (fp32 - acc):+.2f}"


def format_table(rows: list[Row]) -> str:
    cells = []
    for r in rows:
        quantized = r.bits is not None
        na = "n/a" if quantized else ""
        cells.append([
            r.model, f"INT{r.bits}" if quantized else "FP32", f"{r.fp32_accuracy:.2%}",
            f"{r.ptq_accuracy:.2%}" if quantized else "", _drop(r.fp32_accuracy, r.ptq_accuracy),
            f"{r.ptq_seconds:.2f} s" if quantized else "",
            na if r.qat_accuracy is None else f"{r.qat_accuracy:.2%}",
            na if r.qat_accuracy is None else _drop(r.fp32_accuracy, r.qat_accuracy),
            na if r.qat_seconds is None else f"{r.qat_seconds:.1f} s",
            f"{r.size / 1024:.1f}", f"{r.latency * 1e3:.2f} ms", f"{r.fp32_latency / r.latency:.2f}x",
        ])
    return markdown_table(COLUMNS, cells)


def check_targets(rows: list[Row]) -> list[str]:
    """One line per target of the demo, with what was measured."""
    lines = []
    for r in rows:
        if r.bits is None:
            continue
        ptq_drop = 100 * (r.fp32_accuracy - r.ptq_accuracy)
        where = f"{r.model} INT{r.bits}"
        if r.bits == 8:
            ok = ptq_drop <= 0.5
            lines.append(f"{'met' if ok else 'MISSED'}: {where} PTQ within 0.5 pt of FP32 ({ptq_drop:+.2f} pt)")
        if r.qat_accuracy is None:
            continue
        qat_drop = 100 * (r.fp32_accuracy - r.qat_accuracy)
        if r.bits == 4:
            ok = qat_drop <= 1.0
            lines.append(f"{'met' if ok else 'MISSED'}: {where} QAT within 1 pt of FP32 ({qat_drop:+.2f} pt)")
        if ptq_drop > 1.0:
            ok = r.qat_accuracy > r.ptq_accuracy
            lines.append(f"{'met' if ok else 'MISSED'}: {where} QAT beats PTQ where PTQ loses > 1 pt "
                         f"(PTQ {ptq_drop:+.2f} pt, QAT {qat_drop:+.2f} pt)")
    return lines


def plot(rows: list[Row], path) -> bool:
    """Accuracy vs weight bits, PTQ vs QAT, one panel per model, saved to
    `path`. Returns False (nothing written) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only; never needs a display
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    models = list(dict.fromkeys(r.model for r in rows))
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 4), squeeze=False)
    for ax, name in zip(axes[0], models):
        quantized = [r for r in rows if r.model == name and r.bits is not None]
        bits = [r.bits for r in quantized]
        fp32 = next(r.fp32_accuracy for r in rows if r.model == name)
        ax.axhline(100 * fp32, color="gray", linestyle="--", label=f"FP32 ({fp32:.2%})")
        ax.plot(bits, [100 * r.ptq_accuracy for r in quantized], "o-", label="PTQ")
        if all(r.qat_accuracy is not None for r in quantized):
            ax.plot(bits, [100 * r.qat_accuracy for r in quantized], "s-", label="QAT")
        ax.set_title(f"digits {name.upper()}")
        ax.set_xlabel("weight bits (uint8 activations)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_xticks(sorted(bits))
        ax.invert_xaxis()  # fewer bits to the right
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def check_out_dir(out_dir) -> Path:
    """`out_dir` as a Path; ValueError if it exists and is not a directory."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"out: {str(out_dir)!r} exists and is not a directory")
    return out_dir


def main(settings: Settings, out_dir, cache_dir=None) -> int:
    """Runs the demo, prints the table, writes qk_demo.md (and qk_demo.png) in `out_dir`."""
    out_dir = check_out_dir(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    def log(line):
        print(line, file=sys.stderr, flush=True)

    title = header(f"digits test set, seed {settings.seed}; latency: median of {settings.latency_repeats} "
                   f"runs at batch {settings.latency_batch} on 1 thread (qk and BLAS)")
    print(title + "\n", flush=True)
    rows, seconds = timed(run, settings, cache_dir, log)
    table = format_table(rows)
    targets = check_targets(rows)
    print(table + "\n")
    if _qat() is None:
        print("note: qk.qat is not available in this build; QAT columns are n/a")
    print("\n".join(targets))
    print(f"\ndemo time: {seconds:.1f} s (models, PTQ, QAT, latency)")
    (out_dir / "qk_demo.md").write_text(f"{title}\n\n{table}\n\n" + "\n".join(targets) + "\n")
    png = out_dir / "qk_demo.png"
    if plot(rows, png):
        print(f"wrote {out_dir / 'qk_demo.md'} and {png}")
    else:
        print(f"wrote {out_dir / 'qk_demo.md'}; note: matplotlib is not installed, so no plot "
              "(pip install 'qk[demo]')")
    return 0
