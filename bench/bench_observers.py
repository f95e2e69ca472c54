"""Micro-benchmarks of the observers on 1M float32 values (2**20).

    python -m pytest bench/bench_observers.py                      # timings
    python -m pytest bench/bench_observers.py --benchmark-disable  # smoke run

`observe` cost is what calibration pays per batch; `qparams` cost (the range
search) is paid once per tensor. PyTorch's HistogramObserver/MinMaxObserver
run side by side when torch is installed.
"""

import numpy as np
import pytest

from qk.quant import HistogramObserver, MinMaxObserver, PerChannelMinMaxObserver, QScheme

N = 1 << 20


@pytest.fixture(scope="module")
def torch_1thread():
    """PyTorch with one thread, like the single-threaded NumPy code it is compared with."""
    torch = pytest.importorskip("torch")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(0).standard_t(4, size=N).astype(np.float32)


def test_minmax_observe_qk(benchmark, data):
    obs = MinMaxObserver()
    benchmark(obs.observe, data)


def test_per_channel_observe_qk(benchmark, data):
    obs = PerChannelMinMaxObserver(axis=0)
    w = data.reshape(1024, 1024)
    benchmark(obs.observe, w)


def test_histogram_observe_qk(benchmark, data):
    obs = HistogramObserver()
    obs.observe(data)
    benchmark(obs.observe, data)


@pytest.mark.parametrize("method", ["percentile", "entropy", "mse"])
def test_histogram_qparams_qk(benchmark, data, method):
    obs = HistogramObserver(QScheme(8, signed=False), method=method)
    obs.observe(data)
    benchmark(obs.qparams)


def test_minmax_observe_torch(benchmark, data, torch_1thread):
    torch = torch_1thread
    from torch.ao.quantization.observer import MinMaxObserver as TorchMinMax

    obs = TorchMinMax()
    t = torch.from_numpy(data)
    benchmark(obs, t)


def test_histogram_observe_torch(benchmark, data, torch_1thread):
    torch = torch_1thread
    from torch.ao.quantization.observer import HistogramObserver as TorchHistogram

    obs = TorchHistogram()
    t = torch.from_numpy(data)
    obs(t)
    benchmark(obs, t)


def test_histogram_qparams_torch(benchmark, data, torch_1thread):
    torch = torch_1thread
    from torch.ao.quantization.observer import HistogramObserver as TorchHistogram

    obs = TorchHistogram()
    obs(torch.from_numpy(data))
    benchmark(obs.calculate_qparams)
