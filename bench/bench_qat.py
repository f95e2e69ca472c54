"""QAT overhead: one training epoch of the digits CNN in FP32 vs with
fake-quantized weights and activations (qk.qat), side by side, 1 BLAS thread
(as the reference models train).

    python bench/report.py bench/bench_qat.py     # table: QAT epoch time relative to FP32 ("numpy" row)
    python -m pytest bench/bench_qat.py --benchmark-disable   # quick smoke run
"""

import numpy as np
import pytest
from bench_nn import qk_epoch

import qk.nn as nn
from qk import qat
from qk.quant import QConfig, QScheme, UINT8_ACTIVATION

pytest.importorskip("sklearn")

INT4 = QConfig(weight=QScheme(4, signed=True, symmetric=True, axis=0), activation=UINT8_ACTIVATION, mode="static")


@pytest.fixture(scope="module")
def digits():
    return nn.load_digits(images=True)


def build(kind, digits):
    nn.manual_seed(0)
    model = nn.models.digits_cnn()
    if kind == "fp32":
        return model
    model = qat.calibrate(qat.prepare(model, INT4, lsq=kind == "qat-lsq"), digits.calibration)
    if kind == "qat-lsq":
        qat.freeze_observers(model)  # LSQ learns the scales once frozen: the costlier backward
    return model


@pytest.mark.benchmark(group="digits CNN, one training epoch")
@pytest.mark.parametrize("kind", ["fp32", "qat", "qat-lsq"])
def test_cnn_epoch(benchmark, digits, kind):
    x, y = digits.train
    model = build(kind, digits).train()
    opt = nn.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    order = np.random.default_rng(0).permutation(len(x))
    # "numpy" is the FP32 baseline row bench/report.py compares every row with.
    benchmark.extra_info.update(impl="numpy" if kind == "fp32" else f"qk-{kind}", threads=1)
    with nn.blas_threads(1):
        loss = benchmark.pedantic(qk_epoch, args=(model, opt, x, y, order), rounds=7, warmup_rounds=1)
    assert np.isfinite(loss)
