"""qk.qat: quantization-aware training of any model, on its graph.

A QAT model is the model's graph (a qk.nn model is traced, as qk.ptq does)
with BatchNorm folded into the layer before it and a FakeQuant node on the
input and on the weight of every layer graph PTQ would quantize: float
weights that the optimizer trains, seen through a weight `FakeQuantize` and
an input `FakeQuantize`. Fake-quantize runs on the C++ kernel `qk.fake_quantize`;
its backward is the straight-through estimator (gradient passes inside the
clamp range, zero outside), or with ``lsq=True`` learned step sizes (LSQ).
Observers keep updating the ranges in training (moving-average min/max for
activations, the current min/max for weights) until frozen. `convert` gives
the same kind of integer model as `qk.ptq.convert`.

Recommended recipe (fine-tuning a trained model; the numbers are in the README)::

    import math
    from qk import nn, ptq, qat

    prepared = ptq.prepare(model, cfg)                     # e.g. INT4 weights + UINT8 activations
    ptq.calibrate(prepared, data.calibration, progress=False)
    qat_model = qat.from_ptq(prepared)                     # starts from the PTQ ranges and weights
    epochs, batch_size = 10, 64
    steps = epochs * math.ceil(len(data.train[0]) / batch_size)
    opt = nn.Adam(qat_model.parameters(), lr=1e-3)
    nn.fit(qat_model, nn.cross_entropy, opt, data.train, epochs, batch_size=batch_size, seed=0,
           scheduler=nn.CosineLR(opt, steps), progress=False, blas_threads=1,
           after_step=qat.freeze_observers_after(steps // 2))   # ranges settle, then stay fixed
    qmodel = qat.convert(qat_model)

On the digits models this brings INT4, INT3 and even INT2 weights to within
about a point of FP32 in 1-2 s per model. ``qat.from_ptq(prepared,
lsq=True)`` (learned scales, observers frozen from the start; same optimizer
and schedule) does as well here; it matters more for larger models. Without
PTQ: ``qat.calibrate(qat.prepare(model, cfg), data.calibration)`` then the
same training.
"""

from .modules import FakeQuantize
from .ops import fake_quantize, lsq_fake_quantize, lsq_grad_scale
from .workflow import calibrate, convert, freeze_observers, freeze_observers_after, from_ptq, prepare

__all__ = [
    "FakeQuantize", "calibrate", "convert", "fake_quantize", "freeze_observers",
    "freeze_observers_after", "from_ptq", "lsq_fake_quantize", "lsq_grad_scale", "prepare",
]
