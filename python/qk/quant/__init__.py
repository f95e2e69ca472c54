"""qk.quant: quantization schemes, configs and observers.

>>> import numpy as np, qk
>>> scheme = qk.quant.QScheme(bits=8, signed=False)           # uint8 affine, per-tensor
>>> obs = qk.quant.HistogramObserver(scheme, method="entropy")
>>> for batch in calibration_batches: obs.observe(batch)       # doctest: +SKIP
>>> scale, zero_point = obs.qparams()                          # doctest: +SKIP
>>> q = scheme.quantize(x, scale, zero_point)                   # doctest: +SKIP
"""

from .observers import (
    HistogramObserver,
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    MovingAveragePerChannelMinMaxObserver,
    NotCalibratedError,
    Observer,
    PerChannelMinMaxObserver,
)
from .scheme import (
    EPS,
    FP16,
    INT4_WEIGHT,
    INT4_WEIGHT_ONLY,
    INT8_DYNAMIC,
    INT8_STATIC,
    INT8_WEIGHT,
    MODES,
    UINT8_ACTIVATION,
    QConfig,
    QScheme,
    choose_qparams,
    fp16,
    int4_weight_only,
    int8_dynamic,
    int8_static,
)

__all__ = [
    "EPS",
    "FP16",
    "HistogramObserver",
    "INT4_WEIGHT",
    "INT4_WEIGHT_ONLY",
    "INT8_DYNAMIC",
    "INT8_STATIC",
    "INT8_WEIGHT",
    "MODES",
    "MinMaxObserver",
    "MovingAverageMinMaxObserver",
    "MovingAveragePerChannelMinMaxObserver",
    "NotCalibratedError",
    "Observer",
    "PerChannelMinMaxObserver",
    "QConfig",
    "QScheme",
    "UINT8_ACTIVATION",
    "choose_qparams",
    "fp16",
    "int4_weight_only",
    "int8_dynamic",
    "int8_static",
]
