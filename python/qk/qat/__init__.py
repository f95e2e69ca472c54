"""qk.qat: quantization-aware training of qk.nn models.

    qat = qk.qat.from_ptq(prepared)          # from a calibrated qk.ptq.prepare(model, cfg) (or qk.qat.prepare + calibrate)
    qk.nn.fit(qat, qk.nn.cross_entropy, opt, data.train, epochs, after_step=qk.qat.freeze_observers_after(n))
    qmodel = qk.qat.convert(qat)             # same integer model as qk.ptq.convert makes

RECIPE_PLACEHOLDER
"""

from .modules import FakeQuantize, QATConv2d, QATLinear
from .ops import fake_quantize, lsq_fake_quantize, lsq_grad_scale
from .workflow import calibrate, convert, freeze_observers, freeze_observers_after, from_ptq, prepare

__all__ = [
    "FakeQuantize", "QATConv2d", "QATLinear", "calibrate", "convert", "fake_quantize", "freeze_observers",
    "freeze_observers_after", "from_ptq", "lsq_fake_quantize", "lsq_grad_scale", "prepare",
]
